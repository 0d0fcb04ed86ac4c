"""`python -m lab.slurm --lab-dir D controller | enrol --site S HOST...`.

`controller` is what `lab up` runs: munged in the background (same process group, so `lab down`'s
signal to the group stops both), then slurmctld in the foreground in its place.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from fleet.errors import FleetError
from lab.settings import load_lab_site
from lab.slurm.service import conf_path, munge_dir

MUNGE_READY_S = 15.0


def controller(lab_dir: Path) -> int:
    folder = munge_dir(lab_dir)
    socket_path = folder / "munge.socket"
    socket_path.unlink(missing_ok=True)
    # --force: munged refuses a socket under a directory others can write to (pytest tmp dirs, /tmp).
    munged = subprocess.Popen(["munged", "--foreground", "--force", f"--socket={socket_path}",
                               f"--key-file={folder / 'munge.key'}", f"--log-file={lab_dir / 'logs' / 'munged.log'}",
                               f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}"],
                              stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + MUNGE_READY_S
    while not socket_path.exists():
        if munged.poll() is not None or time.monotonic() > deadline:
            print(f"lab slurm: munged did not come up (exit {munged.poll()}); see {lab_dir}/logs/munged.log",
                  file=sys.stderr)
            return 1
        time.sleep(0.05)
    os.execvp("slurmctld", ["slurmctld", "-D", "-f", str(conf_path(lab_dir))])  # noqa: S606 - fixed argv, no shell
    return 1  # not reached: exec replaced this process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.slurm", description=__doc__)
    parser.add_argument("--lab-dir", type=Path, required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("controller", help="run munged and slurmctld (what lab up starts)")
    enrol = sub.add_parser("enrol", help="install and start slurmd on running lab hosts")
    enrol.add_argument("--site", type=Path, required=True)
    enrol.add_argument("hosts", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lab_dir = args.lab_dir.resolve()
    if args.command == "controller":
        return controller(lab_dir)
    from lab.slurm.node import enrol as enrol_host

    site = load_lab_site(args.site)
    failed = 0
    for host in args.hosts:
        try:
            enrol_host(site, lab_dir, host)
        except FleetError as err:
            logging.error("%s", err)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
