"""The fabric plan: a rail-optimised three-tier fat tree, and its validation.

The plan is what the datacenter technicians cabled from: every switch (tier, rail, GUID, port
count), every switch-to-switch link, and, from the site's nodes, every HCA-to-leaf cable. It lives
in its own YAML file next to the site (`fabric.yml`) because a 512-node site has ~8,000
switch-to-switch links, and the rack files already hold the node end of each node cable.

Validation reports every problem at once, with the file, the key path and the fix, like the site
loader, because a plan with one typo per run is never finished. The checks are the mistakes a
hand-edited or merged plan really contains: a switch port used by two cables, a link to a switch
that is not in the plan, a port past the switch's port count, a link that skips a tier, and rail
mixing (a cable between two rails: each rail is its own fat tree, so an HCA of rail 4 on a rail-3
leaf, or a rail-3 leaf linked to a rail-4 spine, puts traffic of two rails on one path).
Pure: nothing is contacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import InventoryError, Problem

TIERS = ("leaf", "spine", "core")
# Which tiers a switch-to-switch link may join: a fat tree links adjacent tiers only.
ADJACENT = {frozenset(("leaf", "spine")), frozenset(("spine", "core"))}
GUID_RE = re.compile(r"^0x[0-9a-f]{16}$")
WIDTHS = ("1x", "2x", "4x", "8x")
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the 8,192-link plan ~10x faster
EXAMPLE_LINK = "[leaf-g00-r0, 33, spine-p00-r0-s0, 1]"


@dataclass(frozen=True)
class FabricSwitch:
    """One InfiniBand switch of the plan."""

    name: str
    tier: str
    rail: int
    guid: str
    ports: int


@dataclass(frozen=True)
class Link:
    """A switch-to-switch cable: (switch a, port) to (switch b, port), written once per cable."""

    a: str
    a_port: int
    b: str
    b_port: int

    def ends(self) -> tuple[tuple[str, int], tuple[str, int]]:
        return (self.a, self.a_port), (self.b, self.b_port)


@dataclass(frozen=True)
class NodeCable:
    """A planned HCA-to-leaf cable, from the site's nodes: HCA position i is rail i."""

    hostname: str
    hca: str
    guid: str
    rail: int
    leaf: str
    port: int
    rate_gbps: int


@dataclass(frozen=True)
class Partition:
    """An InfiniBand partition every node's HCA ports must be in, and how (UFM's pkey member fields)."""

    pkey: str
    name: str
    membership: str = "full"
    index0: bool = False
    ip_over_ib: bool = True


@dataclass(frozen=True)
class Topology:
    """The whole plan: rails, expected link rate and width, switches, switch-to-switch links and partitions."""

    path: Path
    rails: int
    rate_gbps: int
    width: str
    switches: dict[str, FabricSwitch]
    links: tuple[Link, ...]
    partitions: tuple[Partition, ...] = ()

    def port_count(self) -> int:
        """Switch ports of the plan (all of them, cabled or not): the fabric size the isolation cap scales with."""
        return sum(switch.ports for switch in self.switches.values())


def node_cables(nodes: Iterable[Any]) -> list[NodeCable]:
    """Every planned node cable of `nodes` (fleet Node objects), in node then HCA order."""
    cables = []
    for node in nodes:
        for rail, hca in enumerate(node.hcas):
            cables.append(NodeCable(node.hostname, hca.name, hca.guid, rail, hca.leaf, hca.port, hca.rate_gbps))
    return cables


Place = tuple[str, str]  # (system name, "40" for a switch port or "mlx5_4" for an HCA)


def planned_ends(topology: Topology, nodes: Iterable[Any]) -> dict[Place, Place]:
    """Both directions of every planned cable: which far end each switch port or HCA port should reach.

    UFM names a port's peer only while the link is up, so a port caught down (a flap's down phase, a pulled
    cable) has no live peer; the plan still says which cable it is, and whether it goes to a host.
    """
    ends: dict[Place, Place] = {}
    pairs = [((link.a, str(link.a_port)), (link.b, str(link.b_port))) for link in topology.links]
    pairs += [((cable.hostname, cable.hca), (cable.leaf, str(cable.port))) for cable in node_cables(nodes)]
    for a, b in pairs:
        ends[a], ends[b] = b, a
    return ends


def load_topology(path: str | Path) -> Topology:
    """Read and check the plan file on its own (schema, GUIDs, links); InventoryError lists every problem."""
    topology, problems = read_topology(path)
    if topology is not None:
        problems.extend(validate(topology, ()))
    if problems or topology is None:
        raise InventoryError(problems)
    return topology


