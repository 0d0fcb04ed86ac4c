"""The watch loop: its pure decision per node, and whole cycles against fakes and a real state DB."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.health import CheckOutcome, NodeHealth
from fleet.remediate import Attempt, FindingRef, Fix, Guards, NodeFacts
from fleet.state import StateDB
from fleet.watch import MANUAL, Memory, Watch, decide, gpu_bus_ids, remember
from fleet.workload.base import Job, NodeState

ECC = {"name": "gpu_ecc_errors", "verdict": "CRITICAL", "fix": "",
       "summary": "GPU 3 (00000000:5d:00.0, serial 1652826063903): 4 volatile uncorrectable ECC errors",
       "findings": [{"verdict": "CRITICAL", "message": "GPU 3 (00000000:5d:00.0, serial 1652826063903): 4 volatile "
                     "uncorrectable ECC errors", "fix": "node owner: drain and reset GPU 3 (nvidia-smi -r)"}]}
CABLE = {"name": "ib_ports", "verdict": "CRITICAL", "summary": "mlx5_3 port 1: DOWN/Polling", "fix": "",
         "findings": [{"verdict": "CRITICAL", "message": "mlx5_3 port 1: DOWN/Polling",
                       "fix": "datacenter tech: reseat or replace the cable/transceiver"}]}


def health(node: str, verdict: str, *checks: dict) -> NodeHealth:
    outcomes = tuple(CheckOutcome(c["name"], c["verdict"], c["summary"], c["fix"]) for c in checks)
    return NodeHealth(node, verdict, outcomes, report={"verdict": verdict, "checks": list(checks)})


GUARDS = Guards(max_nodes=2, max_rack_percent=25, cooldown_s=60, flap_transitions=3, flap_window_s=1000)
OUT = Memory(out_since=100.0, out_source="watch", out_reason="gpu_ecc_errors", last_verdict="CRITICAL",
             history=((100.0, "CRITICAL"),))


@pytest.mark.parametrize(("verdict", "memory", "action"), [
    ("OK", Memory(), "none"),
    ("CRITICAL", Memory(), "quarantine"),
    ("CRITICAL", OUT, "fix"),
    ("OK", OUT, "return"),
    ("UNREACHABLE", OUT, "wait"),
    ("CRITICAL", Memory(out_since=1.0, out_source=MANUAL, out_reason="fan noise"), "none"),
    ("OK", Memory(out_since=1.0, out_source=MANUAL, out_reason="fan noise"), "none"),
    ("CRITICAL", Memory(out_since=1.0, out_source="watch", hands_ticket="RMA ..."), "none"),
    ("CRITICAL", Memory(out_since=1.0, out_source="watch", drain_gave_up=True), "none"),
])
def test_the_decision_for_each_kind_of_node(verdict, memory, action):
    assert decide("n", health("n", verdict, ECC), memory, 200.0, GUARDS).action == action


def test_a_fix_waits_out_the_cooldown_and_then_climbs_the_ladder():
    memory = Memory(out_since=100.0, out_source="watch", attempts=(Attempt("gpu_ecc_errors", Fix.RESET_GPU, 150.0),),
                    last_verdict="CRITICAL")
    early = decide("n", health("n", "CRITICAL", ECC), memory, 180.0, GUARDS)
    assert early.action == "wait" and "cooling down for 30 s" in early.reason
    later = decide("n", health("n", "CRITICAL", ECC), memory, 211.0, GUARDS)
    assert (later.action, later.plan.fix) == ("fix", Fix.REIMAGE)


def test_a_cable_fault_is_left_for_hands_because_the_loop_isolates_no_host_port():
    decision = decide("n", health("n", "CRITICAL", CABLE), OUT, 200.0, GUARDS)
    assert decision.action == "hands"


def test_a_node_flipping_ok_critical_is_held():
    memory = Memory(out_since=100.0, out_source="watch", last_verdict="OK",
                    history=((100.0, "CRITICAL"), (150.0, "OK"), (170.0, "CRITICAL"), (180.0, "OK")))
    assert decide("n", health("n", "CRITICAL", ECC), memory, 200.0, GUARDS).action == "hold"


def test_bus_ids_come_from_the_findings():
    found = [FindingRef("gpu_ecc_errors", "CRITICAL", "GPU 3 (00000000:5d:00.0, serial 1): x", ""),
             FindingRef("gpu_row_remap", "CRITICAL", "GPU 3 (00000000:5d:00.0, serial 1): y", "")]
    assert gpu_bus_ids(found) == ["00000000:5d:00.0"]


class FakeScheduler:
    name = "slurm"

    def __init__(self):
        self.jobs_left: dict[str, int] = {}
        self.drained: dict[str, str] = {}
        self.resumed: list[str] = []

    def drain(self, node, cause):
        self.drained[node] = "fleet: " + cause

    def resume(self, node):
        self.drained.pop(node, None)
        self.resumed.append(node)

    def jobs(self, node):
        left = self.jobs_left.get(node, 0)
        self.jobs_left[node] = max(0, left - 1)
        return [Job("42", "alice", "running")] if left else []

    def state(self, node):
        return NodeState(node, "drained", self.drained[node]) if node in self.drained else NodeState(node, "idle")


class FakeTags:
    def __init__(self):
        self.tagged: set[str] = set()

    def tag(self, node):
        self.tagged.add(node)

    def untag(self, node):
        self.tagged.discard(node)


class FakeFixer:
    """Records fixes; `heals` says which fix makes the node's checks pass."""

    def __init__(self, world, heals: Fix):
        self.world, self.heals, self.applied = world, heals, []

    def apply(self, node, fix, findings):
        self.applied.append((node, fix))
        if fix is self.heals:
            self.world[node] = "OK"
        return True, f"{fix.value} done"


