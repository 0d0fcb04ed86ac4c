"""SIGTERM stops a run within seconds: every node's record resumable, the report naming where each was."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lab.conftest import LabSite
from tests.lab.test_bringup import deploys_accepted, wait_for

pytestmark = pytest.mark.lab


def test_sigterm_stops_the_run_within_seconds_with_the_interrupted_nodes_named(
        make_lab_site: Callable[..., LabSite], tmp_path: Path) -> None:
    lab = make_lab_site(racks=1, time_factor=0.05)  # 30 s deployments: the run is surely mid-way when stopped
    report = tmp_path / "stopped.json"
    run = lab.start("--rack", "1", "--until", "os", "--json-report", str(report))
    wait_for(lambda: lab.state_db.exists() and any(s.current == "os" for s in lab.states().values()), 90,
             "a node to start deploying")
    stopped_at = time.monotonic()
    os.kill(run.pid, signal.SIGTERM)
    code = run.wait(timeout=20)
    took = time.monotonic() - stopped_at
    assert code == 1 and took < 10, (code, took)
    rows = {row["hostname"]: row for row in json.loads(report.read_text())["nodes"]}
    interrupted = {name: row for name, row in rows.items() if row["status"] == "interrupted"}
    assert interrupted and all("SIGTERM" in row["detail"] for row in interrupted.values())
    assert all(row["current"] for row in interrupted.values())  # where each one was
    resumed = lab.cli("--rack", "1", "--until", "os")
    assert resumed.returncode == 0, resumed.stderr
    assert {s.status for s in lab.states().values()} == {"done"}
    assert all(deploys_accepted(lab, name) == 1 for name in lab.site.nodes)
