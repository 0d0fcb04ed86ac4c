"""State store micro bench: what the node threads' stage bookkeeping costs while other threads hold the GIL.

Per stage the workflow writes the node's record before the stage runs (`StateDB.update`) and records
the result after (`StateDB.record`); it reads the records once, at the start. Python's sqlite3 module releases
the GIL around each SQLite call, so a thread must take the GIL back once per statement; while other
threads run Python code it waits up to the interpreter's switch interval (`sys.getswitchinterval()`,
5 ms) each time. Done one node at a time under one lock (the workflow's record lock and the store's
lock before group commit), every node behind the lock waited too: py-spy dumps of provision.py in the
1,280-node BMC wave (bench/README, "Scale, seventh pass") found 946 of 975 node threads waiting on it.

For `--nodes` node threads, each doing `--stages` rounds of update + record at once, with `--busy`
threads running pure-Python work, this bench prints the wall time per round two ways on fresh stores:
as the store does it (writes group-committed), and one write at a time under one outer lock (what the
workflow's record lock did). Then one thread alone, for the floor. Ratios, not verdicts.

    .venv/bin/python -m bench.state_lock
"""

from __future__ import annotations

import argparse
import contextlib
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


def bookkeeping(db: StateDB, host: str, stages: int, outer: contextlib.AbstractContextManager) -> None:
    for n in range(stages):
        stage = f"stage-{n}"
        with outer:
            db.update(host, status="running", current=stage)
        with outer:
            db.record(host, {"stage": stage, "status": "running", "current": ""}, stage, "stage:ok", detail="")


def ms_per_round(nodes: int, stages: int, busy: int, outer: contextlib.AbstractContextManager) -> float:
    """Wall milliseconds per node-stage round (update + record), `nodes` threads at once."""
    stop = threading.Event()
    workers = [threading.Thread(target=busy_work, args=(stop,), daemon=True) for _ in range(busy)]
    with tempfile.TemporaryDirectory() as tmp:
        db = StateDB(Path(tmp) / "state.db")
        go = threading.Event()
        threads = [threading.Thread(target=lambda host=f"gpu-{i:04d}": (go.wait(), bookkeeping(db, host, stages,
                                                                                             outer)))
                   for i in range(nodes)]
        for thread in [*workers, *threads]:
            thread.start()
        try:
            started = time.perf_counter()
            go.set()
            for thread in threads:
                thread.join()
            return (time.perf_counter() - started) / (nodes * stages) * 1000
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200, help="node threads doing their bookkeeping at once")
    parser.add_argument("--stages", type=int, default=3, help="update + record rounds per node")
    parser.add_argument("--busy", type=int, default=4, help="threads running Python code meanwhile")
    args = parser.parse_args(argv)
    print(f"bench/state_lock.py on {platform.node()}, Python {platform.python_version()}, switch interval "
          f"{sys.getswitchinterval() * 1000:g} ms, {args.busy} busy threads")
    alone = ms_per_round(1, args.nodes * args.stages // 10, args.busy, contextlib.nullcontext())
    together = ms_per_round(args.nodes, args.stages, args.busy, contextlib.nullcontext())
    serial = ms_per_round(args.nodes, args.stages, args.busy, threading.Lock())
    print(f"  one node thread alone: {alone:.2f} ms per round (update + record)")
    print(f"  {args.nodes} node threads at once: {together:.2f} ms of wall time per round as the store does it, "
          f"{serial:.2f} ms one write at a time under one lock (x{serial / together:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
