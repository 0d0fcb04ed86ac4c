"""The CLI end to end on the lab fixture sets: verdicts, exit codes, JSON shape, textfile, config errors."""

from __future__ import annotations

import json
import shutil

import pytest

from healthcheck.__main__ import USAGE_EXIT, main
from healthcheck.config import ConfigError, load_config, parse_config
from healthcheck.model import Verdict
from healthcheck.output import TEXTFILE_NAME
from tests.unit.healthcheck.helpers import LAB

# The fixture sets describe GPUs, HCAs and logs; these checks read the machine running the test
# (its /proc and disks), whose swap, fill level and long-running processes are not the test's to assert.
HOST_CHECKS_OFF = ("--disable", "disk_space,swap,hung_processes")


@pytest.mark.parametrize(
    ("fixture_set", "exit_code", "failing"),
    [
        ("healthy", 0, {}),
        ("sick-gpu", 2, {"gpu_ecc_errors": "CRITICAL", "gpu_row_remap": "CRITICAL"}),
        ("link-down", 2, {"ib_ports": "CRITICAL"}),
        ("bad-dmesg", 2, {"gpu_xid": "CRITICAL", "dmesg_baseline": "WARNING"}),
    ],
)
def test_lab_fixture_sets_give_their_verdicts_and_exit_codes(fixture_set, exit_code, failing, capsys):
    code = main(["--config", str(LAB / fixture_set / "config.json"), "--json", "--no-state", *HOST_CHECKS_OFF])
    report = json.loads(capsys.readouterr().out)
    assert code == exit_code == report["exit_code"]
    assert report["gpu_source"] == "nvidia-smi"
    not_ok = {c["name"]: c["verdict"] for c in report["checks"] if c["verdict"] not in ("OK", "SKIPPED")}
    assert not_ok == failing


def test_json_shape_is_stable(capsys):
    main(["--config", str(LAB / "healthy" / "config.json"), "--json", "--no-state", *HOST_CHECKS_OFF])
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"schema", "node", "verdict", "exit_code", "started_at", "duration_s", "gpu_source", "checks"}
    assert report["schema"] == 1 and report["verdict"] == "OK"
    check = report["checks"][0]
    assert set(check) == {"name", "verdict", "severity", "summary", "fix", "evidence", "findings"}
    assert check["name"] == "gpu_count" and check["evidence"] == {"gpus_found": 8, "gpus_expected": 8}


def test_textfile_has_one_gauge_per_check_and_the_evidence(tmp_path, capsys):
    code = main(["--config", str(LAB / "sick-gpu" / "config.json"), "--textfile", str(tmp_path), "--no-state"])
    assert code == 2
    text = (tmp_path / TEXTFILE_NAME).read_text()
    assert 'healthcheck_check_verdict{node="' in text
    assert ',check="gpu_row_remap"} 2' in text
    assert ',check="gpu_ecc_errors",key="gpu3_volatile_uncorrected"} 4' in text
    assert 'check="fabric_manager"' not in text.split("healthcheck_evidence")[0]  # skipped checks not exported
    assert [p.name for p in tmp_path.iterdir()] == [TEXTFILE_NAME]  # no temp file left behind
    assert "CRITICAL" in capsys.readouterr().out


def test_baseline_subcommand_learns_from_several_logs(tmp_path, capsys):
    out = tmp_path / "baseline.json"
    code = main(
        [
            "baseline",
            str(LAB / "healthy" / "dmesg.txt"),
            str(LAB / "bad-dmesg" / "dmesg.txt"),
            "--out",
            str(out),
            "--min-nodes",
            "2",
        ]
    )
    assert code == 0
    templates = json.loads(out.read_text())["templates"]
    assert not any("Xid" in t for t in templates)  # seen on one node only
    assert "templates from 2 logs" in capsys.readouterr().out


def test_invalid_config_lists_every_problem_and_exits_with_usage_code(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"gpu": {"cuont": 8, "count": "eight"}, "ib": {"rate_gbps": True}, "extra": 1}))
    assert main(["--config", str(bad)]) == USAGE_EXIT
    err = capsys.readouterr().err
    assert "gpu.cuont: unknown key" in err and "gpu.count: expected a number" in err
    assert "ib.rate_gbps: expected a number" in err and "extra: unknown key" in err


def test_relative_paths_resolve_against_the_config_file():
    config = load_config(LAB / "link-down" / "config.json")
    assert config.sources.sysfs_root == str((LAB / "link-down" / "sysfs").resolve())
    assert config.sources.nvidia_smi[0] == str((LAB / "bin" / "nvidia-smi").resolve())
    assert config.dmesg.baseline == str((LAB / "healthy" / "dmesg-baseline.json").resolve())


