"""Finding -> the least disruptive fix -> who owns it; and the watch loop's guards.

Everything here is a pure function over plain values, so the table and the guards are unit-tested
row by row and the watch loop (which acts) stays thin.

The table follows two sources the checks already carry:
- NVIDIA's Xid catalogue buckets (healthcheck/xid.py keeps the catalogue; the gpu_xid finding names
  our action: "restart the application", "reset the GPU", "reboot the node", "replace hardware");
  https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html ("Resolution Bucket").
- each check's own "fix" text, which says who acts and what they do ("node owner: drain and reset
  GPU 3 (nvidia-smi -r)", "datacenter tech: reseat ...", "open an RMA ...").
A fix is a ladder, least disruptive first, ending in hands: the same cause seen again after a fix
climbs one rung. A finding the table does not know goes to hands with the check's own fix text:
the loop never guesses a disruptive action.

Why a GPU ladder goes from a reset straight to a reimage, then hands: when a reset did not clear the
fault, a warm reboot re-runs the same driver and firmware state; a reimage power-cycles the node
(MAAS powers it off and on to deploy) and lays down a fresh driver and fabric manager, which rules
out software state, and vendors ask for exactly that (a clean OS, diagnostics) before they accept an
RMA. A GPU that fell off the bus (Xid 79) is the exception: NVIDIA's bucket for it is a reboot.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class Fix(enum.Enum):
    """Fixes by how much they disturb, least first (the order a ladder climbs)."""

    NONE = "none"  # the node stays in service (the workload owner restarts the job)
    RESET_GPU = "reset_gpu"  # nvidia-smi -r on the GPU, only with the GPU idle
    RESTART_FABRIC_MANAGER = "restart_fabric_manager"
    ISOLATE_PORT = "isolate_port"  # the fabric triage takes the IB port out of routing
    REBOOT = "reboot"
    REIMAGE = "reimage"
    HANDS = "hands"  # an RMA or a ticket: a person with the node in front of them

    @property
    def disruptive(self) -> bool:
        """Needs the node drained in the scheduler first."""
        return self not in (Fix.NONE, Fix.HANDS)


_ORDER = {fix: rank for rank, fix in enumerate(Fix)}

# Who acts, as the checks' fix texts name them.
NODE_OWNER = "node owner"
DATACENTER_TECH = "datacenter tech"
FABRIC_OWNER = "fabric owner"
WORKLOAD_OWNER = "workload owner"
VENDOR = "vendor (RMA)"
_OWNERS = (NODE_OWNER, DATACENTER_TECH, FABRIC_OWNER, WORKLOAD_OWNER)

_GPU = (Fix.RESET_GPU, Fix.REIMAGE, Fix.HANDS)
_NODE = (Fix.REBOOT, Fix.REIMAGE, Fix.HANDS)
_SOFTWARE = (Fix.REIMAGE, Fix.HANDS)
_FABRIC_MANAGER = (Fix.RESTART_FABRIC_MANAGER, Fix.REBOOT, Fix.REIMAGE, Fix.HANDS)
_NVLINK = (Fix.RESET_GPU, Fix.RESTART_FABRIC_MANAGER, Fix.REBOOT, Fix.HANDS)
_PORT = (Fix.ISOLATE_PORT, Fix.HANDS)
_HANDS = (Fix.HANDS,)
_STAYS = (Fix.NONE,)


@dataclass(frozen=True)
class Rule:
    """One row: a check (or '*') and a pattern on "message | fix" -> a ladder, its owner and why."""

    check: str
    pattern: str
    ladder: tuple[Fix, ...]
    owner: str
    why: str

    def matches(self, check: str, text: str) -> bool:
        return self.check in ("*", check) and re.search(self.pattern, text, re.IGNORECASE) is not None


# First match wins; specific rows before the keyword fallbacks at the end.
RULES: tuple[Rule, ...] = (
    # gpu_xid: the finding names our action for the Xid's catalogue bucket.
    Rule("gpu_xid", r": restart the application|: informational", _STAYS, WORKLOAD_OWNER,
         "Xid bucket RESTART_APP/IGNORE: the job faulted the GPU, the GPU is healthy"),
    Rule("gpu_xid", r": reset the GPU", _GPU, NODE_OWNER, "Xid bucket RESET_GPU"),
    Rule("gpu_xid", r": reboot the node", _NODE, NODE_OWNER, "Xid bucket RESTART_BM (GPU fell off the bus)"),
    Rule("gpu_xid", r": replace hardware|contact NVIDIA", _HANDS, VENDOR,
         "Xid bucket CHECK_MECHANICALS/CONTACT_SUPPORT"),
    Rule("nvswitch_sxid", r"reboot the node", _NODE, NODE_OWNER, "fatal SXid: a reboot resets the NVSwitches"),
    # GPU memory: a reset applies a pending row remap / page retirement and clears volatile ECC state.
    Rule("gpu_row_remap", r"row remapping failed", _HANDS, VENDOR, "no spare rows left: the GPU is replaced"),
    Rule("gpu_row_remap", r"remap pending", _GPU, NODE_OWNER, "a GPU reset applies the pending remap"),
    Rule("gpu_retired_pages", r"pending", _GPU, NODE_OWNER, "a GPU reset retires the pending pages"),
    Rule("gpu_ecc_errors", r"uncorrectable", _GPU, NODE_OWNER, "volatile DBE: reset, then RMA if they return"),
    Rule("gpu_ecc_mode", r"ECC is off", _SOFTWARE, NODE_OWNER, "configure turns ECC on; it applies at the reset"),
    Rule("gpu_nvlink", r"inactive", _NVLINK, NODE_OWNER, "reset the GPUs and restart the fabric manager"),
    Rule("gpu_count", r"GPUs visible", (Fix.REBOOT, Fix.HANDS), DATACENTER_TECH,
         "a power cycle may bring a GPU back; otherwise reseat/RMA"),
    Rule("fabric_manager", r".", _FABRIC_MANAGER, NODE_OWNER, "the fabric manager is a service: restart it"),
    # InfiniBand: take a bad link out of the fabric, then a person with a cable.
    Rule("ib_ports", r"HCAs present", (Fix.REBOOT, Fix.HANDS), DATACENTER_TECH,
         "a missing HCA may come back after a power cycle; otherwise reseat/RMA"),
    Rule("ib_ports", r"not ACTIVE: check the subnet manager", _HANDS, FABRIC_OWNER, "the subnet manager (UFM)"),
    Rule("ib_ports|ib_counters", r".", _PORT, DATACENTER_TECH, "isolate the port, then reseat/replace the cable"),
    Rule("kernel_modules", r".", _NODE, NODE_OWNER, "a module that did not load: reboot, then reinstall"),
    Rule("hung_processes", r".", (Fix.REBOOT, Fix.HANDS), NODE_OWNER, "processes in D state only go with a reboot"),
    Rule("os_pins|gpu_versions|docker|swap|gpu", r".", _SOFTWARE, NODE_OWNER, "software drift: reimage"),
    # Fallbacks on the fix text alone, for checks added later.
    Rule("*", r"\bRMA\b|reseat|replace|datacenter tech", _HANDS, DATACENTER_TECH, "the check asks for hands"),
    Rule("*", r"nvidia-smi -r|reset the GPU|reset GPU", _GPU, NODE_OWNER, "the check asks for a GPU reset"),
    Rule("*", r"reboot", _NODE, NODE_OWNER, "the check asks for a reboot"),
    Rule("*", r"reimage|rerun the configure", _SOFTWARE, NODE_OWNER, "the check asks for a reinstall"),
)


@dataclass(frozen=True)
class FindingRef:
    """One problem as the node reported it (a check's finding, or its summary when it had none)."""

    check: str
    verdict: str
    message: str
    fix: str


@dataclass(frozen=True)
class Remedy:
    """What the table says for one finding."""

    finding: FindingRef
    ladder: tuple[Fix, ...]
    owner: str
    why: str

    @property
    def cause(self) -> str:
        """The key the escalation ladder counts by: the check that failed."""
        return self.finding.check


def owner_of(fix_text: str, default: str) -> str:
    """The owner a check's fix text names first ("datacenter tech: reseat ..."), else the rule's."""
    lowered = fix_text.lower()
    named = [(lowered.find(o), o) for o in _OWNERS if o in lowered]
    if "rma" in lowered.split(":")[0] or lowered.startswith("open an rma"):
        return VENDOR
    return min(named)[1] if named else default


def remedy_for(finding: FindingRef, *, rules: Sequence[Rule] = RULES) -> Remedy:
    """The least disruptive ladder for one finding; unknown findings go to hands with their own fix text."""
    text = f"{finding.message} | {finding.fix}"
    for rule in rules:
        for check in rule.check.split("|"):
            if Rule(check, rule.pattern, rule.ladder, rule.owner, rule.why).matches(finding.check, text):
                owner = rule.owner if rule.owner in (VENDOR, WORKLOAD_OWNER) else owner_of(finding.fix, rule.owner)
                return Remedy(finding, rule.ladder, owner, rule.why)
    return Remedy(finding, _HANDS, owner_of(finding.fix, NODE_OWNER), "not in the table: the check's own fix text")


def findings_of(report: Mapping | None, checks: Iterable = (), *, verdicts: tuple[str, ...] = ("CRITICAL",)
                ) -> list[FindingRef]:
    """The node's findings at `verdicts`, from its own JSON report (healthcheck/README.md).

    `checks` (fleet.health.CheckOutcome) stands in when there is no report: the check's summary and fix.
    """
    found: list[FindingRef] = []
    for check in (report or {}).get("checks", []):
        if check.get("verdict") not in verdicts:
            continue
        rows = [f for f in check.get("findings", []) if f.get("verdict") in verdicts]
        if not rows:
            rows = [{"verdict": check["verdict"], "message": check.get("summary", ""), "fix": check.get("fix", "")}]
        found += [FindingRef(check["name"], f["verdict"], f.get("message", ""), f.get("fix", "")) for f in rows]
    if not found and report is None:
        found = [FindingRef(c.name, c.verdict, c.summary, c.fix) for c in checks if c.verdict in verdicts]
    return found


@dataclass(frozen=True)
class Attempt:
    """A fix already applied to a node (from the journal): for which cause, when."""

    cause: str
    fix: Fix
    at: float


@dataclass(frozen=True)
class Plan:
    """What the loop does next for one node."""

    fix: Fix
    remedy: Remedy | None
    rung: int  # 0 = the ladder's first fix
    reason: str

    @property
    def cause(self) -> str:
        return self.remedy.cause if self.remedy else ""


def _ladder(remedy: Remedy, available: frozenset[Fix]) -> tuple[Fix, ...]:
    """The remedy's ladder without the fixes this site cannot do (no fabric triage: no port isolation)."""
    rungs = tuple(f for f in remedy.ladder if f in available or f in (Fix.NONE, Fix.HANDS))
    return rungs or _HANDS


def plan_node(findings: Sequence[FindingRef], attempts: Sequence[Attempt], *, available: Iterable[Fix] = tuple(Fix),
              rules: Sequence[Rule] = RULES) -> Plan:
    """The next fix for a CRITICAL node, with the escalation ladder applied (pure).

    The node's worst remedy decides: a finding that needs hands outranks everything (no point resetting
    a GPU on a node that needs a cable), otherwise the most disruptive first step among the findings,
    because it covers the lesser ones (a reboot also resets the GPUs). Each earlier attempt for the
    same cause climbs one rung; after the last rung the node is left for hands.
    """
    if not findings:
        return Plan(Fix.NONE, None, 0, "no CRITICAL finding")
    can = frozenset(available)
    remedies = [remedy_for(f, rules=rules) for f in findings]

    def weight(r: Remedy) -> int:
        first = _ladder(r, can)[0]
        return len(_ORDER) if first is Fix.HANDS else _ORDER[first]

    lead = max(remedies, key=weight)
    rungs = _ladder(lead, can)
    tried = [a for a in attempts if a.cause == lead.cause]
    # A rung counts once it was tried; the next attempt is the rung after the most disruptive one tried.
    done = max((rungs.index(a.fix) for a in tried if a.fix in rungs), default=-1)
    rung = min(done + 1, len(rungs) - 1)
    if done >= 0 and rungs[rung] is Fix.HANDS:
        return Plan(Fix.HANDS, lead, rung,
                    f"{lead.cause}: every fix on its ladder was tried ({', '.join(f.value for f in rungs[:-1])})")
    fix = rungs[rung]
    step = f"rung {rung + 1} of {len(rungs)}" + (f", after {rungs[done].value}" if done >= 0 else "")
    return Plan(fix, lead, rung, f"{lead.cause}: {fix.value} ({lead.why}; {step})")


# ---- the watch loop's guards -------------------------------------------------------------------

@dataclass(frozen=True)
class Guards:
    """Limits on what the loop may do at once; each default errs on the side of doing less."""

    max_nodes: int = 2  # nodes in remediation at once, fleet-wide
    max_rack_percent: float = 25.0  # of a rack's nodes in remediation at once (at least one)
    cooldown_s: float = 1800.0  # no second fix of a node within this
    flap_transitions: int = 3  # OK<->CRITICAL changes within flap_window_s that hold a node
    flap_window_s: float = 3600.0
    escalation_window_s: float = 7 * 86400.0  # attempts older than this no longer count


def rack_limit(rack_size: int, guards: Guards) -> int:
    """How many nodes of a rack may be in remediation at once: X% of it, rounded down, at least one."""
    return max(1, math.floor(rack_size * guards.max_rack_percent / 100.0 + 1e-9))


@dataclass(frozen=True)
class Admission:
    admitted: tuple[str, ...]
    deferred: Mapping[str, str]  # node -> why it waits


def admit(candidates: Sequence[str], in_remediation: Iterable[str], rack_of: Mapping[str, int],
          rack_size: Mapping[int, int], guards: Guards) -> Admission:
    """Which candidates may start remediation now, in order, under the fleet and per-rack caps (pure)."""
    busy = list(dict.fromkeys(in_remediation))
    per_rack: dict[int, int] = {}
    for name in busy:
        per_rack[rack_of[name]] = per_rack.get(rack_of[name], 0) + 1
    admitted: list[str] = []
    deferred: dict[str, str] = {}
    for name in candidates:
        if name in busy:
            continue
        rack = rack_of[name]
        limit = rack_limit(rack_size[rack], guards)
        if len(busy) + len(admitted) >= guards.max_nodes:
            deferred[name] = f"{guards.max_nodes} node(s) already in remediation (watch.max_nodes)"
        elif per_rack.get(rack, 0) >= limit:
            deferred[name] = (f"rack {rack} already has {per_rack[rack]} of {rack_size[rack]} node(s) in remediation "
                              f"(watch.max_rack_percent {guards.max_rack_percent:g})")
        else:
            admitted.append(name)
            per_rack[rack] = per_rack.get(rack, 0) + 1
    return Admission(tuple(admitted), deferred)


def cooling_down(attempts: Sequence[Attempt], now: float, guards: Guards) -> float:
    """Seconds left before the node may be fixed again (0 when it may)."""
    last = max((a.at for a in attempts), default=None)
    return 0.0 if last is None else max(0.0, last + guards.cooldown_s - now)


def recent(attempts: Sequence[Attempt], now: float, guards: Guards) -> list[Attempt]:
    """The attempts the escalation ladder still counts."""
    return [a for a in attempts if now - a.at <= guards.escalation_window_s]


def is_flapping(history: Sequence[tuple[float, str]], now: float, guards: Guards) -> bool:
    """True when the node changed between OK and CRITICAL at least `flap_transitions` times in the window.

    `history` is (time, verdict) of the node's sweeps, oldest first; WARNING counts as OK (in service),
    UNKNOWN/UNREACHABLE do not count either way (we did not see the node).
    """
    states = [("ok" if v in ("OK", "WARNING") else "bad") for t, v in history
              if now - t <= guards.flap_window_s and v in ("OK", "WARNING", "CRITICAL")]
    changes = sum(1 for a, b in itertools.pairwise(states) if a != b)
    return changes >= guards.flap_transitions


# ---- the text a person gets ---------------------------------------------------------------------

@dataclass(frozen=True)
class NodeFacts:
    """What a ticket names the node by."""

    hostname: str
    service_tag: str
    rack: int
    slot: int
    vendor: str = "Dell"


_SERIAL = re.compile(r"serial ([A-Za-z0-9-]+)")


def ticket_text(node: NodeFacts, plan: Plan, findings: Sequence[FindingRef], sel_entries: Sequence[str] = (),
                attempts: Sequence[Attempt] = ()) -> str:
    """The RMA/ticket body for a node left for hands: service tag, serials, evidence, SEL, what was tried."""
    owner = plan.remedy.owner if plan.remedy else NODE_OWNER
    serials = sorted({m.group(1) for f in findings for m in _SERIAL.finditer(f"{f.message} {f.fix}")} - {"?"})
    lines = [
        f"{'RMA' if owner == VENDOR else 'Ticket'} for {node.hostname} ({node.vendor} service tag {node.service_tag}, "
        f"rack {node.rack} slot {node.slot}); owner: {owner}",
        f"Cause: {plan.reason}",
        f"Component serial(s): {', '.join(serials) if serials else 'not reported by the checks'}",
        "Evidence (node health checks):",
        *[f"  - [{f.verdict}] {f.check}: {f.message} -> {f.fix}" for f in findings],
        "Tried already: " + (", ".join(f"{a.fix.value} for {a.cause}" for a in attempts) or "nothing (hands first)"),
        "System event log (SEL):",
        *([f"  - {entry}" for entry in sel_entries] or ["  - (no entries read)"]),
        "The node stays drained in the scheduler and tagged fleet-quarantined in MAAS until "
        f"`provision.py return {node.hostname}`.",
    ]
    return "\n".join(lines)
