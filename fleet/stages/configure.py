"""configure: the Ansible roles on the node, in batches shared with its neighbours (fleet/configure.py).

Ansible's task starts stream to the run's progress display.
"""

from __future__ import annotations

from fleet.configure import ConfigureStage
from fleet.stages.shared import Shared


def make(shared: Shared) -> ConfigureStage:
    def task(host: str, name: str) -> None:
        if shared.progress is not None:
            shared.progress(host, "configure", "task", name)

    return ConfigureStage(shared.site, progress=task)
