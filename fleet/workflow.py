"""The per-node stage machine and its scheduler.

Each node walks its stages on its own thread; nothing waits for the rest of the rack, so one sick
node never slows or stops the others, and 128 racks take as long as one rack plus what the shared
resources (BMC request cap, MAAS deploy slots, Ansible batches) impose. What to do next is decided
by pure functions (`plan`, `transition`) over the recorded state, so every transition, retry,
quarantine and resume is unit-tested without a datacenter; `Workflow` only applies them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleet.errors import FleetError
from fleet.inventory import Node
from fleet.state import NodeState, StateDB

log = logging.getLogger(__name__)

STAGES = ("discover", "pxe", "os", "configure", "validate")


@dataclass(frozen=True)
class StageResult:
    """What a stage reports. `quarantine` means: retrying cannot help, a human must look."""

    ok: bool
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    retryable: bool = True
    quarantine: bool = False


class Stage(Protocol):
    name: str
    max_attempts: int

    def run(self, node: Node, ctx: NodeContext) -> StageResult: ...


@dataclass(frozen=True)
class Plan:
    """The next thing to do for a node: run `stage`, or stop with `reason`."""

    stage: str | None
    reason: str = ""


def plan(state: NodeState, order: Sequence[str], until: str) -> Plan:
    """Decide the next stage from the recorded state alone (this is what makes resume work)."""
    if state.status == "quarantined":
        return Plan(None, f"quarantined at {state.current}: {state.last_error}")
    target = order.index(until)
    reached = order.index(state.stage) if state.stage in order else -1
    if reached >= target:
        return Plan(None, f"already at {state.stage}")
    return Plan(order[reached + 1])


@dataclass(frozen=True)
class Transition:
    """How the node's record changes after a stage attempt, and whether to try again (after `delay_s`)."""

    fields: dict[str, Any]
    retry: bool = False
    delay_s: float = 0.0


def transition(state: NodeState, stage: str, result: StageResult, max_attempts: int, until: str,
               backoff_s: float = 2.0) -> Transition:
    """Record a stage attempt: advance, retry with exponential backoff, or quarantine."""
    if result.ok:
        status = "done" if stage == until else "running"
        return Transition({"stage": stage, "status": status, "current": "", "attempts": 0, "last_error": "",
                           "evidence": result.evidence})
    attempts = state.attempts + 1
    failed = {"current": stage, "attempts": attempts, "last_error": result.detail, "evidence": result.evidence}
    if result.quarantine or not result.retryable or attempts >= max_attempts:
        return Transition({**failed, "status": "quarantined"})
    return Transition({**failed, "status": "running"}, retry=True, delay_s=backoff_s * 2 ** (attempts - 1))


PERMANENT_STATUSES = (400, 401, 403, 404, 405)


def refused(err: FleetError) -> bool:
    """A service that refuses a request (bad credentials, no such resource) will refuse it again."""
    return isinstance(err.status, int) and err.status in PERMANENT_STATUSES


class NodeContext:
    """What a stage gets besides the node: journaled, once-only steps and a logger with the node's name."""

    def __init__(self, node: Node, db: StateDB, generation: int, stage: str) -> None:
        self.node = node
        self.db = db
        self.generation = generation
        self.stage = stage
        self.log = logging.LoggerAdapter(log, {"node": node.hostname})
        self.counters: dict[str, int] = {}

    def journal(self, event: str, **detail: object) -> None:
        self.db.journal(self.node.hostname, self.stage, event, **detail)

    def once(self, step: str, action: Callable[[], Any]) -> bool:
        """Run a (destructive) step at most once per generation; journaled before it starts.

        Returns False when the step had already completed (after a crash or an earlier run).
        A step that started but never recorded completion runs again: the caller checks the
        real world first, so this is at-least-once only for steps that are safe to repeat.
        """
        host = self.node.hostname
        if self.db.step_done(host, self.generation, self.stage, step):
            self.journal(f"{step}:skipped", reason="completed earlier")
            return False
        self.journal(f"{step}:started")
        self.db.mark_step(host, self.generation, self.stage, step, "started")
        action()
        self.db.mark_step(host, self.generation, self.stage, step, "done")
        self.journal(f"{step}:done")
        return True

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount


