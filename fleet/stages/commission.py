"""commission: MAAS knows the machine and has commissioned it (Ready or further along).

A machine MAAS does not know is registered through python-libmaas (`machines create` with its PXE
MAC, hostname, architecture and Redfish power: the BMC address and credentials of the inventory,
and the Redfish system id the BMC lists); MAAS then commissions it, powering it through the BMC
itself. A New machine is sent to commissioning. The stage then waits for MAAS to finish, with
MAAS's own 20-minute deadline (`timeouts.maas_commission_s`; the lab site writes it scaled).
Failed commissioning quarantines the node with MAAS's status message and the scripts MAAS logged
as failed. Registering and commissioning are journaled and sent once per generation.

With `maas.power: manual` MAAS has no BMC access: the machine enlists itself when the `pxe` stage
network-boots it, so an unknown machine is left to that stage (it runs before this one), and our
commissioning waits for a network boot MAAS cannot give: the stage gives it through the BMC
(`fleet.stages.pxe.network_boot_once`, journaled, once per generation) when
`fleet.maas.manual.decide_boot` says MAAS is waiting for it. A boot MAAS never sees fails
commissioning on MAAS's deadline ("Node operation 'Commissioning' timed out after 20 minutes."):
quarantined with that message and what to check (the server's power, its PXE network); once a
person has fixed it and requeued the node (`--retry-quarantined`), the stage sends commissioning
again (`commission:2`, journaled) and gives that operation its own boot (`boot:commission:2`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.maas import MaasClient, Machine, NodeStatus
from fleet.maas.manual import Boot, boot_step, decide_boot, no_boot_next_step, recommission
from fleet.redfish import BmcPool
from fleet.site import Node, Site, resolve_credentials
from fleet.stages.discover import count_bmc_requests
from fleet.stages.pxe import network_boot_once
from fleet.stages.shared import Shared
from fleet.steps import nth_step
from fleet.workflow import NodeContext, StageResult

_COMMISSIONING = (NodeStatus.COMMISSIONING, NodeStatus.TESTING)


def commission_name(sent: int) -> str:
    """The journaled step of our `sent`-th commissioning of the generation ("commission", "commission:2")."""
    return nth_step("commission", sent)


def commission_step(machine: Machine | None, ours: bool = False) -> str:
    """register (unknown to MAAS), commission (New), wait (commissioning), failed, owned, or done.

    `ours`: this generation registered or commissioned the machine, so its Testing is the tail of our
    commissioning (MAAS runs the testing scripts after the commissioning ones); a machine found
    Testing otherwise is under someone's hardware tests and is left alone ("owned")."""
    if machine is None:
        return "register"
    if machine.status == NodeStatus.NEW:
        return "commission"
    if machine.status == NodeStatus.TESTING and not ours:
        return "owned"
    if machine.status in _COMMISSIONING:
        return "wait"
    if machine.status == NodeStatus.FAILED_COMMISSIONING:
        return "failed"
    return "done"


