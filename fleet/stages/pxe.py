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
same operation. A run killed after journaling the boot but before recording it done finds, on
resume, the server On (or turning On within the BMC's reset confirmation window: the reset may
land late) and takes that as the boot having landed, whatever the power state journaled before
it: a boot ends On, and a second one would cut short the one MAAS is waiting for. Only a server
still Off is booted again. (A run that died before sending the boot to a server already On is
left so: MAAS's deadline then fails the operation, reported with the next step; see
`fleet.maas.manual`.)

After the enlistment boot the stage waits for MAAS to list the machine (it appears New, by its
boot MAC, named by MAAS), with MAAS's commissioning deadline: enlistment is the same ephemeral
boot. It then gives the machine its inventory name (`decide_rename`: only a name MAAS generated,
journaled before it is sent), so MAAS, its DNS and every later lookup call it what the inventory
does; MAAS refusing the name (another machine has it) or a name a person gave the machine
quarantines the node with the reason and the fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet.errors import MaasError
from fleet.maas import MaasClient, Machine
from fleet.maas.manual import Boot, boot_step, decide_boot, decide_rename
from fleet.redfish import BmcPool
from fleet.site import Node, Site
from fleet.stages.discover import count_bmc_requests
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult


def network_boot_once(ctx: NodeContext, bmcs: BmcPool, node: Node, step: str, *, power_state: str = "") -> bool:
    """One-time PXE boot and power on/cycle through the node's BMC, once per generation for `step`.

    Returns False when the step was already done (or, interrupted, had landed: the server is On).
    `power_state` is what was last seen before it ("" when not read), journaled with the step."""
    bmc = bmcs.client(node)
    before = (bmc.requests, bmc.polls)

    def landed(started: dict) -> bool:
        # A boot ends On (a power-on sent just before the crash may land seconds later: watch as long
        # as an ambiguous reset is watched). `started` keeps the state before it, as evidence only.
        del started
        return bmc.power_on_seen_within(bmc.reset_confirm_s)

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
        if decision.boot:
            seen = str(ctx.db.node(node.hostname).evidence.get("power_state", ""))  # what discover read
            network_boot_once(ctx, self.bmcs, node, boot_step(Boot.ENLIST), power_state=seen)
            machine = self._wait_enlisted(node)
            if machine is None:
                deadline = self.site.timeouts.maas_commission_s
                return StageResult(False, f"network-booted, but MAAS has not enlisted the machine after "
                                   f"{deadline:.0f} s (timeouts.maas_commission_s): look at its console; its PXE NIC "
                                   f"({node.pxe_mac}) must boot on a network whose DHCP MAAS serves", quarantine=True)
        assert machine is not None
        booted = f"enlisted by network boot: MAAS says {machine.status_name}" if decision.boot else \
            f"no network boot: {decision.reason}"
        return self._name(node, ctx, machine, booted)

    def _name(self, node: Node, ctx: NodeContext, machine: Machine, booted: str) -> StageResult:
        """Give the enlisted machine the inventory's name, as `decide_rename` allows (journaled)."""
        evidence = {"maas_system_id": machine.system_id, "maas_status": machine.status_name}
        rename = decide_rename(machine, node.hostname, me=self.maas.whoami())
        if rename.refuse:
            return StageResult(False, f"{booted}; {rename.reason}", evidence, quarantine=True)
        if rename.rename:
            ctx.journal("rename:started", maas_hostname=machine.hostname, to=node.hostname)
            try:
                machine = self.maas.set_hostname(node.hostname, machine, node.hostname)
            except MaasError as err:
                if err.status != 400:
                    raise
                return StageResult(False, f"{booted}; MAAS refused the name {node.hostname} for "
                                   f"'{machine.hostname}': {err.service_message} (another machine in MAAS has "
                                   "it? delete or rename that one in MAAS, or fix the inventory), then run again",
                                   evidence, quarantine=True)
            ctx.journal("rename:done", maas_hostname=machine.hostname)
        return StageResult(True, f"{booted}; {rename.reason}", evidence)

    def _wait_enlisted(self, node: Node) -> Machine | None:
        deadline = time.monotonic() + self.site.timeouts.maas_commission_s
        while True:
            machine = self.maas.lookup(node)
            if machine is not None or time.monotonic() >= deadline:
                return machine
            time.sleep(min(self.site.timeouts.maas_poll_s, max(deadline - time.monotonic(), 0.0)))


def make(shared: Shared) -> Pxe:
    return Pxe(shared.site, shared.bmcs, shared.maas)
