"""The site's workload manager, from its `workload:` section (shared by watch, return, quarantine, reimage)."""

from __future__ import annotations

from fleet.site import Site
from fleet.workload.base import NoScheduler, WorkloadError, WorkloadManager, in_use
from fleet.workload.slurm import Slurm, SlurmSettings


def for_site(site: Site) -> WorkloadManager:
    """The site's scheduler (`workload:`), or none."""
    if site.workload.kind == "slurm":
        return Slurm(SlurmSettings(conf=site.workload.slurm_conf, bin_dir=site.workload.slurm_bin_dir))
    return NoScheduler()


def scheduler_in_use(site: Site, hostname: str) -> str:
    """Why the site's scheduler says the node is in use ('' when it runs no jobs); unknown counts as in use."""
    manager = for_site(site)
    try:
        return in_use(manager, hostname)
    except WorkloadError as err:
        return f"cannot ask {manager.name} whether it runs jobs ({err}): unknown counts as in use"
