"""release (reimage only): give the machine back to MAAS, optionally erasing its disks, and wait for Ready.

The release request is journaled and sent once per generation, and the node's SSH host key is
forgotten with it (fleet/hostkeys.py: the next OS brings a new one); a machine already Ready is not
released again, and one MAAS is still Releasing or Disk erasing (a resume after a crash or a
timed-out wait) is waited for: sending `release` again would be refused, or restart the erase.
A machine another MAAS user owns is not released (quarantined, naming the owner) unless the reimage
was forced (`reimage --force`: take it over, journaled with the owner's name first).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.hostkeys import FORGOTTEN, KnownHosts, known_hosts_file
from fleet.maas import MaasClient, Machine, NodeStatus, foreign_owner
from fleet.site import Node, Site
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult

_RELEASING = (NodeStatus.RELEASING, NodeStatus.DISK_ERASING)


def release_step(machine: Machine) -> str:
    """"nothing" (Ready), "wait" (MAAS is releasing or erasing it) or "release"."""
    if machine.status == NodeStatus.READY:
        return "nothing"
    return "wait" if machine.status in _RELEASING else "release"


@dataclass
class Release:
    site: Site
    maas: MaasClient
    erase: bool = False
    force: bool = False
    name: str = "release"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        machine = self.maas.find_machine(node)
        foreign = foreign_owner(machine, self.maas.whoami())
        if foreign and not self.force:
            return StageResult(False, f"{foreign} (or take it over: `provision.py reimage {node.hostname} "
                               "--force`)", quarantine=True)
        if foreign:
            ctx.journal("release:taking_over", owner=machine.owner, reason="reimage --force")
        step = release_step(machine)
        if step == "release":
            sent: list[Machine] = []
            if not ctx.once("release", lambda: sent.append(self._send(node, machine, ctx))):
                return StageResult(False, f"released earlier in this generation, but MAAS now says "
                                   f"{machine.status_name}: not released twice; look at the machine in MAAS",
                                   quarantine=True)
            machine = sent[0]
        if release_step(machine) == "wait":
            timeouts = self.site.timeouts
            erasing = self.erase or machine.status == NodeStatus.DISK_ERASING
            timeout = timeouts.maas_erase_s if erasing else timeouts.maas_release_s
            self.maas.wait_ready(node.hostname, machine, deadline_s=timeout)
        return StageResult(True, "released: Ready for a fresh deployment")

    def _send(self, node: Node, machine: Machine, ctx: NodeContext) -> Machine:
        # The node's host key goes with its OS: no key is trusted for it again until a deploy is journaled.
        KnownHosts(known_hosts_file(self.site)).forget(node.address)
        ctx.journal(FORGOTTEN, address=node.address)
        return self.maas.release(node.hostname, machine, erase=self.erase, comment="fleet: reimage")


def make(shared: Shared) -> Release:
    return Release(shared.site, shared.maas, erase=shared.limits.erase, force=shared.limits.force)
