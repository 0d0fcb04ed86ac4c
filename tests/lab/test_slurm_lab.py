"""The lab's real Slurm: slurmctld from `lab up`, slurmd on a lab host, driven by fleet.workload.slurm.

Every assertion reads Slurm's own state (sinfo, scontrol show node/job), never our bookkeeping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest

from fleet.workload.base import WorkloadError, in_use, resume_if_ours, wait_empty
from fleet.workload.slurm import Slurm, SlurmSettings
from lab.hosts import nspawn
from lab.slurm import node as slurm_node
from lab.slurm.service import conf_path
from tests.lab.conftest import LabSite

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (nspawn, overlayfs, bridge)"),
    pytest.mark.skipif(shutil.which("slurmctld") is None, reason="slurmctld not installed: run scripts/install.sh"),
]

NODE = "gpu-001-01"


def slurm_cmd(lab: LabSite, *argv: str) -> str:
    done = subprocess.run(list(argv), env={**lab.env, "SLURM_CONF": str(conf_path(lab.lab_dir))},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def node_state(lab: LabSite, name: str = NODE) -> str:
    return slurm_cmd(lab, "sinfo", "-h", "-N", "-n", name, "-o", "%T|%E").splitlines()[0]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def slurm_lab(make_lab_site: Callable[..., LabSite]) -> LabSite:
    lab = make_lab_site(racks=1, max_hosts=1)
    started = lab.lab("up")
    assert started.returncode == 0, started.stderr
    site = lab.site
    node = site.nodes[NODE]
    assert site.lab is not None
    nspawn.start(NODE, node.address, lab.lab_dir, bridge_name=site.lab.hosts.bridge, gateway=site.lab.hosts.gateway)
    slurm_node.enrol(site, lab.lab_dir, NODE)
    wait_for("slurmd to register", lambda: node_state(lab).startswith("idle"))
    return lab


def test_a_drained_node_keeps_its_job_until_it_ends_and_only_the_fleets_drain_is_lifted(slurm_lab: LabSite):
    lab = slurm_lab
    job = slurm_cmd(lab, "sbatch", "--parsable", "-w", NODE, "-o", "/dev/null", "--wrap", "sleep 8")
    wait_for("the job to start", lambda: "JobState=RUNNING" in slurm_cmd(lab, "scontrol", "show", "job", job))
    slurm = Slurm(SlurmSettings(conf=conf_path(lab.lab_dir)))
    assert job in in_use(slurm, NODE)

    slurm.drain(NODE, "gpu_ecc_errors: GPU 3 (00000000:5d:00.0): 4 volatile uncorrectable ECC errors")
    assert node_state(lab) == ("draining|fleet: gpu_ecc_errors: GPU 3 (00000000:5d:00.0): "
                               "4 volatile uncorrectable ECC errors")
    assert "JobState=RUNNING" in slurm_cmd(lab, "scontrol", "show", "job", job)  # the drain kills nothing

    outcome = wait_empty(slurm, NODE, timeout_s=60, poll_s=1)
    assert outcome.empty
    assert "JobState=COMPLETED" in slurm_cmd(lab, "scontrol", "show", "job", job)
    assert node_state(lab).startswith("drained|fleet: ")

    assert resume_if_ours(slurm, NODE)
    # Slurm pings a resumed node before it counts as responding again (idle* for a moment).
    wait_for("the node back in service", lambda: node_state(lab) == "idle|none", timeout_s=30)

    slurm_cmd(lab, "scontrol", "update", f"nodename={NODE}", "state=drain", "reason=bad DIMM, ticket 42")
    assert not resume_if_ours(slurm, NODE)
    assert node_state(lab) == "drained|bad DIMM, ticket 42"


def test_the_drain_deadline_gives_up_and_names_the_job_still_running(slurm_lab: LabSite):
    lab = slurm_lab
    job = slurm_cmd(lab, "sbatch", "--parsable", "-w", NODE, "-o", "/dev/null", "--wrap", "sleep 60")
    wait_for("the job to start", lambda: "JobState=RUNNING" in slurm_cmd(lab, "scontrol", "show", "job", job))
    slurm = Slurm(SlurmSettings(conf=conf_path(lab.lab_dir)))
    slurm.drain(NODE, "ib_ports: mlx5_3 port 1: DOWN/Polling")
    outcome = wait_empty(slurm, NODE, timeout_s=3, poll_s=1)
    assert not outcome.empty
    assert f"{job} (root)" in outcome.detail
    assert node_state(lab).startswith("draining|fleet: ib_ports")
    with pytest.raises(WorkloadError, match="Invalid node name"):
        slurm.drain("gpu-999-01", "x")
