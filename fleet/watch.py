"""The day-2 loop: sweep, quarantine and drain, fix by cause, re-validate, return.

One cycle (`Watch.cycle`) is: sweep the selected nodes; for each node decide (pure, `decide`) from its
verdict, its findings and its journal; then act. Everything the loop does is journaled under the stage
`watch` before it is done, and the journal is also the loop's memory, so a cycle run by a systemd timer
(`provision.py watch --once`) knows as much as a long-running foreground loop:

- `verdict` {verdict}: only when a node's verdict changes (the flapping guard reads these);
- `quarantine` {reason, cause, source}: out of service from here (MAAS tag, state DB, scheduler drain);
- `drain_gave_up` {detail}: its jobs outlived `watch.drain_timeout_s`; it stays drained, a person decides;
- `remediate` {fix, cause, rung, reason} before a fix, `remediated` {fix, ok, detail} after;
- `hands` {ticket}: left for a person, with the RMA/ticket text; `held` {why}: flapping;
- `burnin` {ok, detail}: the burn-in a node passes before it returns (`watch.burnin`); a failed one
  leaves the node for hands with the burn-in's findings in the ticket;
- `returned` {verdict}: back in service.
A node quarantined by hand (`provision.py quarantine`) is never fixed or returned by the loop.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fleet.health import NodeHealth
from fleet.remediate import (
    Attempt,
    FindingRef,
    Fix,
    Guards,
    NodeFacts,
    Plan,
    admit,
    cooling_down,
    findings_of,
    is_flapping,
    plan_node,
    recent,
    ticket_text,
)
from fleet.state import JournalEntry, StateDB
from fleet.workload.base import WorkloadError, WorkloadManager, resume_if_ours

log = logging.getLogger(__name__)

STAGE = "watch"
QUARANTINE_TAG = "fleet-quarantined"
PASSING = ("OK", "WARNING")
MANUAL = "manual"
# The fixes the loop applies itself. Port isolation is not among them: the fabric triage follows NVIDIA's
# PDR plugin, which never isolates a switch-to-host link (that cuts a node off a rail), so a node's own
# bad port is a drain-and-fix job for hands.
AVAILABLE = frozenset({Fix.RESET_GPU, Fix.RESTART_FABRIC_MANAGER, Fix.REBOOT, Fix.REIMAGE})


# ---- the node's memory, from the journal -------------------------------------------------------

@dataclass(frozen=True)
class Memory:
    """What the journal says about one node, as far as the loop cares."""

    out_since: float | None = None  # when it was last quarantined (None: in service)
    out_source: str = ""
    out_reason: str = ""
    attempts: tuple[Attempt, ...] = ()
    history: tuple[tuple[float, str], ...] = ()  # (time, verdict) of each verdict change
    last_verdict: str = ""
    hands_ticket: str = ""  # the ticket written in this out-of-service episode, if any
    drain_gave_up: bool = False
    held: bool = False
    burnin_failed: bool = False


def remember(entries: Iterable[JournalEntry]) -> Memory:
    """Fold a node's journal (oldest first) into its Memory (pure)."""
    out_since, source, reason, ticket, gave_up, held, burnt = None, "", "", "", False, False, False
    attempts: list[Attempt] = []
    history: list[tuple[float, str]] = []
    for entry in entries:
        if entry.event == "quarantine":
            if out_since is None:
                out_since, ticket, gave_up, held, burnt = entry.ts, "", False, False, False
            source = str(entry.detail.get("source", entry.stage))
            reason = str(entry.detail.get("reason", ""))
        elif entry.stage != STAGE:
            continue
        elif entry.event == "verdict":
            history.append((entry.ts, str(entry.detail.get("verdict", ""))))
        elif entry.event == "remediate":
            attempts.append(Attempt(str(entry.detail.get("cause", "")), Fix(entry.detail.get("fix", "hands")),
                                    entry.ts))
        elif entry.event == "hands":
            ticket = str(entry.detail.get("ticket", ""))
        elif entry.event == "drain_gave_up":
            gave_up = True
        elif entry.event == "held":
            held = True
        elif entry.event == "burnin":
            burnt = not entry.detail.get("ok", False)
        elif entry.event == "returned":
            out_since, source, reason, ticket, gave_up, held, burnt = None, "", "", "", False, False, False
    return Memory(out_since, source, reason, tuple(attempts), tuple(history),
                  history[-1][1] if history else "", ticket, gave_up, held, burnt)


# ---- the pure decision --------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    node: str
    action: str  # none, quarantine, return, fix, hands, hold, wait
    reason: str
    plan: Plan | None = None
    findings: tuple[FindingRef, ...] = ()


