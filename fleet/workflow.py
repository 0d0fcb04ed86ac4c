"""The per-node stage machine and its scheduler.

Each node walks its stages on its own thread; nothing waits for the rest of the rack, so one sick
node never slows or stops the others, and 128 racks take as long as one rack plus what the shared
resources (BMC request cap, MAAS deploy slots, Ansible batches) impose. What to do next is decided
by pure functions (`plan`, `transition`) over the recorded state, so every transition, retry,
quarantine and resume is unit-tested without a datacenter; `Workflow` only applies them.

A retry never forgets the steps its stage completed: a `network_boot` that completed before the
wait for On timed out is not sent again by the retry (it would cycle the node twice); only a new
generation (reimage) starts the steps afresh.

Ctrl-C and SIGTERM stop a run promptly: node threads are daemons, so a stage stuck in a long wait
(a MAAS deployment, an Ansible play) does not hold the process; the run waits `grace_s` for stages
to finish, then reports every unfinished node as interrupted at its stage. Each node's record only
changes at stage boundaries, so it stays what the next run resumes from; a stage abandoned this way
that finishes later writes nothing.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from fleet.errors import FleetError
from fleet.logs import node_log
from fleet.site import Node
from fleet.state import NodeState, StateDB

log = logging.getLogger(__name__)


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
# A BMC certificate we do not accept, or an address that answers but not with Redfish (a login page,
# a proxy): asking again gets the same answer.
PERMANENT_FAILURES = ("tls", "not JSON")


def refused(err: FleetError) -> bool:
    """A service that refuses a request (bad credentials, no such resource) will refuse it again."""
    if isinstance(err.status, str):
        return err.status in PERMANENT_FAILURES
    return isinstance(err.status, int) and err.status in PERMANENT_STATUSES


class NodeContext:
    """What a stage gets besides the node: journaled, once-only steps and a logger with the node's name."""

    def __init__(self, node: Node, db: StateDB, generation: int, stage: str) -> None:
        self.node = node
        self.db = db
        self.generation = generation
        self.stage = stage
        self.log = node_log(log, node.hostname)
        self.counters: dict[str, int] = {}

    def journal(self, event: str, **detail: object) -> None:
        self.db.journal(self.node.hostname, self.stage, event, **detail)

    def once(self, step: str, action: Callable[[], Any], *, detail: dict[str, object] | None = None,
             landed: Callable[[dict], bool] | None = None) -> bool:
        """Run a (destructive) step at most once per generation; journaled (with `detail`) before it starts.

        Returns False when the step had already completed (after a crash or an earlier run). A step
        that started but never recorded completion (the process died in between) is asked about first:
        `landed(detail it was started with)` looks at the real world, and True means the step took
        effect (it is marked done, not run again). Without `landed`, or when it says False, the step
        runs again: at-least-once, only for steps whose caller made that safe.
        """
        host = self.node.hostname
        status = self.db.step_status(host, self.generation, self.stage, step)
        if status == "done":
            self.journal(f"{step}:skipped", reason="completed earlier")
            return False
        if status == "started" and landed is not None:
            started = [e.detail for e in self.db.entries(host)
                       if e.stage == self.stage and e.event == f"{step}:started"]
            if landed(started[-1] if started else {}):
                self.db.mark_step(host, self.generation, self.stage, step, "done", f"{step}:landed",
                                  reason="interrupted after it took effect: not repeated")
                return False
        self.db.mark_step(host, self.generation, self.stage, step, "started", f"{step}:started", **(detail or {}))
        action()
        self.db.mark_step(host, self.generation, self.stage, step, "done", f"{step}:done")
        return True

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount


ProgressFn = Callable[[str, str, str, str], None]  # hostname, stage, event, detail


@dataclass(frozen=True)
class NodeOutcome:
    hostname: str
    status: str  # the record's status, or "interrupted" when the run was stopped before the node finished
    stage: str  # last completed stage
    current: str  # stage that failed (or is in progress); '' when none
    detail: str
    attempts: int
    counters: dict[str, int]
    seconds: dict[str, float]


