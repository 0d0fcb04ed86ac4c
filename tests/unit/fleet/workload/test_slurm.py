"""Slurm through its commands: the argv we send, what we make of the answers, drain waits and resume rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleet.workload.base import Job, NodeState, NoScheduler, WorkloadError, in_use, resume_if_ours, wait_empty
from fleet.workload.slurm import Slurm, SlurmSettings, parse_jobs, parse_state


class FakeSlurm:
    """Records each command; answers from a table keyed by the command's first two words."""

    def __init__(self, answers=None):
        self.calls: list[tuple[list[str], dict]] = []
        self.answers = answers or {}

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        rc, out, err = self.answers.get(tuple(Path(argv[0]).name.split()) + tuple(argv[1:2]), (0, "", ""))
        return subprocess.CompletedProcess(argv, rc, out, err)


def test_drain_sends_scontrol_update_with_the_fleet_reason_as_one_argument_and_the_sites_conf():
    fake = FakeSlurm()
    Slurm(SlurmSettings(conf=Path("/lab/slurm.conf")), runner=fake).drain("gpu-002-01", 'gpu_ecc_errors: "GPU 3"\n x')
    argv, kwargs = fake.calls[0]
    assert argv == ["scontrol", "update", "nodename=gpu-002-01", "state=drain",
                    'reason=fleet: gpu_ecc_errors: "GPU 3" x']
    assert kwargs["env"]["SLURM_CONF"] == "/lab/slurm.conf"


def test_resume_and_job_queries_use_the_node_name():
    fake = FakeSlurm({("squeue", "-h"): (0, "17|alice|RUNNING|train\n18|bob|COMPLETING|eval\n", "")})
    slurm = Slurm(SlurmSettings(bin_dir=Path("/opt/slurm/bin")), runner=fake)
    slurm.resume("gpu-002-01")
    assert slurm.jobs("gpu-002-01") == [Job("17", "alice", "running", "train"), Job("18", "bob", "completing", "eval")]
    assert fake.calls[0][0] == ["/opt/slurm/bin/scontrol", "update", "nodename=gpu-002-01", "state=resume"]
    assert fake.calls[1][0][:6] == ["/opt/slurm/bin/squeue", "-h", "-w", "gpu-002-01", "-t", "running,completing"]


def test_a_refused_command_is_a_workload_error_with_slurms_message():
    fake = FakeSlurm({("scontrol", "update"): (1, "", "scontrol: error: Invalid node name specified\n")})
    with pytest.raises(WorkloadError) as err:
        Slurm(runner=fake).drain("gpu-999-09", "x")
    assert "Invalid node name specified" in str(err.value)
    assert err.value.node == "gpu-999-09"


def test_missing_slurm_commands_say_what_to_install():
    def missing(argv, **kwargs):
        raise FileNotFoundError(argv[0])

    with pytest.raises(WorkloadError, match="not installed"):
        Slurm(runner=missing).jobs("gpu-002-01")


@pytest.mark.parametrize(("stdout", "state"), [
    ("draining|fleet: gpu_ecc_errors\n", NodeState("n", "draining", "fleet: gpu_ecc_errors")),
    ("idle|none\nidle|none\n", NodeState("n", "idle", "")),
    ("drained*|fleet: ib_ports: mlx5_3 port 1: DOWN/Polling\n",
     NodeState("n", "drained*", "fleet: ib_ports: mlx5_3 port 1: DOWN/Polling")),
])
def test_sinfo_lines_become_the_nodes_state_and_reason(stdout, state):
    assert parse_state("n", stdout) == state


def test_a_node_sinfo_does_not_list_is_an_error_naming_slurm_conf():
    with pytest.raises(WorkloadError, match=r"slurm\.conf"):
        parse_state("n", "")


def test_flags_of_the_state_words():
    assert NodeState("n", "drained*", "fleet: x").draining_or_drained
    assert NodeState("n", "draining", "fleet: x").drained_by_fleet
    assert not NodeState("n", "mixed", "").draining_or_drained
    assert parse_jobs("\n") == []


class Scripted:
    """A workload manager whose node empties after some polls."""

    name = "slurm"

    def __init__(self, polls_until_empty: int, state: NodeState | None = None):
        self.left = polls_until_empty
        self.resumed = 0
        self._state = state or NodeState("n", "drained", "fleet: x")

    def jobs(self, node):
        self.left -= 1
        return [Job("7", "alice", "running")] if self.left >= 0 else []

    def state(self, node):
        return self._state

    def resume(self, node):
        self.resumed += 1

    def drain(self, node, cause):
        pass


def test_wait_empty_returns_once_the_jobs_end():
    now = [0.0]
    outcome = wait_empty(Scripted(2), "n", timeout_s=100, poll_s=10, clock=lambda: now[0],
                         sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert outcome.empty and outcome.waited_s == 20


def test_wait_empty_gives_up_at_the_deadline_and_names_the_jobs_left():
    now = [0.0]
    outcome = wait_empty(Scripted(100), "n", timeout_s=25, poll_s=10, clock=lambda: now[0],
                         sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert not outcome.empty and outcome.waited_s == 25
    assert "7 (alice)" in outcome.detail


def test_in_use_names_the_jobs_and_an_empty_node_is_not_in_use():
    assert in_use(Scripted(5), "n") == "slurm job(s) running: 7 (alice)"
    assert in_use(Scripted(0), "n") == ""
    assert in_use(NoScheduler(), "n") == ""


def test_only_a_drain_the_fleet_set_is_lifted():
    ours, theirs = Scripted(0), Scripted(0, NodeState("n", "drained", "bad DIMM, ticket 42"))
    assert resume_if_ours(ours, "n") and ours.resumed == 1
    assert not resume_if_ours(theirs, "n") and theirs.resumed == 0
    idle = Scripted(0, NodeState("n", "idle", ""))
    assert resume_if_ours(idle, "n") and idle.resumed == 0
