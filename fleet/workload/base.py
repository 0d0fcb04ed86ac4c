"""The workload-manager interface and the pure wait-for-drain decision.

A scheduler owns the nodes' jobs: before the fleet resets a GPU or reboots a node, the scheduler must
stop placing work there (drain) and the running jobs must end. The fleet never kills jobs: it waits
until the node is empty or a deadline passes, then gives up and reports (a person decides whether to
cancel a week-long training run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fleet.errors import FleetError

REASON_PREFIX = "fleet: "


class WorkloadError(FleetError):
    """The scheduler refused or failed a command (unknown node, controller down, permission)."""


@dataclass(frozen=True)
class Job:
    job_id: str
    user: str
    state: str
    name: str = ""


@dataclass(frozen=True)
class NodeState:
    """The scheduler's view of one node: its state words and the reason an admin (or we) gave."""

    node: str
    state: str  # e.g. "idle", "mixed", "draining", "drained", "down*"
    reason: str = ""

    @property
    def drained_by_fleet(self) -> bool:
        return self.reason.startswith(REASON_PREFIX)

    @property
    def draining_or_drained(self) -> bool:
        return self.state.rstrip("*~#!%$@^-").lower() in ("drain", "drained", "draining")


class WorkloadManager(Protocol):
    """What the fleet asks of a scheduler."""

    name: str

    def drain(self, node: str, cause: str) -> None:
        """Stop new work landing on the node; running jobs carry on. Idempotent."""
        ...

    def resume(self, node: str) -> None:
        """Put the node back into service. Idempotent."""
        ...

    def jobs(self, node: str) -> list[Job]:
        """Jobs running (or completing) on the node now."""
        ...

    def state(self, node: str) -> NodeState:
        ...


def drain_reason(cause: str) -> str:
    """The reason the scheduler shows: `fleet: <cause>`, one line, short enough for sinfo."""
    return REASON_PREFIX + " ".join(cause.split())[:200]


def in_use(manager: WorkloadManager, node: str) -> str:
    """Why the node is in use by the scheduler ("" when it is not): the reimage probe asks this."""
    running = manager.jobs(node)
    if not running:
        return ""
    shown = ", ".join(f"{j.job_id} ({j.user})" for j in running[:5])
    more = f" and {len(running) - 5} more" if len(running) > 5 else ""
    return f"{manager.name} job(s) running: {shown}{more}"


@dataclass(frozen=True)
class DrainOutcome:
    node: str
    empty: bool  # no jobs left: safe to disturb
    waited_s: float
    jobs_left: tuple[Job, ...] = ()

    @property
    def detail(self) -> str:
        if self.empty:
            return f"drained, no jobs left after {self.waited_s:.0f} s"
        jobs = ", ".join(f"{j.job_id} ({j.user})" for j in self.jobs_left)
        return f"gave up after {self.waited_s:.0f} s with job(s) still running: {jobs}"


def wait_empty(manager: WorkloadManager, node: str, *, timeout_s: float, poll_s: float = 10.0,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
               ) -> DrainOutcome:
    """Poll the node's jobs until none are left or `timeout_s` passes (then report who is still there)."""
    started = clock()
    while True:
        running = manager.jobs(node)
        waited = clock() - started
        if not running:
            return DrainOutcome(node, True, waited)
        if waited >= timeout_s:
            return DrainOutcome(node, False, waited, tuple(running))
        sleep(min(poll_s, max(0.0, timeout_s - waited)))


class NoScheduler:
    """A site without a scheduler: nothing to drain, never in use by one."""

    name = "none"

    def drain(self, node: str, cause: str) -> None:
        return None

    def resume(self, node: str) -> None:
        return None

    def jobs(self, node: str) -> list[Job]:
        return []

    def state(self, node: str) -> NodeState:
        return NodeState(node, "unmanaged")


def resume_if_ours(manager: WorkloadManager, node: str) -> bool:
    """Resume a node the fleet drained; a drain an admin set (another reason) is theirs to lift."""
    current = manager.state(node)
    if current.draining_or_drained and not current.drained_by_fleet:
        return False
    if current.draining_or_drained:
        manager.resume(node)
    return True
