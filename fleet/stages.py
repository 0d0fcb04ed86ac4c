"""The bring-up stages: each checks the real world first, then does the least that reaches its goal.

discover  BMC reachable, service tag and PXE MAC match the inventory, MAAS knows the machine
pxe       arm a one-time network boot and power-cycle (skipped when MAAS already has the OS on it)
os        MAAS deploy, wait for Deployed, retry a failed deployment once, else mark broken
release   (reimage only) release the machine in MAAS, optionally erasing its disks

Later stages (configure, validate) plug in through `extra_stages`. Stages share the clients built
once per run (`build`), so per-resource limits hold across the whole fleet: BMC requests in flight
(the pool), MAAS deployments at once (a semaphore here).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from fleet.inventory import Node, Site, resolve_credentials
from fleet.maas import (
    DEPLOY_TIMEOUT_S,
    ERASE_TIMEOUT_S,
    POLL_INTERVAL_S,
    RELEASE_TIMEOUT_S,
    MaasClient,
    Machine,
    OsStep,
    decide_os_action,
    image_matches,
    node_tags,
)
from fleet.redfish import Bmc, BmcPool, BmcSettings, SystemInfo
from fleet.workflow import NodeContext, ProgressFn, Stage, StageResult

STAGE_NAMES = ("discover", "pxe", "os", "configure", "validate")
DEPLOYED, DEPLOYING, READY = 6, 9, 4  # MAAS NODE_STATUS values


def order(*, reimage: bool = False) -> list[str]:
    return (["release"] if reimage else []) + list(STAGE_NAMES)


def time_scale(site: Site) -> float:
    """Real services take real time; the lab runs the same deadlines scaled by its time factor."""
    return site.lab.time_factor if site.lab else 1.0


def identity_problems(node: Node, info: SystemInfo) -> list[str]:
    """What the BMC says that contradicts the inventory: a mis-cabled BMC or a wrong inventory row."""
    problems = []
    if info.service_tag and info.service_tag != node.service_tag:
        problems.append(f"BMC {node.bmc.address} reports service tag {info.service_tag}, inventory says "
                        f"{node.service_tag}: the BMC cable or the inventory row is wrong (datacenter tech)")
    if info.macs and node.pxe_mac not in info.macs:
        problems.append(f"PXE MAC {node.pxe_mac} is not among the server's NICs ({', '.join(info.macs)}): "
                        "fix the inventory's pxe_mac")
    return problems


def _bmc_requests(ctx: NodeContext, bmc: Bmc, before: tuple[int, int]) -> None:
    ctx.count("bmc_requests", bmc.requests - before[0])
    ctx.count(f"bmc_requests_{ctx.stage}", bmc.requests - before[0])
    ctx.count("bmc_polls", bmc.polls - before[1])


@dataclass
class Discover:
    bmcs: BmcPool
    maas: MaasClient
    name: str = "discover"
    max_attempts: int = 5  # BMCs and MAAS blip: 2+4+8+16 s of backoff rides out a half-minute outage

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        bmc = self.bmcs.client(node)
        before = (bmc.requests, bmc.polls)
        try:
            info = bmc.read_system()
        finally:
            _bmc_requests(ctx, bmc, before)
        evidence = {"power_state": info.power_state, "service_tag": info.service_tag, "macs": list(info.macs)}
        problems = identity_problems(node, info)
        if problems:
            return StageResult(False, "; ".join(problems), evidence, retryable=False)
        machine = self.maas.find_machine(node)
        evidence |= {"maas_system_id": machine.system_id, "maas_status": machine.status_name}
        return StageResult(True, f"BMC {info.power_state}, MAAS {machine.status_name}", evidence)


@dataclass
class Pxe:
    site: Site
    bmcs: BmcPool
    maas: MaasClient
    name: str = "pxe"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        machine = self.maas.find_machine(node)
        if machine.status == DEPLOYING or (machine.status == DEPLOYED and image_matches(machine, self.site.os)):
            # Rebooting a node that already has (or is getting) its OS would only risk making it worse.
            return StageResult(True, f"MAAS says {machine.status_name}: no reboot needed")
        bmc = self.bmcs.client(node)
        before = (bmc.requests, bmc.polls)
        try:
            ctx.once("network_boot", lambda: bmc.network_boot("Pxe"))
            state = bmc.wait_power("On")
        finally:
            _bmc_requests(ctx, bmc, before)
        return StageResult(True, "one-time PXE armed, power cycled", {"power_state": state})


@dataclass
class Os:
    site: Site
    maas: MaasClient
    deploys: threading.BoundedSemaphore
    allow_redeploy: bool = False
    name: str = "os"
    max_attempts: int = 5  # a failed deployment quarantines at once (ensure_os retried it); this is for outages

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        scale = time_scale(self.site)
        with self.deploys:  # read inside the slot: a read taken before waiting for one could be stale
            machine = self.maas.find_machine(node)
            action = decide_os_action(machine, self.site.os)
            if action.step == OsStep.REDEPLOY and not self.allow_redeploy:
                return StageResult(False, f"{action.reason}; bring-up never reinstalls a deployed node: use "
                                   f"`provision.py reimage {node.hostname}`", quarantine=True)
            if action.step != OsStep.NOTHING:
                ctx.journal("ensure_os:started", action=action.step.value, reason=action.reason)
            outcome = self.maas.ensure_os(
                node, self.site.os, user_data=user_data(node), machine=machine,
                deploy_timeout_s=DEPLOY_TIMEOUT_S * scale, release_timeout_s=ERASE_TIMEOUT_S * scale,
            )
        evidence = {"maas_status": outcome.machine.status_name, "deploy_attempts": outcome.attempts,
                    "maas_messages": list(outcome.failures)}
        if not outcome.deployed:
            return StageResult(False, f"MAAS: {outcome.reason}", evidence, quarantine=True)
        self.maas.tag(node.hostname, outcome.machine, node_tags(node))
        return StageResult(True, outcome.reason, evidence)


@dataclass
class Release:
    site: Site
    maas: MaasClient
    erase: bool = False
    name: str = "release"
    max_attempts: int = 5

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        machine = self.maas.find_machine(node)
        if machine.status != READY:
            ctx.once("release", lambda: self._release(node, machine))
        return StageResult(True, "released: Ready for a fresh deployment")

    def _release(self, node: Node, machine: Machine) -> None:
        scale = time_scale(self.site)
        released = self.maas.release(node.hostname, machine, erase=self.erase, comment="fleet: reimage")
        timeout = (ERASE_TIMEOUT_S if self.erase else RELEASE_TIMEOUT_S) * scale
        self.maas.wait_ready(node.hostname, released, deadline_s=timeout)


def user_data(node: Node) -> bytes:
    """cloud-init user-data: the node learns who it is supposed to be (checked later by validate)."""
    identity = {"hostname": node.hostname, "rack": node.rack, "slot": node.slot, "service_tag": node.service_tag}
    return (
        "#cloud-config\n"
        "write_files:\n"
        "  - path: /etc/fleet/node.json\n"
        "    permissions: '0644'\n"
        f"    content: '{json.dumps(identity)}'\n"
    ).encode()


@contextmanager
def build(site: Site, args: argparse.Namespace, *, reimage: bool = False,
          progress: ProgressFn | None = None) -> Iterator[list[Stage]]:
    """The run's stages with their shared clients; clients are closed when the run ends."""
    with ExitStack() as stack:
        scale = time_scale(site)
        # Polling keeps pace with the (scaled) clock, with floors so a big lab does not flood itself.
        maas = MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls,
                          poll_interval_s=max(0.5, POLL_INTERVAL_S * scale))
        stack.callback(maas.close)
        settings = BmcSettings(poll_interval_s=max(0.2, BmcSettings.poll_interval_s * scale))
        bmcs = BmcPool(site, max_requests=args.bmc_requests, insecure=args.insecure_bmc, settings=settings)
        deploys = threading.BoundedSemaphore(args.maas_deploys)
        stages: list[Stage] = []
        if reimage:
            stages.append(Release(site, maas, erase=args.erase))
        stages += [Discover(bmcs, maas), Pxe(site, bmcs, maas), Os(site, maas, deploys, allow_redeploy=reimage)]
        stages += extra_stages(site, progress)
        yield stages


def extra_stages(site: Site, progress: ProgressFn | None = None) -> list[Stage]:
    """configure and validate, each from its own module; Ansible's task starts stream to the progress display."""
    from fleet.configure import ConfigureStage
    from fleet.validate import ValidateStage

    def task(host: str, name: str) -> None:
        if progress is not None:
            progress(host, "configure", "task", name)

    return [ConfigureStage(site, progress=task), ValidateStage(site)]
