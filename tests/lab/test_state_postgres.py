"""The state DB on PostgreSQL (`state.url`): the same behaviour as SQLite, and the same lock semantics
across processes that share one server but not a state directory."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fleet.errors import LockError, StateError
from fleet.state import StateDB
from tests.lab.postgres import postgres_server

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def url(server: str) -> Iterator[str]:
    """A fresh database per test on the shared server."""
    name = f"t{uuid.uuid4().hex}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield server.replace("/postgres?", f"/{name}?")


def test_nodes_steps_and_the_journal_round_trip(url: str, tmp_path: Path) -> None:
    db = StateDB(tmp_path / "unused.db", run_id="run-a", url=url)
    db.update("gpu-001-01", stage="pxe", status="running", evidence={"maas": "Ready"})
    db.mark_step("gpu-001-01", 1, "pxe", "network_boot", "done")
    db.journal("gpu-001-01", "pxe", "network_boot:done", steps=2)
    state = db.node("gpu-001-01")
    assert (state.stage, state.status, state.evidence) == ("pxe", "running", {"maas": "Ready"})
    assert db.step_done("gpu-001-01", 1, "pxe", "network_boot")
    assert [(e.event, e.detail) for e in db.entries("gpu-001-01")] == [("network_boot:done", {"steps": 2})]
    assert not (tmp_path / "unused.db").exists()  # nothing on local disk
    assert db.where == url


def test_the_journal_is_append_only_on_postgres_too(url: str, tmp_path: Path) -> None:
    StateDB(tmp_path / "x.db", url=url).journal("gpu-001-01", "", "reimage_requested")
    with psycopg.connect(url, autocommit=True) as raw:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            raw.execute("UPDATE journal SET event = 'x'")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            raw.execute("DELETE FROM journal")


def test_a_new_generation_needs_the_lock(url: str, tmp_path: Path) -> None:
    db = StateDB(tmp_path / "x.db", run_id="reimage", url=url)
    with pytest.raises(LockError, match="not held"):
        db.new_generation("gpu-001-01")
    db.acquire(["gpu-001-01"], "provision.py reimage gpu-001-01")
    assert db.new_generation("gpu-001-01") == 2


HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from fleet.errors import LockError
from fleet.state import StateDB
db = StateDB(Path(sys.argv[1]) / "state.db", run_id=sys.argv[2], url={url!r})
try:
    db.acquire(sys.argv[3].split(","), "provision.py " + sys.argv[2])
except LockError as err:
    print("refused:", err, flush=True)
    sys.exit(3)
print("locked", flush=True)
sys.stdin.readline()  # hold the locks until told
db.release(sys.argv[3].split(","))
"""


def holder(url: str, state_dir: Path, run: str, nodes: str) -> subprocess.Popen:
    state_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(REPO), url=url), str(state_dir), run,
                             nodes], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_two_processes_with_separate_state_dirs_share_the_locks_through_postgres(url: str, tmp_path: Path) -> None:
    first = holder(url, tmp_path / "ops1", "--rack 12", "gpu-012-01,gpu-012-02,gpu-012-03,gpu-012-04")
    assert first.stdout.readline().strip() == "locked"
    overlapping = holder(url, tmp_path / "ops2", "reimage", "gpu-011-04,gpu-012-03")
    out, _ = overlapping.communicate(timeout=30)
    assert overlapping.returncode == 3
    assert "gpu-012-03 locked by another run: 'provision.py --rack 12'" in out
    disjoint = holder(url, tmp_path / "ops3", "--rack 13", "gpu-013-01,gpu-013-02")
    assert disjoint.stdout.readline().strip() == "locked"
    for process in (first, disjoint):
        process.communicate("\n", timeout=30)
        assert process.returncode == 0
    again = holder(url, tmp_path / "ops2", "reimage", "gpu-011-04,gpu-012-03")
    assert again.stdout.readline().strip() == "locked"  # all-or-nothing: the refused run had locked nothing
    again.communicate("\n", timeout=30)
    assert not (tmp_path / "ops1" / "state.db").exists()


def test_an_unreachable_server_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot use the PostgreSQL state database") as err:
        StateDB(tmp_path / "x.db", url=f"postgresql://fleet:s3cret-pw@/postgres?host={tmp_path}/nowhere")
    assert "s3cret-pw" not in str(err.value) and "state.url" in str(err.value)
