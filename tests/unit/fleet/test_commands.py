"""The command tree: every registered verb parses, the default verb, shared options, pass-through."""

from __future__ import annotations

import pytest

from fleet import commands
from fleet.commands import options


def test_every_registered_verb_has_a_one_line_help_and_a_run_function() -> None:
    for name in commands.VERBS:
        module = commands.verb_module(name)
        assert module.HELP and "\n" not in module.HELP, name
        assert callable(module.run) and module.__doc__, name
    assert f"{'up':<10}" in commands.build_parser().format_help()


def test_without_a_verb_the_default_verb_is_meant() -> None:
    args = commands.parse_args(["--rack", "12", "--until", "os"])

    assert (args.verb, args.rack, args.until) == ("up", ["12"], "os")


def test_node_lists_split_on_commas_and_repeat() -> None:
    args = commands.parse_args(["status", "--nodes", "a, b", "--nodes", "c,", "--json"])

    assert (args.nodes, args.json) == (["a", "b", "c"], True)
    assert options.comma_list(" x ,,y ") == ["x", "y"]


def test_a_pass_through_verb_keeps_every_later_argument_unparsed() -> None:
    args = commands.parse_args(["lab", "--site", "s.yml", "up", "--fault", "bmc_5xx:0.5", "-h"])

    assert args.passthrough == ["--site", "s.yml", "up", "--fault", "bmc_5xx:0.5", "-h"]


@pytest.mark.parametrize("argv", [["status", "--bogus"], ["--rack", "1", "--until", "never"], ["health", "x", "y"]])
def test_bad_arguments_exit_with_the_usage_code(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        commands.parse_args(argv)

    assert exited.value.code == options.EXIT_USAGE
    assert "error" in capsys.readouterr().err


def test_the_stage_table_orders_bring_up_and_reimage() -> None:
    from fleet import stages

    assert stages.NAMES == ("discover", "bios", "pxe", "commission", "os", "hostkey", "configure", "fabric", "validate",
                            "burnin")
    assert stages.DEFAULT_UNTIL == "validate"  # burnin is optional: only when --until names it
    assert stages.order() == list(stages.NAMES[:-1])
    assert stages.order(reimage=True, until="burnin") == ["release", *stages.NAMES]
    for spec in stages.TABLE:
        assert callable(__import__(f"fleet.stages.{spec.module}", fromlist=["make"]).make), spec.name


def test_a_site_without_a_state_dir_keeps_its_state_outside_the_checkout() -> None:
    from pathlib import Path

    from fleet.commands.options import production_state_dir

    assert production_state_dir("dc1", euid=0, environ={}) == Path("/var/lib/fleet/dc1")
    assert production_state_dir("dc1", euid=1000, environ={"HOME": "/home/ops"}) == Path(
        "/home/ops/.local/state/fleet/dc1")
    assert production_state_dir("dc1", euid=1000, environ={"XDG_STATE_HOME": "/srv/state"}) == Path(
        "/srv/state/fleet/dc1")


def test_error_text_is_printed_verbatim_not_as_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    # rich turns ":ab:" into an emoji unless told not to; paths, fingerprints and MACs hold such pairs.
    assert commands.main(["--site", "/nonexistent/:ab:/site.yml", "--rack", "1"]) == options.EXIT_USAGE
    assert "/nonexistent/:ab:/site.yml" in capsys.readouterr().err