ProgressFn = Callable[[str, str, str, str], None]  # hostname, stage, event, detail


@dataclass(frozen=True)
class NodeOutcome:
    hostname: str
    status: str
    stage: str  # last completed stage
    current: str  # stage that failed (or is in progress); '' when none
    detail: str
    attempts: int
    counters: dict[str, int]
    seconds: dict[str, float]


class Workflow:
    """Applies `plan`/`transition` to many nodes at once, one thread per node."""

    def __init__(self, stages: Sequence[Stage], db: StateDB, until: str, progress: ProgressFn | None = None,
                 backoff_s: float = 2.0) -> None:
        self.stages = {stage.name: stage for stage in stages}
        self.order = [stage.name for stage in stages]
        if until not in self.order:
            raise ValueError(f"unknown stage '{until}' (stages: {', '.join(self.order)})")
        self.db = db
        self.until = until
        self.progress = progress or (lambda *_: None)
        self.backoff_s = backoff_s
        self._stop = threading.Event()

    def run(self, nodes: Sequence[Node]) -> list[NodeOutcome]:
        if not nodes:
            return []
        with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="node") as pool:
            return list(pool.map(self._walk, nodes))

    def stop(self) -> None:
        """Ask every node to stop after its current stage (Ctrl-C): state stays resumable."""
        self._stop.set()

    def _walk(self, node: Node) -> NodeOutcome:
        counters: dict[str, int] = {}
        seconds: dict[str, float] = {}
        while not self._stop.is_set():
            state = self.db.node(node.hostname)
            step = plan(state, self.order, self.until)
            if step.stage is None:
                break
            self._attempt(node, state, step.stage, counters, seconds)
        final = self.db.node(node.hostname)
        return NodeOutcome(node.hostname, final.status, final.stage, final.current, final.last_error, final.attempts,
                           counters, seconds)

    def _attempt(self, node: Node, state: NodeState, name: str, counters: dict[str, int],
                 seconds: dict[str, float]) -> None:
        stage = self.stages[name]
        ctx = NodeContext(node, self.db, state.generation, name)
        self.db.update(node.hostname, status="running", current=name)
        self.progress(node.hostname, name, "start", "")
        started = time.monotonic()
        result = self._run_stage(stage, node, ctx)
        seconds[name] = seconds.get(name, 0.0) + time.monotonic() - started
        for key, value in ctx.counters.items():
            counters[key] = counters.get(key, 0) + value
        change = transition(state, name, result, stage.max_attempts, self.until, self.backoff_s)
        self.db.update(node.hostname, **change.fields)
        event = "ok" if result.ok else ("retry" if change.retry else "quarantined")
        ctx.journal(f"stage:{event}", detail=result.detail, evidence=result.evidence)
        self.progress(node.hostname, name, event, result.detail)
        if change.retry:
            self.db.clear_steps(node.hostname, state.generation, name)
            self._stop.wait(change.delay_s * random.uniform(0.5, 1.0))  # jitter: retries never march in step

    def _run_stage(self, stage: Stage, node: Node, ctx: NodeContext) -> StageResult:
        """Our errors become failed results with their message; anything else is a bug, shown as one."""
        try:
            return stage.run(node, ctx)
        except FleetError as err:
            ctx.log.warning("%s failed: %s", stage.name, err)
            return StageResult(False, str(err), retryable=not refused(err))
        except Exception as err:  # one node's bug must not stop the fleet
            ctx.log.exception("%s crashed", stage.name)
            return StageResult(False, f"internal error in stage {stage.name}: {type(err).__name__}: {err}",
                               retryable=False)
