"""A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries, initdb + pg_ctl in a temp dir.

It listens on a Unix socket in its own directory only (no TCP port, so parallel tests never clash),
trusts local connections (the socket directory is the boundary), runs without fsync (test data),
and is stopped with `pg_ctl stop -m immediate` however the test ends. initdb refuses to run as
root, so as root the server runs as Debian's `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (scripts/install.sh installs `postgresql`)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; scripts/install.sh does)")
    return versions[-1].parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its libpq URL (database `postgres`, user `fleet`, over the socket)."""
    binaries = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (root, sock):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        root.chmod(0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    started = False
    try:
        subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "fleet", "--auth=trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, text=True)
        options = f"-k {sock} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "30",
                        "-l", str(root / "server.log"), "start"], check=True, capture_output=True, text=True)
        started = True
        yield f"postgresql://fleet@/postgres?host={sock}"
    finally:
        if started:
            subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
