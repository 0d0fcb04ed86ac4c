"""State DB: the journal is append-only, locks name their holder, dead holders are taken over."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from fleet.errors import LockError, StateError
from fleet.state import MAX_MARKS, StateDB, _journal_row, _node_row, _Write, statements, transactions


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


def test_record_writes_the_row_and_the_journal_entry_together_or_neither(tmp_path) -> None:
    db = StateDB(tmp_path / "state.db", run_id="r1")
    db.record("n1", {"stage": "discover", "status": "running", "evidence": {"tag": "X"}}, "discover", "stage:ok",
              detail="fine")
    assert (db.node("n1").stage, db.node("n1").evidence) == ("discover", {"tag": "X"})
    [entry] = db.entries("n1")
    assert (entry.stage, entry.event, entry.detail) == ("discover", "stage:ok", {"detail": "fine"})
    with pytest.raises(Exception):  # noqa: B017 - the journal write fails: the row change must roll back too
        db.record("n1", {"stage": "bios"}, "bios", "stage:ok", detail=object.__new__(_Unjsonable))
    assert db.node("n1").stage == "discover" and len(db.entries("n1")) == 1


class _Unjsonable:
    def __str__(self) -> str:
        raise ValueError("cannot be written")


def test_a_new_generation_needs_the_nodes_lock_held_by_this_run(tmp_path) -> None:
    bringup = StateDB(tmp_path / "s.db", run_id="bring-up")
    bringup.acquire(["gpu-012-03"], "provision.py --rack 12")
    bringup.update("gpu-012-03", stage="os", status="running", current="configure")
    reimage = StateDB(tmp_path / "s.db", run_id="reimage")
    with pytest.raises(LockError, match=r"held by 'provision\.py --rack 12'"):
        reimage.new_generation("gpu-012-03")
    assert bringup.node("gpu-012-03").stage == "os"  # the running bring-up's record is intact
    bringup.release(["gpu-012-03"])
    with pytest.raises(LockError, match="not held"):
        reimage.new_generation("gpu-012-03")
    reimage.acquire(["gpu-012-03"], "provision.py reimage gpu-012-03")
    assert reimage.new_generation("gpu-012-03") == 2
    assert (reimage.node("gpu-012-03").stage, reimage.node("gpu-012-03").generation) == ("", 2)


def test_a_corrupted_state_file_is_a_clear_error_not_a_traceback(tmp_path) -> None:
    from fleet.errors import StateError

    path = tmp_path / "state.db"
    db = StateDB(path)
    db.update("gpu-001-01", status="done")
    db.close()  # checkpointed: the damage below is not papered over by the WAL's copy of page 1
    data = bytearray(path.read_bytes())
    data[:100] = b"\x00garbage" * 12 + b"\x00" * 4
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="not a usable SQLite database") as err:
        StateDB(path)
    assert str(path) in str(err.value) and "backup" in str(err.value)


def test_a_state_file_damaged_inside_is_found_on_open_not_in_the_middle_of_a_run(tmp_path) -> None:
    from fleet.errors import StateError

    path = tmp_path / "state.db"
    db = StateDB(path)
    for n in range(400):
        db.update(f"gpu-{n:03d}-01", status="done", evidence={"pad": "x" * 500})
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page:4 * page] = bytes([0xA5]) * page
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="not a usable SQLite database"):
        StateDB(path)


def test_a_foreign_database_at_the_state_path_is_refused_and_left_untouched(tmp_path) -> None:
    from fleet.errors import StateError

    path = tmp_path / "state.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    other.commit()
    other.close()
    before = path.read_bytes()
    with pytest.raises(StateError, match="not a fleet state database") as err:
        StateDB(path)
    assert "users" in str(err.value) and path.read_bytes() == before


def test_a_text_file_at_the_state_path_is_refused(tmp_path) -> None:
    from fleet.errors import StateError

    path = tmp_path / "state.db"
    path.write_text("site: lab\n" * 200)
    with pytest.raises(StateError, match="not a usable SQLite database"):
        StateDB(path)
    assert path.read_text().startswith("site: lab")


WRITER = """
import sys, time
sys.path.insert(0, '.')
from pathlib import Path
from fleet.state import StateDB
db = StateDB(Path(sys.argv[1]), run_id='writer')
n = 0
while True:
    db.update(f"gpu-{n % 64:03d}-01", stage="os", status="running", evidence={"n": n, "pad": "x" * 2000})
    db.journal(f"gpu-{n % 64:03d}-01", "os", "tick", n=n)
    n += 1
    if n == 50:
        print("writing", flush=True)
