"""The day-one dmesg baseline: who may contribute, when it is learned, what a relearn changes."""

from __future__ import annotations

import json
from pathlib import Path

from fleet.baseline import (
    baseline_file,
    contribute,
    contributions,
    current,
    diff,
    ensure,
    learn,
    learning,
    qualifies,
    record,
    replace,
)
from healthcheck.config import Config
from healthcheck.kernlog import Baseline, DmesgBaselineCheck, Learning, load_baseline, save_learning, templates_of
from healthcheck.model import Verdict
from tests.unit.healthcheck.helpers import readings


def test_only_a_node_passing_every_other_check_contributes() -> None:
    assert qualifies({"gpu_ecc_errors": "OK", "docker": "SKIPPED", "dmesg_baseline": "UNKNOWN"})
    assert not qualifies({"gpu_ecc_errors": "WARNING", "dmesg_baseline": "SKIPPED"})
    assert not qualifies({"ib_ports": "CRITICAL"})
    assert not qualifies({"dmesg_baseline": "SKIPPED"})
    assert not qualifies({})


def test_learning_is_told_by_the_skipped_checks_reason() -> None:
    reason = Learning(1, 3).reason
    assert learning({"dmesg_baseline": ("SKIPPED", reason)})
    assert not learning({"dmesg_baseline": ("SKIPPED", "disabled")})
    assert not learning({"dmesg_baseline": ("OK", reason)}) and not learning({})


def test_the_baseline_waits_for_min_nodes_and_keeps_lines_seen_on_that_many() -> None:
    a = templates_of(["[1.0] common 1", "[2.0] eth0: renamed from veth5de9f99", "[3.0] only on a"])
    b = templates_of(["[1.5] common 22", "[2.5] eth0: renamed from vethab12cd3", "[3.5] on b and c"])
    c = templates_of(["[1.7] common 3", "[2.7] eth0: renamed from veth0000a1b", "[3.7] on b and c"])
    learning_ = learn({"a": a, "b": b}, 3)
    assert (learning_.baseline, learning_.have, learning_.need) == (None, 2, 3)
    learned = learn({"a": a, "b": b, "c": c}, 3)
    assert learned.baseline is not None
    assert learned.baseline.templates == frozenset({"common #", "eth#: renamed from veth#"})
    assert learned.baseline.learned_from == ("a", "b", "c")


def test_a_line_seen_on_only_one_node_is_never_learned_even_with_min_nodes_one() -> None:
    a, b = templates_of(["common", "odd"]), templates_of(["common"])
    assert learn({"a": a}, 1).baseline is None  # one node alone is no baseline
    learned = learn({"a": a, "b": b}, 1)
    assert learned.baseline is not None and learned.baseline.templates == frozenset({"common"})


def test_relearn_shows_added_and_removed_templates() -> None:
    assert diff(frozenset({"a", "b"}), frozenset({"b", "c"})) == (["c"], ["a"])


def test_contributions_round_trip_in_the_state_dir(tmp_path: Path) -> None:
    contribute(tmp_path, "gpu-001-01", frozenset({"x #"}))
    assert contributions(tmp_path) == {"gpu-001-01": frozenset({"x #"})}


def test_a_site_without_a_baseline_gets_the_learning_placeholder_and_keeps_a_real_one(tmp_path: Path) -> None:
    path = ensure(tmp_path, 3)
    assert path == baseline_file(tmp_path) and current(tmp_path) == Learning(0, 3)
    replace(tmp_path, {"a": frozenset({"x"}), "b": frozenset({"x"})}, Baseline(frozenset({"x"}), ("a", "b"), 2))
    ensure(tmp_path, 3)
    assert current(tmp_path) == frozenset({"x"})


def test_contributions_count_up_then_the_last_one_learns_and_a_late_node_is_not_added(tmp_path: Path) -> None:
    ensure(tmp_path, 3)
    first = record(tmp_path, "a", frozenset({"common", "odd on a"}), 3)
    assert (first.have, first.need, first.learned, first.late) == (1, 3, None, False)
    assert current(tmp_path) == Learning(1, 3)  # the placeholder says how far it is
    record(tmp_path, "b", frozenset({"common"}), 3)
    last = record(tmp_path, "c", frozenset({"common"}), 3)
    assert last.learned is not None and last.learned.templates == frozenset({"common"})
    saved = json.loads(baseline_file(tmp_path).read_text())
    assert saved["templates"] == ["common"] and saved["learned_from"] == ["a", "b", "c"]
    late = record(tmp_path, "d", frozenset({"common", "new"}), 3)
    assert late.late and sorted(contributions(tmp_path)) == ["a", "b", "c"]
    assert current(tmp_path) == frozenset({"common"})


def test_a_relearn_replaces_the_learning_set(tmp_path: Path) -> None:
    for node in ("a", "b", "c"):
        record(tmp_path, node, frozenset({"common"}), 3)
    replace(tmp_path, {"d": frozenset({"y"}), "e": frozenset({"y"})}, Baseline(frozenset({"y"}), ("d", "e"), 2))
    assert sorted(contributions(tmp_path)) == ["d", "e"] and current(tmp_path) == frozenset({"y"})


def test_while_learning_the_node_check_is_skipped_with_the_reason(tmp_path: Path) -> None:
    save_learning(1, 3, tmp_path / "b.json")
    loaded = load_baseline(tmp_path / "b.json")
    assert loaded == Learning(1, 3)
    result = DmesgBaselineCheck().evaluate(readings(dmesg_baseline=loaded), Config())
    assert result.verdict is Verdict.SKIPPED and result.summary.startswith("learning:")
