"""The in-use probe fails closed: what it could not check counts as in use, with the reason."""

from __future__ import annotations

import pytest

from fleet.usage import PROBE, describe_usage, reason_to_refuse

IDLE = """== gpu rc=0
== docker rc=0
== containerd rc=0
== kubelet absent
== slurm absent
"""


def test_an_idle_node_with_every_probe_answering_is_not_in_use() -> None:
    assert describe_usage(IDLE) == ("", "")


@pytest.mark.parametrize(("output", "in_use"), [
    (IDLE.replace("== gpu rc=0\n", "== gpu rc=0\ngpu: 4242, python\ngpu: 4243, python\n"),
     "2 GPU process(es): 4242, python, 4243, python"),
    (IDLE.replace("== docker rc=0\n", "== docker rc=0\ndocker: llm-train-7\n"), "1 running container(s): llm-train-7"),
    (IDLE.replace("== containerd rc=0\n", "== containerd rc=0\ncontainerd: k8s.io/3f2a\n"),
     "1 containerd task(s): k8s.io/3f2a"),
    (IDLE.replace("== kubelet absent\n", "== kubelet rc=0\nkubelet: 9c1e0a\n"), "1 Kubernetes container(s): 9c1e0a"),
    (IDLE.replace("== slurm absent\n", "== slurm rc=0\nslurm: State=MIXED\nslurm: job 8812 alice train\n"),
     "Slurm node MIXED, 1 job(s): 8812 alice train"),
])
def test_work_of_every_kind_is_named(output: str, in_use: str) -> None:
    assert describe_usage(output) == (in_use, "")


@pytest.mark.parametrize(("output", "unknown"), [
    (IDLE.replace("== docker rc=0\n", "== docker rc=1\ndocker: Cannot connect to the Docker daemon\n"),
     "docker: failed (rc 1): Cannot connect to the Docker daemon"),
    (IDLE.replace("== gpu rc=0\n", "== gpu rc=15\ngpu: Unable to determine the device handle for GPU0\n"),
     "gpu: failed (rc 15): Unable to determine the device handle for GPU0"),
    (IDLE.replace("== kubelet absent\n", "== kubelet rc=127\nkubelet: kubelet is active but crictl is missing\n"),
     "kubelet: failed (rc 127): kubelet is active but crictl is missing"),
    (IDLE.replace("== slurm absent\n", "== slurm rc=1\nslurm: slurm_load_node error: Unable to contact slurm "
                  "controller\n"), "slurm: failed (rc 1): slurm_load_node error: Unable to contact slurm controller"),
    (IDLE.replace("== slurm absent\n", ""), "slurm: no answer from the probe"),
    ("", "gpu: no answer from the probe"),
])
def test_a_probe_that_could_not_answer_is_unknown_with_its_reason(output: str, unknown: str) -> None:
    in_use, why = describe_usage(output)
    assert in_use == "" and unknown in why


def test_a_slurm_node_that_is_idle_or_drained_is_not_in_use() -> None:
    for state in ("IDLE", "DRAINED", "DOWN+DRAIN", "IDLE+DRAIN"):
        output = IDLE.replace("== slurm absent\n", f"== slurm rc=0\nslurm: State={state}\n")
        assert describe_usage(output) == ("", "")


@pytest.mark.parametrize(("reachable", "output", "refuse"), [
    (True, IDLE, ""),
    (False, "", "cannot reach the node to check it is idle (ssh: no route): unknown counts as in use"),
    (True, IDLE.replace("== docker rc=0\n", "== docker rc=1\ndocker: permission denied\n"),
     "could not check everything (docker: failed (rc 1): permission denied): unknown counts as in use"),
    (True, IDLE.replace("== docker rc=0\n", "== docker rc=0\ndocker: web\n"), "1 running container(s): web"),
])
def test_unknown_means_in_use(reachable: bool, output: str, refuse: str) -> None:
    assert reason_to_refuse(reachable, output, "ssh: no route") == refuse


def test_the_probe_runs_every_check_and_marks_each_block() -> None:
    for name in ("gpu", "docker", "containerd", "kubelet", "slurm"):
        assert f"== {name}" in PROBE or f'"{name}"' in PROBE
    assert "squeue" in PROBE and "scontrol" in PROBE and "crictl" in PROBE and "ctr" in PROBE


def test_the_probe_script_itself_under_sh_with_stand_in_tools(tmp_path) -> None:
    """The real script, run by sh with stand-ins for the tools on PATH: blocks, prefixes and exit codes."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        "nvidia-smi": "echo '4242, python'",
        "docker": "echo 'Cannot connect to the Docker daemon' >&2; exit 1",
        "ctr": 'if [ "$1" = namespaces ]; then echo k8s.io; else echo 3f2a; fi',
        "scontrol": "echo 'NodeName=x State=IDLE+DRAIN CPUTot=96'",
        "squeue": "true",
        "hostname": "echo gpu-001-01",
        "systemctl": "exit 3",
        # the login is not root (MAAS's Ubuntu): docker, ctr and crictl go through passwordless sudo
        "sudo": '[ "$1" = -n ] && shift; exec "$@"',
    }
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", PROBE], capture_output=True, text=True, env=env, check=True).stdout
    assert describe_usage(out) == ("1 GPU process(es): 4242, python; 1 containerd task(s): k8s.io/3f2a",
                                   "docker: failed (rc 1): Cannot connect to the Docker daemon")
