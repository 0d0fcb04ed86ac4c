"""State and the append-only journal: what makes any run resumable after any crash.

Three facts are kept per node: how far it got (`nodes`), which steps of the current
generation completed (`steps`: a completed destructive step is never repeated), and who holds it
(`locks`: two runs never touch the same node). The journal is append-only (triggers refuse UPDATE
and DELETE) and every destructive action is written to it *before* it starts, so after a crash the
operator can always see what was in flight.

Two backends, one set of statements (written once, with `?` marks):
- SQLite (the embedded default, `<state dir>/state.db`): WAL mode with synchronous=NORMAL survives
  SIGKILL of the process in the middle of a write (only a power loss of the ops host can lose the
  last transaction). The file is marked as ours (`PRAGMA application_id`); a corrupted file, or
  another program's database at that path, is refused with a `StateError` naming the file, and
  nothing is written to it.
- PostgreSQL (`state.url` in the site), for teams running from several ops hosts: psycopg 3, one
  connection per run. Lock changes take a table lock for the length of their transaction, so
  "check who holds it, then take it" is atomic across processes and hosts exactly as SQLite's
  `BEGIN IMMEDIATE` makes it on one host.

Writes are group-committed: a caller that finds no commit under way commits, in one transaction
with one multi-row statement per table, its rows and every other thread's rows waiting meanwhile;
every caller returns only once its own rows are committed, so "journaled before it starts" holds
as before. Every statement gives up the GIL, and getting it back behind a thousand busy node
threads takes up to a switch interval (5 ms): one transaction per write, one writer at a time,
lined the node threads of a 1,280-node run up behind the store's lock (bench/state_lock.py).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleet.errors import LockError, StateError
from fleet.proc import pid_alive

APPLICATION_ID = 0x464C5431  # "FLT1": PRAGMA application_id of a fleet state file
TABLES = ("journal", "locks", "nodes", "steps")

SQLITE_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS journal_by_host ON journal (hostname, id);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    hostname TEXT PRIMARY KEY, stage TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'new',
    current TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 1,
    last_error TEXT NOT NULL DEFAULT '', evidence TEXT NOT NULL DEFAULT '{}',
    updated DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    hostname TEXT NOT NULL, generation INTEGER NOT NULL, stage TEXT NOT NULL, step TEXT NOT NULL,
    status TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hostname, generation, stage, step)
);
CREATE TABLE IF NOT EXISTS locks (
    hostname TEXT PRIMARY KEY, run_id TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    command TEXT NOT NULL, started DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, run_id TEXT NOT NULL,
    hostname TEXT NOT NULL, stage TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_by_host ON journal (hostname, id);
CREATE OR REPLACE FUNCTION fleet_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the journal is append-only'; END $$;
CREATE OR REPLACE TRIGGER journal_no_change BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION fleet_journal_append_only();
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


class _Backend(Protocol):
    """One connection to the store; statements use `?` marks, whatever the driver wants."""

    where: str  # the file or server, for messages (never with a password)

    def transaction(self, *, locks: bool = False) -> Any: ...
    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...
    def close(self) -> None: ...


class _Sqlite:
    """The embedded store: one SQLite file, opened only if it is ours (or new)."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._check_ours(path)
            damage = self._db.execute("PRAGMA quick_check").fetchone()[0]  # milliseconds for a state file
            if damage != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {damage}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SQLITE_SCHEMA)
            self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        except sqlite3.OperationalError as err:  # SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_READONLY...: not damage
            if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise StateError(f"the disk under the state file {path} is full ({err})",
                                 hint=f"free space on the file system of {path.parent}, or point --state-dir "
                                 "elsewhere; nothing was touched") from None
            raise StateError(f"the state file {path} cannot be opened ({err})",
                             hint=f"check {path.parent} (space, permissions, read-only mount); nothing was touched"
                             ) from None
        except sqlite3.DatabaseError as err:
            raise StateError(f"the state file {path} is not a usable SQLite database ({err})",
                             hint="restore it from a backup, or move it aside to start with no recorded state "
                             "(the nodes' real state is checked again by every stage)") from None
        except OSError as err:
            raise StateError(f"cannot open the state file {path}: {err.strerror}",
                             hint="check the state directory's permissions and free space") from None

    def _check_ours(self, path: Path) -> None:
        """Refuse another program's database (nothing is written to it) and a damaged one."""
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if app_id == APPLICATION_ID or (not tables and app_id == 0):
            return
        if app_id == 0 and tables == set(TABLES):
            return  # written before files were marked: ours, marked on this open
        raise StateError(f"the state file {path} is not a fleet state database (application id {app_id:#x}, "
                         f"tables: {', '.join(sorted(tables)) or 'none'})",
                         hint="point --state-dir (or the site's state) at the fleet state directory; "
                         "this file belongs to something else and was left untouched")

    @contextmanager
    def transaction(self, *, locks: bool = False) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock at once: check-then-write is atomic
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self._db.execute(sql, tuple(args)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, [tuple(row) for row in rows])

    def close(self) -> None:
        self._db.close()


