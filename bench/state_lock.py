"""State store micro bench: what one stage's bookkeeping costs while other threads hold the GIL.

The workflow writes every stage twice (`StateDB.update` before it runs, `StateDB.record` after) under
its record lock, one node thread at a time. Python's sqlite3 module releases the GIL around each
SQLite call, so the writer must take the GIL back once per statement; while other threads run Python
code it waits up to the interpreter's switch interval (`sys.getswitchinterval()`, 5 ms) each time,
holding the lock, and every node behind it waits too. py-spy dumps of provision.py in the 1,280-node
BMC wave (bench/README, "Scale, seventh pass") found 946 of 975 node threads waiting on that lock 4 s
into the run.

This bench times `--writes` update + record pairs on a fresh store with 0 and with `--busy` threads
running pure-Python work (each figure on a store of its own), at each switch interval of `--intervals`,
and prints the milliseconds per pair and the ratio against the quiet store. Ratios, not verdicts.

    .venv/bin/python -m bench.state_lock
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from fleet.state import StateDB


def busy_work(stop: threading.Event) -> None:
    """Pure-Python CPU, as the node threads' JSON and HTTP handling is: it holds the GIL until asked to drop it."""
    while not stop.is_set():
        sum(range(2000))


def ms_per_pair(writes: int, busy: int) -> float:
    """Milliseconds per stage bookkeeping (update + record) on a fresh store, with `busy` threads competing
    for the GIL; each figure gets its own store, so both write the same new rows."""
    stop = threading.Event()
    workers = [threading.Thread(target=busy_work, args=(stop,), daemon=True) for _ in range(busy)]
    with tempfile.TemporaryDirectory() as tmp:
        db = StateDB(Path(tmp) / "state.db")
        for worker in workers:
            worker.start()
        try:
            started = time.perf_counter()
            for i in range(writes):
                db.update(f"gpu-{i:04d}", status="running", current="bios")
                db.record(f"gpu-{i:04d}", {"stage": "bios", "status": "new"}, "bios", "stage:ok", detail="")
            return (time.perf_counter() - started) / writes * 1000
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200, help="update + record pairs per measurement")
    parser.add_argument("--busy", type=int, default=4, help="threads running Python code meanwhile")
    parser.add_argument("--intervals", default="0.005,0.0005", help="switch intervals to try, in seconds")
    args = parser.parse_args(argv)
    print(f"bench/state_lock.py on {platform.node()}, Python {platform.python_version()}, "
          f"{args.writes} update + record pairs per figure")
    default = sys.getswitchinterval()
    try:
        for interval in (float(text) for text in args.intervals.split(",")):
            sys.setswitchinterval(interval)
            quiet = ms_per_pair(args.writes, 0)
            contended = ms_per_pair(args.writes, args.busy)
            print(f"  switch interval {interval * 1000:g} ms: {quiet:.2f} ms per pair alone, {contended:.2f} ms "
                  f"with {args.busy} busy threads (x{contended / quiet:.0f})")
    finally:
        sys.setswitchinterval(default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