def decide(node: str, health: NodeHealth, memory: Memory, now: float, guards: Guards,
           available: Iterable[Fix] = AVAILABLE) -> Decision:
    """What to do with one node this cycle, before the fleet-wide caps are applied (pure)."""
    findings = tuple(findings_of(health.report, health.checks))
    out = memory.out_since is not None
    history = [*memory.history, (now, health.verdict)] if health.verdict != memory.last_verdict else memory.history
    if not out:
        if health.verdict == "CRITICAL":
            return Decision(node, "quarantine", health.reason, None, findings)
        return Decision(node, "none", f"in service ({health.verdict})")
    if memory.out_source == MANUAL:
        return Decision(node, "none", f"quarantined by hand: {memory.out_reason}")
    if memory.held:
        return Decision(node, "none", "held: flapping between OK and CRITICAL")
    if memory.burnin_failed:
        return Decision(node, "none", "failed its burn-in: left for hands (ticket written)")
    if is_flapping(history, now, guards):
        return Decision(node, "hold", f"flapping: {guards.flap_transitions}+ OK/CRITICAL changes within "
                        f"{guards.flap_window_s:.0f} s")
    if health.verdict in PASSING:
        return Decision(node, "return", f"passes its health checks ({health.verdict})")
    if health.verdict != "CRITICAL":
        return Decision(node, "wait", f"cannot verify it ({health.verdict}: {health.reason})")
    if memory.hands_ticket:
        return Decision(node, "none", "left for hands (ticket written)")
    if memory.drain_gave_up:
        return Decision(node, "none", "its jobs outlived the drain deadline: a person decides")
    plan = plan_node(findings, recent(memory.attempts, now, guards), available=available)
    if plan.fix is Fix.HANDS:
        return Decision(node, "hands", plan.reason, plan, findings)
    if plan.fix is Fix.NONE:
        return Decision(node, "wait", f"no fix applies: {plan.reason}", plan, findings)
    left = cooling_down(memory.attempts, now, guards)
    if left > 0:
        return Decision(node, "wait", f"cooling down for {left:.0f} s more before {plan.fix.value}", plan, findings)
    return Decision(node, "fix", plan.reason, plan, findings)


# ---- acting ------------------------------------------------------------------------------------

class Fixer(Protocol):
    def apply(self, node: str, fix: Fix, findings: Sequence[FindingRef]) -> tuple[bool, str]:
        """Apply one fix to a drained node: (worked, what happened)."""
        ...


class Tagger(Protocol):
    def tag(self, node: str) -> None: ...

    def untag(self, node: str) -> None: ...


@dataclass
class CycleReport:
    started: float
    decisions: list[Decision] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)
    tickets: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"started": self.started,
                "nodes": [{"node": d.node, "action": d.action, "reason": d.reason,
                           "fix": d.plan.fix.value if d.plan else "", "outcome": self.outcomes.get(d.node, ""),
                           "deferred": self.deferred.get(d.node, ""), "ticket": self.tickets.get(d.node, "")}
                          for d in self.decisions]}


_BUS = re.compile(r"\(([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])")


def gpu_bus_ids(findings: Sequence[FindingRef]) -> list[str]:
    """The PCI bus ids the findings name ("GPU 3 (00000000:5d:00.0, serial ...)"), in order, once each."""
    return list(dict.fromkeys(m.group(1) for f in findings for m in _BUS.finditer(f.message)))