class _Postgres:
    """A shared PostgreSQL database (psycopg 3), for state used from several ops hosts."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.where = _redact(url)
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (APPLICATION_ID,))  # one schema creator
                self._db.execute(POSTGRES_SCHEMA)
        except psycopg.Error as err:
            raise StateError(f"cannot use the PostgreSQL state database {self.where}: {_first_line(err)}",
                             hint="check state.url in the site (host, database, user) and that the server "
                             "accepts this ops host") from None

    @contextmanager
    def transaction(self, *, locks: bool = False) -> Iterator[None]:
        with self._db.transaction():
            if locks:  # held to the end of the transaction: no other run reads the locks meanwhile
                self._db.execute("LOCK TABLE locks IN SHARE ROW EXCLUSIVE MODE")
            yield

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        cursor = self._db.execute(sql.replace("?", "%s"), tuple(args))
        return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), [tuple(row) for row in rows])

    def close(self) -> None:
        self._db.close()


def _redact(url: str) -> str:
    """The URL without its password (postgresql://user:secret@host/db -> postgresql://user@host/db)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    return f"{scheme}://{auth.split(':', 1)[0]}@{host}"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


@dataclass(frozen=True)
class _Row:
    """One row to insert; `key` names the conflict target (an upsert), () for an append."""

    table: str
    columns: tuple[str, ...]
    values: tuple
    key: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        return self.table, self.columns, self.key

    @property
    def ident(self) -> tuple | None:
        """The row it replaces (table and key values); None for an append."""
        return (self.table, *self.values[:len(self.key)]) if self.key else None


@dataclass
class _Write:
    """One caller's rows, committed in one transaction. `woken` is set when they are (`finished`,
    with `error` if the commit failed), or when the caller is to commit the waiting writes itself."""

    rows: list[_Row]
    woken: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    error: BaseException | None = None


MAX_MARKS = 900  # below SQLite's oldest limit on ? marks per statement (999)


def transactions(writes: Sequence[_Write]) -> list[list[_Write]]:
    """Split waiting writes into transactions in which no row is written twice.

    Within one transaction the rows are grouped by table, so their order across writes changes;
    that is invisible only while no two writes touch the same row (PostgreSQL also refuses one
    upsert that changes a row twice).
    """
    groups: list[list[_Write]] = []
    touched: set[tuple] = set()
    for write in writes:
        idents = {row.ident for row in write.rows if row.ident is not None}
        if not groups or idents & touched:
            groups.append([])
            touched = set()
        groups[-1].append(write)
        touched |= idents
    return groups


def statements(rows: Sequence[_Row]) -> list[tuple[str, list[Any]]]:
    """Multi-row INSERTs (upserts where the row has a key), one per table and column set."""
    shapes: dict[tuple, list[_Row]] = {}
    for row in rows:
        shapes.setdefault(row.shape, []).append(row)
    out = []
    for (table, columns, key), group in shapes.items():
        per = max(1, MAX_MARKS // len(columns))
        for start in range(0, len(group), per):
            chunk = group[start:start + per]
            values = ", ".join("(" + ", ".join("?" for _ in columns) + ")" for _ in chunk)
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608 - names are ours
            if key:
                updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name not in key)
                sql += f" ON CONFLICT({', '.join(key)}) DO UPDATE SET {updates}"
            out.append((sql, [value for row in chunk for value in row.values]))
    return out


class StateDB:
    """One store per site; safe to share between the worker threads of one run."""

    def __init__(self, path: Path, run_id: str = "", *, url: str | None = None) -> None:
        self.path = path
        self.run_id = run_id or f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
        self._lock = threading.RLock()
        self._db: _Backend = _Postgres(url) if url else _Sqlite(path)
        self._waiting: list[_Write] = []  # writes no one has started to commit
        self._leading = False  # a caller is committing the waiting writes
        self._queue = threading.Lock()  # guards the two above; never held across a statement

    @property
    def where(self) -> str:
        """The file or server the state lives in (no password)."""
        return self._db.where

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- group commit ------------------------------------------------------------------------
    def _write(self, *rows: _Row) -> None:
        """Commit `rows` in one transaction; return once they are committed.

        A caller that finds no commit under way commits at once, itself, whatever is waiting; one
        that finds one waits, and is either committed by it or asked to commit the next lot. So a
        lone writer pays one transaction, and a thousand pay a few.
        """
        write = _Write(list(rows))
        with self._queue:
            self._waiting.append(write)
            lead = not self._leading
            self._leading = True
        if not lead:
            write.woken.wait()
        if not write.finished:
            self._lead()
        if write.error is not None:
            raise write.error

    def _lead(self) -> None:
        """Commit every waiting write, then wake one that came meanwhile to commit the next lot."""
        with self._queue:
            batch, self._waiting = self._waiting, []
        try:
            for group in transactions(batch):
                self._commit(group)
        finally:
            with self._queue:
                if self._waiting:
                    self._waiting[0].woken.set()
                else:
                    self._leading = False

    def _commit(self, writes: list[_Write]) -> None:
        error: BaseException | None = StateError(f"a write to the state store {self.where} was interrupted",
                                                 hint="run again: the run resumes from what was recorded")
        try:
            with self._tx() as db:
                _insert(db, [row for write in writes for row in write.rows])
            error = None
        except Exception as err:  # noqa: BLE001 - every caller in the transaction gets it
            error = err
        finally:
            for write in writes:
                write.error, write.finished = error, True
                write.woken.set()

    @contextmanager
    def _tx(self, *, locks: bool = False) -> Iterator[_Backend]:
        with self._lock, self._store_errors(), self._db.transaction(locks=locks):
            yield self._db

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock, self._store_errors():
            return self._db.execute(sql, args)

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """The store failing under a run (a full disk, a server gone) is our StateError, not a traceback."""
        try:
            yield
        except sqlite3.Error as err:
            raise StateError(f"the state file {self.where} cannot be written or read ({err})",
                             hint="free space under the state directory (or fix its permissions), then run "
                             "again: the run resumes from what was recorded") from None
        except Exception as err:
            if type(err).__module__.startswith("psycopg"):
                raise StateError(f"the state database {self.where} failed: {_first_line(err)}",
                                 hint="check the PostgreSQL server, then run again: the run resumes") from None
            raise

    # -- nodes -------------------------------------------------------------------------------
    def node(self, hostname: str) -> NodeState:
        rows = self._query("SELECT * FROM nodes WHERE hostname = ?", (hostname,))
        return _node_state(rows[0]) if rows else _new_node(hostname)

    def nodes(self) -> list[NodeState]:
        return [_node_state(row) for row in self._query("SELECT * FROM nodes ORDER BY hostname")]

    def states(self, hostnames: Sequence[str]) -> dict[str, NodeState]:
        """Many nodes' records in a few reads (a node never written reads as new)."""
        found = {name: _new_node(name) for name in hostnames}
        for start in range(0, len(hostnames), MAX_MARKS):
            chunk = list(hostnames[start:start + MAX_MARKS])
            marks = ", ".join("?" for _ in chunk)
            for row in self._query(f"SELECT * FROM nodes WHERE hostname IN ({marks})", chunk):  # noqa: S608
                found[row[0]] = _node_state(row)
        return found

    def update(self, hostname: str, **fields: object) -> None:
        """Upsert a node's row; `evidence` is stored as JSON."""
        self._write(_node_row(hostname, fields))

    def record(self, hostname: str, fields: dict[str, object], stage: str, event: str, **detail: object) -> None:
        """A stage's result: the node's row and its journal row in one transaction, so neither is
        seen without the other."""
        self._write(_node_row(hostname, dict(fields)), _journal_row(self.run_id, hostname, stage, event, detail))

    def new_generation(self, hostname: str) -> int:
        """Start over for a reimage: stage and steps reset, history stays in the journal.

        One transaction, and only by the run holding the node's lock: a reimage must never reset
        the record under a bring-up that is walking the node.
        """
        with self._tx(locks=True) as db:
            held = db.execute("SELECT run_id, command FROM locks WHERE hostname = ?", (hostname,))
            if not held or held[0][0] != self.run_id:
                holder = f"held by '{held[0][1]}'" if held else "not held"
                raise LockError(f"cannot start a new generation of {hostname}: its lock is {holder}", node=hostname,
                                hint="take the node's lock first (acquire) in the same run")
            rows = db.execute("SELECT generation FROM nodes WHERE hostname = ?", (hostname,))
            generation = (rows[0][0] if rows else 1) + 1
            _insert(db, [_node_row(hostname, {"stage": "", "status": "new", "current": "", "attempts": 0,
                                              "generation": generation, "last_error": "", "evidence": {}})])
        return generation

    # -- steps -------------------------------------------------------------------------------
    def step_status(self, hostname: str, generation: int, stage: str, step: str) -> str:
        """'' (never started), 'started' (started, completion not recorded) or 'done'."""
        rows = self._query("SELECT status FROM steps WHERE hostname=? AND generation=? AND stage=? AND step=?",
                           (hostname, generation, stage, step))
        return str(rows[0][0]) if rows else ""

    def step_done(self, hostname: str, generation: int, stage: str, step: str) -> bool:
        return self.step_status(hostname, generation, stage, step) == "done"

    def mark_step(self, hostname: str, generation: int, stage: str, step: str, status: str,
                  event: str = "", **detail: object) -> None:
        """A step's status; with `event`, its journal row in the same transaction (neither without the other)."""
        row = _Row("steps", ("hostname", "generation", "stage", "step", "status", "updated"),
                   (hostname, generation, stage, step, status, time.time()),
                   key=("hostname", "generation", "stage", "step"))
        journal = [_journal_row(self.run_id, hostname, stage, event, detail)] if event else []
        self._write(*journal, row)

    # -- journal -----------------------------------------------------------------------------
    def journal(self, hostname: str, stage: str, event: str, **detail: object) -> None:
        self._write(_journal_row(self.run_id, hostname, stage, event, detail))

    def entries(self, hostname: str | None = None) -> list[JournalEntry]:
        query = "SELECT ts, run_id, hostname, stage, event, detail FROM journal"
        args: tuple = ()
        if hostname:
            query, args = query + " WHERE hostname = ?", (hostname,)
        rows = self._query(query + " ORDER BY id", args)
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # -- locks -------------------------------------------------------------------------------
    def acquire(self, hostnames: Iterable[str], command: str) -> None:
        """Lock every node or none; a lock whose process is gone (same host, dead pid) is taken over."""
        names = list(hostnames)
        me = socket.gethostname()
        with self._tx(locks=True) as db:
            marks = ",".join("?" for _ in names)
            held = {row[0]: row for row in db.execute(
                f"SELECT * FROM locks WHERE hostname IN ({marks})", names)  # noqa: S608 - marks only
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
                "INSERT INTO locks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(hostname) DO UPDATE SET "
                "run_id = excluded.run_id, pid = excluded.pid, host = excluded.host, command = excluded.command, "
                "started = excluded.started",
                [(name, self.run_id, os.getpid(), me, command, now) for name in names],
            )
            for name, row in held.items():
                if row[1] != self.run_id:
                    _journal(db, self.run_id, name, "", "lock_taken_over", {"previous_run": row[1],
                                                                              "previous_pid": row[2]})

    def release(self, hostnames: Iterable[str]) -> None:
        names = list(hostnames)
        with self._tx(locks=True) as db:
            db.executemany("DELETE FROM locks WHERE hostname = ? AND run_id = ?", [(n, self.run_id) for n in names])


def _new_node(hostname: str) -> NodeState:
    return NodeState(hostname, "", "new", "", 0, 1, "", {}, 0.0)


def _node_state(row: Sequence[Any]) -> NodeState:
    return NodeState(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]), row[8])