class RecordGate:
    """Lets any number of node threads write their records at once, until the run closes it.

    Closing waits for the writes already under way, so a record is written whole or not at all once
    the run has returned. Nothing is held while a record is written: a lock held across the state
    store's writes (each gives up the GIL, and getting it back behind a thousand busy threads takes a
    switch interval) would line every node thread up behind one another.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._writing = 0
        self.closed = False

    @contextmanager
    def open(self) -> Iterator[bool]:
        """True: write now (closing waits for this write); False: the run has returned, write nothing."""
        with self._changed:
            allowed = not self.closed
            self._writing += allowed
        try:
            yield allowed
        finally:
            if allowed:
                with self._changed:
                    self._writing -= 1
                    self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.wait_for(lambda: self._writing == 0)


class Workflow:
    """Applies `plan`/`transition` to many nodes at once, one thread per node."""

    def __init__(self, stages: Sequence[Stage], db: StateDB, until: str, progress: ProgressFn | None = None,
                 backoff_s: float = 2.0, grace_s: float = 5.0,
                 on_quarantine: Callable[[Node], dict[str, Any]] | None = None) -> None:
        self.stages = {stage.name: stage for stage in stages}
        self.order = [stage.name for stage in stages]
        if until not in self.order:
            raise ValueError(f"unknown stage '{until}' (stages: {', '.join(self.order)})")
        self.db = db
        self.until = until
        self.progress = progress or (lambda *_: None)
        self.backoff_s = backoff_s
        self.grace_s = grace_s
        self.on_quarantine = on_quarantine  # extra evidence for a node being quarantined (its BMC logs)
        self.interrupted = ""  # what stopped the run: "SIGINT", "SIGTERM" or "stop"; '' when it ran to the end
        self._stop = threading.Event()
        self._records = RecordGate()  # closed once the run returned: late stage results are not recorded
        self._in_flight: dict[str, str] = {}

    def run(self, nodes: Sequence[Node]) -> list[NodeOutcome]:
        """Walk every node to `until`; on Ctrl-C/SIGTERM (or `stop`) return within about `grace_s`."""
        if not nodes:
            return []
        results: dict[str, NodeOutcome] = {}
        left = [len(nodes)]
        counting = threading.Lock()
        finished = threading.Event()
        go = threading.Event()

        states = self.db.states([node.hostname for node in nodes])  # one read, not one per node thread

        def walk(node: Node) -> None:
            go.wait()
            try:
                results[node.hostname] = self._walk(node, states[node.hostname])
            except FleetError as err:  # the state store itself failed (a full disk): this node stops, with why
                state = self._in_flight.get(node.hostname, "")
                results[node.hostname] = NodeOutcome(node.hostname, "failed", "", state, str(err), 0, {}, {})
            except Exception:  # a stage abandoned by an interrupted run may fail as the run closes its clients
                if not self._records.closed:
                    raise
            finally:
                with counting:
                    left[0] -= 1
                    if left[0] == 0:
                        finished.set()

        with self._signals():
            # Every thread exists before any node works: Thread.start waits for the new thread to run,
            # which behind a thousand busy node threads is milliseconds each, and the last node's late
            # start would lengthen the whole run.
            for node in nodes:
                threading.Thread(target=walk, args=(node,), name=f"node-{node.hostname}", daemon=True).start()
            go.set()
            while not finished.wait(0.2) and not self._stop.is_set():
                pass
            finished.wait(self.grace_s)
            self._records.close()
            done = dict(results)
        return [done.get(node.hostname) or self._interrupted(node) for node in nodes]

    def stop(self, why: str = "stop") -> None:
        """Ask every node to stop after its current stage (Ctrl-C): state stays resumable."""
        self.interrupted = self.interrupted or why
        self._stop.set()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the run (only the main thread can own signal handlers)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, lambda number, _frame: self.stop(signal.Signals(number).name))
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _interrupted(self, node: Node) -> NodeOutcome:
        state = self.db.node(node.hostname)
        where = self._in_flight.get(node.hostname) or state.current
        return NodeOutcome(node.hostname, "interrupted", state.stage, where,
                           f"interrupted during {where} ({self.interrupted or 'stop'}); the next run resumes it",
                           state.attempts, {}, {})

    def _walk(self, node: Node, state: NodeState) -> NodeOutcome:
        """Walk one node from its record as read at the start: only this walk writes the record of a node
        its run holds, so the record after each write is known without reading it back."""
        counters: dict[str, int] = {}
        seconds: dict[str, float] = {}
        pending = ""
        while True:
            step = plan(state, self.order, self.until)
            if step.stage is None:
                break
            if self._stop.is_set():
                pending = step.stage
                break
            state = self._attempt(node, state, step.stage, counters, seconds)
        if pending:  # stopped between stages: `current` names the stage it would have run next
            return NodeOutcome(node.hostname, "interrupted", state.stage, state.current or pending,
                               f"interrupted before {pending} ({self.interrupted}); the next run resumes it",
                               state.attempts, counters, seconds)
        return NodeOutcome(node.hostname, state.status, state.stage, state.current, state.last_error, state.attempts,
                           counters, seconds)

    def _attempt(self, node: Node, state: NodeState, name: str, counters: dict[str, int],
                 seconds: dict[str, float]) -> NodeState:
        """Run one stage attempt; the node's record after it (unchanged if the run was abandoned)."""
        stage = self.stages[name]
        ctx = NodeContext(node, self.db, state.generation, name)
        running = {"status": "running", "current": name}
        with self._records.open() as recording:
            if not recording:
                return state
            self._in_flight[node.hostname] = name
            self.db.update(node.hostname, **running)
        state = replace(state, **running)
        self.progress(node.hostname, name, "start", "")
        started = time.monotonic()
        result = self._run_stage(stage, node, ctx)
        seconds[name] = seconds.get(name, 0.0) + time.monotonic() - started
        for key, value in ctx.counters.items():
            counters[key] = counters.get(key, 0) + value
        change = transition(state, name, result, stage.max_attempts, self.until, self.backoff_s)
        event = "ok" if result.ok else ("retry" if change.retry else "quarantined")
        evidence = result.evidence
        if event == "quarantined" and self.on_quarantine is not None:
            evidence = {**evidence, **self.on_quarantine(node)}
        with self._records.open() as recording:
            if not recording:
                return state
            self.db.record(node.hostname, change.fields, name, f"stage:{event}", detail=result.detail,
                           evidence=evidence)
            self._in_flight.pop(node.hostname, None)
        self.progress(node.hostname, name, event, result.detail)
        if change.retry:  # the stage's completed steps stay completed: the retry skips them
            self._stop.wait(change.delay_s * random.uniform(0.5, 1.0))  # jitter: retries never march in step
        return replace(state, **change.fields)

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