@dataclass
class Commission:
    site: Site
    maas: MaasClient
    bmcs: BmcPool
    name: str = "commission"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        machine = self.maas.lookup(node)
        ours = any(ctx.db.step_done(node.hostname, ctx.generation, self.name, step)
                   for step in ("register", "commission"))
        step = commission_step(machine, ours)
        sent_n = self._commissions(node, ctx)  # commissionings we sent in this generation
        if step == "failed" and machine is not None and recommission(
                self.site.maas_power, machine.status_message, requeued=self._requeued(node, ctx, sent_n)):
            # A person fixed what kept our boot from MAAS and asked again: a new operation, its own boot.
            current, again = machine, []
            if ctx.once(commission_name(sent_n + 1), lambda: again.append(self.maas.commission(node.hostname,
                                                                                                current))):
                machine = again[0]
            sent_n += 1
            step = commission_step(machine, True)
        if step == "owned":
            assert machine is not None
            return StageResult(False, f"MAAS says {machine.status_name} and not from our commissioning: someone's "
                               "hardware tests; wait for them to end (or abort them in MAAS), then run again",
                               {"maas_status": machine.status_name}, quarantine=True)
        if step == "register":
            if self.site.maas_power == "manual":
                return StageResult(False, "MAAS does not know the machine yet (maas.power: manual: it enlists "
                                   "when it network-boots); retrying", retryable=True)
            sent: list[Machine] = []
            if not ctx.once("register", lambda: sent.append(self._register(node, ctx))):
                return StageResult(False, "registered earlier in this generation, but MAAS no longer knows the "
                                   "machine: look for it in MAAS (deleted? MAC changed?)", quarantine=True)
            machine = sent[0]
        elif step == "commission":
            assert machine is not None
            current = machine
            sent = []
            if ctx.once("commission", lambda: sent.append(self.maas.commission(node.hostname, current))):
                machine = sent[0]
        assert machine is not None
        ours = ours or step in ("register", "commission")
        if commission_step(machine, ours) == "wait":
            if decide_boot(machine, self.site.maas_power, Boot.COMMISSION, ours=ours).boot:
                network_boot_once(ctx, self.bmcs, node, boot_step(Boot.COMMISSION, max(sent_n, 1)))
            deadline = self.site.timeouts.maas_commission_s
            machine = self.maas.wait_commissioned(node.hostname, machine, deadline_s=deadline)
            if commission_step(machine, ours) == "wait":
                # Our deadline is MAAS's own, measured from our side: give MAAS's status monitor
                # its moment to give its verdict (Failed commissioning, with its message) first.
                machine = self.maas.wait_commissioned(node.hostname, machine,
                                                      deadline_s=self.site.timeouts.maas_verdict_s)
            if commission_step(machine, ours) == "wait":
                return StageResult(False, f"MAAS still says {machine.status_name} after the commissioning deadline "
                                   f"({deadline:.0f} s, timeouts.maas_commission_s): {machine.status_message}",
                                   {"maas_status": machine.status_name}, quarantine=True)
        evidence = {"maas_system_id": machine.system_id, "maas_status": machine.status_name,
                    "maas_message": machine.status_message, "power_state": machine.power_state}
        if commission_step(machine, ours) == "failed":
            scripts = self.maas.failed_scripts(node.hostname, machine)
            evidence["failed_scripts"] = list(scripts)
            failed = f"; failed: {', '.join(scripts)}" if scripts else ""
            step = no_boot_next_step(self.site.maas_power, machine.status_message, node.pxe_mac) or \
                "hardware or power control: read the machine's commissioning results in MAAS"
            return StageResult(False, f"MAAS: Failed commissioning: {machine.status_message}{failed} ({step})",
                               evidence, quarantine=True)
        if commission_step(machine, ours) == "commission":
            return StageResult(False, f"MAAS says {machine.status_name} after commissioning was requested; "
                               "retrying", evidence)
        return StageResult(True, f"MAAS {machine.status_name}", evidence)

    def _commissions(self, node: Node, ctx: NodeContext) -> int:
        done = 0
        while ctx.db.step_done(node.hostname, ctx.generation, self.name, commission_name(done + 1)):
            done += 1
        return done

    def _requeued(self, node: Node, ctx: NodeContext, sent_n: int) -> bool:
        """Whether a person requeued the node (`--retry-quarantined`) after our latest commissioning was sent."""
        if not sent_n:
            return False
        sent = f"{commission_name(sent_n)}:done"
        events = [e.event for e in ctx.db.entries(node.hostname)
                  if e.event == "requeued" or (e.stage == self.name and e.event == sent)]
        return bool(events) and events[-1] == "requeued"

    def _register(self, node: Node, ctx: NodeContext) -> Machine:
        credentials = resolve_credentials(self.site, node.bmc.credentials)
        bmc = self.bmcs.client(node)
        before = (bmc.requests, bmc.polls)
        try:  # the system id discover found (no request then); MAAS's driver then skips its Systems read
            node_id = bmc.system_path().rstrip("/").rsplit("/", 1)[-1]
        finally:
            count_bmc_requests(ctx, bmc, before)
        return self.maas.register(node, credentials.username, credentials.secret, node_id=node_id)


def make(shared: Shared) -> Commission:
    return Commission(shared.site, shared.maas, shared.bmcs)