def _node_row(hostname: str, fields: dict[str, object]) -> _Row:
    """A node's row (an upsert of the fields given); `evidence` is stored as JSON."""
    values = dict(fields)
    if "evidence" in values:
        values["evidence"] = json.dumps(values["evidence"], sort_keys=True, default=str)
    values["updated"] = time.time()
    return _Row("nodes", ("hostname", *values), (hostname, *values.values()), key=("hostname",))


def _journal_row(run_id: str, hostname: str, stage: str, event: str, detail: dict[str, object]) -> _Row:
    return _Row("journal", ("ts", "run_id", "hostname", "stage", "event", "detail"),
                (time.time(), run_id, hostname, stage, event, json.dumps(detail, sort_keys=True, default=str)))


def _insert(db: _Backend, rows: Sequence[_Row]) -> None:
    """Write `rows` inside a transaction the caller holds."""
    for sql, args in statements(rows):
        db.execute(sql, args)


def _journal(db: _Backend, run_id: str, hostname: str, stage: str, event: str, detail: dict[str, object]) -> None:
    """A journal row written inside a transaction the caller holds (lock changes)."""
    _insert(db, [_journal_row(run_id, hostname, stage, event, detail)])


def production_state_dir(site_name: str, *, euid: int | None = None,
                         environ: dict[str, str] | None = None) -> Path:
    """Where a site's state lives when nothing names a place: outside the checkout, which may be
    replaced or shared. /var/lib/fleet/<site> for root (the FHS's place for a service's state), else
    $XDG_STATE_HOME/fleet/<site> (~/.local/state, the XDG base directory spec's default)."""
    env = os.environ if environ is None else environ
    if (os.geteuid() if euid is None else euid) == 0 and not env.get("XDG_STATE_HOME"):
        return Path("/var/lib/fleet") / site_name
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path(env.get("HOME", "~")) / ".local/state"
    return base / "fleet" / site_name


def _holder_alive(pid: int, host: str, me: str) -> bool:
    """A lock held from another host cannot be checked: assume it is alive (safe side)."""
    return host != me or pid_alive(pid)
