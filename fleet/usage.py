"""Does a node look in use? Asked before anything destructive (reimage) touches it.

"In use" means work is running on it: GPU compute processes or running containers. A node that
cannot be reached does not look in use (the usual reason to reimage is that it is broken), but a
node that answers and shows work is refused unless the operator forces it.
"""

from __future__ import annotations

from fleet import ssh
from fleet.site import Node, Site

PROBE = (
    "nvidia-smi --query-compute-apps=pid,process_name --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'; "
    "docker ps --format '{{.Names}}' 2>/dev/null | sed 's/^/container: /'; true"
)


def describe_usage(probe_output: str) -> str:
    """'' when idle, else a short account of what runs (pure: unit-tested on captured outputs)."""
    gpu = [line[5:].strip() for line in probe_output.splitlines() if line.startswith("gpu: ") and line[5:].strip()]
    containers = [line[11:].strip() for line in probe_output.splitlines()
                  if line.startswith("container: ") and line[11:].strip()]
    parts = []
    if gpu:
        parts.append(f"{len(gpu)} GPU process(es): {', '.join(gpu[:3])}")
    if containers:
        parts.append(f"{len(containers)} running container(s): {', '.join(containers[:3])}")
    return "; ".join(parts)


def in_use(site: Site, node: Node, timeout_s: float = 15.0) -> str:
    """Why the node looks in use, or '' when it does not (or cannot be reached)."""
    result = ssh.run(site, node, PROBE, timeout_s)
    return describe_usage(result.stdout) if result.reachable else ""
