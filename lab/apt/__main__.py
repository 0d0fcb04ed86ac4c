"""`python -m lab.apt build|up|down`: the lab apt repository outside `lab up` (molecule, by hand).

`up` makes sure the current repository is served at http://198.18.0.1:<port>/: it reuses a server
that already serves exactly this repository (the lab's own, or one started earlier), and otherwise
starts one in the background (pid and log under FLEET_LAB_CACHE). `down --if-idle` stops that server
only when no molecule host holds an address any more, so scenarios that overlap never lose it.
Exit codes: 0 done, 1 failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fleet.errors import FleetError
from lab.apt.build import AptRepoError, build_repo
from lab.apt.service import DEFAULT_PORT, packages_dir
from lab.hosts import bridge, image, leases
from lab.hosts.nspawn import DEFAULT_BRIDGE, DEFAULT_GATEWAY
from lab.hosts.proc import pid_alive

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0


def _pid_file(port: int) -> Path:
    return image.cache_dir() / f"apt-server-{port}.pid"


def _served_release(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url + "Release", timeout=2) as answer:  # noqa: S310 - lab bridge URL
            return answer.read()
    except (urllib.error.URLError, OSError):
        return None


def _our_pid(port: int) -> int | None:
    text = _pid_file(port).read_text(encoding="utf-8").strip() if _pid_file(port).exists() else ""
    pid = int(text) if text.isdigit() else None
    return pid if pid_alive(pid) else None


def up(packages: Path, port: int, gateway: str, bridge_name: str) -> str:
    repo = build_repo(packages, image.cache_dir())
    bridge.ensure_bridge(bridge_name, gateway)
    url = f"http://{gateway}:{port}/"
    wanted = (repo / "Release").read_bytes()
    served = _served_release(url)
    if served == wanted:
        return f"already serving {repo} at {url}"
    if served is not None:
        if _our_pid(port) is None:
            raise AptRepoError(f"{url} serves another repository, from a server this command did not start",
                               hint="stop the lab (provision.py lab down) or use another --port")
        down(port, if_idle=False)
    log_path = image.cache_dir() / f"apt-server-{port}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "lab.apt.server", "--root", str(repo), "--bind", gateway, "--port", str(port)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True)
    _pid_file(port).write_text(str(process.pid), encoding="utf-8")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while _served_release(url) != wanted:
        if process.poll() is not None or time.monotonic() > deadline:
            raise AptRepoError(f"the apt server for {url} did not come up", hint=f"read {log_path}")
        time.sleep(0.1)
    return f"started serving {repo} at {url}"


def down(port: int, *, if_idle: bool) -> str:
    pid = _our_pid(port)
    if pid is None:
        return "no apt server of ours is running"
    if if_idle and leases.molecule_leases_held():
        return "molecule hosts still run: the apt server stays"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _pid_file(port).unlink(missing_ok=True)
    return "stopped the apt server"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.apt", description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=Path, default=None, help="directory of *.ctl (default: lab/apt/packages)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY)
    parser.add_argument("--bridge", default=DEFAULT_BRIDGE)
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("build", help="build the repository (cached by the control files' hash); print its path")
    sub.add_parser("up", help="serve the current repository on the bridge (reuse or start a server)")
    stop = sub.add_parser("down", help="stop the server `up` started")
    stop.add_argument("--if-idle", action="store_true", help="only when no molecule host runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    packages = args.packages or packages_dir()
    try:
        if args.verb == "build":
            print(build_repo(packages, image.cache_dir()))
        elif args.verb == "up":
            print(up(packages, args.port, args.gateway, args.bridge))
        else:
            print(down(args.port, if_idle=args.if_idle))
    except FleetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
