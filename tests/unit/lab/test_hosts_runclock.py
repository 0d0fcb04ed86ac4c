"""The boot deadline of lab VMs counts the time the VM could run (lab.hosts.proc.RunClock): a process held
back by a busy CPU is not overdue, a process that could run but did nothing is."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lab.hosts import proc

BUSY = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


def _spin_on_cpu0(count: int) -> list[subprocess.Popen[bytes]]:
    """`count` busy processes, all on CPU 0, so each waits for the others."""
    children = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(count)]
    for child in children:
        os.sched_setaffinity(child.pid, {0})
    return children


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.kill()
        child.wait()


def test_a_process_sharing_one_cpu_with_two_others_waits_most_of_the_time() -> None:
    children = _spin_on_cpu0(3)
    try:
        clock = proc.RunClock(children[0].pid)
        time.sleep(2.5)
        starved, wall = clock.starved_s(), clock.wall_s()
        # Its run time, not its wall time, counts: under half its wall time (a loaded machine may let a
        # second pass before this reads the clock again; the children keep waiting meanwhile).
        assert not clock.overdue(0.8 * wall)
    finally:
        _stop(children)
    assert starved > 0.4 * wall  # a third of one CPU each: ~2/3 of the time waiting
    assert "waiting for a host CPU" in clock.describe()  # over 1 s: worth saying


def test_a_sleeping_process_is_never_held_back() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; print('asleep', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"asleep\n"  # its start may wait for a CPU
        clock = proc.RunClock(child.pid)
        time.sleep(1.0)
        assert clock.starved_s() < 0.1
        assert clock.overdue(0.5)  # a stuck process (waiting on nothing the host holds) runs out of time
        assert clock.describe() == ""
    finally:
        child.kill()
        child.wait()


def test_the_longest_wait_is_kept_when_its_thread_is_gone() -> None:
    children = _spin_on_cpu0(2)
    clock = proc.RunClock(children[0].pid)
    time.sleep(1.0)
    before = clock.starved_s()
    _stop(children)
    assert before > 0.2
    assert clock.starved_s() == pytest.approx(before)  # the process is gone: nothing to read, peak kept


@pytest.mark.parametrize(("wall", "starved", "timeout", "expected"), [
    (100.0, 0.0, 300.0, False),
    (301.0, 0.0, 300.0, True),
    (900.0, 700.0, 300.0, False),  # 200 s of run time in 900 s of wall
    (1199.0, 1000.0, 300.0, False),
    (1201.0, 1100.0, 300.0, True),  # the wall cap: four deadlines
])
def test_overdue_counts_run_time_up_to_the_wall_cap(wall: float, starved: float, timeout: float,
                                                     expected: bool) -> None:
    assert proc.overdue(wall, starved, timeout) is expected


def test_a_process_that_is_not_there_reads_as_never_held_back() -> None:
    assert proc.run_delays(2**22 + 12345) == {}
    assert proc.RunClock(2**22 + 12345).starved_s() == 0.0
