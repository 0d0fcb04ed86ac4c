"""pxe: the network boots MAAS waits for on a site whose MAAS cannot power the machines.

MAAS powers its machines through their power driver (Redfish on iDRAC): it sets a one-time PXE
boot and powers on for commissioning and deployment. Power-cycling a machine MAAS also powers
would race MAAS, and power-cycling one that is Deployed or under someone else's operation would
break someone's work. So nothing here acts unless the site says MAAS has no BMC access
(`maas.power: manual`), and then only as `fleet.maas.manual.decide_boot` allows: for enlistment
(a machine MAAS does not know: this stage), for our commissioning (the commission stage) and for
our deployment (the os stage), each time MAAS is waiting for the machine to network-boot.

`network_boot_once` is the one acting wrapper all three use: a one-time PXE boot and power on (or
cycle) through the BMC, a destructive step journaled before it starts and done once per MAAS
operation and generation (`ctx.once`): a resumed run never boots the node a second time for the
same operation. The step is journaled with the power state seen before; a run killed after the
reset but before recording it finds, on resume, a node that was Off now On (or turning On within
the reset confirmation window: the reset may land late) and takes that as the reset having
landed. A node that was On, or whose state was not read, gives no such sign (a cycle ends On
again), so that one case is sent again: at least once.

After the enlistment boot the stage waits for MAAS to list the machine (it appears New, by its
boot MAC, named by MAAS), with MAAS's commissioning deadline: enlistment is the same ephemeral
boot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet.maas import MaasClient, Machine
from fleet.maas.manual import Boot, boot_step, decide_boot
from fleet.redfish import BmcPool
from fleet.site import Node, Site
from fleet.stages.discover import count_bmc_requests
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult


def network_boot_once(ctx: NodeContext, bmcs: BmcPool, node: Node, step: str, *, power_state: str = "") -> bool:
    """One-time PXE boot and power on/cycle through the node's BMC, once per generation for `step`.

    Returns False when the step was already done. `power_state` is what was last seen (for the
    landed check of an interrupted step; "" when unknown, then an interrupted boot is sent again)."""
    bmc = bmcs.client(node)
    before = (bmc.requests, bmc.polls)

    def landed(started: dict) -> bool:
        # A power-on sent just before the crash may land seconds later: watch as long as an
        # ambiguous reset is watched before deciding it never happened.
        return started.get("power_state") == "Off" and bmc.power_on_seen_within(bmc.reset_confirm_s)

    try:
        sent = ctx.once(step, lambda: bmc.network_boot("Pxe"), detail={"power_state": power_state}, landed=landed)
        if sent:
            bmc.wait_power("On")
    finally:
        count_bmc_requests(ctx, bmc, before)
    return sent


def deploy_booter(site: Site, bmcs: BmcPool | None, node: Node, ctx: NodeContext, *,
                  claimed: bool) -> Callable[[Machine, bool], None] | None:
    """The os stage's `on_deploying` on a `maas.power: manual` site (None elsewhere).

    Each deployment MAAS runs is its own operation waiting for its own boot: a deploy just sent
    gets the generation's next boot step, a deployment found under way (a resumed run) the latest
    one, already done unless the run died before it."""
    if site.maas_power != "manual" or bmcs is None:
        return None

    def booted(stage_step: int) -> bool:
        return ctx.db.step_done(node.hostname, ctx.generation, ctx.stage, boot_step(Boot.DEPLOY, stage_step))

    def on_deploying(machine: Machine, sent: bool) -> None:
        if not decide_boot(machine, site.maas_power, Boot.DEPLOY, ours=claimed or sent).boot:
            return
        done = 0
        while booted(done + 1):
            done += 1
        network_boot_once(ctx, bmcs, node, boot_step(Boot.DEPLOY, done + 1 if sent else max(done, 1)))

    return on_deploying


@dataclass
class Pxe:
    site: Site
    bmcs: BmcPool
    maas: MaasClient
    name: str = "pxe"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        if self.site.maas_power != "manual":
            return StageResult(True, "no network boot: MAAS powers it through its BMC")
        machine = self.maas.lookup(node)
        decision = decide_boot(machine, self.site.maas_power, Boot.ENLIST)
        if not decision.boot:
            return StageResult(True, f"no network boot: {decision.reason}")
        seen = str(ctx.db.node(node.hostname).evidence.get("power_state", ""))  # what discover read
        network_boot_once(ctx, self.bmcs, node, boot_step(Boot.ENLIST), power_state=seen)
        machine = self._wait_enlisted(node)
        if machine is None:
            deadline = self.site.timeouts.maas_commission_s
            return StageResult(False, f"network-booted, but MAAS has not enlisted the machine after {deadline:.0f} s "
                               f"(timeouts.maas_commission_s): look at its console; its PXE NIC ({node.pxe_mac}) must "
                               "boot on a network whose DHCP MAAS serves", quarantine=True)
        return StageResult(True, f"enlisted by network boot: MAAS says {machine.status_name} as {machine.hostname} "
                           f"({decision.reason})", {"maas_system_id": machine.system_id,
                                                     "maas_status": machine.status_name})

    def _wait_enlisted(self, node: Node) -> Machine | None:
        deadline = time.monotonic() + self.site.timeouts.maas_commission_s
        while True:
            machine = self.maas.lookup(node)
            if machine is not None or time.monotonic() >= deadline:
                return machine
            time.sleep(min(self.site.timeouts.maas_poll_s, max(deadline - time.monotonic(), 0.0)))


def make(shared: Shared) -> Pxe:
    return Pxe(shared.site, shared.bmcs, shared.maas)
