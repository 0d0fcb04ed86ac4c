"""Does a node look in use? Asked before anything destructive (reimage) touches it.

"In use" means work is running on it: GPU compute processes, containers (docker, containerd,
Kubernetes through the kubelet's CRI) or Slurm jobs. The probe fails closed: a node that cannot be
reached, or a probe that errors (a docker daemon that does not answer, an NVML error, a Slurm
controller out of reach), is "unknown", and unknown counts as in use unless the operator passes
--force. A tool that is not installed is not a finding (a node without Slurm runs no Slurm jobs).

The probe is one shell script: each check prints `== NAME rc=N` (or `== NAME absent`) and its
output lines prefixed with `NAME: `, so the decision below is a pure function of the text.
"""

from __future__ import annotations

from fleet import ssh
from fleet.site import Node, Site

CHECKS = ("gpu", "docker", "containerd", "kubelet", "slurm")
# The login is not root (MAAS's Ubuntu): docker, ctr and crictl need root, so they run under `sudo -n`.
PROBE = r"""
run() {
  n=$1; shift; out=$("$@" 2>&1); rc=$?; echo "== $n rc=$rc"
  [ -z "$out" ] || printf '%s\n' "$out" | sed "s/^/$n: /"
}
have() { command -v "$1" >/dev/null 2>&1; }
if have nvidia-smi; then run gpu nvidia-smi --query-compute-apps=pid,process_name --format=csv,noheader
else echo "== gpu absent"; fi
if have docker; then run docker sudo -n docker ps --format '{{.Names}}'; else echo "== docker absent"; fi
if have ctr; then run containerd sudo -n sh -ec 'for ns in $(ctr namespaces list -q); do
    t=$(ctr -n "$ns" tasks list -q); [ -z "$t" ] || printf "%s\n" "$t" | sed "s|^|$ns/|"; done'
else echo "== containerd absent"; fi
if systemctl is-active --quiet kubelet 2>/dev/null; then
  if have crictl; then run kubelet sudo -n crictl ps -q
  else echo "== kubelet rc=127"; echo "kubelet: kubelet is active but crictl is missing"; fi
else echo "== kubelet absent"; fi
if have scontrol; then run slurm sh -ec 'h=$(hostname -s); s=$(scontrol show node -o "$h")
    printf "%s\n" $s | grep "^State="; squeue -h -w "$h" -o "job %i %u %j"'
else echo "== slurm absent"; fi
"""
# Slurm node states in which jobs run (or are being cleaned up); IDLE, DOWN, DRAINED... run none.
SLURM_BUSY = ("ALLOCATED", "MIXED", "COMPLETING")
WORK = {"gpu": "GPU process(es)", "docker": "running container(s)", "containerd": "containerd task(s)",
        "kubelet": "Kubernetes container(s)"}


def _blocks(output: str) -> dict[str, tuple[str, list[str]]]:
    """NAME -> (status: 'absent' or 'rc=N', its output lines without the prefix)."""
    blocks: dict[str, tuple[str, list[str]]] = {}
    for line in output.splitlines():
        if line.startswith("== "):
            name, _, status = line[3:].partition(" ")
            blocks[name] = (status.strip(), [])
        else:
            name, sep, text = line.partition(": ")
            if sep and name in blocks and text.strip():
                blocks[name][1].append(text.strip())
    return blocks


def describe_usage(probe_output: str) -> tuple[str, str]:
    """(what runs, what could not be checked): '' each when idle and fully checked (pure)."""
    blocks = _blocks(probe_output)
    busy: list[str] = []
    unknown: list[str] = []
    for name in CHECKS:
        if name not in blocks:
            unknown.append(f"{name}: no answer from the probe")
            continue
        status, lines = blocks[name]
        if status == "absent":
            continue
        if status != "rc=0":
            first = lines[0] if lines else "no output"
            unknown.append(f"{name}: failed ({status.replace('=', ' ')}): {first}")
            continue
        if name == "slurm":
            states = [line.split("=", 1)[1] for line in lines if line.startswith("State=")]
            jobs = [line[4:] for line in lines if line.startswith("job ")]
            state = states[0] if states else "?"
            if jobs or any(busy_state in state for busy_state in SLURM_BUSY):
                busy.append(f"Slurm node {state}, {len(jobs)} job(s): {', '.join(jobs[:3])}".rstrip(": "))
        elif lines:
            busy.append(f"{len(lines)} {WORK[name]}: {', '.join(lines[:3])}")
    return "; ".join(busy), "; ".join(unknown)


def reason_to_refuse(reachable: bool, probe_output: str, ssh_error: str) -> str:
    """Why a destructive action must not touch the node without --force; '' when it may (pure)."""
    if not reachable:
        return f"cannot reach the node to check it is idle ({ssh_error}): unknown counts as in use"
    busy, unknown = describe_usage(probe_output)
    if busy:
        return busy
    if unknown:
        return f"could not check everything ({unknown}): unknown counts as in use"
    return ""


def in_use(site: Site, node: Node, timeout_s: float = 15.0) -> str:
    """Why the node must be treated as in use, or '' when it is idle (every probe answered).

    The site's scheduler (`workload:`, fleet.workload) is asked too, from here: its controller knows
    the node's jobs even when the node itself has no Slurm client to ask.
    """
    from fleet.workload.site import scheduler_in_use

    result = ssh.run(site, node, PROBE, timeout_s)
    probe = reason_to_refuse(result.reachable, result.stdout, result.stderr.splitlines()[-1] if result.stderr
                             else f"ssh exited {result.rc}")
    return "; ".join(reason for reason in (scheduler_in_use(site, node.hostname), probe) if reason)
