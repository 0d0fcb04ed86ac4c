"""health baseline: relearn the dmesg baseline from the validated nodes, show what changes, save unless --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.baseline import baseline_file, contributions, current, ensure, record
from fleet.commands import health, main
from fleet.health import CheckOutcome, NodeHealth
from fleet.state import StateDB

MINIMAL = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "good" / "minimal.yml"
NODES = ("gpu-001-01", "gpu-001-02")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A two-node site learning from two nodes, both validated, each node's kernel log templates at hand."""
    path = tmp_path / "site.yml"
    path.write_text(MINIMAL.read_text() + "health: {baseline_min_nodes: 2}\n")
    state = tmp_path / "state"
    db = StateDB(state / "state.db")
    for name in NODES:
        db.update(name, stage="validate", status="done")
    db.close()
    world = {"templates": {name: frozenset({"common #", "mlx5_core: ok"}) for name in NODES},
             "verdicts": {name: "OK" for name in NODES}, "swept": []}

    def sweep_site(_site, nodes, **_kwargs):
        world["swept"] += [n.hostname for n in nodes]
        return [NodeHealth(n.hostname, world["verdicts"][n.hostname],
                           (CheckOutcome("gpu_ecc_errors", world["verdicts"][n.hostname], "", ""),
                            CheckOutcome("dmesg_baseline", "WARNING", "line 9 never seen", "")))
                for n in nodes]

    def fetch_templates(names, _target, **_kwargs):
        return {name: world["templates"][name] for name in names}, {}

    monkeypatch.setattr(health, "sweep_site", sweep_site)
    monkeypatch.setattr(health, "fetch_templates", fetch_templates)
    return {"argv": ["health", "baseline", "--site", str(path), "--state-dir", str(state)], "state": state, **world}


def relearn(site: dict, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main([*site["argv"], "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_a_relearn_shows_added_and_removed_templates_and_a_dry_run_saves_nothing(site, capsys) -> None:
    for name in NODES:
        record(site["state"], name, frozenset({"common #", "gone #"}), 2)
    before = baseline_file(site["state"]).read_text()
    for name in NODES:
        site["templates"][name] |= {"new shared line #"}
    site["templates"]["gpu-001-01"] |= {"odd line only here"}
    code, out = relearn(site, capsys, "--dry-run")
    assert code == 0 and out["dry_run"] and not out["saved"]
    assert out["added"] == ["mlx5_core: ok", "new shared line #"] and out["removed"] == ["gone #"]
    assert out["learned_from"] == list(NODES) and out["templates"] == 3
    assert baseline_file(site["state"]).read_text() == before  # the dry run left the file alone

    code, out = relearn(site, capsys)
    assert code == 0 and out["saved"]
    assert current(site["state"]) == frozenset({"common #", "mlx5_core: ok", "new shared line #"})
    assert contributions(site["state"]) == {name: site["templates"][name] for name in NODES}
    code, out = relearn(site, capsys)
    assert (out["added"], out["removed"]) == ([], [])


def test_a_node_failing_another_check_is_not_learned_from_and_too_few_is_exit_1(site, capsys) -> None:
    ensure(site["state"], 2)
    site["verdicts"]["gpu-001-02"] = "CRITICAL"
    code, out = relearn(site, capsys)
    assert code == 1 and out["templates"] is None and not out["saved"]
    assert out["skipped"][0]["node"] == "gpu-001-02" and out["skipped"][0]["reason"].startswith("CRITICAL")
    assert current(site["state"]).__class__.__name__ == "Learning"  # still learning, nothing replaced


def test_only_validated_nodes_are_swept(site, capsys) -> None:
    db = StateDB(site["state"] / "state.db")
    db.update("gpu-001-02", status="quarantined")
    db.close()
    code, _out = relearn(site, capsys)
    assert code == 1 and site["swept"] == ["gpu-001-01"]


def test_the_text_output_lists_the_changes(site, capsys) -> None:
    assert main([*site["argv"], "--dry-run"]) == 0
    text = capsys.readouterr().err  # the CLI's console writes to stderr; stdout is for --json
    assert "+ common #" in text and "+ mlx5_core: ok" in text and "dry run, not saved" in text
