"""Bad-port triage: which ports to isolate, from UFM's events and counter deltas. Pure.

The thresholds are NVIDIA's, from the Port Deterministic Isolation (PDR) plugin that ships with UFM
(github.com/Mellanox/ufm_sdk_3.0, plugins/pdr_deterministic_plugin: constants.py, pdr_algorithm.py and
build/config/pdr_deterministic.conf):
- symbol BER above 1e-14 over at least 12 minutes (BER_THRESHOLDS_INTERVALS (12 * 60, 2.88): 2.88
  symbol errors in 12 minutes is exactly 1e-14 at 400 Gb/s); a shorter window is not judged;
- LinkDownedCounter rising on *both* ends of a link (check_link_down_issue), which is a link going
  down rather than a peer rebooting;
- ports the subnet manager itself marked unhealthy (app/unhealthy_ports, not yet isolated);
- flapping: repeated "Link went down" events for the same port;
- at most MAX_NUM_ISOLATE ports isolated, "max(10, 0.5% * fabric_size)", and no isolation of a
  switch-to-host link by default (SWITCH_TO_HOST_ISOLATION=False): that would cut a node off a rail,
  which is a drain-and-fix job for the node, not a routing decision.
Events come in storms: one switch rebooting logs one event per port in the same second. Events with
the same name from the same system in the same second (UFM's timestamps have one-second resolution)
are one cause; they are reported once and never turned into per-port isolations. Past the cap the plan
refuses to isolate anything and says why, because a storm of isolations is usually one upstream cause.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleet.fabric.cabling import SPEED_GBPS
from fleet.fabric.topology import Place
from fleet.fabric.ufm import Port

LINK_DOWN_EVENT = "Link went down"
SYMBOL = "SymbolErrorCounter"
LINK_DOWNED = "LinkDownedCounter"


@dataclass(frozen=True)
class TriageSettings:
    max_ber: float = 1e-14
    ber_min_window_s: float = 720.0
    flap_downs: int = 3
    burst_min_events: int = 5
    events_window_s: float = 3600.0  # events older than this before the first snapshot are history, not evidence
    isolate_access_links: bool = False
    max_isolated: int | None = None  # the site's fabric.max_isolated; None: max(10, 0.5% of the fabric's ports)


@dataclass(frozen=True)
class Cause:
    """Many events, one cause: same event name, same system, same second."""

    system: str
    name: str
    timestamp: str
    count: int


@dataclass(frozen=True)
class Proposal:
    """A port to isolate (or, for an access link, to report) and the evidence."""

    port: str  # UFM port name
    where: str  # "leaf-g01-r4 port 33 (to spine-p00-r4-s0 port 9)"
    reasons: tuple[str, ...]
    access: bool  # a switch-to-host link


@dataclass(frozen=True)
class Counters:
    """One counter snapshot: UFM's timestamp and {port name: {counter: value}}."""

    timestamp: float
    values: dict[str, dict[str, int]]


@dataclass
class TriagePlan:
    isolate: list[Proposal] = field(default_factory=list)
    report: list[Proposal] = field(default_factory=list)  # access links: drain the node, fix the cable
    causes: list[Cause] = field(default_factory=list)
    already_isolated: int = 0
    cap: int = 0
    refused: str = ""
    notes: list[str] = field(default_factory=list)


def isolation_cap(port_count: int, configured: int | None) -> int:
    """fabric.max_isolated when set, else NVIDIA's default max(10, 0.5% of the fabric's ports)."""
    return configured if configured is not None else max(10, math.floor(0.005 * port_count))


