"""pxe: a one-time network boot and power cycle, only where MAAS cannot power the machine itself.

MAAS powers its machines through their power driver (Redfish on iDRAC): it sets a one-time PXE
boot and powers on for commissioning and deployment, and powers off on release. Power-cycling a
machine MAAS also powers would race MAAS, and power-cycling one that is Deployed, Allocated,
Deploying, in Rescue mode, Reserved, Broken or Testing would break someone's work. So the stage acts
only on sites whose MAAS has no BMC access (`maas.power: manual`), and there only on machines MAAS
does not know yet (enlistment by PXE) or is waiting to see boot (New, Commissioning). Everything
else is left alone; `decide_pxe` is the whole rule, tested for every MAAS status.

The boot override is a destructive step, journaled and done once per generation: a resumed run
after a crash never power-cycles the node a second time. The step is journaled with the power state
discover saw; a run killed after the reset but before recording it finds, on resume, a node that
was Off now On (or turning On within the reset confirmation window: the reset may land late) and
takes that as the reset having landed. A node that was On gives no such sign (a cycle ends On
again), so that one case is sent again: at least once.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.maas import MaasClient, Machine, NodeStatus
from fleet.redfish import BmcPool
from fleet.site import Node, Site
from fleet.stages.discover import count_bmc_requests
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult

# With manual power these are the states in which MAAS waits for the machine to network-boot.
_WAITS_FOR_BOOT = (NodeStatus.NEW, NodeStatus.COMMISSIONING)


def decide_pxe(machine: Machine | None, maas_power: str) -> tuple[bool, str]:
    """(power-cycle into PXE now?, why): pure, so every MAAS status has its row in the tests."""
    if maas_power != "manual":
        return False, "MAAS powers it through its BMC"
    if machine is None:
        return True, "unknown to MAAS: network-boot it so MAAS enlists it"
    if machine.status in _WAITS_FOR_BOOT:
        return True, f"MAAS says {machine.status_name} and cannot power it (maas.power: manual)"
    return False, f"MAAS says {machine.status_name}: not ours to power-cycle"


@dataclass
class Pxe:
    site: Site
    bmcs: BmcPool
    maas: MaasClient
    name: str = "pxe"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        run, reason = decide_pxe(self.maas.lookup(node) if self.site.maas_power == "manual" else None,
                                 self.site.maas_power)
        if not run:
            return StageResult(True, f"no network boot: {reason}")
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
        return StageResult(True, f"one-time PXE armed, power cycled ({reason})", {"power_state": state})


def make(shared: Shared) -> Pxe:
    return Pxe(shared.site, shared.bmcs, shared.maas)
