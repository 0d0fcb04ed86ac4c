"""The day-one dmesg baseline: who may contribute, when it is learned, what a relearn changes."""

from __future__ import annotations

from pathlib import Path

from fleet.baseline import contribute, contributions, diff, learn, qualifies, templates_of
from healthcheck.config import Config
from healthcheck.kernlog import DmesgBaselineCheck, Learning, load_baseline, save_learning
from healthcheck.model import Verdict
from tests.unit.healthcheck.helpers import readings


def report(*verdicts: tuple[str, str]) -> dict:
    return {"checks": [{"check": name, "verdict": verdict} for name, verdict in verdicts]}


def test_only_a_node_passing_every_other_check_contributes() -> None:
    assert qualifies(report(("gpu_ecc_errors", "OK"), ("docker", "SKIPPED"), ("dmesg_baseline", "UNKNOWN")))
    assert not qualifies(report(("gpu_ecc_errors", "WARNING"), ("dmesg_baseline", "SKIPPED")))
    assert not qualifies(report(("ib_ports", "CRITICAL")))
    assert not qualifies({"checks": []})


def test_the_baseline_waits_for_min_nodes_and_keeps_lines_seen_on_that_many() -> None:
    a = templates_of(["[1.0] common 1", "[2.0] eth0: renamed from veth5de9f99", "[3.0] only on a"])
    b = templates_of(["[1.5] common 22", "[2.5] eth0: renamed from vethab12cd3"])
    c = templates_of(["[1.7] common 3", "[2.7] eth0: renamed from veth0000a1b", "[3.7] only on c"])
    learning = learn({"a": a, "b": b}, 3)
    assert (learning.baseline, learning.have, learning.need) == (None, 2, 3)
    learned = learn({"a": a, "b": b, "c": c}, 3)
    assert learned.baseline is not None
    assert learned.baseline.templates == frozenset({"common #", "eth#: renamed from veth#"})


def test_a_line_seen_on_only_one_node_is_never_learned_even_with_min_nodes_one() -> None:
    a, b = templates_of(["common", "odd"]), templates_of(["common"])
    learned = learn({"a": a, "b": b}, 1)
    assert learned.baseline is not None and learned.baseline.templates == frozenset({"common"})


def test_relearn_shows_added_and_removed_templates() -> None:
    assert diff(frozenset({"a", "b"}), frozenset({"b", "c"})) == (["c"], ["a"])


def test_contributions_round_trip_in_the_state_dir(tmp_path: Path) -> None:
    contribute(tmp_path, "gpu-001-01", frozenset({"x #"}))
    assert contributions(tmp_path) == {"gpu-001-01": frozenset({"x #"})}


def test_while_learning_the_node_check_is_skipped_with_the_reason(tmp_path: Path) -> None:
    save_learning(1, 3, tmp_path / "b.json")
    loaded = load_baseline(tmp_path / "b.json")
    assert loaded == Learning(1, 3)
    result = DmesgBaselineCheck().evaluate(readings(dmesg_baseline=loaded), Config())
    assert result.verdict is Verdict.SKIPPED and result.summary.startswith("learning:")
