"""`lab down` stops a service's whole process group: a child that outlives its leader (the lab MAAS's hook,
booting a lab host) is waited for, or its host's overlay stays mounted after the lab is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lab import control
from lab.hosts import proc

# The leader dies at once on SIGTERM; its child traps SIGTERM and takes a second to finish, as a hook
# run that is mounting a host does. The child touches the marker ($0) once its trap is set.
SCRIPT = "sh -c 'trap \"sleep 1; exit 0\" TERM; touch \"$0\"; while :; do sleep 0.1; done' \"$1\" & exec sleep 30"


def test_terminate_waits_for_every_member_of_the_group_not_only_its_leader(tmp_path: Path) -> None:
    marker = tmp_path / "trapped"
    leader = subprocess.Popen(["sh", "-c", SCRIPT, "sh", str(marker)], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline, "the child never set its trap"
            time.sleep(0.02)
        control._terminate(leader.pid)
        assert not proc.group_alive(leader.pid)
    finally:
        if proc.group_alive(leader.pid):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def test_a_group_with_no_live_member_is_not_alive() -> None:
    leader = subprocess.Popen(["true"], start_new_session=True)
    leader.wait()
    assert not proc.group_alive(leader.pid)


def test_a_group_whose_leader_exited_is_alive_while_a_member_runs_and_is_stopped() -> None:
    """`lab down` asks the group, not the leader: a service that crashed may leave a hook child running."""
    leader = subprocess.Popen(["sh", "-c", "sleep 30 & exit 0"], start_new_session=True)
    leader.wait()
    try:
        assert proc.group_alive(leader.pid)
        control._terminate(leader.pid)
        assert not proc.group_alive(leader.pid)
    finally:
        if proc.group_alive(leader.pid):
            os.killpg(leader.pid, signal.SIGKILL)
