"""Link-coverage burn plan on generated fat trees and on the 512-node lab fabric."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from fleet import commands
from fleet.fabric import burn_plan
from fleet.fabric.topology import node_cables
from fleet.site.load import load_site

LAB_SITE = Path(__file__).resolve().parents[3] / "inventory" / "lab" / "site.yml"


def fat_tree(*, rails: int = 1, pods: int = 2, leaves_per_pod: int = 2, spines_per_pod: int = 2, cores: int = 2,
             hosts_per_leaf: int = 4, leaf_up_per_spine: int = 2, spine_up_per_core: int = 2) -> nx.MultiGraph:
    """A three-tier tree per rail with parallel cables, in the shape fabric_graph builds."""
    g = nx.MultiGraph()
    for r in range(rails):
        core_names = [f"core-r{r}-c{c}" for c in range(cores)]
        for name in core_names:
            g.add_node(name, tier="core", rail=r)
        core_port = dict.fromkeys(core_names, 0)
        for p in range(pods):
            spines = [f"spine-p{p}-r{r}-s{s}" for s in range(spines_per_pod)]
            for s in spines:
                g.add_node(s, tier="spine", rail=r)
                for c in core_names:
                    for k in range(spine_up_per_core):
                        core_port[c] += 1
                        g.add_edge(s, c, key=(s, 100 + core_names.index(c) * 10 + k, c, core_port[c]))
            for leaf_number in range(leaves_per_pod):
                leaf = f"leaf-p{p}-l{leaf_number}-r{r}"
                g.add_node(leaf, tier="leaf", rail=r)
                for si, s in enumerate(spines):
                    for k in range(leaf_up_per_spine):
                        g.add_edge(leaf, s, key=(leaf, 100 + si * 10 + k, s, leaf_number * 10 + k))
                for h in range(hosts_per_leaf):
                    host = f"n-p{p}-l{leaf_number}-h{h}"
                    name = f"{host}/mlx5_{r}"
                    g.add_node(name, tier="hca", rail=r, host=host, device=f"mlx5_{r}", address=f"{host}.lab")
                    g.add_edge(name, leaf, key=("access", name))
    return g


@pytest.mark.parametrize("shape", [
    {},  # non-blocking: 4 hosts, 4 uplinks per leaf
    {"rails": 3},
    {"hosts_per_leaf": 2},  # 2:1 tapered the wrong way: more uplinks than hosts, lower bound 2
    {"pods": 3, "leaves_per_pod": 3, "spines_per_pod": 3, "cores": 3, "hosts_per_leaf": 9,
     "leaf_up_per_spine": 3, "spine_up_per_core": 3},
    {"pods": 2, "cores": 1, "spine_up_per_core": 1, "hosts_per_leaf": 1},  # hosts scarce: several stages
])
def test_every_switch_cable_is_loaded_and_nothing_is_oversubscribed(shape):
    graph = fat_tree(**shape)
    result = burn_plan.plan(graph)
    assert burn_plan.check(result, graph) == []
    assert result.covered == result.cables == sum(1 for *_, k in graph.edges(keys=True) if k[0] != "access")
    assert len(result.stages) >= result.lower_bound
    assert len(result.stages) <= result.lower_bound + 2  # greedy, but close


def test_lower_bound_comes_from_a_leaf_with_more_uplinks_than_hosts():
    graph = fat_tree(hosts_per_leaf=1)  # 4 uplinks, 1 HCA below each leaf
    result = burn_plan.plan(graph)
    assert result.lower_bound == 4
    assert len(result.stages) >= 4 and burn_plan.check(result, graph) == []


def test_check_catches_a_doubled_cable_and_an_unloaded_one():
    graph = fat_tree()
    result = burn_plan.plan(graph)
    stage = result.stages[0]
    stage.flows.append(stage.flows[0])
    problems = burn_plan.check(result, graph)
    assert any("in two tests" in p for p in problems) and any("two flows one way" in p for p in problems)
    del stage.flows[-2:]
    assert any("never loaded" in p for p in burn_plan.check(result, graph))


def test_core_cables_of_a_single_pod_carry_no_shortest_route_and_say_so():
    graph = fat_tree(pods=1)  # two leaves under two spines: leaf to leaf never needs a core
    result = burn_plan.plan(graph)
    assert len(result.unreachable) == 2 * 2 * 2  # 2 spines x 2 cores x 2 cables
    assert all(c[2].startswith("core-") and "shortest route" in why for c, why in result.unreachable)
    assert [p for p in burn_plan.check(result, graph) if "never loaded" not in p] == []
    assert result.covered == result.cables - len(result.unreachable)  # the leaf-spine cables are all loaded


def test_flows_take_the_shortest_route_between_their_leaves():
    graph = fat_tree(pods=3)
    result = burn_plan.plan(graph)
    assert burn_plan.check(result, graph) == []
    flow = next(f for s in result.stages for f in s.flows if len(f.cables) == 4)
    source_leaf, target_leaf = next(iter(graph[flow.source])), next(iter(graph[flow.target]))
    assert source_leaf.split("-l")[0] != target_leaf.split("-l")[0]  # through a core: another pod
    result.stages[0].flows[0] = burn_plan.Flow(flow.source, flow.source.replace("-h0/", "-h1/"), flow.cables)
    assert any("shortest route" in p for p in burn_plan.check(result, graph))


def test_a_leaf_without_hosts_cannot_be_covered_and_is_named():
    graph = fat_tree()
    graph.remove_nodes_from([n for n in list(graph) if n.startswith("n-p0-l1-")])
    result = burn_plan.plan(graph)
    assert {why for _, why in result.unreachable} == {"leaf leaf-p0-l1-r0 has no HCA below it"}
    assert "4 cable(s) no pair test can load" in burn_plan.render(result, graph)


def test_the_example_production_site_says_which_cables_no_pair_can_load(capsys):
    site = LAB_SITE.parents[1] / "example-production" / "site.yml"
    assert commands.main(["burnin", "plan", "--site", str(site)]) == 1
    out = capsys.readouterr().out
    assert "cable(s) no pair test can load" in out and "the rail has one leaf with HCAs" in out


def test_commands_are_ib_write_bw_pairs_on_the_rail_with_gpudirect():
    graph = fat_tree(rails=2)
    flow = next(f for s in burn_plan.plan(graph).stages for f in s.flows if graph.nodes[f.source]["rail"] == 1)
    server, client = burn_plan.commands(graph, flow)
    assert server[:3] == ("ib_write_bw", "-d", "mlx5_1") and "--use_cuda=1" in server
    assert client[-1] == graph.nodes[flow.target]["address"]
    text = burn_plan.render(burn_plan.plan(graph), graph, show_commands=1)
    assert "lower bound" in text and "coverage" in text and "ib_write_bw" in text


def test_the_512_node_lab_fabric_in_one_stage_at_its_lower_bound(capsys):
    site = load_site(LAB_SITE)
    nodes = list(site.nodes.values())
    assert len(nodes) == 512
    graph = burn_plan.fabric_graph(site.fabric.topology, node_cables(nodes), {n.hostname: n.address for n in nodes})
    result = burn_plan.plan(graph)
    assert result.cables == 8192 and result.rails == 8
    assert burn_plan.check(result, graph) == []
    assert len(result.stages) == result.lower_bound == 1
    assert commands.main(["burnin", "plan", "--site", str(LAB_SITE)]) == 0
    assert "8192 switch-to-switch cables on 8 rail(s): 1 stage(s) (lower bound 1)" in capsys.readouterr().out
