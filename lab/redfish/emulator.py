"""sushy-tools' Redfish emulator (fake driver) with a power delay the lab can state, built for the BMC front.

`build_app` configures sushy-tools' own Flask app with the lab's driver and caches; the BMC front
(`lab.redfish.front`) calls it in its own process through WSGI (`call`), so no request crosses a
socket twice. `python -m lab.redfish.emulator --config FILE` serves the same app with sushy-tools'
own main (werkzeug) for the tests that compare the front with it.

sushy-tools 2.2.0's fake driver lands a power change `random.randint(1, 11)` seconds after the
POST, rounded down to a whole second (`int(time.time()) + randint(1, 11)`), and offers no setting
for it. The lab keeps that behaviour (the change lands later, on a read after its time;
ForceRestart goes Off at once and On later) but needs the delay scaled by the lab time factor,
and the benchmark needs it known. So the lab runs the unmodified emulator app with one
driver subclass whose only difference is where `apply_time` comes from: a seeded uniform draw
between `FLEET_LAB_POWER_DELAY_MIN_S` and `FLEET_LAB_POWER_DELAY_MAX_S` from the emulator config
(written by `lab.redfish.service.prepare`; equal bounds give an exact, known delay).

The stock driver keeps its systems in a SQLite-backed dict that opens a new connection and
unpickles the system on every driver call (~15 per GET of a system: 4-9 ms of CPU, the lab's
largest cost at 512 nodes). The one process that serves the app uses the state dir alone, so the subclass
puts a write-through cache in front of it (`WriteThroughDict`): reads come from memory, every
write still lands in SQLite (the state survives a restart), and each read still returns a fresh
copy, as the stock dict does (a caller mutating what it read changes nothing until it writes).
The indicator LEDs (read twice per GET of a system) get the same cache, and a password that
passed bcrypt once for an htpasswd entry is not hashed again (`remember_accepted`): bcrypt was
~1 ms of the remaining ~2.3 ms of CPU per GET. Served on its own, werkzeug's access log (a line per
request) is off: the front logs every request with what the client can see, and formatting and locking
that line was a tenth of the emulator's CPU at 256 nodes. The `Systems`
collection, which lists every system of the emulator and which each lab BMC's client reads once, is
rendered once per set of members (`cached_collection`): 8 ms of CPU per read at 1,280 systems before.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import pickle
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import flask
from sushy_tools import error
from sushy_tools.emulator import auth_basic
from sushy_tools.emulator import main as emulator_main
from sushy_tools.emulator.memoize import PersistentDict
from sushy_tools.emulator.resources.systems import fakedriver
from werkzeug.datastructures import Headers
from werkzeug.test import run_wsgi_app


def pending_state(current: str, requested: str) -> tuple[str, str] | None:
    """(state now, state to land later) for a reset request, as the stock fake driver decides it.

    None when nothing changes. Kept identical to sushy-tools 2.2.0 (`FakeDriver.set_power_state`),
    including that "PowerCycle" is refused: the fake driver does not implement it.
    """
    if "On" in requested:
        target = "On"
    elif requested in ("ForceOff", "GracefulShutdown"):
        target = "Off"
    elif "Restart" in requested:
        current, target = "Off", requested
    else:
        raise error.NotSupportedError(f"Power state {requested} is not supported")
    return None if current == target else (current, target)


class WriteThroughDict(MutableMapping[Any, Any]):
    """sushy-tools' PersistentDict with every value also held in memory, pickled.

    Reads unpickle from memory (a fresh copy each time, like the stock dict); writes go to the
    backing SQLite file first, then to memory, under one lock (the emulator serves from threads).
    Keys iterate in the stock order: SQLite walks its primary-key index, ordered by the pickled key.

    Writes go through one connection of this dict's own, into the stock dict's file, table and
    pickles (so a stock PersistentDict, a restarted lab, reads them): the stock dict opens a new
    connection per call, behind a retry wrapper: 0.55 ms of CPU per write, 0.12 ms through one. The
    connection commits in WAL mode with `synchronous=normal`: a commit is in the WAL file (in the OS) on return,
    so a killed lab process loses nothing; only a crash of the machine itself could lose the last
    commits, and that restarts the lab anyway. The stock `synchronous=full` waited for the disk on
    every write (~4 ms on this machine, twice per power change).
    """

    def __init__(self, backing: PersistentDict) -> None:
        self._lock = threading.Lock()
        self._blobs = {key: pickle.dumps(backing[key]) for key in list(backing)}
        self._order: list[Any] | None = None  # sorted keys, rebuilt when a key comes or goes
        self._encode = backing.encode
        self._db = sqlite3.connect(backing._dbpath, check_same_thread=False)  # used under self._lock only
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")

    def __getitem__(self, key: Any) -> Any:
        return pickle.loads(self._blobs[key])  # noqa: S301 - our own pickles, made in this process

    def __setitem__(self, key: Any, value: Any) -> None:
        blob = pickle.dumps(value)
        with self._lock:
            with self._db:
                self._db.execute("insert or replace into cache values (?, ?)", (self._encode(key), blob))
            if key not in self._blobs:
                self._order = None
            self._blobs[key] = blob

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            if key not in self._blobs:
                raise KeyError(key)
            with self._db:
                self._db.execute("delete from cache where key=?", (self._encode(key),))
            del self._blobs[key]
            self._order = None

    def __iter__(self) -> Iterator[Any]:
        order = self._order
        if order is None:
            order = self._order = sorted(self._blobs, key=pickle.dumps)
        return iter(order)

    def __len__(self) -> int:
        return len(self._blobs)


AuthEntry = Callable[[str, bytes], dict[str, str]]
Authenticate = Callable[[str, str, bytes], dict[str, str]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]
View = Callable[[], flask.Response]


def cached_collection(view: View, members: Callable[[], list[str]], config: MutableMapping[str, Any]) -> View:
    """sushy-tools' `GET /redfish/v1/Systems` view that renders the collection once per set of members.

    The stock view renders every system of the emulator into the collection on every request (8 ms of CPU
    at 1,280 systems, 0.5 ms for a GET of one system), and every lab BMC's client reads it once: O(N^2)
    at scale, where a real iDRAC lists only its own server. The rendered text depends only on the
    member ids and on the emulator settings that filter or shape them, so it is kept for those and
    handed out as a new response each time (the same status, headers and bytes as the stock view).
    """
    cache: dict[tuple[Any, ...], tuple[bytes, int, list[tuple[str, str]]]] = {}

    @functools.wraps(view)
    def collection() -> flask.Response:
        key = (tuple(members()), repr(config.get("SUSHY_EMULATOR_ALLOWED_INSTANCES")),
               repr(config.get("SUSHY_EMULATOR_FEATURE_SET")))
        if key not in cache:
            response = view()
            cache.clear()  # one collection at a time: the members change only when systems come or go
            cache[key] = (response.get_data(), response.status_code, list(response.headers.items()))
        data, status, headers = cache[key]
        return flask.Response(response=data, status=status, headers=headers)

    return collection


def remember_accepted(check: AuthEntry) -> AuthEntry:
    """sushy-tools' `auth_entry(entry, password)` that skips bcrypt for a pair it accepted before.

    The key is the htpasswd entry itself (a changed file is a new entry) and the SHA-256 of the
    password (the password is not kept). A refused pair is checked again every time, and refused
    the same way, so a wrong password still costs what it costs a client of the stock emulator.
    """
    accepted: dict[tuple[str, bytes], dict[str, str]] = {}

    def auth_entry(entry: str, password: bytes) -> dict[str, str]:
        key = (entry, hashlib.sha256(password).digest())
        if key not in accepted:
            accepted[key] = check(entry, password)  # raises Unauthorized for a wrong password
        return dict(accepted[key])

    return auth_entry


def read_once_per_change(authenticate: Authenticate) -> Authenticate:
    """sushy-tools' `authenticate(auth_file, username, password)` that reads the htpasswd file again only
    when it changed (inode, size, modification time), not on every request.

    The stock function opens and reads the file for every request (a tenth of the CPU of a GET of a
    system in the front), then checks the first entry of the user with `auth_entry`. This one keeps the
    entries by user from the last read and checks the same entry the same way; a user the file does not
    name, or a file that cannot be read, goes to the stock function, which refuses it as before.
    """
    held: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}

    def check(auth_file: str, username: str, password: bytes) -> dict[str, str]:
        try:
            info = os.stat(auth_file)
        except OSError:
            return authenticate(auth_file, username, password)
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        if auth_file not in held or held[auth_file][0] != stamp:
            entries: dict[str, str] = {}
            with open(auth_file, encoding="utf-8") as lines:
                for line in lines:
                    entry = line.strip()
                    if ":" in entry:
                        entries.setdefault(entry.split(":", 1)[0], entry)  # the stock check takes the first
            held[auth_file] = (stamp, entries)
        entry = held[auth_file][1].get(username)
        if entry is None:
            return authenticate(auth_file, username, password)
        return auth_basic.auth_entry(entry, password)  # looked up by name, as the stock function does

    return check


class LabFakeDriver(fakedriver.FakeDriver):
    """The stock fake driver with a configurable, seeded power-change delay and cached state."""

    _delay_s: tuple[float, float] = (1.0, 11.0)  # replaced from the config by initialize()
    _rng: random.Random = random.Random(0)

    @classmethod
    def initialize(cls, config: dict[str, Any], logger: Any) -> type[LabFakeDriver]:
        super().initialize(config, logger)
        low = float(config["FLEET_LAB_POWER_DELAY_MIN_S"])
        high = float(config["FLEET_LAB_POWER_DELAY_MAX_S"])
        cls._delay_s = (low, max(low, high))
        cls._rng = random.Random(int(config.get("FLEET_LAB_SEED", 0)))
        return cls

    def __init__(self) -> None:
        super().__init__()  # seeds SQLite with the configured systems it does not hold yet
        self._systems = WriteThroughDict(self._systems)

    def set_power_state(self, identity: str, state: str) -> None:
        system = self._get(identity)
        change = pending_state(system["power_state"], state)
        if change is None:
            return
        now_state, target = change
        system["power_state"] = now_state
        low, high = self._delay_s
        self._update(system, pending_power={
            "power_state": target,
            "apply_time": time.time() + self._rng.uniform(low, high),
        })


def build_app(config_file: str | Path) -> flask.Flask:
    """sushy-tools' Flask app (the module-level `app` of `sushy_tools.emulator.main`), configured from
    `config_file` as `sushy-emulator --config` configures it, with the lab's driver and caches in place.

    Once per process: the app, its routes and its drivers are module-level singletons of sushy-tools.
    The app builds its driver lazily, on the first request, and without a lock: 32 first requests at
    once build 32 drivers, each checking every system in SQLite, and the process ran out of file
    descriptors (20,000) at 512 systems. Building it here, before any request, avoids that.
    """
    fakedriver.FakeDriver = LabFakeDriver  # the app looks the class up at first use, after this
    auth_basic.auth_entry = remember_accepted(auth_basic.auth_entry)  # looked up per request, by name
    auth_basic.authenticate = read_once_per_change(auth_basic.authenticate)  # the same
    # sushy-tools logs an INFO line per power change and per refused password; served on its own (no
    # logging configured) only its warnings reached the log, and the front's log keeps it that way.
    logging.getLogger("sushy_tools").setLevel(logging.WARNING)
    app = emulator_main.app
    app.configure(config_file=str(config_file))
    driver = app.systems  # builds and caches the driver before any request
    endpoint = "system_collection_resource"
    app.view_functions[endpoint] = cached_collection(app.view_functions[endpoint], lambda: driver.systems, app.config)
    indicators = app.indicators  # built and cached once, like the driver
    indicators._indicators = WriteThroughDict(indicators._indicators)
    return app


def call(app: WsgiApp, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
         host: str) -> tuple[int, Headers, bytes]:
    """One request through the app's WSGI interface, in this thread: (status, headers, body).

    The environ is the one PEP 3333 asks a server for, with the keys werkzeug's own server
    (`WSGIRequestHandler.make_environ`) fills from a request: `path` as the decoded path, `query` as
    sent (still percent-encoded), `headers` as HTTP_* plus CONTENT_TYPE / CONTENT_LENGTH, and `host`
    (the address the client asked for) as Host and SERVER_NAME/PORT.
    """
    server, _, port = host.rpartition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": query, "SERVER_NAME": server or host, "SERVER_PORT": port or "443",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": host,
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    chunks, status, out = run_wsgi_app(app, environ, buffered=True)
    return int(status.split(" ", 1)[0]), out, b"".join(chunks)


def main() -> int:
    """Same command line as `sushy-emulator`: the app of `build_app`, served by sushy-tools' own main
    (werkzeug's threaded server on SUSHY_EMULATOR_LISTEN_IP/PORT). The lab serves the app inside the
    BMC front instead (`lab.redfish.front`); this is the stand-alone server the tests compare it with.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log: lab.redfish.front keeps one
    build_app(emulator_main.parse_args().config)
    return emulator_main.main()


if __name__ == "__main__":
    sys.exit(main())
