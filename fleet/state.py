"""SQLite state and the append-only journal: what makes any run resumable after any crash.

Three facts are kept per node: how far it got (`nodes`), which steps of the current
generation completed (`steps`: a completed destructive step is never repeated), and who holds it
(`locks`: two runs never touch the same node). The journal is append-only (triggers refuse UPDATE
and DELETE) and every destructive action is written to it *before* it starts, so after a crash the
operator can always see what was in flight. WAL mode with synchronous=NORMAL survives SIGKILL of
the process (only a power loss of the ops host can lose the last transaction).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import LockError

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    hostname TEXT PRIMARY KEY,
    stage TEXT NOT NULL DEFAULT '',          -- last completed stage ('' = none)
    status TEXT NOT NULL DEFAULT 'new',      -- new | running | done | failed | quarantined
    current TEXT NOT NULL DEFAULT '',        -- stage in progress or that failed
    attempts INTEGER NOT NULL DEFAULT 0,     -- attempts of `current`
    generation INTEGER NOT NULL DEFAULT 1,   -- bumped by reimage: steps of older generations no longer count
    last_error TEXT NOT NULL DEFAULT '',
    evidence TEXT NOT NULL DEFAULT '{}',
    updated REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    hostname TEXT NOT NULL, generation INTEGER NOT NULL, stage TEXT NOT NULL, step TEXT NOT NULL,
    status TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (hostname, generation, stage, step)
);
CREATE TABLE IF NOT EXISTS locks (
    hostname TEXT PRIMARY KEY, run_id TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    command TEXT NOT NULL, started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, run_id TEXT NOT NULL,
    hostname TEXT NOT NULL, stage TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""


@dataclass(frozen=True)
class NodeState:
    hostname: str
    stage: str
    status: str
    current: str
    attempts: int
    generation: int
    last_error: str
    evidence: dict
    updated: float


@dataclass(frozen=True)
class JournalEntry:
    ts: float
    run_id: str
    hostname: str
    stage: str
    event: str
    detail: dict


class StateDB:
    """One SQLite file per site; safe to share between the worker threads of one run."""

    def __init__(self, path: Path, run_id: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.run_id = run_id or f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- nodes -------------------------------------------------------------------------------
    def node(self, hostname: str) -> NodeState:
        with self._lock:
            row = self._db.execute("SELECT * FROM nodes WHERE hostname = ?", (hostname,)).fetchone()
        if row is None:
            return NodeState(hostname, "", "new", "", 0, 1, "", {}, 0.0)
        return NodeState(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]), row[8])

    def nodes(self) -> list[NodeState]:
        with self._lock:
            names = [r[0] for r in self._db.execute("SELECT hostname FROM nodes ORDER BY hostname")]
        return [self.node(name) for name in names]

    def update(self, hostname: str, **fields: object) -> None:
        """Upsert a node's row; `evidence` is stored as JSON."""
        if "evidence" in fields:
            fields["evidence"] = json.dumps(fields["evidence"], sort_keys=True, default=str)
        fields["updated"] = time.time()
        columns = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        updates = ", ".join(f"{name} = excluded.{name}" for name in fields)
        with self._tx() as db:
            db.execute(
                f"INSERT INTO nodes (hostname, {columns}) VALUES (?, {marks}) "  # noqa: S608 - names are ours
                f"ON CONFLICT(hostname) DO UPDATE SET {updates}",
                (hostname, *fields.values()),
            )

    def new_generation(self, hostname: str) -> int:
        """Start over for a reimage: stage and steps reset, history stays in the journal."""
        state = self.node(hostname)
        generation = state.generation + 1
        self.update(hostname, stage="", status="new", current="", attempts=0, generation=generation,
                    last_error="", evidence={})
        return generation

    # -- steps -------------------------------------------------------------------------------
    def step_done(self, hostname: str, generation: int, stage: str, step: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT status FROM steps WHERE hostname=? AND generation=? AND stage=? AND step=?",
                (hostname, generation, stage, step),
            ).fetchone()
        return bool(row and row[0] == "done")

    def mark_step(self, hostname: str, generation: int, stage: str, step: str, status: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(hostname, generation, stage, step) "
                "DO UPDATE SET status = excluded.status, updated = excluded.updated",
                (hostname, generation, stage, step, status, time.time()),
            )

    # -- journal -----------------------------------------------------------------------------
    def journal(self, hostname: str, stage: str, event: str, **detail: object) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO journal (ts, run_id, hostname, stage, event, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), self.run_id, hostname, stage, event, json.dumps(detail, sort_keys=True, default=str)),
            )

    def entries(self, hostname: str | None = None) -> list[JournalEntry]:
        query = "SELECT ts, run_id, hostname, stage, event, detail FROM journal"
        args: tuple = ()
        if hostname:
            query, args = query + " WHERE hostname = ?", (hostname,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # -- locks -------------------------------------------------------------------------------
    def acquire(self, hostnames: Iterable[str], command: str) -> None:
        """Lock every node or none; a lock whose process is gone (same host, dead pid) is taken over."""
        names = list(hostnames)
        me = socket.gethostname()
        with self._tx() as db:
            held = {
                row[0]: row
                for row in db.execute(
                    f"SELECT * FROM locks WHERE hostname IN ({','.join('?' for _ in names)})",  # noqa: S608
                    names,
                )
            } if names else {}
            blocking = [row for row in held.values() if row[1] != self.run_id and _holder_alive(row[2], row[3], me)]
            if blocking:
                row = blocking[0]
                others = f" and {len(blocking) - 1} more node(s)" if len(blocking) > 1 else ""
                raise LockError(
                    f"{row[0]}{others} locked by another run: '{row[4]}' (pid {row[2]} on {row[3]}, "
                    f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(row[5]))})",
                    node=row[0],
                    hint="wait for that run to finish or stop it (a dead process's lock is taken over automatically)",
                )
            now = time.time()
            db.executemany(
                "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?)",
                [(name, self.run_id, os.getpid(), me, command, now) for name in names],
            )
        for name, row in held.items():
            if row[1] != self.run_id:
                self.journal(name, "", "lock_taken_over", previous_run=row[1], previous_pid=row[2])

    def release(self, hostnames: Iterable[str]) -> None:
        names = list(hostnames)
        with self._tx() as db:
            db.executemany("DELETE FROM locks WHERE hostname = ? AND run_id = ?", [(n, self.run_id) for n in names])


def _holder_alive(pid: int, host: str, me: str) -> bool:
    """A lock held from another host cannot be checked: assume it is alive (safe side)."""
    if host != me:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
