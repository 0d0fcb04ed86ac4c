"""configure: the Ansible roles on the node, in batches shared with its neighbours (fleet/configure.py).

Ansible's task starts stream to the run's progress display. The healthcheck_agent role installs the
site's dmesg baseline from the run's state dir; a site without one gets the learning placeholder first
(fleet/baseline.py), so its first nodes' check says SKIPPED "learning" instead of UNKNOWN.
"""

from __future__ import annotations

from fleet import baseline
from fleet.configure import ConfigureStage
from fleet.stages.shared import Shared


def make(shared: Shared) -> ConfigureStage:
    def task(host: str, name: str) -> None:
        if shared.progress is not None:
            shared.progress(host, "configure", "task", name)

    path = baseline.ensure(baseline.site_state_dir(shared.site), shared.site.health.baseline_min_nodes)
    return ConfigureStage(shared.site, progress=task, extravars={"healthcheck_agent_dmesg_baseline_file": str(path)})
