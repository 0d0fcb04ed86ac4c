"""Fabric checks against the plan: HCA ports, node cables, switch-to-switch links and pkeys. Pure.

Input is what UFM reported (ports, links, pkey members) and the plan; output is findings that name
the exact port, what the plan expected, what was found and who acts, e.g. "gpu-012-03 mlx5_4 expected
leaf-g01-r4 port 15, found leaf-g01-r4 port 16" for a datacenter technician. Switches are matched by
GUID, never by the names UFM shows, because a switch's node description is whatever its last
configuration wrote, while its GUID is burnt in.

Who acts: a cable, a transceiver, a seat or a lane is the datacenter technician's; a pkey, an
unplanned link or a plan that disagrees with itself is the fabric owner's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleet.fabric.topology import Link, NodeCable, Topology, node_cables
from fleet.fabric.ufm import PkeyMember, Port, UfmLink

FABRIC_OWNER = "fabric owner"
DATACENTER_TECH = "datacenter tech"
# UFM's active_speed names and their per-port rate at 4x (InfiniBand Trade Association generations)
SPEED_GBPS = {"SDR": 10, "DDR": 20, "QDR": 40, "FDR": 56, "EDR": 100, "HDR": 200, "NDR": 400, "XDR": 800}


@dataclass(frozen=True)
class Finding:
    """One thing wrong, where, and who fixes it. `subject` is a hostname or a switch name."""

    subject: str
    kind: str  # missing | down | cabling | speed | width | pkey | link
    message: str
    who: str
    port: str = ""  # UFM port name, when UFM knows the port


def _speed_name(rate_gbps: int) -> str:
    return next((name for name, rate in SPEED_GBPS.items() if rate == rate_gbps), f"{rate_gbps} Gb/s")


class _Index:
    """UFM's ports by GUID and by (switch GUID, port), and the plan's switch names by GUID."""

    def __init__(self, topology: Topology, ports: Iterable[Port]) -> None:
        self.hca: dict[str, Port] = {}
        self.switch_port: dict[tuple[str, int], Port] = {}
        self.by_name: dict[str, Port] = {}
        for port in ports:
            self.by_name[port.name] = port
            if port.is_hca:
                self.hca[port.guid] = port
            else:
                self.switch_port[(port.guid, port.number)] = port
        self.switch_name = {s.guid: s.name for s in topology.switches.values()}
        self.switch_guid = {s.name: s.guid for s in topology.switches.values()}

    def peer(self, port: Port) -> tuple[str, int] | None:
        """(plan name or 'unknown switch GUID ...', port number) at the far end of an active port."""
        guid, _, number = port.peer.rpartition("_")
        if not guid or not number.isdigit():
            return None
        guid = "0x" + guid.lower().removeprefix("0x")
        name = self.switch_name.get(guid) or f"{port.peer_node_name or 'a switch'} (GUID {guid}, not in the plan)"
        return name, int(number)


def check_nodes(topology: Topology, nodes: Iterable[Any], ports: Iterable[Port],
                pkeys: dict[str, list[PkeyMember]]) -> list[Finding]:
    """Every planned HCA port of `nodes`: seen, Active, at the plan's rate and width, on its planned
    leaf port, and a member of every partition of the plan."""
    index = _Index(topology, ports)
    findings: list[Finding] = []
    members = {pkey: {m.guid: m for m in found} for pkey, found in pkeys.items()}
    for cable in node_cables(nodes):
        findings.extend(_check_cable(topology, index, cable))
        for partition in topology.partitions:
            member = members.get(partition.pkey, {}).get(cable.guid)
            where = f"{cable.hostname} {cable.hca} ({cable.guid})"
            if member is None:
                findings.append(Finding(cable.hostname, "pkey", f"{where} is not in pkey {partition.pkey} "
                                        f"({partition.name})", FABRIC_OWNER, _port_name(index, cable)))
            elif member.membership != partition.membership:
                findings.append(Finding(cable.hostname, "pkey", f"{where} is a {member.membership} member of pkey "
                                        f"{partition.pkey}, expected {partition.membership}", FABRIC_OWNER,
                                        _port_name(index, cable)))
    return findings


def _port_name(index: _Index, cable: NodeCable) -> str:
    port = index.hca.get(cable.guid)
    return port.name if port else ""


def _check_cable(topology: Topology, index: _Index, cable: NodeCable) -> list[Finding]:
    who = f"{cable.hostname} {cable.hca}"
    expected = f"{cable.leaf} port {cable.port}"
    port = index.hca.get(cable.guid)
    if port is None:
        return [Finding(cable.hostname, "missing", f"{who} (GUID {cable.guid}) is not seen by UFM, expected on "
                        f"{expected}: check the HCA is seated and powered, or fix its GUID in the inventory after "
                        "a replacement", DATACENTER_TECH)]
    if port.logical_state != "Active":
        if not port.cable:
            leaf_port = index.switch_port.get((index.switch_guid.get(cable.leaf, ""), cable.port))
            if leaf_port is None or not leaf_port.cable:
                return [Finding(cable.hostname, "missing", f"{who} has no cable: expected a cable to {expected}",
                                DATACENTER_TECH, port.name)]
        return [Finding(cable.hostname, "down", f"{who} is {port.logical_state} ({port.physical_state}) with a "
                        f"cable in, expected Active to {expected}: reseat or replace the cable", DATACENTER_TECH,
                        port.name)]
    findings = []
    found = index.peer(port)
    if found != (cable.leaf, cable.port):
        where = f"{found[0]} port {found[1]}" if found else "no peer"
        findings.append(Finding(cable.hostname, "cabling", f"{who} expected {expected}, found {where}",
                                DATACENTER_TECH, port.name))
    rate = SPEED_GBPS.get(port.speed.upper())
    if rate != cable.rate_gbps:
        part = port.cable.get("part_number")
        findings.append(Finding(cable.hostname, "speed", f"{who} runs at {port.speed or 'no speed'} "
                                f"{rate or '?'} Gb/s, expected {_speed_name(cable.rate_gbps)} {cable.rate_gbps} Gb/s"
                                + (f" (cable {part})" if part else ""), DATACENTER_TECH, port.name))
    if port.width != topology.width:
        findings.append(Finding(cable.hostname, "width", f"{who} runs at {port.width or 'no'} width, expected "
                                f"{topology.width}: a lane is bad, reseat or replace the cable", DATACENTER_TECH,
                                port.name))
    return findings


def links_for(topology: Topology, leaves: Iterable[str]) -> list[Link]:
    """The planned links the given leaves depend on: their uplinks and their spines' uplinks."""
    wanted = set(leaves)
    up = [link for link in topology.links if link.a in wanted or link.b in wanted]
    spines = {end for link in up for end in (link.a, link.b) if end not in wanted}
    return up + [link for link in topology.links if link not in up and (link.a in spines or link.b in spines)
                 and all(topology.switches.get(end) and topology.switches[end].tier != "leaf"
                         for end in (link.a, link.b))]


