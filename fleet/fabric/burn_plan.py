"""Link-coverage burn plan: stages of ib_write_bw pairs so every switch-to-switch cable carries traffic.

A cable at half speed or with a bad lane passes an idle check and only shows when it carries a
flow. This plans flows so that every switch-to-switch cable of the fabric carries at least one,
in as few stages as it can:

- the fabric is a networkx MultiGraph: switches (``tier`` leaf/spine/core, ``rail``), HCAs
  (``tier`` hca) and one edge per cable (``key`` = the cable), built from the site's fabric plan
  (``fleet.fabric.topology``) and its node cables, or given directly (tests use generated fat trees);
- a flow goes up from an HCA to the cable it is routed through and down again to another HCA of
  the same rail, on the shortest route between their leaves (as up/down routing sends it: never
  higher than the two leaves need): 2 switch cables between leaves of a pod, 4 across pods;
- within a stage no cable carries two flows in the same direction (cables are full duplex) and no
  HCA is in two tests: nothing is oversubscribed, so a slow result points at one path;
- stages are built greedily: each takes the uncovered cables, top tier first (a flow through a
  spine-core cable loads four cables), and routes a flow through each one it can, preferring hops
  over cables still uncovered. Rails are separate fat trees and
  run their stages at the same time, so the plan's stage count is the largest rail's.

The paths are the plan's: on the fabric, the subnet manager's routing tables pick each flow's path
(up/down routing over the same tree). Compare a stage's port counters (UFM, ``fleet.fabric.ufm``)
with the cables the plan expected it to load to confirm coverage.

Lower bound (printed next to the stage count): per rail, a stage covers at most 4 cables per flow
and has at most (HCAs / 2) flows; a leaf's uplinks are covered only by flows of the HCAs below it,
one each per stage; so stages >= max(ceil(cables / (2 · HCAs)), max over leaves ceil(uplinks / HCAs below)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from fleet.fabric.topology import NodeCable, Topology
from healthcheck.burnin.perftest import Hca, PairTest

TIER_RANK = {"hca": 0, "leaf": 1, "spine": 2, "core": 3}
Cable = tuple[str, int, str, int]  # (lower switch, port, upper switch, port)


def fabric_graph(topology: Topology, cables: Iterable[NodeCable], addresses: dict[str, str] | None = None
                 ) -> nx.MultiGraph:
    """The plan as a MultiGraph: switches and HCAs as nodes, one edge per cable."""
    graph = nx.MultiGraph()
    for switch in topology.switches.values():
        graph.add_node(switch.name, tier=switch.tier, rail=switch.rail)
    for link in topology.links:
        low, high = sorted(((link.a, link.a_port), (link.b, link.b_port)),
                           key=lambda end: TIER_RANK[topology.switches[end[0]].tier])
        graph.add_edge(low[0], high[0], key=(low[0], low[1], high[0], high[1]))
    for cable in cables:
        name = f"{cable.hostname}/{cable.hca}"
        graph.add_node(name, tier="hca", rail=cable.rail, host=cable.hostname, device=cable.hca,
                       address=(addresses or {}).get(cable.hostname, cable.hostname))
        graph.add_edge(name, cable.leaf, key=("access", name))
    return graph


@dataclass(frozen=True)
class Flow:
    source: str  # HCA node, the ib_write_bw client (it writes)
    target: str  # HCA node, the server
    cables: tuple[Cable, ...]  # switch-to-switch cables on the path, bottom-up then top-down


@dataclass
class Stage:
    flows: list[Flow] = field(default_factory=list)
    newly_covered: int = 0


@dataclass
class Plan:
    stages: list[Stage]
    cables: int
    rails: int
    lower_bound: int
    # Cables no pair test can load: on no shortest route between two leaves with HCAs (a one-leaf rail's
    # uplinks, a one-pod tree's core cables, a leaf without nodes), each with the reason.
    unreachable: list[tuple[Cable, str]] = field(default_factory=list)

    @property
    def covered(self) -> int:
        return sum(s.newly_covered for s in self.stages)


class _Rail:
    """One rail's tree, indexed for routing: cables up and down from each switch, HCAs under each leaf."""

    def __init__(self, graph: nx.MultiGraph, rail: int) -> None:
        self.graph = graph
        self.up: dict[str, list[tuple[Cable, str]]] = {}
        self.down: dict[str, list[tuple[Cable, str]]] = {}
        self.hcas: dict[str, list[str]] = {}
        self.cables: list[Cable] = []
        tier = nx.get_node_attributes(graph, "tier")
        members = [n for n, r in graph.nodes(data="rail") if r == rail]
        self.leaf_of: dict[str, str] = {}
        for node in members:
            if tier[node] == "hca":
                for _, leaf in graph.edges(node):
                    self.hcas.setdefault(leaf, []).append(node)
                    self.leaf_of[node] = leaf
        for a, b, key in graph.subgraph(members).edges(keys=True):
            if key[0] == "access":
                continue
            low, high = (a, b) if TIER_RANK[tier[a]] < TIER_RANK[tier[b]] else (b, a)
            self.up.setdefault(low, []).append((key, high))
            self.down.setdefault(high, []).append((key, low))
            self.cables.append(key)
        # Top tier first: a flow through a spine-core cable loads four cables, one through a leaf-spine cable two.
        self.cables.sort(key=lambda c: (-TIER_RANK[tier[c[2]]], c))
        for lists in (self.up, self.down, self.hcas):
            for values in lists.values():
                values.sort()
        self.tier = tier

    def above(self, switch: str) -> set[str]:
        """The switches ``switch`` is cabled to one tier up."""
        return {upper for _, upper in self.up.get(switch, [])}

    def lower_bound(self, unreachable: set[Cable]) -> int:
        """Stages needed at least for the cables a pair test can load at all (``unreachable`` left out)."""
        hcas = sum(len(v) for v in self.hcas.values())
        loadable = [c for c in self.cables if c not in unreachable]
        if not loadable or hcas < 2:
            return 0
        bound = math.ceil(len(loadable) / (2 * hcas))
        for leaf, ups in self.up.items():
            below = len(self.hcas.get(leaf, []))
            if self.tier[leaf] == "leaf" and below:
                bound = max(bound, math.ceil(sum(c not in unreachable for c, _ in ups) / below))
        return bound

    def why_unreachable(self, cable: Cable) -> str:
        low = cable[0]
        if self.tier[low] == "leaf" and not self.hcas.get(low):
            return f"leaf {low} has no HCA below it"
        if len([leaf for leaf, hcas in self.hcas.items() if hcas]) < 2:
            return "the rail has one leaf with HCAs: no pair needs to leave it"
        return "on no shortest route between two leaves with HCAs (e.g. a core cable of a one-pod tree)"


