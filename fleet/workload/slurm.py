"""Slurm through its own commands (scontrol, squeue, sinfo), the way an admin drives it.

- drain: `scontrol update nodename=N state=drain reason="fleet: <cause>"`. Slurm keeps the running jobs
  (the node shows `draining`, then `drained` once they end) and refuses a drain without a reason.
- resume: `scontrol update nodename=N state=resume` (clears the drain and its reason).
- jobs: `squeue -h -w N -t running,completing -o ...` (a node name Slurm does not know is an error).
- state: `sinfo -h -N -n N -o "%T|%E"` (one line per partition the node is in; the state is the same).
Commands run with `SLURM_CONF` set when the site names a slurm.conf (the lab's own controller), and
always as argument lists: no shell, so a cause with quotes cannot break the command.
Slurm's documentation: https://slurm.schedmd.com/scontrol.html, https://slurm.schedmd.com/squeue.html.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.workload.base import Job, NodeState, WorkloadError, drain_reason

log = logging.getLogger(__name__)

Runner = Callable[..., subprocess.CompletedProcess]
_JOB_FORMAT = "%i|%u|%T|%j"


@dataclass(frozen=True)
class SlurmSettings:
    conf: Path | None = None  # slurm.conf to use (SLURM_CONF); None: the machine's own
    bin_dir: Path | None = None  # where scontrol/squeue/sinfo are; None: PATH
    command_timeout_s: float = 30.0


def parse_jobs(stdout: str) -> list[Job]:
    jobs = []
    for line in stdout.splitlines():
        if line.strip():
            job_id, user, state, name = [*line.split("|", 3), "", "", ""][:4]
            jobs.append(Job(job_id.strip(), user.strip(), state.strip().lower(), name.strip()))
    return jobs


def parse_state(node: str, stdout: str) -> NodeState:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise WorkloadError(f"Slurm does not list node {node}", node=node,
                            hint="add the node to slurm.conf (NodeName=...) or fix the hostname in the site")
    state, _, reason = lines[0].partition("|")
    return NodeState(node, state.strip(), "" if reason.strip() == "none" else reason.strip())


class Slurm:
    """One Slurm cluster, driven through its commands."""

    name = "slurm"

    def __init__(self, settings: SlurmSettings = SlurmSettings(), *, runner: Runner = subprocess.run) -> None:
        self.settings = settings
        self._runner = runner

    def _run(self, node: str, argv: Sequence[str]) -> str:
        command = [str(self.settings.bin_dir / argv[0]) if self.settings.bin_dir else argv[0], *argv[1:]]
        env = dict(os.environ)
        if self.settings.conf:
            env["SLURM_CONF"] = str(self.settings.conf)
        try:
            done = self._runner(command, capture_output=True, text=True, env=env,
                                timeout=self.settings.command_timeout_s, check=False)
        except FileNotFoundError as err:
            raise WorkloadError(f"{argv[0]} is not installed on this host", node=node,
                                hint="install slurm-client (scripts/install.sh) or set workload.slurm.bin_dir") from err
        except subprocess.TimeoutExpired as err:
            raise WorkloadError(f"{argv[0]} did not answer within {self.settings.command_timeout_s:.0f} s", node=node,
                                hint="check that slurmctld is up (scontrol ping)") from err
        if done.returncode != 0:
            message = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise WorkloadError(f"{' '.join(argv[:2])} for {node} failed (exit {done.returncode})", node=node,
                                service_message=message[-1] if message else "",
                                hint="check the node name in slurm.conf and that slurmctld is up (scontrol ping)")
        return done.stdout

    def drain(self, node: str, cause: str) -> None:
        self._run(node, ["scontrol", "update", f"nodename={node}", "state=drain", f"reason={drain_reason(cause)}"])
        log.info("node %s: drained in Slurm (%s)", node, drain_reason(cause))

    def resume(self, node: str) -> None:
        self._run(node, ["scontrol", "update", f"nodename={node}", "state=resume"])
        log.info("node %s: resumed in Slurm", node)

    def jobs(self, node: str) -> list[Job]:
        return parse_jobs(self._run(node, ["squeue", "-h", "-w", node, "-t", "running,completing",
                                           "-o", _JOB_FORMAT]))

    def state(self, node: str) -> NodeState:
        return parse_state(node, self._run(node, ["sinfo", "-h", "-N", "-n", node, "-o", "%T|%E"]))
