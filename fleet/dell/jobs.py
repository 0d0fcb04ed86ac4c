"""The iDRAC job queue: read a JID_ job, decide what its JobState asks for, follow it, clear the queue.

iDRAC runs every configuration and update as a Dell job (`Managers/iDRAC.Embedded.1/Jobs/JID_...`,
a DellJob). A job that applies at POST sits in `Scheduled` until the host resets; Dell's own
trackers (dellemc.openmanage `idrac_redfish_job_tracking`) treat Completed/Downloaded/
CompletedWithErrors/RebootCompleted as the end and Failed/RebootFailed/Unknown as failure, and wait
on everything else. A queue with a stale job refuses new configuration (SYS011), which
`DellJobService.DeleteJobQueue` (`JID_CLEARALL`, or `JID_CLEARALL_FORCE` that also restarts the LC)
clears. Paths and fields as in sushy-oem-idrac (job_service.py, job_collection.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fleet.dell.paths import ID, MESSAGE, MESSAGE_ID, NAME, get, members
from fleet.errors import BmcError
from fleet.redfish import Bmc

JOBS = "/redfish/v1/Managers/iDRAC.Embedded.1/Jobs"
JOBS_EXPANDED = JOBS + "?$expand=*($levels=1)"
DELETE_JOB_QUEUE = "/redfish/v1/Dell/Managers/iDRAC.Embedded.1/DellJobService/Actions/DellJobService.DeleteJobQueue"
CLEAR_ALL = "JID_CLEARALL"
CLEAR_ALL_FORCE = "JID_CLEARALL_FORCE"

# DellJob fields, written once (Id, Name, Message, MessageId: fleet.dell.paths).
JOB_STATE = ("JobState",)
JOB_TYPE = ("JobType",)
PERCENT = ("PercentComplete",)

JOB_STATES = ("New", "Scheduled", "Running", "Completed", "Downloading", "Downloaded", "Scheduling",
              "ReadyForExecution", "Waiting", "Paused", "Failed", "CompletedWithErrors", "RebootPending",
              "RebootFailed", "RebootCompleted", "PendingActivation", "Unknown")
FAILED_STATES = ("Failed", "RebootFailed", "Unknown")
WAITS_FOR_RESET = ("Scheduled", "RebootPending")
ACTIVE_STATES = ("New", "Scheduled", "Running", "Downloading", "Downloaded", "Scheduling", "ReadyForExecution",
                 "Waiting", "Paused", "RebootPending", "PendingActivation")


@dataclass(frozen=True)
class Job:
    id: str
    state: str
    job_type: str
    name: str
    message: str
    message_id: str
    percent: int

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def parse_job(body: Mapping[str, Any]) -> Job:
    return Job(id=str(get(body, ID) or ""), state=str(get(body, JOB_STATE) or "Unknown"),
               job_type=str(get(body, JOB_TYPE) or ""), name=str(get(body, NAME) or ""),
               message=str(get(body, MESSAGE) or ""), message_id=str(get(body, MESSAGE_ID) or ""),
               percent=int(get(body, PERCENT) or 0))


def job_id(location: str | None) -> str:
    """The JID from a Location header (`.../Jobs/JID_...` or `.../TaskService/Tasks/JID_...`)."""
    tail = (location or "").rstrip("/").rsplit("/", 1)[-1]
    if not tail.startswith("JID_"):
        raise ValueError(f"no job id in Location {location!r}")
    return tail


class Verdict(Enum):
    WAIT = "wait"  # still on its way
    REBOOT = "reboot"  # waits for a host reset that has not been sent
    DONE = "done"
    PARTIAL = "partial"  # CompletedWithErrors: the caller checks what did apply
    FAILED = "failed"


def interpret(job: Job, *, reset_sent: bool) -> Verdict:
    """What a JobState asks of the caller. Unknown state names wait, as Dell's tracker does."""
    if job.state == "Completed":
        return Verdict.DONE
    if job.state == "CompletedWithErrors":
        return Verdict.PARTIAL
    if job.state in FAILED_STATES:
        return Verdict.FAILED
    if job.state in WAITS_FOR_RESET and not reset_sent:
        return Verdict.REBOOT
    return Verdict.WAIT


