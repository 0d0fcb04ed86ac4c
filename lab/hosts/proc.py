"""Is a process (or its process group) alive, what did it say last, and how long could it run? One answer
for every module that keeps a pid file (hosts, VMs, leases, the lab's services) or reports a failed command
from its log; whether a process is alive is production's own answer (`fleet.proc`), so the lab and the tool
never disagree on a pid file."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from fleet.proc import pid_alive as pid_alive  # re-exported: the lab's modules ask here


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log, for an error's service message ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is in process group `pgid`, its leader or not."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


WALL_CAP_FACTOR = 4.0  # a starved boot may take this many times its deadline in wall time, no more


def run_delays(pid: int) -> dict[int, float]:
    """Seconds each thread of `pid` has spent runnable but waiting for a CPU, by thread id ({} if unreadable).

    The second field of /proc/PID/task/TID/schedstat, in nanoseconds (the kernel's
    Documentation/scheduler/sched-stats.rst: "time spent waiting on a runqueue").
    """
    delays: dict[int, float] = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            delays[int(stat.parent.name)] = int(stat.read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return delays


def overdue(wall_s: float, starved_s: float, timeout_s: float) -> bool:
    """Whether a wait of `timeout_s` seconds of run time is over: wall time less the time the process was
    held back, or the wall cap (WALL_CAP_FACTOR deadlines), whichever comes first."""
    return wall_s - starved_s > timeout_s or wall_s > timeout_s * WALL_CAP_FACTOR


@dataclass
class RunClock:
    """Time since a start, in wall seconds and in seconds a process (`pid`, optional) could have run.

    Why: a VM under software emulation on the 2-core machine, beside a busy test suite, can be runnable and
    still get a tenth of a core (qemu at nice 10 beside nice-0 work): a boot deadline in wall seconds then
    fails a guest that was never stuck, only starved. The time it was held back is the longest run-queue
    wait of any of its threads since the start (a vCPU thread waiting holds the whole guest back). A guest
    that is really stuck waits on nothing the host holds back, so its wall time runs on and the same
    deadline still catches it; the wall cap bounds the starved case.
    """

    pid: int | None = None
    started: float = field(default_factory=time.monotonic)
    baseline: dict[int, float] = field(init=False)  # each thread's run-queue wait at the start
    starved_peak: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.baseline = run_delays(self.pid) if self.pid is not None else {}

    def wall_s(self) -> float:
        return time.monotonic() - self.started

    def starved_s(self) -> float:
        """The longest run-queue wait of one thread since the start (kept when that thread ends)."""
        if self.pid is not None:
            now = run_delays(self.pid)
            waits = (delay - self.baseline.get(tid, 0.0) for tid, delay in now.items())
            self.starved_peak = max(self.starved_peak, *waits, 0.0)
        return self.starved_peak

    def overdue(self, timeout_s: float) -> bool:
        return overdue(self.wall_s(), self.starved_s(), timeout_s)

    def describe(self) -> str:
        """How the time went, for an error message ("" when the process was never held back)."""
        starved = self.starved_s()
        if starved < 1.0:
            return ""
        return f" of run time (wall {self.wall_s():.0f} s, {starved:.0f} s of it waiting for a host CPU)"