class _StageBuilder:
    def __init__(self, rail: _Rail, uncovered: set[Cable]) -> None:
        self.rail, self.uncovered = rail, uncovered
        self.used: set[tuple[Cable, str]] = set()
        self.loaded: set[Cable] = set()  # cables some flow of this stage already loads (either way)
        self.busy: set[str] = set()
        self.flows: list[Flow] = []

    def _free(self, cable: Cable, direction: str) -> bool:
        return (cable, direction) not in self.used

    def _prefer(self, options: list[tuple[Cable, str]]) -> list[tuple[Cable, str]]:
        # Cables nobody has loaded yet first (not even another flow of this stage the other way), stable.
        return sorted(options, key=lambda o: o[0] not in self.uncovered or o[0] in self.loaded)

    def _hca(self, leaf: str, avoid: str = "") -> str | None:
        return next((h for h in self.rail.hcas.get(leaf, []) if h not in self.busy and h != avoid), None)

    def _climb(self, switch: str) -> tuple[str, list[Cable]] | None:
        """From ``switch`` down to a free HCA, as the bottom half of a flow going up: (HCA, cables bottom-up)."""
        if self.rail.tier[switch] == "leaf":
            hca = self._hca(switch)
            return (hca, []) if hca else None
        for cable, lower in self._prefer(self.rail.down.get(switch, [])):
            if not self._free(cable, "up"):
                continue
            found = self._climb(lower)
            if found:
                return found[0], [*found[1], cable]
        return None

    def _descend(self, switch: str, source_leaf: str, avoid_hca: str) -> tuple[str, list[Cable]] | None:
        """From ``switch`` down to a free HCA, as the top half of a flow: (HCA, cables top-down).

        The flow must be the shortest route between its leaves (the subnet manager's up/down routing
        would never send it up further): it comes down on a leaf other than the source's, and from a
        core only into a spine the source leaf is not cabled to (another pod).
        """
        if self.rail.tier[switch] == "leaf":
            if switch == source_leaf:
                return None
            hca = self._hca(switch, avoid_hca)
            return (hca, []) if hca else None
        for cable, lower in self._prefer(self.rail.down.get(switch, [])):
            if not self._free(cable, "down"):
                continue
            if self.rail.tier[switch] == "core" and lower in self.rail.above(source_leaf):
                continue
            found = self._descend(lower, source_leaf, avoid_hca)
            if found:
                return found[0], [cable, *found[1]]
        return None

    def route(self, cable: Cable) -> bool:
        """A flow through ``cable`` (upward) that fits this stage; True when one was added."""
        low, high = cable[0], cable[2]
        if not self._free(cable, "up"):
            return False
        bottom = self._climb(low)
        if bottom is None:
            return False
        source, up_cables = bottom
        top = self._descend(high, self.rail.leaf_of[source], source)
        if top is None:
            return False
        target, down_cables = top
        path = (*up_cables, cable, *down_cables)
        for c in [*up_cables, cable]:
            self.used.add((c, "up"))
        for c in down_cables:
            self.used.add((c, "down"))
        self.loaded.update(path)
        self.busy.update((source, target))
        self.flows.append(Flow(source, target, path))
        return True