def test_defaults_expect_an_hgx_node():
    config = parse_config({})
    assert (config.gpu.count, config.ib.hca_count, config.ib.rate_gbps) == (8, 8, 400)
    assert "nvidia_peermem" in config.modules
    with pytest.raises(ConfigError):
        parse_config([])


def test_verdict_order_puts_unknown_between_warning_and_critical():
    ranked = sorted(Verdict, key=lambda v: v.rank)
    assert ranked == [Verdict.SKIPPED, Verdict.OK, Verdict.WARNING, Verdict.UNKNOWN, Verdict.CRITICAL]
    assert [v.exit_code for v in ranked] == [0, 0, 1, 3, 2]


def _ib_counters(capsys, config, *extra):
    main(["--config", str(config), "--json", *HOST_CHECKS_OFF, *extra])
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "ib_counters"]
    return check["verdict"], check["summary"]


def test_the_timer_and_the_fleet_sweep_each_see_a_counter_rise_once_with_their_own_state(tmp_path, capsys):
    shutil.copytree(LAB, tmp_path / "lab-node")
    config = tmp_path / "lab-node" / "healthy" / "config.json"
    raw = json.loads(config.read_text())
    raw["sources"]["state_dir"] = str(tmp_path / "state")
    config.write_text(json.dumps(raw))
    assert _ib_counters(capsys, config)[0] == "OK"  # the timer's first run records
    assert _ib_counters(capsys, config, "--state-name", "sweep")[0] == "OK"  # and so does the sweep's
    (tmp_path / "lab-node/healthy/sysfs/class/infiniband/mlx5_2/ports/1/counters/link_downed").write_text("2\n")
    timer = _ib_counters(capsys, config)
    sweep = _ib_counters(capsys, config, "--state-name", "sweep")
    assert timer[0] == sweep[0] == "CRITICAL"  # the timer's run did not swallow the rise the sweep must see
    assert "link_downed rose by 2" in sweep[1]
    assert _ib_counters(capsys, config, "--state-name", "sweep")[0] == "OK"
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["ib-counters.json", "ib-counters.sweep.json"]


def test_a_state_name_that_is_not_a_plain_word_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--config", str(LAB / "healthy" / "config.json"), "--state-name", "../etc"])
    assert "state name '../etc'" in capsys.readouterr().err


def _dmesg_check(capsys, *argv: str) -> tuple[str, str]:
    main(["--config", str(LAB / "healthy" / "config.json"), "--json", "--no-state", *HOST_CHECKS_OFF, *argv])
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "dmesg_baseline"]
    return check["verdict"], check["summary"]


def test_templates_lists_the_kernel_log_as_the_checks_read_it(capsys):
    from healthcheck.kernlog import templates_of

    assert main(["--config", str(LAB / "healthy" / "config.json"), "templates"]) == 0
    out = json.loads(capsys.readouterr().out)
    lines = (LAB / "healthy" / "dmesg.txt").read_text().splitlines()
    assert out["lines"] == len(lines) and out["templates"] == sorted(templates_of(lines))
    assert "#" in "".join(out["templates"])  # templated on the node, not raw lines


def test_templates_of_an_unreadable_kernel_log_is_unknown(tmp_path, capsys):
    raw = json.loads((LAB / "healthy" / "config.json").read_text())
    raw["sources"]["kernel_log_file"] = str(tmp_path / "absent.txt")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert main(["--config", str(tmp_path / "config.json"), "templates"]) == 3
    assert "kernel log unreadable" in capsys.readouterr().err


def test_a_baseline_handed_over_on_stdin_wins_over_the_installed_one(capsys, monkeypatch):
    import io

    assert _dmesg_check(capsys)[0] == "OK"  # the fixture set's own baseline knows every line
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"schema": 1, "learning": {"have": 1, "need": 3}})))
    assert _dmesg_check(capsys, "--dmesg-baseline", "-") == (
        "SKIPPED", "learning: the site's dmesg baseline is learned from its first 3 validated nodes (1 so far)")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"schema": 1, "templates": ["nothing like it"]})))
    verdict, summary = _dmesg_check(capsys, "--dmesg-baseline", "-")
    assert verdict == "WARNING" and summary.startswith("line 1 never seen")
    monkeypatch.setattr("sys.stdin", io.StringIO("garbage"))
    assert _dmesg_check(capsys, "--dmesg-baseline", "-")[0] == "UNKNOWN"
