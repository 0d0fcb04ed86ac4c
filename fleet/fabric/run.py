"""The fabric's acting side: read UFM once, decide with the pure checks, change only when asked.

`check` costs a constant number of UFM requests however many nodes are selected (ports with cable
info, pkeys, links page by page): a rack or the whole fleet is checked from the same three reads.
Changes (adding GUIDs to pkeys, isolating ports) happen only with `apply=True`, each journaled before
it is sent, and isolation never past the cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleet.errors import FleetError
from fleet.fabric.cabling import Finding, check_links, check_nodes, links_for, missing_members
from fleet.fabric.topology import Place, Topology
from fleet.fabric.triage import LINK_DOWNED, SYMBOL, Counters, TriagePlan, TriageSettings, triage
from fleet.fabric.ufm import PkeyMember, Port, UfmClient, UfmSettings

if TYPE_CHECKING:
    from fleet.site import Site

Journal = Callable[[str, str, dict], None]  # (subject, event, detail)


def client_for(site: Site) -> UfmClient:
    """The site's UFM client: its endpoint, credentials, `fabric.ufm_tls` and `fabric.ufm_auth`."""
    from fleet.site import resolve_credentials

    if site.ufm is None or site.fabric is None:
        raise FleetError(f"site '{site.name}' has no UFM or no fabric plan", endpoint=str(site.path),
                         hint="add ufm: {url, credentials} and fabric: {topology: fabric.yml} to the site")
    creds = resolve_credentials(site, site.ufm.credentials)
    tls = site.fabric.ufm_tls
    return UfmClient(site.ufm.url, creds.username, creds.secret, ca_file=str(tls.ca_file) if tls.ca_file else None,
                     verify=tls.verify, token_auth=site.fabric.ufm_auth == "token", settings=UfmSettings())


@dataclass(frozen=True)
class Snapshot:
    """UFM's ports and pkeys as read at `taken` (monotonic seconds)."""

    taken: float
    ports: list[Port]
    pkeys: dict[str, list[PkeyMember]]


class SnapshotCache:
    """One read of ports and pkeys shared by every node's fabric stage that arrives while it is fresh.

    A node checked against a snapshot taken before its stage began, and found wanting, asks again
    with `newer_than`: its port may have come up since (the driver was just loaded by configure).
    Concurrent askers share one read (single flight), so 512 nodes cost a handful of reads."""

    def __init__(self, client: UfmClient, *, max_age_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Snapshot | None = None

    def get(self, *, newer_than: float | None = None) -> Snapshot:
        with self._lock:  # one reader at a time; the others find its result fresh
            now = self._clock()
            current = self._current
            stale = current is None or now - current.taken > self.max_age_s
            if stale or (newer_than is not None and current.taken < newer_than):
                taken = self._clock()
                self._current = Snapshot(taken, self.client.ports(cable_info=True), self.client.pkeys())
            assert self._current is not None
            return self._current


@dataclass
class CheckReport:
    """Findings per node, link findings (the fabric's, not a node's), and what --apply changed."""

    findings: list[Finding] = field(default_factory=list)
    link_findings: list[Finding] = field(default_factory=list)
    added: dict[str, list[str]] = field(default_factory=dict)  # pkey -> GUIDs added
    ufm_requests: int = 0

    def for_node(self, hostname: str) -> list[Finding]:
        return [f for f in self.findings if f.subject == hostname]


def check(topology: Topology, nodes: Iterable[Any], client: UfmClient, *, apply: bool = False,
          journal: Journal | None = None) -> CheckReport:
    """HCA ports, node cables and pkeys of `nodes`, and the switch links their leaves depend on."""
    nodes = list(nodes)
    start = client.requests
    ports = client.ports(cable_info=True)
    pkeys = client.pkeys()
    report = CheckReport()
    if apply:
        for pkey, guids in missing_members(topology, nodes, pkeys).items():
            partition = next(p for p in topology.partitions if p.pkey == pkey)
            detail = {"pkey": pkey, "guids": guids}
            if journal:
                journal("fabric", "pkey_add:started", detail)
            client.add_guids(pkey, guids, membership=partition.membership, index0=partition.index0,
                             ip_over_ib=partition.ip_over_ib)
            if journal:
                journal("fabric", "pkey_add:done", detail)
            report.added[pkey] = guids
        if report.added:
            pkeys = client.pkeys()
    report.findings = check_nodes(topology, nodes, ports, pkeys)
    leaves = sorted({hca.leaf for node in nodes for hca in node.hcas})
    report.link_findings = check_links(topology, links_for(topology, leaves), ports, client.links())
    report.ufm_requests = client.requests - start
    return report


@dataclass(frozen=True)
class TriageInputs:
    """What triage reads from UFM: ports, two counter snapshots, events, unhealthy ports."""

    ports: list[Port]
    before: Counters
    after: Counters
    events: list[dict]
    unhealthy: list[dict]

    def plan(self, settings: TriageSettings, planned: Mapping[Place, Place] | None = None) -> TriagePlan:
        return triage(self.ports, self.before, self.after, self.events, self.unhealthy, settings, planned)


def sample(client: UfmClient, *, sample_s: float, sleep: Callable[[float], None] = time.sleep) -> TriageInputs:
    """Two counter snapshots `sample_s` apart, then events, unhealthy ports and ports: five requests."""
    attributes = (SYMBOL, LINK_DOWNED)
    before = Counters(*client.counters(attributes))
    sleep(sample_s)
    after = Counters(*client.counters(attributes))
    return TriageInputs(client.ports(), before, after, client.events(), client.unhealthy_ports())


def isolate(client: UfmClient, plan: TriagePlan, journal: Journal) -> list[str]:
    """Isolate the plan's ports in one request, journaled first; refuses a plan past the cap."""
    if plan.refused:
        raise FleetError(plan.refused, hint="find the upstream cause, or raise fabric.max_isolated deliberately")
    names = [p.port for p in plan.isolate]
    if not names:
        return []
    detail = {"ports": names, "reasons": {p.port: list(p.reasons) for p in plan.isolate}}
    journal("fabric", "isolate:started", detail)
    client.isolate(names)
    journal("fabric", "isolate:done", {"ports": names})
    return names


def restore(client: UfmClient, ports: list[str], journal: Journal) -> None:
    """Mark ports healthy again (UFM un-isolates them), journaled first."""
    journal("fabric", "restore:started", {"ports": ports})
    client.restore(ports)
    journal("fabric", "restore:done", {"ports": ports})
