"""The fabric's acting side: read UFM once, decide with the pure checks, change only when asked.

`check` costs a constant number of UFM requests however many nodes are selected (ports with cable
info, pkeys, links page by page): a rack or the whole fleet is checked from the same three reads.
Changes (adding GUIDs to pkeys, isolating ports) happen only with `apply=True`, each journaled before
it is sent, and isolation never past the cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fleet.errors import FleetError
from fleet.fabric.cabling import Finding, check_links, check_nodes, links_for, missing_members
from fleet.fabric.topology import Topology
from fleet.fabric.triage import LINK_DOWNED, SYMBOL, Counters, TriagePlan, TriageSettings, triage
from fleet.fabric.ufm import Port, UfmClient

Journal = Callable[[str, str, dict], None]  # (subject, event, detail)


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

    def plan(self, settings: TriageSettings) -> TriagePlan:
        return triage(self.ports, self.before, self.after, self.events, self.unhealthy, settings)


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
