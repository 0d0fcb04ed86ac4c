"""Carrying out a node's firmware plan: one component at a time, each job followed to its end.

For each step through the iDRAC: the image (checked against its pinned sha256 on the ops host
before any iDRAC sees it), then SimpleUpdate with the repository URL (pull) or the `Available-`
entry an HTTP push made (push), then the JID followed within the job deadline, the host reset
only where `jobs.decide_reboot` allows. A failed or timed-out job stops that node's other updates
and returns the job's message for the quarantine; the versions are read back at the end.
Steps are journaled and done once per generation (`NodeContext.once`), so a resumed run never
sends an update twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from fleet.dell import firmware, jobs
from fleet.dell.firmware import NodePlan, UpdateStep
from fleet.errors import FleetError
from fleet.redfish import Bmc
from fleet.site.control import Timeouts
from fleet.site.dell import FirmwareSettings
from fleet.workflow import NodeContext

FETCH_TIMEOUT_S = 600.0


class ImageStore:
    """Images by name, downloaded once per run from the site's repository and checked against the pin."""

    def __init__(self, settings: FirmwareSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._images: dict[str, bytes] = {}
        self._session = requests.Session()
        self._session.trust_env = False  # the repository is named by the site; no proxy or netrc from the env

    def get(self, step: UpdateStep) -> bytes:
        with self._lock:
            if step.image not in self._images:
                url = self._settings.repository.rstrip("/") + "/" + step.image
                try:
                    reply = self._session.get(url, timeout=FETCH_TIMEOUT_S)
                except requests.RequestException as err:
                    raise FleetError(f"cannot download firmware image {step.image}", endpoint=f"GET {url}",
                                     service_message=str(err), hint="check firmware.repository in the site") from None
                if reply.status_code != 200:
                    raise FleetError(f"the firmware repository answered HTTP {reply.status_code} for {step.image}",
                                     endpoint=f"GET {url}", status=reply.status_code,
                                     hint="check the image name under firmware.components in the site")
                problem = firmware.checksum_problem(reply.content, step.sha256)
                if problem:
                    raise FleetError(f"firmware image {step.image} is not the pinned one ({problem})",
                                     endpoint=f"GET {url}", hint="fix the repository file or the site's sha256")
                self._images[step.image] = reply.content
            return self._images[step.image]


@dataclass
class NodeOutcome:
    node: str
    status: str  # done | scheduled | quarantined | failed
    detail: str
    applied: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def apply_node(bmc: Bmc, plan: NodePlan, ctx: NodeContext, settings: FirmwareSettings, images: ImageStore, *,
               may_reboot: Callable[[], jobs.RebootDecision], timeouts: Timeouts,
               sleep: Callable[[float], None] = time.sleep) -> NodeOutcome:
    """Run the node's BMC steps in order; stop at the first failure (its message is the outcome).
    Each job is followed for `timeouts.firmware_job_s`, polled every `timeouts.idrac_job_poll_s`."""
    service = firmware.read_service(bmc) if plan.bmc_steps else None
    outcome = NodeOutcome(plan.node, "done", "")
    for step in plan.bmc_steps:
        assert service is not None
        status, detail, jid = _run_step(bmc, service, step, ctx, settings, images, may_reboot, timeouts, sleep)
        if status == "done":
            outcome.applied.append(f"{step.component} {step.version}" + ("" if jid else " (completed earlier)"))
            continue
        if status == "scheduled":
            outcome.status, outcome.detail = "scheduled", detail
            return outcome  # the later steps wait too: one component at a time
        outcome.status = "quarantined"
        outcome.detail = f"firmware update of {step.component} to {step.version} ({jid}) {detail}; " \
                         "its other updates stopped"
        outcome.evidence |= {"job": jid, "component": step.component}
        return outcome
    return _verify(bmc, plan, settings, outcome)


def _run_step(bmc: Bmc, service: firmware.UpdateService, step: UpdateStep, ctx: NodeContext,
              settings: FirmwareSettings, images: ImageStore, may_reboot: Callable[[], jobs.RebootDecision],
              timeouts: Timeouts, sleep: Callable[[float], None]) -> tuple[str, str, str]:
    """(done | scheduled | failed, detail, JID) for one component."""
    held: list[str] = []
    queued: list[str] = []

    def queue() -> None:
        data = images.get(step)
        uri = settings.image_url(_pin(settings, step)) if settings.transfer == "pull" else \
            firmware.push(bmc, service, data, step.image)
        queued.append(firmware.simple_update(bmc, service, uri))
        ctx.journal(f"firmware:{step.component}:queued", job=queued[-1], image=step.image, version=step.version)

    def reboot(job: jobs.Job) -> bool:
        decision = may_reboot()
        ctx.journal("reboot:decided", reboot=decision.reboot, reason=decision.reason, job=job.id)
        if not decision.reboot:
            held.append(decision.reason)
            return False
        ctx.once(f"firmware:{step.component}:reboot:{job.id}", lambda: bmc.power("ForceRestart"))
        return True

    def update() -> None:
        """Queue and follow; the step counts as completed only when the job did (a failed one is
        tried again by the next `firmware apply`, a finished one never)."""
        queue()
        try:
            job, verdict = jobs.follow(bmc, queued[-1], deadline_s=timeouts.firmware_job_s,
                                       poll_s=timeouts.idrac_job_poll_s, on_reboot=reboot, sleep=sleep)
        except jobs.JobTimeout as late:
            raise _Unfinished("failed", f"did not finish within {timeouts.firmware_job_s:g} s (still "
                                        f"{late.job.state}: {late.job.message})") from None
        if verdict in (jobs.Verdict.FAILED, jobs.Verdict.PARTIAL):
            raise _Unfinished("failed", f"{job.state}: {job.message}")
        if verdict == jobs.Verdict.REBOOT:
            raise _Unfinished("scheduled", f"{step.component} {step.version} ({queued[-1]}) waits for a reboot: "
                                           f"{held[0]}")

    try:
        if not ctx.once(f"firmware:{step.component}:{step.version}", update):
            return "done", "completed earlier", ""
    except _Unfinished as stopped:
        return stopped.status, stopped.detail, queued[-1] if queued else ""
    return "done", "", queued[-1]


class _Unfinished(Exception):
    """A job that did not complete: why, for the node's outcome."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _pin(settings: FirmwareSettings, step: UpdateStep) -> Any:
    return next(pin for pin in settings.components if pin.component == step.component)


def _verify(bmc: Bmc, plan: NodePlan, settings: FirmwareSettings, outcome: NodeOutcome) -> NodeOutcome:
    if not plan.bmc_steps:
        outcome.detail = "nothing to update through the iDRAC"
        return outcome
    statuses = {s.component: s for s in firmware.compliance(settings.components, firmware.read_inventory(bmc))}
    behind = [statuses[step.component].describe() for step in plan.bmc_steps if not statuses[step.component].ok]
    if behind:
        outcome.status = "quarantined"
        outcome.detail = f"updates completed but still behind the pins: {'; '.join(behind)}"
        return outcome
    outcome.detail = f"updated {', '.join(outcome.applied)}"
    return outcome
