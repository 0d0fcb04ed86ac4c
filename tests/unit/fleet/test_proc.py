"""fleet.proc.pid_alive: what a run lock or a lab pid file's process is, as the tool and the lab both judge it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fleet.proc import pid_alive
from lab.hosts import proc as lab_proc


def test_a_running_process_is_alive_and_none_or_a_reaped_one_is_not() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)


def test_a_zombie_holds_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited, not yet waited for: a zombie
        with open(f"/proc/{child.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    try:
        assert not pid_alive(child.pid)
    finally:
        child.wait()


def test_the_lab_asks_the_same_function() -> None:
    assert lab_proc.pid_alive is pid_alive