def read_topology(path: str | Path) -> tuple[Topology | None, list[Problem]]:
    """The plan and its schema problems (not yet cross-checked: `validate` does that, with the nodes);
    None when the file cannot be read as a plan at all."""
    file = Path(path).resolve()
    problems: list[Problem] = []

    def add(key: str, message: str, fix: str) -> None:
        problems.append(Problem(str(file), key, message, fix))

    try:
        raw = yaml.load(file.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 - a safe loader
    except OSError as err:
        add("-", f"cannot read the fabric plan ({err.strerror})", f"create {file.name} next to the site file")
        return None, problems
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        add(f"line {mark.line + 1}" if mark else "-", "not valid YAML", "fix the YAML syntax")
        return None, problems
    if not isinstance(raw, dict):
        add("-", "expected a mapping with rails, switches and links", "start from inventory/lab/fabric.yml")
        return None, problems
    for key in sorted(set(raw) - {"rails", "rate_gbps", "width", "switches", "links", "partitions"}):
        add(key, "unknown key", "allowed keys: links, partitions, rails, rate_gbps, switches, width")
    rails = _int(raw.get("rails"), "rails", add, minimum=1)
    rate = _int(raw.get("rate_gbps", 400), "rate_gbps", add, minimum=1)
    width = str(raw.get("width", "4x"))
    if width not in WIDTHS:
        add("width", f"'{width}' is not a link width", f"write one of {', '.join(WIDTHS)}")
    switches = _switches(raw.get("switches"), rails, add)
    links = _links(raw.get("links"), add)
    partitions = _partitions(raw.get("partitions") or [], add)
    return Topology(file, rails, rate, width, switches, tuple(links), tuple(partitions)), problems


def _int(value: Any, key: str, add: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        add(key, f"expected an integer >= {minimum}, got {value!r}", "write a plain number")
        return 0
    return value


def _switches(raw: Any, rails: int, add: Any) -> dict[str, FabricSwitch]:
    if not isinstance(raw, dict) or not raw:
        add("switches", "expected a mapping of switch name -> {tier, rail, guid, ports}",
            "switches: {leaf-g00-r0: {tier: leaf, rail: 0, guid: '0x...', ports: 64}}")
        return {}
    result = {}
    guids: dict[str, str] = {}
    for name, entry in raw.items():
        key = f"switches.{name}"
        if not isinstance(entry, dict):
            add(key, "expected a mapping", "write {tier, rail, guid, ports}")
            continue
        for extra in sorted(set(entry) - {"tier", "rail", "guid", "ports"}):
            add(f"{key}.{extra}", "unknown key", "allowed keys: guid, ports, rail, tier")
        tier = str(entry.get("tier"))
        if tier not in TIERS:
            add(f"{key}.tier", f"'{tier}' is not a tier", f"write one of {', '.join(TIERS)}")
        rail = _int(entry.get("rail"), f"{key}.rail", add)
        if rails and rail >= rails:
            add(f"{key}.rail", f"rail {rail} is not one of the plan's {rails} rails", f"use 0..{rails - 1}")
        guid = str(entry.get("guid", "")).lower()
        if not GUID_RE.match(guid):
            add(f"{key}.guid", f"'{entry.get('guid')}' is not a switch GUID", "write 0x followed by 16 hex digits")
        elif guid in guids:
            add(f"{key}.guid", f"duplicate GUID '{guid}' (also switch {guids[guid]})", "every switch GUID is unique")
        else:
            guids[guid] = str(name)
        ports = _int(entry.get("ports"), f"{key}.ports", add, minimum=1)
        result[str(name)] = FabricSwitch(str(name), tier, rail, guid, ports)
    return result


def _links(raw: Any, add: Any) -> list[Link]:
    if not isinstance(raw, list):
        add("links", "expected a list of [switch, port, switch, port]", f"links: [{EXAMPLE_LINK}]")
        return []
    links = []
    for index, entry in enumerate(raw):
        key = f"links[{index}]"
        if (not isinstance(entry, list) or len(entry) != 4 or not all(isinstance(entry[i], str) for i in (0, 2))
                or not all(isinstance(entry[i], int) and not isinstance(entry[i], bool) for i in (1, 3))):
            add(key, f"expected [switch, port, switch, port], got {entry!r}", f"write e.g. {EXAMPLE_LINK}")
            continue
        links.append(Link(entry[0], entry[1], entry[2], entry[3]))
    return links


PKEY_RE = re.compile(r"^0x[0-9a-f]{1,4}$")


def _partitions(raw: Any, add: Any) -> list[Partition]:
    if not isinstance(raw, list):
        add("partitions", "expected a list of partitions", "partitions: [{pkey: '0x0a12', name: compute}]")
        return []
    result = []
    for index, entry in enumerate(raw):
        key = f"partitions[{index}]"
        if not isinstance(entry, dict):
            add(key, "expected a mapping", "write {pkey, name, membership, index0, ip_over_ib}")
            continue
        for extra in sorted(set(entry) - {"pkey", "name", "membership", "index0", "ip_over_ib"}):
            add(f"{key}.{extra}", "unknown key", "allowed keys: index0, ip_over_ib, membership, name, pkey")
        pkey = str(entry.get("pkey", "")).lower()
        # 0x7fff is the default partition the SM manages itself; 0x0 and 0xffff are reserved
        if not PKEY_RE.match(pkey) or int(pkey, 16) & 0x7FFF in (0, 0x7FFF):
            add(f"{key}.pkey", f"'{entry.get('pkey')}' is not a usable pkey", "write 0x0001-0x7ffe, e.g. '0x0a12'")
        membership = str(entry.get("membership", "full"))
        if membership not in ("full", "limited"):
            add(f"{key}.membership", f"'{membership}' is not a membership", "write full or limited")
        flags = {}
        for flag, default in (("index0", False), ("ip_over_ib", True)):
            value = entry.get(flag, default)
            if not isinstance(value, bool):
                add(f"{key}.{flag}", f"expected true or false, got {value!r}", f"{flag}: {str(default).lower()}")
            flags[flag] = value is True
        result.append(Partition(pkey, str(entry.get("name", pkey)), membership, flags["index0"], flags["ip_over_ib"]))
    return result


def validate(topology: Topology, nodes: Iterable[Any], *, nodes_file: str = "") -> list[Problem]:
    """Cross-checks of the plan and the nodes' cables: unknown switches, ports used twice or past
    the switch's count, links that skip a tier, and rail mixing. Every problem, not the first."""
    problems: list[Problem] = []
    plan = str(topology.path)
    switches = topology.switches
    used: dict[tuple[str, int], str] = {}

    def claim(switch: str, port: int, what: str, file: str, key: str) -> None:
        known = switches.get(switch)
        if known is None:
            return
        if not 1 <= port <= known.ports:
            problems.append(Problem(file, key, f"{switch} has ports 1-{known.ports}, not port {port}",
                                    "fix the port number or the switch's ports count"))
            return
        if (switch, port) in used:
            problems.append(Problem(file, key, f"{switch} port {port} is used twice: by {what} and by "
                                               f"{used[(switch, port)]}", "give each cable its own switch port"))
        else:
            used[(switch, port)] = what

    for index, link in enumerate(topology.links):
        key = f"links[{index}]"
        ends = [switches.get(link.a), switches.get(link.b)]
        for name, known in ((link.a, ends[0]), (link.b, ends[1])):
            if known is None:
                problems.append(Problem(plan, key, f"link to unknown switch '{name}'",
                                        _near(name, switches) or "add the switch under switches: or fix the name"))
        what = f"link {link.a}:{link.a_port}-{link.b}:{link.b_port}"
        claim(link.a, link.a_port, what, plan, key)
        claim(link.b, link.b_port, what, plan, key)
        if ends[0] and ends[1]:
            if ends[0].rail != ends[1].rail:
                problems.append(Problem(plan, key, f"rail mixing: {link.a} is rail {ends[0].rail}, "
                                                   f"{link.b} is rail {ends[1].rail}",
                                        "link switches of the same rail only"))
            if frozenset((ends[0].tier, ends[1].tier)) not in ADJACENT:
                problems.append(Problem(plan, key, f"a {ends[0].tier}-{ends[1].tier} link skips the fat tree's tiers",
                                        "link leaf to spine or spine to core"))
    for cable in node_cables(nodes):
        key = f"nodes.{cable.hostname}.hcas[{cable.rail}]"
        file = nodes_file or plan
        leaf = switches.get(cable.leaf)
        if leaf is None:
            problems.append(Problem(file, key, f"{cable.hostname} {cable.hca} is cabled to '{cable.leaf}', "
                                               "which is not in the fabric plan",
                                    _near(cable.leaf, switches) or f"add it to {topology.path.name} or fix the leaf"))
            continue
        if leaf.tier != "leaf":
            problems.append(Problem(file, key, f"{cable.hostname} {cable.hca} is cabled to {leaf.tier} {leaf.name}",
                                    "cable HCAs to leaf switches"))
        if leaf.rail != cable.rail:
            problems.append(Problem(file, key, f"rail mixing: {cable.hostname} {cable.hca} is HCA {cable.rail} "
                                               f"(rail {cable.rail}) but {leaf.name} is rail {leaf.rail}",
                                    f"cable HCA {cable.rail} to a rail-{cable.rail} leaf"))
        claim(cable.leaf, cable.port, f"{cable.hostname} {cable.hca}", file, key)
    return problems


def _near(name: str, switches: dict[str, FabricSwitch]) -> str:
    import difflib

    found = difflib.get_close_matches(name, sorted(switches), n=1, cutoff=0.8)
    return f"did you mean '{found[0]}'?" if found else ""