def plan_rail(rail: _Rail) -> tuple[list[Stage], list[Cable]]:
    """The rail's stages, and the cables no stage could load (a stage with every HCA free loads none of them)."""
    uncovered = set(rail.cables)
    stages: list[Stage] = []
    while uncovered:
        builder = _StageBuilder(rail, uncovered)
        for cable in rail.cables:
            if cable in uncovered and cable not in builder.loaded:
                builder.route(cable)
        if not builder.flows:
            break  # with every HCA and cable free, no flow reaches what is left: nothing ever will
        before = len(uncovered)
        for flow in builder.flows:
            uncovered.difference_update(flow.cables)
        stages.append(Stage(builder.flows, before - len(uncovered)))
    return stages, sorted(uncovered)


def plan(graph: nx.MultiGraph) -> Plan:
    """Stages covering every switch-to-switch cable; rails run side by side (stage k of every rail together)."""
    rails = sorted({r for _, r in graph.nodes(data="rail") if r is not None})
    merged: list[Stage] = []
    total, bound, unreachable = 0, 0, []
    for rail_number in rails:
        rail = _Rail(graph, rail_number)
        total += len(rail.cables)
        stages, left = plan_rail(rail)
        bound = max(bound, rail.lower_bound(set(left)))
        unreachable += [(cable, rail.why_unreachable(cable)) for cable in left]
        for k, stage in enumerate(stages):
            if k == len(merged):
                merged.append(Stage())
            merged[k].flows.extend(stage.flows)
            merged[k].newly_covered += stage.newly_covered
    return Plan(merged, total, len(rails), bound, unreachable)


