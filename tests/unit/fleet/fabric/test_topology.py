"""The fabric plan: the lab's generated fat tree is clean, and each planning mistake is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleet.errors import InventoryError
from fleet.fabric.topology import load_topology, node_cables, validate
from fleet.site import Bmc, Hca, Node, load_site

REPO = Path(__file__).resolve().parents[4]
LAB = REPO / "inventory" / "lab"


def _plan(tmp_path: Path, **changes: object) -> Path:
    doc: dict = {
        "rails": 2, "rate_gbps": 400, "width": "4x",
        "switches": {
            "leaf-g00-r0": {"tier": "leaf", "rail": 0, "guid": "0xfc6a1c0301000000", "ports": 4},
            "leaf-g00-r1": {"tier": "leaf", "rail": 1, "guid": "0xfc6a1c0301000100", "ports": 4},
            "spine-r0": {"tier": "spine", "rail": 0, "guid": "0xfc6a1c0302000000", "ports": 4},
            "spine-r1": {"tier": "spine", "rail": 1, "guid": "0xfc6a1c0302000100", "ports": 4},
        },
        "links": [["leaf-g00-r0", 3, "spine-r0", 1], ["leaf-g00-r1", 3, "spine-r1", 1]],
    }
    doc.update(changes)
    path = tmp_path / "fabric.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _node(hostname: str, cables: list[tuple[str, int]]) -> Node:
    hcas = tuple(Hca(f"mlx5_{i}", f"0xb83fd2030000000{i}", leaf, port, 400) for i, (leaf, port) in enumerate(cables))
    return Node(hostname, 1, 1, "gpu", "X", Bmc("127.0.0.1:1", "bmc"), "02:00:00:00:00:01", "198.18.1.11", 8, hcas)


def _messages(err: InventoryError) -> list[str]:
    return [f"{p.key}: {p.message}" for p in err.problems]


def test_lab_plan_is_a_clean_three_tier_fat_tree_for_all_512_nodes() -> None:
    topology = load_topology(LAB / "fabric.yml")
    site = load_site(LAB / "site.yml")
    tiers = [s.tier for s in topology.switches.values()]
    assert (tiers.count("leaf"), tiers.count("spine"), tiers.count("core")) == (128, 128, 64)
    assert topology.rails == 8 and len(topology.links) == 8192
    assert len(node_cables(site.nodes.values())) == 4096
    assert validate(topology, site.nodes.values()) == []


def test_a_port_used_twice_names_both_cables(tmp_path: Path) -> None:
    links = [["leaf-g00-r0", 3, "spine-r0", 1], ["leaf-g00-r0", 3, "spine-r0", 2]]
    with pytest.raises(InventoryError) as caught:
        load_topology(_plan(tmp_path, links=links))
    assert _messages(caught.value) == [
        "links[1]: leaf-g00-r0 port 3 is used twice: by link leaf-g00-r0:3-spine-r0:2 and by "
        "link leaf-g00-r0:3-spine-r0:1"]
    assert caught.value.problems[0].fix == "give each cable its own switch port"


def test_a_link_to_an_unknown_switch_suggests_the_near_name(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_topology(_plan(tmp_path, links=[["leaf-g00-r0", 3, "spine-r00", 1]]))
    (problem,) = caught.value.problems
    assert (problem.key, problem.message, problem.fix) == (
        "links[0]", "link to unknown switch 'spine-r00'", "did you mean 'spine-r0'?")


def test_rail_mixing_and_tier_skipping_links_are_refused(tmp_path: Path) -> None:
    links = [["leaf-g00-r0", 3, "spine-r1", 1], ["leaf-g00-r0", 4, "leaf-g00-r1", 4]]
    with pytest.raises(InventoryError) as caught:
        load_topology(_plan(tmp_path, links=links))
    assert _messages(caught.value) == [
        "links[0]: rail mixing: leaf-g00-r0 is rail 0, spine-r1 is rail 1",
        "links[1]: rail mixing: leaf-g00-r0 is rail 0, leaf-g00-r1 is rail 1",
        "links[1]: a leaf-leaf link skips the fat tree's tiers",
    ]


def test_every_schema_problem_is_reported_at_once(tmp_path: Path) -> None:
    switches = {"leaf-a": {"tier": "top", "rail": 5, "guid": "fc6a", "ports": 0, "colour": "red"}}
    with pytest.raises(InventoryError) as caught:
        load_topology(_plan(tmp_path, switches=switches, links=[["leaf-a", "x"]]))
    assert _messages(caught.value) == [
        "switches.leaf-a.colour: unknown key",
        "switches.leaf-a.tier: 'top' is not a tier",
        "switches.leaf-a.rail: rail 5 is not one of the plan's 2 rails",
        "switches.leaf-a.guid: 'fc6a' is not a switch GUID",
        "switches.leaf-a.ports: expected an integer >= 1, got 0",
        "links[0]: expected [switch, port, switch, port], got ['leaf-a', 'x']",
    ]


def test_node_cables_are_checked_for_rail_mixing_ports_and_unknown_leaves(tmp_path: Path) -> None:
    topology = load_topology(_plan(tmp_path))
    nodes = [
        _node("gpu-001-01", [("leaf-g00-r0", 1), ("leaf-g00-r0", 2)]),  # HCA 1 on a rail-0 leaf
        _node("gpu-001-02", [("leaf-g00-r0", 3), ("leaf-g00-r1", 9)]),  # port 3 is an uplink; port 9 past 4
        _node("gpu-001-03", [("leaf-g00-r9", 1), ("spine-r1", 2)]),
    ]
    problems = validate(topology, nodes, nodes_file="site.yml")
    assert [f"{p.key}: {p.message}" for p in problems] == [
        "nodes.gpu-001-01.hcas[1]: rail mixing: gpu-001-01 mlx5_1 is HCA 1 (rail 1) but leaf-g00-r0 is rail 0",
        "nodes.gpu-001-02.hcas[0]: leaf-g00-r0 port 3 is used twice: by gpu-001-02 mlx5_0 and by "
        "link leaf-g00-r0:3-spine-r0:1",
        "nodes.gpu-001-02.hcas[1]: leaf-g00-r1 has ports 1-4, not port 9",
        "nodes.gpu-001-03.hcas[0]: gpu-001-03 mlx5_0 is cabled to 'leaf-g00-r9', which is not in the fabric plan",
        "nodes.gpu-001-03.hcas[1]: gpu-001-03 mlx5_1 is cabled to spine spine-r1",
    ]
    assert {p.file for p in problems} == {"site.yml"}
