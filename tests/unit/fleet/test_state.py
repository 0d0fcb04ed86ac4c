"""State DB: the journal is append-only, locks name their holder, dead holders are taken over."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from fleet.errors import LockError
from fleet.state import StateDB


def test_journal_refuses_updates_and_deletes(tmp_path) -> None:
    db = StateDB(tmp_path / "s.db")
    db.journal("gpu-001-01", "pxe", "power_cycle:started")
    raw = sqlite3.connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE journal SET event = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM journal")


def test_second_run_is_refused_with_the_holder_named(tmp_path) -> None:
    first = StateDB(tmp_path / "s.db", run_id="run-a")
    first.acquire(["gpu-012-03"], "provision.py --rack 12")
    second = StateDB(tmp_path / "s.db", run_id="run-b")
    with pytest.raises(LockError) as err:
        second.acquire(["gpu-012-01", "gpu-012-03"], "provision.py reimage gpu-012-03")
    assert "gpu-012-03" in str(err.value)
    assert "provision.py --rack 12" in str(err.value)
    # all-or-nothing: the free node was not locked either
    first.release(["gpu-012-03"])
    second.acquire(["gpu-012-01", "gpu-012-03"], "provision.py reimage gpu-012-03")


def test_lock_of_a_dead_process_is_taken_over_and_journaled(tmp_path) -> None:
    script = (
        "import sys; sys.path.insert(0, '.');"
        "from pathlib import Path; from fleet.state import StateDB;"
        f"StateDB(Path('{tmp_path}/s.db'), run_id='dead').acquire(['gpu-001-01'], 'old run')"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    db = StateDB(tmp_path / "s.db", run_id="alive")
    db.acquire(["gpu-001-01"], "new run")
    assert [e.event for e in db.entries("gpu-001-01")] == ["lock_taken_over"]


def test_node_state_defaults_for_an_unknown_node(tmp_path) -> None:
    state = StateDB(tmp_path / "s.db").node("gpu-009-09")
    assert (state.stage, state.status, state.attempts, state.generation) == ("", "new", 0, 1)


def test_update_round_trips_evidence(tmp_path) -> None:
    db = StateDB(tmp_path / "s.db")
    db.update("gpu-001-01", status="quarantined", current="os", evidence={"status_message": "curtin failed"})
    assert db.node("gpu-001-01").evidence == {"status_message": "curtin failed"}
    assert [n.hostname for n in db.nodes()] == ["gpu-001-01"]
