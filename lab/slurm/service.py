"""The lab's Slurm controller as a lab service: Debian's slurmctld and munged, on the ops side.

What the real thing does that a client notices, and which the lab keeps (it is the real thing,
Slurm 22.05 from Debian's `slurm-wlm`; https://slurm.schedmd.com/scontrol.html):
- `scontrol update nodename=N state=drain` needs a reason, and refuses node names not in slurm.conf
  ("Invalid node name specified", exit 1);
- a drained node with running jobs shows `draining` (sinfo %T) until they end, then `drained`; its
  reason stays `fleet: ...` until `state=resume`, across slurmd restarts and reimages;
- a node whose slurmd does not answer for SlurmdTimeout turns `down*`; with ReturnToService=2 it comes
  back by itself when its slurmd registers again, unless drained;
- every message is authenticated by munge with one key shared by the cluster (the lab generates it).
slurmd runs on each lab host (lab/slurm/node.py installs it there when the host boots), not on this
machine: Debian builds Slurm without --enable-multiple-slurmd, so one machine runs one slurmd, and a
slurmd inside each nspawn host has that host's address and processes, as on a real node.

slurmctld listens on all addresses of this machine on `lab.ports.slurmctld` (Slurm has no listen
address setting; NoCtldInAddrAny binds the address the host name resolves to, here 127.0.0.1, which
lab hosts cannot reach). Its clients (`scontrol`, `squeue`, `sinfo`, `sbatch`) find it through
`SLURM_CONF=<lab dir>/slurm/slurm.conf`.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

from fleet.site import Site
from lab.hosts import image
from lab.service import LabService, ReadyCheck
from lab.slurm import config, debs

NAME = "slurmctld"
DEFAULT_PORT = 6817
MUNGE_KEY_BYTES = 1024  # mungekey's default key length


def slurm_dir(lab_dir: Path) -> Path:
    return lab_dir / "slurm"


def conf_path(lab_dir: Path) -> Path:
    """The controller's slurm.conf: what SLURM_CONF points the Slurm commands at."""
    return slurm_dir(lab_dir) / "slurm.conf"


def node_conf_path(lab_dir: Path) -> Path:
    return slurm_dir(lab_dir) / "slurm-node.conf"


def munge_dir(lab_dir: Path) -> Path:
    return slurm_dir(lab_dir) / "munge"


def plan(site: Site, lab_dir: Path) -> config.ClusterPlan:
    gateway = site.lab.hosts.gateway if site.lab else "198.18.0.1"
    port = site.lab.ports.get(NAME, DEFAULT_PORT) if site.lab else DEFAULT_PORT
    folder = slurm_dir(lab_dir)
    return config.ClusterPlan(
        cluster=site.name.replace("-", "_")[:40] or "lab", controller_name=socket.gethostname().split(".")[0],
        controller_addr=gateway, controller_port=port, state_dir=folder / "state",
        log_file=lab_dir / "logs" / "slurmctld-daemon.log", pid_file=folder / "slurmctld.pid",
        munge_socket=munge_dir(lab_dir) / "munge.socket",
        nodes=tuple((n.hostname, n.address) for n in sorted(site.nodes.values(), key=lambda n: n.hostname)),
    )


def ensure_munge_key(lab_dir: Path) -> Path:
    """The cluster's munge key, generated once per lab (random bytes, mode 0400, like mungekey writes)."""
    key = munge_dir(lab_dir) / "munge.key"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.parent.chmod(0o755)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(MUNGE_KEY_BYTES))
    return key


def prepare(site: Site, lab_dir: Path) -> None:
    """Key, both slurm.conf files and the state directory; the lab hosts' .debs when the lab has hosts."""
    cluster = plan(site, lab_dir)
    ensure_munge_key(lab_dir)
    cluster.state_dir.mkdir(parents=True, exist_ok=True)
    (lab_dir / "logs").mkdir(parents=True, exist_ok=True)
    conf_path(lab_dir).write_text(config.controller_conf(cluster), encoding="utf-8")
    node_conf_path(lab_dir).write_text(config.node_conf(cluster), encoding="utf-8")
    if site.lab and site.lab.hosts.max_hosts > 0:
        folder = debs.ensure(image.ensure_base(), image.cache_dir())
        link = slurm_dir(lab_dir) / "debs"
        link.unlink(missing_ok=True)
        link.symlink_to(folder)


def service(site: Site, lab_dir: Path) -> LabService:
    cluster = plan(site, lab_dir)
    return LabService(
        name=NAME,
        argv=[sys.executable, "-m", "lab.slurm", "--lab-dir", str(lab_dir), "controller"],
        ready=ReadyCheck(port=cluster.controller_port, host=cluster.controller_addr),
    )


def environment(lab_dir: Path) -> dict[str, str]:
    """What a Slurm command needs to talk to this lab's controller."""
    return {"SLURM_CONF": str(conf_path(lab_dir))}
