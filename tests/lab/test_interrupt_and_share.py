"""Two runs at once on disjoint racks both proceed (locks are per node, not per site)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lab.conftest import LabSite
from tests.lab.test_bringup import deploys_accepted

pytestmark = pytest.mark.lab


def test_two_runs_on_disjoint_racks_both_proceed(make_lab_site: Callable[..., LabSite], tmp_path: Path) -> None:
    lab = make_lab_site(racks=2, time_factor=0.01)
    lab.lab("up")
    first = lab.start("--rack", "1", "--until", "os", "--json-report", str(tmp_path / "one.json"))
    second = lab.start("--rack", "2", "--until", "os", "--json-report", str(tmp_path / "two.json"))
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    states = lab.states()
    ended = {name: (s.status, s.stage) for name, s in states.items()}
    assert ended == {name: ("done", "os") for name in lab.site.nodes}
    runs = {json.loads((tmp_path / f"{n}.json").read_text())["run_id"] for n in ("one", "two")}
    assert len(runs) == 2  # two runs, each holding its own rack, neither refused
    assert all(deploys_accepted(lab, name) == 1 for name in lab.site.nodes)