@pytest.fixture
def make_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Watch over fakes; the journal's clock is the test's (the journal is the loop's memory)."""
    clock = [1_800_000_000.0]
    monkeypatch.setattr("fleet.state.time.time", lambda: clock[0])

    def make(world: dict[str, str], heals: Fix = Fix.REIMAGE, burnin=None, **guards):
        return _make_watch(tmp_path, world, clock, heals, burnin, **guards)

    return make


def _make_watch(tmp_path: Path, world: dict[str, str], clock: list[float], heals: Fix, burnin, **guards):
    db = StateDB(tmp_path / "state.db")
    scheduler, tags = FakeScheduler(), FakeTags()
    fixer = FakeFixer(world, heals)

    def sweep(names):
        return [health(n, world[n], ECC if n.startswith("sick") else CABLE) if world[n] == "CRITICAL"
                else health(n, world[n]) for n in names]

    facts = {n: NodeFacts(n, f"TAG{i}", 1 + i // 4, 1 + i % 4) for i, n in enumerate(sorted(world))}
    watch = Watch(db=db, guards=Guards(**{"cooldown_s": 10, **guards}), manager=scheduler, tagger=tags, fixer=fixer,
                  sweep=sweep, facts=facts, drain_timeout_s=100, sel=lambda n: ["SEL: PSU 2 lost input"],
                  burnin=burnin, clock=lambda: clock[0])
    return watch, db, scheduler, tags, fixer, clock


def test_a_sick_node_is_drained_waits_for_its_job_is_reset_then_reimaged_and_returned(make_watch):
    world = {"sick-1": "CRITICAL", "good-1": "OK", "good-2": "OK", "good-3": "OK"}
    watch, db, scheduler, tags, fixer, clock = make_watch(world)
    scheduler.jobs_left["sick-1"] = 1  # one poll still sees the job
    first = watch.cycle(list(world))
    assert first.outcomes["sick-1"].startswith("quarantined and drained")
    assert scheduler.drained["sick-1"].startswith("fleet: gpu_ecc_errors: GPU 3")
    assert "sick-1" in tags.tagged and db.node("sick-1").status == "quarantined"
    clock[0] += 30
    assert watch.cycle(list(world)).outcomes["sick-1"].startswith("draining: waiting for job(s) 42 (alice)")
    assert fixer.applied == []
    clock[0] += 30
    third = watch.cycle(list(world))
    assert fixer.applied == [("sick-1", Fix.RESET_GPU)]
    assert "still CRITICAL" in third.outcomes["sick-1"]
    clock[0] += 5
    assert watch.cycle(list(world)).decisions[0].action == "wait"  # cooling down
    clock[0] += 10
    fifth = watch.cycle(list(world))
    assert fixer.applied[-1] == ("sick-1", Fix.REIMAGE)
    assert fifth.outcomes["sick-1"].endswith("returned")
    assert scheduler.resumed == ["sick-1"] and "sick-1" not in tags.tagged
    assert db.node("sick-1").status == "done"
    events = [e.event for e in db.entries("sick-1") if e.stage == "watch"]
    assert events == ["verdict", "quarantine", "remediate", "remediated", "verdict", "remediate", "remediated",
                      "verdict", "returning", "returned"]
    assert remember(db.entries("sick-1")).out_since is None


def test_a_needs_hands_node_stays_drained_with_its_ticket_written_once(make_watch):
    world = {"cable-1": "CRITICAL"}
    watch, db, scheduler, tags, fixer, clock = make_watch(world)
    watch.cycle(["cable-1"])
    clock[0] += 30
    report = watch.cycle(["cable-1"])
    ticket = report.tickets["cable-1"]
    assert "service tag TAG0" in ticket and "mlx5_3 port 1: DOWN/Polling" in ticket and "PSU 2 lost input" in ticket
    clock[0] += 30
    assert watch.cycle(["cable-1"]).tickets == {}
    assert fixer.applied == [] and "cable-1" in scheduler.drained and "cable-1" in tags.tagged
    assert [e.event for e in db.entries("cable-1")].count("hands") == 1


def test_only_one_node_of_a_rack_is_fixed_at_a_time_and_the_fleet_cap_holds(make_watch):
    world = {"sick-1": "CRITICAL", "sick-2": "CRITICAL", "sick-3": "CRITICAL", "sick-4": "CRITICAL",
             "sick-5": "CRITICAL"}
    watch, _db, _scheduler, _tags, fixer, clock = make_watch(world, heals=Fix.NONE, max_nodes=2)
    watch.cycle(list(world))  # all quarantined
    clock[0] += 30
    report = watch.cycle(list(world))
    fixed = [node for node, _fix in fixer.applied]
    assert fixed == ["sick-1", "sick-5"]  # racks 1 and 2 (sick-5 is the first node of rack 2)
    assert "rack 1" in report.deferred["sick-2"]


def test_a_drain_that_outlives_the_deadline_is_reported_and_the_node_left_drained(make_watch):
    world = {"sick-1": "CRITICAL"}
    watch, _db, scheduler, _tags, fixer, clock = make_watch(world)
    scheduler.jobs_left["sick-1"] = 1000
    watch.cycle(["sick-1"])
    clock[0] += 150
    report = watch.cycle(["sick-1"])
    assert "gave up waiting for job(s) 42 (alice)" in report.outcomes["sick-1"]
    clock[0] += 30
    watch.cycle(["sick-1"])
    assert fixer.applied == [] and "sick-1" in scheduler.drained


def test_a_manual_quarantine_is_never_fixed_or_returned_by_the_loop(make_watch):
    world = {"good-1": "OK"}
    watch, db, scheduler, tags, _fixer, clock = make_watch(world)
    watch.quarantine("good-1", "fan noise", "manual", source=MANUAL)
    clock[0] += 30
    watch.cycle(["good-1"])
    assert db.node("good-1").status == "quarantined" and "good-1" in scheduler.drained
    assert watch.give_back("good-1", "by hand (OK)") == "returned"
    assert db.node("good-1").status == "done" and "good-1" not in tags.tagged


WRONG_MATH = FindingRef("burnin_gpu_math", "CRITICAL", "GPU 3 (00000000:5d:00.0, serial 1652826063903): 12 wrong "
                        "products", "open an RMA with Dell for GPU serial 1652826063903")


def test_a_fixed_node_returns_only_after_its_burn_in_passes(make_watch):
    world = {"sick-1": "CRITICAL"}
    runs = []

    def burnin(node):
        runs.append(node)
        return True, "burn-in healthy", []

    watch, db, _scheduler, _tags, _fixer, clock = make_watch(world, heals=Fix.RESET_GPU, burnin=burnin)
    watch.cycle(["sick-1"])
    clock[0] += 30
    report = watch.cycle(["sick-1"])
    assert runs == ["sick-1"] and report.outcomes["sick-1"].endswith("returned")
    assert [e.detail["ok"] for e in db.entries("sick-1") if e.event == "burnin"] == [True]


def test_a_failed_burn_in_leaves_the_node_for_hands_even_though_its_health_checks_pass(make_watch):
    world = {"sick-1": "CRITICAL"}
    watch, db, scheduler, tags, _fixer, clock = make_watch(
        world, heals=Fix.RESET_GPU, burnin=lambda node: (False, "burn-in CRITICAL: burnin_gpu_math", [WRONG_MATH]))
    watch.cycle(["sick-1"])
    clock[0] += 30
    report = watch.cycle(["sick-1"])
    assert "left for hands" in report.outcomes["sick-1"]
    assert "12 wrong products" in report.tickets["sick-1"] and "1652826063903" in report.tickets["sick-1"]
    clock[0] += 30
    later = watch.cycle(["sick-1"])  # the health checks pass now; the burn-in verdict stands
    assert later.decisions[0].action == "none" and "burn-in" in later.decisions[0].reason
    assert "sick-1" in scheduler.drained and "sick-1" in tags.tagged and db.node("sick-1").status == "quarantined"