def collapse(events: Iterable[dict], burst_min: int) -> tuple[list[Cause], list[dict]]:
    """Split events into bursts (>= burst_min of one name from one system in one second) and the rest."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for event in events:
        system = str(event.get("object_path", "")).split(" / ")[1:2] or [str(event.get("object_name", ""))]
        groups[(str(event.get("timestamp", "")), str(event.get("name", "")), system[0])].append(event)
    causes, singles = [], []
    for (timestamp, name, system), members in groups.items():
        if len(members) >= burst_min:
            causes.append(Cause(system, name, timestamp, len(members)))
        else:
            singles.extend(members)
    causes.sort(key=lambda c: (-c.count, c.timestamp))
    return causes, singles


def _event_time(event: dict) -> float:
    """UFM writes event times as local wall time to the second; an unreadable one counts as recent."""
    try:
        return time.mktime(time.strptime(str(event.get("timestamp", "")), "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return math.inf


def _rate_bps(port: Port) -> float:
    lanes = int(port.width.rstrip("x") or 4) if port.width.rstrip("x").isdigit() else 4
    return SPEED_GBPS.get(port.speed.upper(), 400) * 1e9 * lanes / 4


class Peers:
    """A port's far end: UFM's live peer, else the one the cabling plan names (UFM shows none while down)."""

    def __init__(self, ports: list[Port], planned: Mapping[Place, Place]) -> None:
        self.by_name = {p.name: p for p in ports}
        self.by_place = {_place(p): p for p in ports}
        self.planned = planned

    def of(self, port: Port) -> tuple[Port | None, bool]:
        """(far end, whether UFM sees the link up now)."""
        live = self.by_name.get(port.peer)
        if live is not None:
            return live, True
        far = self.planned.get(_place(port))
        return (self.by_place.get(far) if far else None), False


def _place(port: Port) -> Place:
    return (port.system_name, port.hca) if port.is_hca else (port.system_name, str(port.number))


def triage(ports: Iterable[Port], before: Counters, after: Counters, events: Iterable[dict],
           unhealthy: Iterable[dict], settings: TriageSettings = TriageSettings(),
           planned: Mapping[Place, Place] | None = None) -> TriagePlan:
    """The isolation plan: proposals with evidence, bursts as causes, the cap and, past it, a refusal.

    `planned` (topology.planned_ends) names the far end of a port UFM shows down, so the plan still says
    which cable it is and never isolates the switch end of a host link just because the host end is down.
    """
    ports = list(ports)
    peers = Peers(ports, planned or {})
    by_name = peers.by_name
    plan = TriagePlan()
    reasons: dict[str, list[str]] = defaultdict(list)
    window = after.timestamp - before.timestamp
    if window < settings.ber_min_window_s:
        plan.notes.append(f"symbol BER not judged: the counters span {window:.0f} s of UFM time, "
                          f"NVIDIA's threshold needs {settings.ber_min_window_s:.0f} s")
    for name, now in after.values.items():
        port = by_name.get(name)
        then = before.values.get(name)
        if port is None or then is None:
            continue
        if window >= settings.ber_min_window_s:
            errors = now.get(SYMBOL, 0) - then.get(SYMBOL, 0)
            ber = errors / (_rate_bps(port) * window) if window > 0 else 0.0
            if ber > settings.max_ber:
                reasons[name].append(f"symbol BER {ber:.1e} > {settings.max_ber:.0e} "
                                     f"({errors} errors in {window:.0f} s)")
        downs = now.get(LINK_DOWNED, 0) - then.get(LINK_DOWNED, 0)
        peer, _ = peers.of(port)
        if downs > 0 and peer is not None and peer.name in after.values and peer.name in before.values:
            peer_downs = after.values[peer.name].get(LINK_DOWNED, 0) - before.values[peer.name].get(LINK_DOWNED, 0)
            if peer_downs > 0 and port.name < peer.name:  # once per link
                reasons[name].append(f"LinkDownedCounter rose on both ends (+{downs} / +{peer_downs})")
    since = before.timestamp - settings.events_window_s
    recent = [e for e in events if _event_time(e) >= since]
    plan.causes, singles = collapse(recent, settings.burst_min_events)
    downs_by_port = Counter(str(e.get("object_name", "")) for e in singles if e.get("name") == LINK_DOWN_EVENT)
    for name, count in sorted(downs_by_port.items()):
        if count >= settings.flap_downs:
            reasons[name].append(f"flapping: {count} link-down events")
    isolated = 0
    for entry in unhealthy:
        name = f"{str(entry.get('UnhealthyGUID', '')).lower()}_{entry.get('UnhealthyPortNumber', '')}"
        if entry.get("Isolated"):
            isolated += 1
        elif name in by_name:
            condition = entry.get("Condition") or []
            reasons[name].append(f"marked unhealthy by the SM ({', '.join(map(str, condition)) or 'no condition'})")
    plan.already_isolated = isolated
    for name in sorted(reasons):
        proposal = _proposal(peers, name, reasons[name])
        if proposal.access and not settings.isolate_access_links:
            plan.report.append(proposal)
        else:
            plan.isolate.append(proposal)
    plan.cap = isolation_cap(len(ports), settings.max_isolated)
    total = plan.already_isolated + len(plan.isolate)
    if total > plan.cap:
        source = (f"{plan.causes[0].count} '{plan.causes[0].name}' events from {plan.causes[0].system} at "
                  f"{plan.causes[0].timestamp}") if plan.causes else _busiest(by_name, plan.isolate)
        plan.refused = (f"refusing to isolate {len(plan.isolate)} port(s): {plan.already_isolated} already isolated "
                        f"+ {len(plan.isolate)} proposed = {total} > the cap of {plan.cap} (fabric.max_isolated, "
                        f"default max(10, 0.5% of {len(ports)} ports)); a storm of isolations is usually one upstream "
                        f"cause: look at {source} first")
    return plan


def _proposal(peers: Peers, name: str, reasons: list[str]) -> Proposal:
    port = peers.by_name[name]
    peer, live = peers.of(port)
    if port.is_hca and peer is not None:
        port, peer = peer, port  # isolate (or report) the switch end of an access link
    here = f"{port.system_name} {port.hca}" if port.is_hca else f"{port.system_name} port {port.number}"
    there = ""
    if peer is not None:
        far = peer.hca if peer.is_hca else f"port {peer.number}"
        there = f" (to {peer.system_name} {far}{'' if live else ', per the cabling plan: UFM sees the link down now'})"
    access = port.is_hca or (peer is not None and peer.is_hca)
    return Proposal(port.name, here + there, tuple(reasons), access)


def _busiest(by_name: dict[str, Port], proposals: list[Proposal]) -> str:
    systems = Counter(by_name[p.port].system_name for p in proposals if p.port in by_name)
    if not systems:
        return "the fabric's recent changes"
    system, count = systems.most_common(1)[0]
    return f"{system}, which has {count} of the proposed ports"
