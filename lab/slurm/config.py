"""slurm.conf for the lab cluster (pure): one text for the controller, one for the nodes.

The two differ in one line only: the controller's munged listens on a socket inside the lab dir
(several labs, and a machine's own munge, can run side by side), the nodes' munged on Debian's default.
Slurm compares a hash of slurm.conf between slurmd and slurmctld and logs an error on a mismatch;
`DebugFlags=NO_CONF_HASH` is Slurm's own switch for a difference that is expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SLURMD_PORT = 6818
PARTITION = "gpu"


@dataclass(frozen=True)
class ClusterPlan:
    cluster: str
    controller_name: str  # this machine's short hostname: slurmctld only runs where SlurmctldHost names it
    controller_addr: str  # the lab bridge's address, which the lab hosts reach
    controller_port: int
    state_dir: Path
    log_file: Path
    pid_file: Path
    munge_socket: Path
    nodes: tuple[tuple[str, str], ...]  # (NodeName, NodeAddr)


def _common(plan: ClusterPlan) -> list[str]:
    lines = [
        "# Written by the fleet lab (lab/slurm): a real Slurm 22.05 cluster over the lab's hosts.",
        f"ClusterName={plan.cluster}",
        f"SlurmctldHost={plan.controller_name}({plan.controller_addr})",
        f"SlurmctldPort={plan.controller_port}",
        f"SlurmdPort={SLURMD_PORT}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        "DebugFlags=NO_CONF_HASH",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={plan.state_dir}",
        f"SlurmctldPidFile={plan.pid_file}",
        f"SlurmctldLogFile={plan.log_file}",
        "SlurmdSpoolDir=/var/spool/slurmd",
        # Lab hosts are containers sharing the machine's cgroups: no cgroup plugins, processes tracked by pid.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        # A node whose slurmd comes back (after a reimage) is usable again unless someone drained it.
        "ReturnToService=2",
        "SlurmdTimeout=30",
        "MessageTimeout=10",
        # Lab hosts have 8 "GPUs" only in their fixture files: the hardware slurmd finds is what it is.
        "SlurmdParameters=config_overrides",
    ]
    lines += [f"NodeName={name} NodeAddr={addr} CPUs=1 State=UNKNOWN" for name, addr in plan.nodes]
    lines.append(f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    return lines


def controller_conf(plan: ClusterPlan) -> str:
    return "\n".join([*_common(plan), f"AuthInfo=socket={plan.munge_socket}"]) + "\n"


def node_conf(plan: ClusterPlan) -> str:
    return "\n".join(_common(plan)) + "\n"


def hosts_lines(plan: ClusterPlan, names: Iterable[str] = ()) -> str:
    """/etc/hosts lines a node needs: slurmd resolves the controller's name (a lab has no DNS)."""
    wanted = set(names)
    lines = [f"{plan.controller_addr} {plan.controller_name}"]
    lines += [f"{addr} {name}" for name, addr in plan.nodes if name in wanted]
    return "\n".join(lines) + "\n"