"""


@pytest.mark.parametrize("delay_s", [0.05, 0.2, 0.45])
def test_sqlite_state_survives_sigkill_in_the_middle_of_writes(tmp_path, delay_s) -> None:
    import os
    import signal
    import time

    path = tmp_path / "state.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    time.sleep(delay_s)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    raw.close()
    db = StateDB(path)
    ticks = [e.detail["n"] for e in db.entries()]
    assert ticks == list(range(len(ticks))) and len(ticks) >= 50  # every committed write, in order, no gap
    last = db.node(f"gpu-{(len(ticks) - 1) % 64:03d}-01")
    assert last.evidence["n"] in (len(ticks) - 1, len(ticks))  # the row written with (or just after) the last tick
    db.update("gpu-000-01", status="done")  # and it takes writes again


def test_a_state_write_that_fails_for_lack_of_space_is_a_state_error_naming_the_file(tmp_path) -> None:
    """The state directory on a filesystem that is full: SQLite's error becomes one paragraph with the fix."""
    script = (
        "import resource, signal, sys; sys.path.insert(0, '.')\n"
        "from pathlib import Path\n"
        "from fleet.state import StateDB\n"
        "from fleet.errors import StateError\n"
        f"db = StateDB(Path('{tmp_path}/state.db'))\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))\n"
        "try:\n"
        "    for n in range(10000):\n"
        "        db.journal('gpu-001-01', 'os', 'tick', pad='x' * 4000)\n"
        "except StateError as err:\n"
        "    print(err)\n"
        "    sys.exit(7)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 7, result.stderr
    assert "state.db" in result.stdout and "free space" in result.stdout and "Traceback" not in result.stderr


def _rows(*specs: tuple[str, str]) -> list[_Write]:
    """Writes of ('node' | 'journal', hostname) rows, one row each."""
    made = {"node": lambda host: _node_row(host, {"status": "running"}),
            "journal": lambda host: _journal_row("r", host, "pxe", "tick", {})}
    return [_Write([made[kind](host)]) for kind, host in specs]


def test_a_group_commit_never_writes_one_row_twice_in_a_transaction() -> None:
    writes = _rows(("node", "a"), ("node", "b"), ("journal", "a"), ("node", "a"), ("journal", "a"), ("node", "c"))
    assert [[writes.index(w) for w in group] for group in transactions(writes)] == [[0, 1, 2], [3, 4, 5]]


def test_a_group_commit_has_one_statement_per_table_and_column_set_within_the_mark_limit() -> None:
    rows = [_node_row(f"n{i}", {"status": "running"}) for i in range(400)] + [_node_row("x", {"stage": "os"})]
    found = statements(rows)
    assert [sql.count("(?, ?, ?)") for sql, _ in found] == [300, 100, 1]  # hostname, the field, updated
    assert all(len(args) <= MAX_MARKS for _, args in found)
    assert "ON CONFLICT(hostname) DO UPDATE SET status = excluded.status" in found[0][0]
    [(journal, _)] = statements([_journal_row("r", "a", "pxe", "tick", {})])
    assert "ON CONFLICT" not in journal


def write_queued(db: StateDB, write: Callable[[str], None], count: int) -> None:
    """`count` threads call `write`: the first waits for the store (held here) and the others queue behind it."""
    threads = [threading.Thread(target=write, args=(f"gpu-001-{n:02d}",)) for n in range(count)]
    with db._lock:
        for thread in threads:
            thread.start()
        while len(db._waiting) < count - 1:
            time.sleep(0.01)
    for thread in threads:
        thread.join()

def test_writes_from_many_threads_are_committed_together_and_each_returns_after_its_own_commit(tmp_path) -> None:
    db = StateDB(tmp_path / "state.db", run_id="r")
    commits = []
    transaction = db._db.transaction

    def counted(**kwargs):
        commits.append(1)
        return transaction(**kwargs)

    db._db.transaction = counted
    seen: dict[str, int] = {}

    def write(host: str) -> None:
        db.record(host, {"stage": "pxe"}, "pxe", "stage:ok")
        with sqlite3.connect(tmp_path / "state.db") as raw:  # another connection: it is committed
            seen[host] = raw.execute("SELECT count(*) FROM journal WHERE hostname = ?", (host,)).fetchone()[0]

    write_queued(db, write, 50)
    assert len(commits) == 2
    assert seen == {f"gpu-001-{n:02d}": 1 for n in range(50)}
    assert {state.stage for state in db.nodes()} == {"pxe"} and len(db.nodes()) == 50


def test_a_failed_group_commit_fails_every_write_in_it_and_the_next_one_lands(tmp_path) -> None:
    db = StateDB(tmp_path / "state.db", run_id="r")
    execute = db._db.execute
    failing = [True]

    def full(sql: str, args=()):
        if failing[0] and sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return execute(sql, args)

    db._db.execute = full
    errors: list[str] = []

    def write(host: str) -> None:
        try:
            db.update(host, status="running")
        except StateError as err:
            errors.append(str(err))

    write_queued(db, write, 10)
    assert len(errors) == 10 and all("disk is full" in error and "state.db" in error for error in errors)
    assert db.nodes() == []
    failing[0] = False
    db.update("gpu-001-01", status="running")
    assert [state.status for state in db.nodes()] == ["running"]


def test_every_thread_reads_its_own_writes_while_many_threads_read_and_write_at_once(tmp_path) -> None:
    """A read that shared a connection with other threads' reads would see the snapshot they hold open
    (SQLite's read transaction is the connection's): a node would then run a stage it had just done."""
    db = StateDB(tmp_path / "state.db", run_id="r")
    stale: list[tuple[str, int, int]] = []

    def walk(host: str) -> None:
        for attempt in range(1, 41):
            db.update(host, attempts=attempt)
            seen = db.node(host).attempts
            if seen != attempt:
                stale.append((host, attempt, seen))

    threads = [threading.Thread(target=walk, args=(f"gpu-001-{n:02d}",)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stale == []
