"""os: MAAS deploys the site's image, waits for Deployed, retries a failed deployment once, else marks it broken.

Bring-up never reinstalls a node MAAS already has deployed (it quarantines it and points at
`reimage`); only a reimage may redeploy. A machine another MAAS user owns (`owner` is not our
`whoami`) is quarantined in any status, naming the owner: our admin key could release and deploy
it, and MAAS would let it. Deployments at once are capped by the run's semaphore,
and the machine is read inside that slot: a read taken before waiting for one could be stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from fleet.maas import MaasClient, OsStep, decide_os_action, image_problem, node_tags
from fleet.maas.manual import no_boot_next_step
from fleet.redfish import BmcPool
from fleet.site import Node, Site
from fleet.slots import Slots
from fleet.stages.pxe import deploy_booter
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult


@dataclass
class Os:
    site: Site
    maas: MaasClient
    deploys: Slots
    allow_redeploy: bool = False
    images: dict[str, tuple[str, ...]] | None = None  # MAAS's boot resources, read once per run
    name: str = "os"
    max_attempts: int = 5  # a failed deployment quarantines at once (ensure_os retried it); this is for outages
    bmcs: BmcPool | None = None  # maas.power: manual: the deployment's network boot is ours (fleet.stages.pxe)

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        timeouts = self.site.timeouts
        problem = image_problem(self.site.os, self._images())
        if problem:
            return StageResult(False, problem, retryable=False)
        # A redeploy is done at most once per generation: a site spelling the image otherwise than MAAS
        # would send the node round release/deploy on every run.
        redeploys = 1 if ctx.db.step_done(node.hostname, ctx.generation, self.name, "redeploy") else 0
        # An Allocated machine is ours only when our deployment claimed it (journaled before MAAS allocates).
        claimed = ctx.db.step_done(node.hostname, ctx.generation, self.name, "claim")
        me = self.maas.whoami()  # our MAAS user, read once per run: another user's machine is hands-off
        with self.deploys:  # read inside the slot: a read taken before waiting for one could be stale
            machine = self.maas.find_machine(node)
            action = decide_os_action(machine, self.site.os, me=me, redeploys=redeploys, claimed=claimed)
            if action.step == OsStep.REDEPLOY and not self.allow_redeploy:
                return StageResult(False, f"{action.reason}; bring-up never reinstalls a deployed node: use "
                                   f"`provision.py reimage {node.hostname}`", quarantine=True)
            if action.step == OsStep.REDEPLOY:
                ctx.once("redeploy", lambda: None)  # counted (journaled) before it starts
            if action.step in (OsStep.DEPLOY, OsStep.REDEPLOY, OsStep.RETRY):
                ctx.once("claim", lambda: None)  # the machine becomes ours before MAAS allocates it
                claimed = True
            if action.step != OsStep.NOTHING:
                ctx.journal("ensure_os:started", action=action.step.value, reason=action.reason)
            outcome = self.maas.ensure_os(
                node, self.site.os, user_data=user_data(node), machine=machine,
                deploy_timeout_s=timeouts.maas_deploy_s, release_timeout_s=timeouts.maas_erase_s,
                verdict_grace_s=timeouts.maas_verdict_s,
                redeploys=redeploys, claimed=claimed,
                on_deploying=deploy_booter(self.site, self.bmcs, node, ctx, claimed=claimed),
            )
        evidence = {"maas_status": outcome.machine.status_name, "deploy_attempts": outcome.attempts,
                    "maas_messages": list(outcome.failures)}
        if not outcome.deployed:
            step = next((hint for message in outcome.failures
                         if (hint := no_boot_next_step(self.site.maas_power, message, node.pxe_mac))), None)
            return StageResult(False, f"MAAS: {outcome.reason}" + (f" ({step})" if step else ""), evidence,
                               quarantine=True)
        self.maas.tag(node.hostname, outcome.machine, node_tags(node))
        return StageResult(True, outcome.reason, evidence)

    def _images(self) -> dict[str, tuple[str, ...]]:
        if self.images is None:
            self.images = self.maas.boot_images()
        return self.images


def user_data(node: Node) -> bytes:
    """cloud-init user-data: the node learns who it is supposed to be (checked later by validate).

    Built as data and dumped by yaml.safe_dump, never formatted into YAML text: an inventory value
    holding a quote or a newline cannot change what cloud-init is told to do.
    """
    identity = {"hostname": node.hostname, "rack": node.rack, "slot": node.slot, "service_tag": node.service_tag}
    config = {"write_files": [{"path": "/etc/fleet/node.json", "permissions": "0644",
                               "content": json.dumps(identity, sort_keys=True)}]}
    return ("#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)).encode()


def make(shared: Shared) -> Os:
    return Os(shared.site, shared.maas, shared.deploys, allow_redeploy=shared.reimage, bmcs=shared.bmcs)