@dataclass(frozen=True)
class RebootDecision:
    reboot: bool
    reason: str


def decide_reboot(*, has_os: bool, selected: bool, in_window: bool = True, busy: str = "",
                  owner: str = "") -> RebootDecision:
    """May we reset the host so a job that waits for POST runs? Only a node with no OS yet, or one the
    operator named explicitly that is not in use (`busy` says what runs there), and only inside the
    maintenance window when there is one. Never a machine another MAAS user owns (`owner`: why, from
    `fleet.maas.decide.foreign_owner`), in any status: naming it does not make it ours."""
    if owner:
        return RebootDecision(False, owner)
    if not in_window:
        return RebootDecision(False, "the job runs at the next reset inside the maintenance window")
    if has_os and selected and busy:
        return RebootDecision(False, f"the node is in use ({busy}): drain it, then run again")
    if has_os and not selected:
        return RebootDecision(False, "the node has an OS and was not selected by name: the job runs at its next "
                                     "reboot (or name it with --nodes to let the tool reboot it)")
    return RebootDecision(True, "no OS on the node yet" if not has_os else "selected explicitly")


class JobTimeout(BmcError):
    """The job was still not finished at its deadline; carries the last job seen."""

    def __init__(self, message: str, job: Job, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job = job


def read_job(bmc: Bmc, jid: str, *, poll: bool = False, within_s: float | None = None) -> Job:
    return parse_job(bmc.request("GET", f"{JOBS}/{jid}", poll=poll, repeat=True, within_s=within_s).body)


def list_jobs(bmc: Bmc) -> list[Job]:
    """Every job in the queue, one request ($expand, as dellemc.openmanage idrac_bios.py reads it)."""
    body = bmc.request("GET", JOBS_EXPANDED, repeat=True).body
    return [parse_job(member) for member in members(body)]


def clear_queue(bmc: Bmc, *, force: bool = False) -> None:
    """DeleteJobQueue: JID_CLEARALL, or JID_CLEARALL_FORCE (also for a job stuck Running; the LC restarts)."""
    bmc.request("POST", DELETE_JOB_QUEUE, body={"JobID": CLEAR_ALL_FORCE if force else CLEAR_ALL}, repeat=True)


def follow(bmc: Bmc, jid: str, *, deadline_s: float, poll_s: float,
           on_reboot: Callable[[Job], bool] | None = None, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> tuple[Job, Verdict]:
    """Poll the job until it ends (DONE/PARTIAL/FAILED) or waits for a reset nobody may send (REBOOT).

    `on_reboot(job)` is asked once when the job waits for a host reset; True means the host was reset.
    Raises JobTimeout when `deadline_s` passes first.
    """
    deadline = clock() + deadline_s
    reset_sent = False
    while True:
        job = read_job(bmc, jid, poll=True, within_s=deadline - clock())
        verdict = interpret(job, reset_sent=reset_sent)
        if verdict in (Verdict.DONE, Verdict.PARTIAL, Verdict.FAILED):
            return job, verdict
        if verdict == Verdict.REBOOT:
            if on_reboot is None or not on_reboot(job):
                return job, verdict
            reset_sent = True
        if clock() + poll_s > deadline:
            raise JobTimeout(f"job {jid} ({job.name}) still {job.state} after {deadline_s:g} s", job,
                             node=bmc.node.hostname, endpoint=f"GET {JOBS}/{jid}",
                             service_message=job.message or None,
                             hint="see the job in the iDRAC job queue and the Lifecycle log "
                                  f"(`provision.py logs {bmc.node.hostname}`)")
        sleep(poll_s)
