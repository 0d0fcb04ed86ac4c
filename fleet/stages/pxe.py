"""pxe: arm a one-time network boot and power-cycle, unless MAAS already has (or is putting) the OS on it.

The boot override is a destructive step, journaled and done once per generation: a resumed run
after a crash never power-cycles the node a second time. The step is journaled with the power state
discover saw; a run killed after the reset but before recording it finds, on resume, a node that
was Off now On (or turning On within the reset confirmation window: the reset may land late) and
takes that as the reset having landed. A node that was On gives no such sign (a cycle ends On
again), so that one case is sent again: at least once.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.maas import MaasClient, NodeStatus, image_matches
from fleet.redfish import BmcPool
from fleet.site import Node, Site
from fleet.stages.discover import count_bmc_requests
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult


@dataclass
class Pxe:
    site: Site
    bmcs: BmcPool
    maas: MaasClient
    name: str = "pxe"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        machine = self.maas.find_machine(node)
        has_os = machine.status == NodeStatus.DEPLOYED and image_matches(machine, self.site.os)
        if machine.status == NodeStatus.DEPLOYING or has_os:
            # Rebooting a node that already has (or is getting) its OS would only risk making it worse.
            return StageResult(True, f"MAAS says {machine.status_name}: no reboot needed")
        bmc = self.bmcs.client(node)
        before = (bmc.requests, bmc.polls)
        seen = str(ctx.db.node(node.hostname).evidence.get("power_state", ""))  # what discover read

        def landed(started: dict) -> bool:
            # A power-on sent just before the crash may land seconds later: watch as long as an
            # ambiguous reset is watched before deciding it never happened.
            return started.get("power_state") == "Off" and bmc.power_on_seen_within(bmc.reset_confirm_s)

        try:
            ctx.once("network_boot", lambda: bmc.network_boot("Pxe"), detail={"power_state": seen}, landed=landed)
            state = bmc.wait_power("On")
        finally:
            count_bmc_requests(ctx, bmc, before)
        return StageResult(True, "one-time PXE armed, power cycled", {"power_state": state})


def make(shared: Shared) -> Pxe:
    return Pxe(shared.site, shared.bmcs, shared.maas)
