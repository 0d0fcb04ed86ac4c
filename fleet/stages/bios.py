"""bios: bring the BIOS attributes to the site's pins through the iDRAC job queue, before the OS goes on.

1. Read the BIOS (and its registry, once per BIOS version); nothing differs -> done, one request.
2. Ask the Lifecycle Controller whether it is ready: it refuses jobs while it reloads.
3. PATCH `Bios/Settings` with only the differing attributes and `@Redfish.SettingsApplyTime`
   (`OnReset`, or `InMaintenanceWindowOnReset` with the site's window): one BIOS job, journaled; the
   step completes with the job (a failed job is queued again by a later run, a completed one never;
   one left pending by a crashed run is adopted, not queued twice). A queue that refuses it (a stale
   BIOS job holds pending values, SYS011) is cleared with `DeleteJobQueue`, journaled before and after.
4. Follow the JID through Dell's JobStates. A job that waits for POST gets a reset only when the node
   has no OS yet or was named with --nodes (and only inside the window); otherwise it stays
   scheduled for the node's next reboot and the stage says so.
5. Read the values back: an attribute that did not stick, or a failed job, quarantines the node with
   the job's message. A job that outlives its deadline is cleared (forced: the LC restarts) and the
   stage is retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fleet.dell import bios, firmware, jobs, lc
from fleet.maas import MaasClient, nobodys
from fleet.redfish import Bmc, BmcPool
from fleet.site import Node, Site
from fleet.stages.discover import count_bmc_requests
from fleet.stages.shared import Shared
from fleet.usage import in_use
from fleet.workflow import NodeContext, StageResult


@dataclass
class BiosStage:
    site: Site
    bmcs: BmcPool
    maas: MaasClient
    registries: bios.RegistryCache
    named: frozenset[str] = field(default_factory=frozenset)
    seen: dict[str, Any] = field(default_factory=dict)  # discover's compliance reads of this run
    name: str = "bios"
    max_attempts: int = 3

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        if not self.site.bios.attributes:
            return StageResult(True, "no BIOS pins in the site")
        found = self.seen.get(node.hostname)
        if found is not None and not found.bios and not found.inventory_problems:
            return StageResult(True, "BIOS attributes at the pins (read by discover)")
        bmc = self.bmcs.client(node)
        before = (bmc.requests, bmc.polls)
        try:
            return self._apply(node, ctx, bmc)
        finally:
            count_bmc_requests(ctx, bmc, before)

    def _apply(self, node: Node, ctx: NodeContext, bmc: Bmc) -> StageResult:
        pins = self.site.bios.attributes
        system = bmc.system_path()
        state = bios.read(bmc, system)
        changes = bios.diff(pins, state.attributes)
        if not changes:
            return StageResult(True, "BIOS attributes at the pins")
        version = next((item.version for item in firmware.read_inventory(bmc) if item.name == "BIOS"), "")
        registry = self.registries.get((state.registry_id, version), lambda: bios.read_registry(bmc, system))
        refused = bios.pin_problems({name: pins[name] for name in changes}, registry)
        if refused:
            return StageResult(False, "; ".join(f"{self.site.path}: bios.attributes.{name}: {why}. Fix: pin a "
                                                "value the BIOS attribute registry lists"
                                                for name, why in sorted(refused.items())), retryable=False)
        timeouts = self.site.timeouts
        window = self.site.maintenance_window if self.site.bios.apply_time == "InMaintenanceWindowOnReset" else None
        lc.wait_ready(bmc, timeout_s=timeouts.lc_ready_s, poll_s=timeouts.lc_poll_s)
        body = bios.settings_body(changes, bios.Window(window.start, window.duration_s) if window else None)
        evidence: dict[str, Any] = {"changes": {k: {"have": h, "want": w} for k, (h, w) in changes.items()}}
        held: list[str] = []
        ended: list[tuple[jobs.Job, jobs.Verdict]] = []

        def run_job() -> None:
            """Queue (or adopt, after a crash) and follow the job; the step completes only with the job, so a
            failed job is queued again by a later run and a completed one never."""
            jid = self._adopt(bmc, system, body) or self._queue(ctx, bmc, system, body)
            evidence["job"] = jid
            try:
                job, verdict = jobs.follow(
                    bmc, jid, deadline_s=timeouts.bios_job_s, poll_s=timeouts.idrac_job_poll_s,
                    on_reboot=lambda job: self._reboot(node, ctx, bmc, held, job))
            except jobs.JobTimeout as late:
                ctx.journal("job_queue:clearing", reason=str(late), job=jid, force=True)
                jobs.clear_queue(bmc, force=True)
                ctx.journal("job_queue:cleared", job=jid)
                raise
            ended.append((job, verdict))
            if verdict not in (jobs.Verdict.DONE, jobs.Verdict.PARTIAL):
                raise _NotCompleted(job.state)

        try:
            if not ctx.once("bios_job", run_job):
                return self._verify(bmc, system, pins, evidence, "the BIOS job completed earlier")
        except jobs.JobTimeout as late:
            return StageResult(False, f"BIOS job {evidence['job']} stuck {late.job.state}: job queue cleared, "
                                      "retrying", evidence)
        except _NotCompleted:
            pass
        job, verdict = ended[-1]
        jid = evidence["job"]
        evidence |= {"job_state": job.state, "job_message": job.message}
        if verdict == jobs.Verdict.REBOOT:
            return StageResult(True, f"BIOS job {jid} scheduled, not rebooted: {held[0] if held else 'no reset'}",
                               evidence)
        if verdict == jobs.Verdict.FAILED:
            return StageResult(False, f"BIOS job {jid} {job.state}: {job.message}", evidence, quarantine=True)
        return self._verify(bmc, system, pins, evidence, f"BIOS job {jid} {job.state}")

    @staticmethod
    def _adopt(bmc: Bmc, system: str, body: dict[str, Any]) -> str | None:
        """A BIOS job already pending with exactly these values (queued by a run that crashed) is followed,
        not queued again."""
        pending = bios.read_pending(bmc, system)
        if not pending or any(not bios.same(pending.get(k), v) for k, v in body["Attributes"].items()):
            return None
        active = [job.id for job in jobs.list_jobs(bmc) if job.job_type == "BIOSConfiguration" and job.active]
        return active[-1] if active else None

    @staticmethod
    def _queue(ctx: NodeContext, bmc: Bmc, system: str, body: dict[str, Any]) -> str:
        """PATCH; a queue held by a stale BIOS job (SYS011) is cleared first, journaled before and after."""
        try:
            jid = bios.patch(bmc, system, body)
        except bios.PendingCommitted as err:
            stale = [job.id for job in jobs.list_jobs(bmc) if job.job_type == "BIOSConfiguration" and job.active]
            ctx.journal("job_queue:clearing", reason=err.service_message or err.message, jobs=stale)
            jobs.clear_queue(bmc)
            ctx.journal("job_queue:cleared", jobs=stale)
            jid = bios.patch(bmc, system, body)
        ctx.journal("bios_job:queued", job=jid, body=body)
        return jid

    def _reboot(self, node: Node, ctx: NodeContext, bmc: Bmc, held: list[str], job: jobs.Job) -> bool:
        """The job waits for POST: reset the host only where that is allowed (jobs.decide_reboot)."""
        machine = self.maas.lookup(node)  # None: a new machine MAAS does not know yet (no OS, nobody's)
        window = self.site.maintenance_window if self.site.bios.apply_time == "InMaintenanceWindowOnReset" else None
        has_os = not nobodys(machine)  # an OS, a claim or a MAAS operation: someone's work is on it
        selected = node.hostname in self.named
        decision = jobs.decide_reboot(has_os=has_os, selected=selected,
                                      in_window=window is None or window.contains(time.time()),
                                      busy=in_use(self.site, node) if has_os and selected else "")
        ctx.journal("reboot:decided", reboot=decision.reboot, reason=decision.reason,
                    maas_status=machine.status_name if machine else "unknown")
        if not decision.reboot:
            held.append(decision.reason)
            return False
        ctx.once(f"bios_reboot:{job.id}", lambda: bmc.power("ForceRestart"))
        return True

    def _verify(self, bmc: Bmc, system: str, pins: dict[str, Any], evidence: dict[str, Any],
                what: str) -> StageResult:
        left = bios.diff(pins, bios.read(bmc, system).attributes)
        if left:
            evidence["not_applied"] = {name: {"have": have, "want": want} for name, (have, want) in left.items()}
            return StageResult(False, f"{what}, but {', '.join(sorted(left))} did not stick "
                                      f"({'; '.join(f'{n} is {h!r}' for n, (h, _) in sorted(left.items()))})",
                               evidence, quarantine=True)
        return StageResult(True, f"{what}: BIOS attributes at the pins", evidence)


class _NotCompleted(Exception):
    """The job ended without completing (failed, or waits for a reset that may not be sent)."""


def make(shared: Shared) -> BiosStage:
    return BiosStage(shared.site, shared.bmcs, shared.maas, shared.registries, shared.limits.named,
                     shared.compliance)