def check_links(topology: Topology, planned: Iterable[Link], ports: Iterable[Port],
                links: Iterable[UfmLink]) -> list[Finding]:
    """Each planned switch-to-switch link is up, between the planned ports, at the plan's rate and width."""
    index = _Index(topology, ports)
    seen: dict[tuple[str, int], tuple[str, int]] = {}
    for link in links:
        a = (index.switch_name.get(link.source_guid, link.source_guid), link.source_port)
        b = (index.switch_name.get(link.destination_guid, link.destination_guid), link.destination_port)
        seen[a], seen[b] = b, a
    findings = []
    for link in planned:
        a, b = (link.a, link.a_port), (link.b, link.b_port)
        far = seen.get(a)
        if far == b:
            port = index.switch_port.get((index.switch_guid[link.a], link.a_port))
            if port is not None:
                findings.extend(_link_rate(topology, link, port))
            continue
        if far is None and seen.get(b) is None:
            port = index.switch_port.get((index.switch_guid[link.a], link.a_port))
            cabled = port is not None and bool(port.cable)
            findings.append(Finding(link.a, "link", f"{link.a} port {link.a_port} - {link.b} port {link.b_port} is "
                                    + ("down with a cable in: reseat or replace it" if cabled else "missing: no cable"),
                                    DATACENTER_TECH, port.name if port else ""))
            continue
        for here, there in ((a, b), (b, a)):
            found = seen.get(here)
            if found is not None and found != there:
                findings.append(Finding(here[0], "link", f"{here[0]} port {here[1]} expected {there[0]} port "
                                        f"{there[1]}, found {found[0]} port {found[1]}", DATACENTER_TECH))
                break
    return findings


def _link_rate(topology: Topology, link: Link, port: Port) -> list[Finding]:
    findings = []
    what = f"{link.a} port {link.a_port} - {link.b} port {link.b_port}"
    if SPEED_GBPS.get(port.speed.upper()) != topology.rate_gbps:
        findings.append(Finding(link.a, "speed", f"{what} runs at {port.speed}, expected "
                                f"{_speed_name(topology.rate_gbps)}", DATACENTER_TECH, port.name))
    if port.width != topology.width:
        findings.append(Finding(link.a, "width", f"{what} runs at {port.width}, expected {topology.width}",
                                DATACENTER_TECH, port.name))
    return findings


def missing_members(topology: Topology, nodes: Iterable[Any],
                    pkeys: dict[str, list[PkeyMember]]) -> dict[str, list[str]]:
    """pkey -> GUIDs of `nodes` to add (absent, or with the wrong membership), in node order."""
    cables = node_cables(nodes)
    result: dict[str, list[str]] = {}
    for partition in topology.partitions:
        present = {m.guid: m.membership for m in pkeys.get(partition.pkey, [])}
        todo = [c.guid for c in cables if present.get(c.guid) != partition.membership]
        if todo:
            result[partition.pkey] = todo
    return result
