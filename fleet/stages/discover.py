"""discover: the BMC answers and its identity (service tag, PXE MAC, model) matches the inventory.

Nothing is changed here; a contradiction (a mis-cabled BMC, a wrong inventory row) stops the node
before anything is powered. An identity the BMC cannot tell yet is not a match: iDRAC lists no NICs
(and may report no service tag) until its inventory collection has run after the server first gets
power, so the stage re-reads it for `timeouts.bmc_inventory_s` (every `bmc_inventory_poll_s`)
and then says UNKNOWN and retries, never passes silently. A machine MAAS does not know is fine here:
`commission` registers it.
With BIOS/firmware pins in the site the compliance is read too (fleet.dell.hooks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fleet.dell.bios import RegistryCache
from fleet.dell.compliance import Compliance
from fleet.dell.hooks import discover_compliance
from fleet.maas import MaasClient
from fleet.redfish import Bmc, BmcPool, SystemInfo
from fleet.site import Node, Site
from fleet.site.control import Timeouts
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult


def identity_problems(node: Node, info: SystemInfo) -> list[str]:
    """What the BMC says that contradicts the inventory: a mis-cabled BMC or a wrong inventory row."""
    problems = []
    if info.service_tag and info.service_tag != node.service_tag:
        problems.append(f"BMC {node.bmc.address} reports service tag {info.service_tag}, inventory says "
                        f"{node.service_tag}: the BMC cable or the inventory row is wrong (datacenter tech)")
    if node.model and info.model and info.model.casefold() != node.model.casefold():
        problems.append(f"BMC {node.bmc.address} reports model '{info.model}', inventory says '{node.model}': "
                        "another server is behind this BMC, or the inventory's model is wrong (datacenter tech)")
    if info.macs and node.pxe_mac not in info.macs:
        problems.append(f"PXE MAC {node.pxe_mac} is not among the server's NICs ({', '.join(info.macs)}): "
                        "fix the inventory's pxe_mac")
    return problems


def identity_unknown(node: Node, info: SystemInfo) -> list[str]:
    """What the BMC cannot tell yet: no service tag, no NICs listed (its inventory has not run), or no
    model where the inventory names one."""
    missing = []
    if not info.service_tag:
        missing.append("no service tag")
    if node.model and not info.model:
        missing.append("no model")
    if not info.macs:
        missing.append("no NICs listed (iDRAC's inventory collection has not run yet)")
    return missing


def count_bmc_requests(ctx: NodeContext, bmc: Bmc, before: tuple[int, int]) -> None:
    """The stage's BMC requests and polls, for the run report (requests per stage are a speed contract)."""
    ctx.count("bmc_requests", bmc.requests - before[0])
    ctx.count(f"bmc_requests_{ctx.stage}", bmc.requests - before[0])
    ctx.count("bmc_polls", bmc.polls - before[1])


@dataclass
class Discover:
    bmcs: BmcPool
    maas: MaasClient
    site: Site | None = None  # with BIOS/firmware pins: compliance is read too (fleet.dell.hooks)
    registries: RegistryCache | None = None
    seen: dict[str, Compliance] | None = None  # compliance by node, for the bios stage of the same run
    timeouts: Timeouts = field(default_factory=Timeouts)  # the site's: how long iDRAC's inventory is waited for
    name: str = "discover"
    max_attempts: int = 5  # BMCs and MAAS blip: 2+4+8+16 s of backoff rides out a half-minute outage

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        bmc = self.bmcs.client(node)
        before = (bmc.requests, bmc.polls)
        deadline = time.monotonic() + self.timeouts.bmc_inventory_s
        pins: dict = {}
        summary = refused = ""
        try:
            info = bmc.read_system()
            if identity_unknown(node, info) and not identity_problems(node, info):
                ctx.journal("identity:unknown", missing=identity_unknown(node, info))  # waiting for iDRAC
            while identity_unknown(node, info) and not identity_problems(node, info) and time.monotonic() < deadline:
                time.sleep(self.timeouts.bmc_inventory_poll_s)
                info = bmc.read_system(within_s=deadline - time.monotonic())  # a last look must not hold 30 s
            evidence: dict = {"power_state": info.power_state, "service_tag": info.service_tag,
                              "model": info.model, "macs": list(info.macs)}
            problems = identity_problems(node, info)
            if problems:
                return StageResult(False, "; ".join(problems), evidence, retryable=False)
            missing = identity_unknown(node, info)
            if missing:
                return StageResult(False, "UNKNOWN: the BMC cannot confirm the server's identity yet "
                                   f"({'; '.join(missing)}); retrying", evidence)
            asked = bmc.requests
            if self.site:
                pins, summary, refused = discover_compliance(self.site, bmc, self.registries or RegistryCache(),
                                                             self.seen)
            if pins:
                ctx.count("bmc_requests_compliance", bmc.requests - asked)  # the BIOS/firmware read alone
                found = pins["compliance"]  # the differences per node, in the run report (details: journal)
                ctx.count("bios_differences", len(found["bios_diff"]))
                ctx.count("firmware_differences", sum(not c["ok"] for c in found["firmware"].values()))
        finally:
            count_bmc_requests(ctx, bmc, before)
        evidence |= pins
        if refused:
            return StageResult(False, refused, evidence, retryable=False)
        machine = self.maas.lookup(node)
        if machine is None:
            evidence["maas_status"] = "unknown"
            known = f"BMC {info.power_state}, identity matches; MAAS does not know it yet"
        else:
            evidence |= {"maas_system_id": machine.system_id, "maas_status": machine.status_name}
            known = f"BMC {info.power_state}, MAAS {machine.status_name}"
        return StageResult(True, "; ".join(filter(None, [known, summary])), evidence)


def make(shared: Shared) -> Discover:
    return Discover(shared.bmcs, shared.maas, shared.site, shared.registries, shared.compliance,
                    shared.site.timeouts)
