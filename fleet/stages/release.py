"""release (reimage only): give the machine back to MAAS, optionally erasing its disks, and wait for Ready.

Journaled and done once per generation; a machine already Ready is not released again.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.inventory import Node, Site
from fleet.maas import ERASE_TIMEOUT_S, RELEASE_TIMEOUT_S, MaasClient, Machine, NodeStatus
from fleet.stages.shared import Shared, time_scale
from fleet.workflow import NodeContext, StageResult


@dataclass
class Release:
    site: Site
    maas: MaasClient
    erase: bool = False
    name: str = "release"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        machine = self.maas.find_machine(node)
        if machine.status != NodeStatus.READY:
            ctx.once("release", lambda: self._release(node, machine))
        return StageResult(True, "released: Ready for a fresh deployment")

    def _release(self, node: Node, machine: Machine) -> None:
        scale = time_scale(self.site)
        released = self.maas.release(node.hostname, machine, erase=self.erase, comment="fleet: reimage")
        timeout = (ERASE_TIMEOUT_S if self.erase else RELEASE_TIMEOUT_S) * scale
        self.maas.wait_ready(node.hostname, released, deadline_s=timeout)


def make(shared: Shared) -> Release:
    return Release(shared.site, shared.maas, erase=shared.limits.erase)