class Watch:
    """One site's loop: sweeps through `sweep`, acts through the scheduler, MAAS tags and a Fixer."""

    def __init__(self, *, db: StateDB, guards: Guards, manager: WorkloadManager, tagger: Tagger, fixer: Fixer,
                 sweep: Callable[[Sequence[str]], list[NodeHealth]], facts: Mapping[str, NodeFacts],
                 drain_timeout_s: float, sel: Callable[[str], list[str]] = lambda node: [],
                 burnin: Callable[[str], tuple[bool, str, list[FindingRef]]] | None = None,
                 clock: Callable[[], float] = time.time, available: Iterable[Fix] = AVAILABLE) -> None:
        self.db, self.guards, self.manager, self.tagger, self.fixer = db, guards, manager, tagger, fixer
        self.sweep, self.facts, self.drain_timeout_s, self.sel, self.clock = sweep, facts, drain_timeout_s, sel, clock
        self.available = frozenset(available)
        self.burnin = burnin

    def _j(self, node: str, event: str, **detail: object) -> None:
        self.db.journal(node, STAGE, event, **detail)

    def cycle(self, nodes: Sequence[str]) -> CycleReport:
        now = self.clock()
        report = CycleReport(now)
        results = {r.node: r for r in self.sweep(nodes)}
        memories = {name: remember(self.db.entries(name)) for name in nodes}
        for name in nodes:
            health = results[name]
            if health.verdict != memories[name].last_verdict:
                self._j(name, "verdict", verdict=health.verdict)
            report.decisions.append(decide(name, health, memories[name], now, self.guards, self.available))
        fixing = [d for d in report.decisions if d.action == "fix"]
        busy = [d.node for d in report.decisions if d.action == "wait" and memories[d.node].out_since is not None]
        admission = admit([d.node for d in fixing], busy, {n: self.facts[n].rack for n in nodes},
                          self._rack_sizes(), self.guards)
        report.deferred.update(admission.deferred)
        for decision in report.decisions:
            if decision.node in admission.deferred:
                continue
            outcome = self._act(decision, memories[decision.node], report)
            if outcome:
                report.outcomes[decision.node] = outcome
        return report

    def _rack_sizes(self) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for facts in self.facts.values():
            sizes[facts.rack] = sizes.get(facts.rack, 0) + 1
        return sizes

    def _act(self, decision: Decision, memory: Memory, report: CycleReport) -> str:
        node = decision.node
        if decision.action == "quarantine":
            return self.quarantine(node, decision.reason, decision.findings[0].check if decision.findings else "")
        if decision.action == "return":
            return self._burn_in_and_return(node, decision.reason, memory, report)
        if decision.action == "hold":
            self._j(node, "held", why=decision.reason)
            return f"held: {decision.reason}"
        if decision.action == "hands" and decision.plan:
            ticket = self._ticket(node, decision, memory)
            report.tickets[node] = ticket
            return "left for hands"
        if decision.action == "fix" and decision.plan:
            return self._fix(node, decision, memory, report)
        return ""

    def quarantine(self, node: str, reason: str, cause: str, *, source: str = STAGE) -> str:
        """Out of service: journal first, then the state DB, the MAAS tag and the scheduler's drain."""
        self._j(node, "quarantine", reason=reason, cause=cause, source=source)
        self.db.update(node, status="quarantined", current=STAGE, last_error=f"{source}: {reason}")
        self.tagger.tag(node)
        try:
            self.manager.drain(node, reason)
        except WorkloadError as err:
            self._j(node, "drain_failed", error=str(err))
            return f"quarantined; drain failed: {err}"
        return f"quarantined and drained ({self.manager.name})"

    def give_back(self, node: str, reason: str) -> str:
        """Back in service: resume (only a drain the fleet set), remove the tag, mark done; journaled first."""
        self._j(node, "returning", reason=reason)
        try:
            resumed = resume_if_ours(self.manager, node)
        except WorkloadError as err:
            self._j(node, "resume_failed", error=str(err))
            return f"not returned: {err}"
        self.tagger.untag(node)
        self.db.update(node, status="done", current="", last_error="")
        self._j(node, "returned", verdict=reason, resumed=resumed)
        return "returned" + ("" if resumed else f" (its drain in {self.manager.name} was not ours: left as is)")

    def _burn_in_and_return(self, node: str, reason: str, memory: Memory, report: CycleReport) -> str:
        """Return a node the loop fixed, after its burn-in passes (when the site burns nodes in)."""
        if self.burnin is None:
            return self.give_back(node, reason)
        ok, detail, findings = self.burnin(node)
        self._j(node, "burnin", ok=ok, detail=detail)
        if ok:
            return self.give_back(node, f"{reason}; {detail}")
        plan = Plan(Fix.HANDS, None, 0, f"burn-in failed after the health checks passed: {detail}")
        ticket = self._ticket(node, Decision(node, "hands", plan.reason, plan, tuple(findings)), memory)
        report.tickets[node] = ticket
        return f"{detail}: left for hands ({ticket.splitlines()[0]})"

    def _ticket(self, node: str, decision: Decision, memory: Memory) -> str:
        assert decision.plan is not None
        try:
            sel = self.sel(node)
        except Exception as err:  # noqa: BLE001 - the ticket must be written even when the BMC cannot be read
            sel = [f"(SEL not readable: {err})"]
        text = ticket_text(self.facts[node], decision.plan, decision.findings, sel,
                           [a for a in memory.attempts if a.at >= (memory.out_since or 0)])
        self._j(node, "hands", ticket=text, owner=decision.plan.remedy.owner if decision.plan.remedy else "")
        self.db.update(node, status="quarantined", current=STAGE, last_error=f"watch: needs hands: {decision.reason}")
        log.warning("node %s: left for hands:\n%s", node, text)
        return text

    def _fix(self, node: str, decision: Decision, memory: Memory, report: CycleReport) -> str:
        assert decision.plan is not None
        plan = decision.plan
        if plan.fix.disruptive:
            jobs = self.manager.jobs(node)
            if jobs:
                waited = self.clock() - (memory.out_since or self.clock())
                names = ", ".join(f"{j.job_id} ({j.user})" for j in jobs)
                if waited < self.drain_timeout_s:
                    return f"draining: waiting for job(s) {names}"
                self._j(node, "drain_gave_up", detail=f"job(s) {names} still running after {waited:.0f} s")
                return f"gave up waiting for job(s) {names} after {waited:.0f} s; stays drained"
        self._j(node, "remediate", fix=plan.fix.value, cause=plan.cause, rung=plan.rung, reason=plan.reason)
        ok, detail = self.fixer.apply(node, plan.fix, decision.findings)
        self._j(node, "remediated", fix=plan.fix.value, ok=ok, detail=detail)
        if not ok:
            return f"{plan.fix.value} failed: {detail}"
        [after] = self.sweep([node])
        self._j(node, "verdict", verdict=after.verdict)
        if after.verdict in PASSING:
            passed = f"passes after {plan.fix.value}"
            return f"{plan.fix.value}: {detail}; " + self._burn_in_and_return(node, passed, memory, report)
        return f"{plan.fix.value}: {detail}; still {after.verdict}: {after.reason}"