def check(plan_: Plan, graph: nx.MultiGraph) -> list[str]:
    """Problems with a plan (empty when good): a cable never loaded, a cable or HCA used twice in a stage,
    a flow planned over a longer path than its leaves' shortest route (routing would not take it)."""
    problems = []
    switch_cables = {k for _, _, k in graph.edges(keys=True) if k[0] != "access"}
    switches = graph.subgraph(n for n, t in graph.nodes(data="tier") if t != "hca")
    leaf_of = {n: next(iter(graph[n])) for n, t in graph.nodes(data="tier") if t == "hca"}
    distance: dict[str, dict[str, int]] = {}
    loaded: set[Cable] = set()
    for number, stage in enumerate(plan_.stages, start=1):
        directions: set[tuple[Cable, int]] = set()
        hcas: set[str] = set()
        for flow in stage.flows:
            a, b = leaf_of[flow.source], leaf_of[flow.target]
            if a not in distance:
                distance[a] = nx.single_source_shortest_path_length(switches, a)
            if distance[a].get(b) != len(flow.cables):
                problems.append(f"stage {number}: {flow.source} -> {flow.target} planned over {len(flow.cables)} "
                                f"cables, but the shortest route between their leaves is {distance[a].get(b)}")
            for hca in (flow.source, flow.target):
                if hca in hcas:
                    problems.append(f"stage {number}: HCA {hca} in two tests")
                hcas.add(hca)
            for position, cable in enumerate(flow.cables):
                going_up = position < len(flow.cables) // 2 + (len(flow.cables) % 2)
                key = (cable, 1 if going_up else 0)
                if key in directions:
                    problems.append(f"stage {number}: cable {cable} carries two flows one way")
                directions.add(key)
                loaded.add(cable)
    problems += [f"cable {c} never loaded" for c in sorted(switch_cables - loaded)]
    return problems


def commands(graph: nx.MultiGraph, flow: Flow, port: int = 18515, duration_s: int = 10
             ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(server argv on the target's node, client argv on the source's node): ib_write_bw with GPUDirect."""
    def hca(name: str) -> Hca:
        data = graph.nodes[name]
        return Hca(data["host"], data["device"], data["rail"], data["address"], gpu=data["rail"])

    return PairTest(0, graph.nodes[flow.source]["rail"], hca(flow.target), hca(flow.source), port).commands(
        duration_s=duration_s)


def render(plan_: Plan, graph: nx.MultiGraph, *, show_commands: int = 3) -> str:
    """The plan for people: stages, coverage per stage, and the first commands of each stage."""
    lines = [f"{plan_.cables} switch-to-switch cables on {plan_.rails} rail(s): {len(plan_.stages)} stage(s) "
             f"(lower bound {plan_.lower_bound})"]
    covered = 0
    for number, stage in enumerate(plan_.stages, start=1):
        covered += stage.newly_covered
        lines.append(f"stage {number}: {len(stage.flows)} ib_write_bw pairs, {stage.newly_covered} cables newly "
                     f"loaded, coverage {covered}/{plan_.cables} ({100.0 * covered / plan_.cables:.1f}%)")
        for flow in stage.flows[:show_commands]:
            server, client = commands(graph, flow)
            lines.append(f"  {graph.nodes[flow.target]['host']}: {' '.join(server)}")
            lines.append(f"  {graph.nodes[flow.source]['host']}: {' '.join(client)}")
        if len(stage.flows) > show_commands:
            lines.append(f"  ... {len(stage.flows) - show_commands} more pairs")
    if plan_.unreachable:
        lines.append(f"{len(plan_.unreachable)} cable(s) no pair test can load:")
        for cable, why in plan_.unreachable[:10]:
            lines.append(f"  {cable[0]} port {cable[1]} - {cable[2]} port {cable[3]}: {why}")
        if len(plan_.unreachable) > 10:
            lines.append(f"  ... {len(plan_.unreachable) - 10} more")
    return "\n".join(lines)


def to_json(plan_: Plan, graph: nx.MultiGraph) -> dict[str, Any]:
    stages = []
    for stage in plan_.stages:
        pairs = []
        for flow in stage.flows:
            server, client = commands(graph, flow)
            pairs.append({"server": graph.nodes[flow.target]["host"], "client": graph.nodes[flow.source]["host"],
                          "rail": graph.nodes[flow.source]["rail"], "server_argv": list(server),
                          "client_argv": list(client), "cables": [list(c) for c in flow.cables]})
        stages.append({"pairs": pairs, "newly_covered": stage.newly_covered})
    return {"cables": plan_.cables, "rails": plan_.rails, "stages": stages, "lower_bound": plan_.lower_bound,
            "unreachable": [{"cable": list(cable), "why": why} for cable, why in plan_.unreachable]}
