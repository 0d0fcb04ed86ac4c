"""The stage machine: every transition, retry, quarantine and resume, without a datacenter."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from fleet.errors import BmcError
from fleet.site import Bmc, Node
from fleet.state import NodeState, StateDB
from fleet.workflow import NodeContext, RecordGate, StageResult, Workflow, plan, refused, transition

ORDER = ["discover", "pxe", "os", "configure", "validate"]


def state(stage: str = "", status: str = "new", attempts: int = 0, current: str = "") -> NodeState:
    return NodeState("gpu-001-01", stage, status, current, attempts, 1, "", {}, 0.0)


@pytest.mark.parametrize(
    ("recorded", "until", "expected"),
    [
        (state(), "os", "discover"),
        (state("discover", "running"), "os", "pxe"),
        (state("pxe", "running"), "os", "os"),
        (state("os", "done"), "os", None),
        (state("os", "done"), "validate", "configure"),
        (state("configure", "running"), "validate", "validate"),
        (state("validate", "done"), "os", None),
        (state("pxe", "quarantined", 2, "os"), "os", None),
        (state("discover", "running", 1, "pxe"), "os", "pxe"),  # resume after a crash mid-stage
    ],
)
def test_plan_picks_the_next_stage_from_recorded_state(recorded: NodeState, until: str, expected: str | None) -> None:
    assert plan(recorded, ORDER, until).stage == expected


def test_plan_says_why_a_quarantined_node_is_left_alone() -> None:
    recorded = NodeState("n", "pxe", "quarantined", "os", 2, 1, "deployment failed twice", {}, 0.0)
    assert plan(recorded, ORDER, "os").reason == "quarantined at os: deployment failed twice"


@pytest.mark.parametrize(
    ("result", "attempts", "max_attempts", "status", "retry"),
    [
        (StageResult(True), 0, 3, "running", False),
        (StageResult(False, "5xx"), 0, 3, "running", True),
        (StageResult(False, "5xx"), 1, 3, "running", True),
        (StageResult(False, "5xx"), 2, 3, "quarantined", False),
        (StageResult(False, "bad tag", retryable=False), 0, 3, "quarantined", False),
        (StageResult(False, "broken", quarantine=True), 0, 3, "quarantined", False),
    ],
)
def test_transition_retries_then_quarantines(result: StageResult, attempts: int, max_attempts: int, status: str,
                                             retry: bool) -> None:
    change = transition(state("discover", "running", attempts), "pxe", result, max_attempts, "os")
    assert change.fields["status"] == status
    assert change.retry is retry


def test_transition_reaching_the_target_stage_is_done_and_clears_the_error() -> None:
    change = transition(state("pxe", "running", 1), "os", StageResult(True), 2, "os")
    assert change.fields == {"stage": "os", "status": "done", "current": "", "attempts": 0, "last_error": "",
                             "evidence": {}}


def test_transition_backoff_doubles_per_attempt() -> None:
    delays = [transition(state(attempts=n), "pxe", StageResult(False), 9, "os", 1.0).delay_s for n in range(4)]
    assert delays == [1.0, 2.0, 4.0, 8.0]


def make_node(rack: int, slot: int) -> Node:
    name = f"gpu-{rack:03d}-{slot:02d}"
    return Node(name, rack, slot, "gpu", f"T{rack}{slot}", Bmc(f"127.0.0.1:{20000 + rack * 10 + slot}", "bmc"),
                f"02:00:00:00:{rack:02x}:{slot:02x}", f"198.18.{rack}.{slot}", 8, ())


@dataclass
class FakeStage:
    """A stage whose outcome per node is scripted: a list of results consumed in order."""

    name: str
    max_attempts: int = 2
    script: dict[str, list] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        self.calls.append(node.hostname)
        outcomes = self.script.get(node.hostname) or [StageResult(True)]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def db(tmp_path) -> StateDB:
    return StateDB(tmp_path / "state.db", run_id="test-run")


def stages(**scripts: dict[str, list]) -> list[FakeStage]:
    return [FakeStage(name, script=scripts.get(name, {})) for name in ("discover", "pxe", "os")]


def test_one_failing_node_never_stops_the_others(db: StateDB) -> None:
    nodes = [make_node(1, slot) for slot in (1, 2, 3, 4)]
    flow = Workflow(stages(pxe={"gpu-001-02": [StageResult(False, "BMC gone", retryable=False)]}), db, "os",
                    backoff_s=0)
    outcomes = {o.hostname: o for o in flow.run(nodes)}
    assert outcomes["gpu-001-02"].status == "quarantined"
    assert outcomes["gpu-001-02"].detail == "BMC gone"
    assert [outcomes[f"gpu-001-0{s}"].status for s in (1, 3, 4)] == ["done"] * 3


def test_failed_stage_is_retried_then_succeeds(db: StateDB) -> None:
    flaky = {"gpu-001-01": [StageResult(False, "503"), StageResult(True)]}
    pipeline = stages(os=flaky)
    [outcome] = Workflow(pipeline, db, "os", backoff_s=0).run([make_node(1, 1)])
    assert outcome.status == "done"
    assert pipeline[2].calls == ["gpu-001-01", "gpu-001-01"]
    events = [e.event for e in db.entries("gpu-001-01") if e.stage == "os"]
    assert events == ["stage:retry", "stage:ok"]


def test_our_errors_become_the_recorded_cause(db: StateDB) -> None:
    boom = {"gpu-001-01": [BmcError("power on refused", node="gpu-001-01", status=409)]}
    [outcome] = Workflow(stages(pxe=boom), db, "os", backoff_s=0).run([make_node(1, 1)])
    assert outcome.status == "quarantined"
    assert "power on refused" in outcome.detail and "status 409" in outcome.detail


def test_a_crash_in_stage_code_quarantines_only_that_node_with_the_bug_named(db: StateDB) -> None:
    crash = {"gpu-001-01": [KeyError("PowerState")]}
    outcomes = Workflow(stages(discover=crash), db, "os", backoff_s=0).run([make_node(1, 1), make_node(1, 2)])
    assert outcomes[0].status == "quarantined" and "KeyError" in outcomes[0].detail
    assert outcomes[1].status == "done"


@pytest.mark.parametrize("completed", ["", "discover", "pxe"])
def test_resume_runs_only_the_stages_after_the_recorded_one(db: StateDB, completed: str) -> None:
    node = make_node(1, 1)
    if completed:
        db.update(node.hostname, stage=completed, status="running")
    pipeline = stages()
    Workflow(pipeline, db, "os", backoff_s=0).run([node])
    ran = [stage.name for stage in pipeline if stage.calls]
    start = ORDER.index(completed) + 1 if completed else 0
    assert ran == ORDER[start:3]


def test_a_done_node_is_not_touched_again(db: StateDB) -> None:
    node = make_node(1, 1)
    Workflow(stages(), db, "os", backoff_s=0).run([node])
    again = stages()
    Workflow(again, db, "os", backoff_s=0).run([node])
    assert not any(stage.calls for stage in again)


def test_until_stops_early_and_a_later_run_continues(db: StateDB) -> None:
    node = make_node(1, 1)
    first = stages()
    [outcome] = Workflow(first, db, "pxe", backoff_s=0).run([node])
    assert (outcome.stage, outcome.status) == ("pxe", "done")
    assert not first[2].calls
    second = stages()
    Workflow(second, db, "os", backoff_s=0).run([node])
    assert [bool(s.calls) for s in second] == [False, False, True]


def test_completed_destructive_step_is_never_repeated(db: StateDB) -> None:
    node = make_node(1, 1)
    cycles: list[str] = []
    ctx = NodeContext(node, db, 1, "pxe")
    assert ctx.once("power_cycle", lambda: cycles.append("cycle")) is True
    assert NodeContext(node, db, 1, "pxe").once("power_cycle", lambda: cycles.append("cycle")) is False
    assert cycles == ["cycle"]
    events = [e.event for e in db.entries(node.hostname)]
    assert events == ["power_cycle:started", "power_cycle:done", "power_cycle:skipped"]


def test_step_journaled_before_it_starts_even_if_it_crashes(db: StateDB) -> None:
    node = make_node(1, 1)

    def crash() -> None:
        raise RuntimeError("killed mid-step")

    with pytest.raises(RuntimeError):
        NodeContext(node, db, 1, "os").once("deploy", crash)
    assert [e.event for e in db.entries(node.hostname)] == ["deploy:started"]
    assert not db.step_done(node.hostname, 1, "os", "deploy")


def test_new_generation_forgets_steps_but_keeps_the_journal(db: StateDB) -> None:
    node = make_node(1, 1)
    NodeContext(node, db, 1, "os").once("deploy", lambda: None)
    db.acquire([node.hostname], "provision.py reimage gpu-001-01")
    generation = db.new_generation(node.hostname)
    assert generation == 2
    assert not db.step_done(node.hostname, generation, "os", "deploy")
    assert len(db.entries(node.hostname)) == 2


def test_unknown_until_stage_is_refused(db: StateDB) -> None:
    with pytest.raises(ValueError, match="unknown stage 'bios'"):
        Workflow(stages(), db, "bios")


def test_stop_leaves_nodes_resumable(db: StateDB) -> None:
    gate = threading.Event()
    entered = threading.Event()

    class Blocking(FakeStage):
        def run(self, node: Node, ctx: NodeContext) -> StageResult:
            entered.set()
            gate.wait(5)
            return StageResult(True)

    flow = Workflow([Blocking("discover"), FakeStage("pxe"), FakeStage("os")], db, "os", backoff_s=0)
    worker = threading.Thread(target=flow.run, args=([make_node(1, 1)],))
    worker.start()
    assert entered.wait(5)
    flow.stop()
    gate.set()
    worker.join(5)
    assert db.node("gpu-001-01").stage == "discover"
    assert db.node("gpu-001-01").status == "running"


def test_a_refused_request_is_not_retried(db: StateDB) -> None:
    refused = {"gpu-001-01": [BmcError("BMC refused the credentials", node="gpu-001-01", status=401)]}
    pipeline = stages(discover=refused)
    [outcome] = Workflow(pipeline, db, "os", backoff_s=0).run([make_node(1, 1)])
    assert outcome.status == "quarantined"
    assert pipeline[0].calls == ["gpu-001-01"]


def test_a_server_error_is_retried(db: StateDB) -> None:
    flaky = {"gpu-001-01": [BmcError("BMC busy", node="gpu-001-01", status=503), StageResult(True)]}
    pipeline = stages(discover=flaky)
    [outcome] = Workflow(pipeline, db, "os", backoff_s=0).run([make_node(1, 1)])
    assert outcome.status == "done"
    assert pipeline[0].calls == ["gpu-001-01", "gpu-001-01"]


def test_a_retry_never_repeats_a_destructive_step_that_completed(db: StateDB) -> None:
    cycles: list[str] = []

    class CycleThenWait(FakeStage):
        """network_boot completes, then the wait for On times out once (the defect: the retry cycled again)."""

        def run(self, node: Node, ctx: NodeContext) -> StageResult:
            self.calls.append(node.hostname)
            ctx.once("network_boot", lambda: cycles.append(node.hostname))
            return StageResult(False, "did not reach On in time") if len(self.calls) == 1 else StageResult(True)

    pxe = CycleThenWait("pxe", max_attempts=3)
    [outcome] = Workflow([FakeStage("discover"), pxe, FakeStage("os")], db, "os", backoff_s=0).run([make_node(1, 1)])
    assert outcome.status == "done" and pxe.calls == ["gpu-001-01"] * 2
    assert cycles == ["gpu-001-01"]
    events = [e.event for e in db.entries("gpu-001-01") if e.stage == "pxe"]
    assert events == ["network_boot:started", "network_boot:done", "stage:retry", "network_boot:skipped", "stage:ok"]


def test_a_completed_step_is_not_repeated_by_a_retry_quarantined_node_requeued_in_the_same_generation(db: StateDB):
    node = make_node(1, 1)
    NodeContext(node, db, 1, "pxe").once("network_boot", lambda: None)
    db.update(node.hostname, stage="discover", status="quarantined", current="pxe", attempts=5)
    db.update(node.hostname, status="running", attempts=0)  # --retry-quarantined
    ran: list[str] = []
    assert NodeContext(node, db, 1, "pxe").once("network_boot", lambda: ran.append("cycle")) is False
    assert ran == []


def test_interrupt_stops_the_run_within_the_grace_and_names_where_each_node_was(db: StateDB) -> None:
    import time as clock

    release = threading.Event()

    class Stuck(FakeStage):
        """A stage waiting on something slow (a MAAS deployment) that does not look at the stop flag."""

        def run(self, node: Node, ctx: NodeContext) -> StageResult:
            self.calls.append(node.hostname)
            if node.hostname != "gpu-001-01":
                release.wait(30)
            return StageResult(True)

    flow = Workflow([FakeStage("discover"), Stuck("pxe"), FakeStage("os")], db, "os", backoff_s=0, grace_s=0.3)
    nodes = [make_node(1, slot) for slot in (1, 2, 3)]
    outcomes: list = []
    worker = threading.Thread(target=lambda: outcomes.extend(flow.run(nodes)))
    started = clock.monotonic()
    worker.start()
    while db.node("gpu-001-01").status != "done" or len(flow.stages["pxe"].calls) < 3:
        clock.sleep(0.01)
    flow.stop()
    worker.join(5)
    took = clock.monotonic() - started
    release.set()
    assert not worker.is_alive() and took < 3
    by_name = {o.hostname: o for o in outcomes}
    assert by_name["gpu-001-01"].status == "done"
    for name in ("gpu-001-02", "gpu-001-03"):
        assert (by_name[name].status, by_name[name].current, by_name[name].stage) == ("interrupted", "pxe", "discover")
        assert "interrupted during pxe" in by_name[name].detail
        recorded = db.node(name)  # resumable: the stage in flight is run again by the next run
        assert (recorded.stage, recorded.status, recorded.current) == ("discover", "running", "pxe")
    clock.sleep(0.1)  # the abandoned stage finishing later must not write over the recorded state
    assert db.node("gpu-001-02").stage == "discover"


def test_sigterm_interrupts_a_run_in_the_main_thread_like_ctrl_c(db: StateDB) -> None:
    import os
    import signal

    class SlowForever(FakeStage):
        def run(self, node: Node, ctx: NodeContext) -> StageResult:
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
            threading.Event().wait(30)
            return StageResult(True)

    before = signal.getsignal(signal.SIGTERM)
    flow = Workflow([SlowForever("discover"), FakeStage("pxe"), FakeStage("os")], db, "os", grace_s=0.2)
    [outcome] = flow.run([make_node(1, 1)])
    assert (outcome.status, outcome.current) == ("interrupted", "discover")
    assert flow.interrupted == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_step_interrupted_after_it_took_effect_is_not_run_again_on_resume(db: StateDB) -> None:
    """Killed between the reset and its journal line: the resume sees the effect and does not send it again."""
    node = make_node(1, 1)
    sent: list[str] = []

    def killed_mid_step() -> None:
        sent.append("reset")
        raise KeyboardInterrupt  # stands in for SIGKILL right after the BMC accepted the reset

    with pytest.raises(KeyboardInterrupt):
        NodeContext(node, db, 1, "pxe").once("network_boot", killed_mid_step, detail={"power_state": "Off"})
    seen: list[dict] = []

    def landed(detail: dict) -> bool:
        seen.append(detail)
        return True  # the node is On now

    resumed = NodeContext(node, db, 1, "pxe")
    assert resumed.once("network_boot", lambda: sent.append("reset"), landed=landed) is False
    assert sent == ["reset"] and seen == [{"power_state": "Off"}]
    assert db.step_done(node.hostname, 1, "pxe", "network_boot")
    events = [e.event for e in db.entries(node.hostname)]
    assert events == ["network_boot:started", "network_boot:landed"]


def test_a_step_interrupted_before_it_took_effect_runs_again(db: StateDB) -> None:
    node = make_node(1, 1)
    db.mark_step(node.hostname, 1, "pxe", "network_boot", "started")
    sent: list[str] = []
    assert NodeContext(node, db, 1, "pxe").once("network_boot", lambda: sent.append("reset"),
                                                landed=lambda detail: False) is True
    assert sent == ["reset"]


def test_a_state_store_failing_mid_run_fails_that_node_with_the_reason_not_the_process(db: StateDB) -> None:
    from fleet.errors import StateError

    class FullDisk(StateDB):
        def record(self, hostname: str, fields: dict[str, object], stage: str, event: str, **detail: object) -> None:
            if hostname == "gpu-001-02" and fields.get("stage") == "discover":
                raise StateError("the state file state.db cannot be written or read (database or disk is full)")
            super().record(hostname, fields, stage, event, **detail)

    full = FullDisk(db.path, run_id="full")
    outcomes = {o.hostname: o for o in Workflow(stages(), full, "os", backoff_s=0).run(
        [make_node(1, 1), make_node(1, 2)])}
    assert outcomes["gpu-001-01"].status == "done"
    assert outcomes["gpu-001-02"].status == "failed" and "disk is full" in outcomes["gpu-001-02"].detail


def test_a_node_stopped_between_stages_names_the_stage_it_would_have_run(db: StateDB) -> None:
    flow = Workflow(stages(), db, "os", backoff_s=0)

    class StopAfterDiscover(FakeStage):
        def run(self, node: Node, ctx: NodeContext) -> StageResult:
            flow.stop("SIGTERM")
            return StageResult(True)

    flow.stages["discover"] = StopAfterDiscover("discover")
    [outcome] = flow.run([make_node(1, 1)])
    assert (outcome.status, outcome.stage, outcome.current) == ("interrupted", "discover", "pxe")
    assert "interrupted before pxe (SIGTERM)" in outcome.detail


@pytest.mark.parametrize(("status", "permanent"), [
    (401, True), (404, True), (500, False), (503, False), ("not JSON", True), ("tls", True),
    ("connection", False), ("timeout", False), (None, False),
])
def test_only_answers_that_cannot_change_are_not_retried(status: object, permanent: bool) -> None:
    assert refused(BmcError("x", status=status)) is permanent  # type: ignore[arg-type]


def test_every_node_thread_exists_before_any_node_starts_working(db: StateDB) -> None:
    """The last node must not start late behind a thousand busy ones: all threads first, then go."""
    nodes = [make_node(rack, slot) for rack in range(50, 60) for slot in (1, 2, 3, 4)]
    names = {f"node-{node.hostname}" for node in nodes}
    alive: list[int] = []

    class Count(FakeStage):
        def run(self, node: Node, ctx: NodeContext) -> StageResult:
            alive.append(sum(thread.name in names for thread in threading.enumerate()))
            return StageResult(True)

    pipeline = stages()
    pipeline[0] = Count("discover")
    Workflow(pipeline, db, "os", backoff_s=0).run(nodes)
    assert alive[0] == len(nodes)


def test_a_closed_record_gate_waits_for_the_write_under_way_and_lets_none_in_after() -> None:
    gate = RecordGate()
    inside, release, closed = threading.Event(), threading.Event(), threading.Event()

    def write() -> None:
        with gate.open() as recording:
            assert recording
            inside.set()
            release.wait()

    def close() -> None:
        gate.close()
        closed.set()

    writer = threading.Thread(target=write)
    writer.start()
    inside.wait()
    closer = threading.Thread(target=close)
    closer.start()
    assert not closed.wait(0.2)  # the write under way is waited for
    release.set()
    assert closed.wait(5)
    with gate.open() as recording:
        assert not recording
    writer.join()
    closer.join()


def test_a_run_reads_the_records_once_and_walks_on_what_it_wrote(db: StateDB) -> None:
    """1,280 node threads reading their record at every stage queue on the store; one read serves all."""
    reads: list[str] = []

    class Counting(StateDB):
        def node(self, hostname: str) -> NodeState:
            reads.append(hostname)
            return super().node(hostname)

    counting = Counting(db.path, run_id="count")
    counting.record("gpu-001-02", {"stage": "discover", "status": "running"}, "discover", "stage:ok")
    nodes = [make_node(1, slot) for slot in (1, 2, 3, 4)]
    pipeline = stages()
    outcomes = Workflow(pipeline, counting, "os", backoff_s=0).run(nodes)
    assert reads == []
    assert [o.status for o in outcomes] == ["done"] * 4
    assert pipeline[0].calls.count("gpu-001-02") == 0  # its recorded stage was read, in the one read
    assert {state.hostname: state.stage for state in counting.nodes()} == {n.hostname: "os" for n in nodes}
