"""The lab fabric as UFM sees it: ports, links, counters, events and partitions, with faults.

Built from the site's nodes and the fabric plan, then bent by the fault list (`lab_dir/ufm/faults.json`,
re-read when it changes). Everything time-dependent is a pure function of the simulated clock
(`elapsed real seconds / time_factor`), so two reads a few real seconds apart see counters move by
minutes' worth, and a test can predict every value. Endpoints are written `host/mlx5_4` (an HCA port)
or `leaf-g00-r0/33` (a switch port) in fault specs.

Faults (`kind`, and what a client can see):
- `port_down` `{port}`: cabled, module present (cable_info readable), logical Down / physical Polling.
- `missing_cable` `{port}`: no cable at either end: both Down, no peer, empty cable_info.
- `hdr` `{port}`: Active at HDR (200 Gb/s) with an HDR cable part number instead of NDR 400.
- `width_2x` `{port}`: Active at 2x instead of 4x (a bad lane pair).
- `swapped_cables` `{a, b}`: the far ends of the two cables are exchanged.
- `symbol_errors` `{port, per_12min}`: SymbolErrorCounter rises at that rate (NDR's 1e-14 budget is ~2.9).
- `flapping` `{port, period_s, down_s}`: goes Down for `down_s` every `period_s` (simulated), each time
  raising LinkDownedCounter on both ends and logging "Link went down"/"Link went up" events.
- `event_burst` `{switch, count, at_s}`: `count` events in the same second from one switch (one reboot),
  `at_s` (default 0) UFM seconds after the fault was applied.
- `pkey_missing` `{port}`: the HCA port's GUID is not in the site's partitions.
- `busy` `{count}`: the next `count` requests answer 503 (UFM's REST server restarting).
"""

from __future__ import annotations

import datetime
import json
import random
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.fabric.topology import Topology
from fleet.site import Site

NDR_CABLE = {"identifier": "OSFP", "vendor": "NVIDIA", "part_number": "MCP4Y10-N002", "serial_number": "",
             "length": "2 m", "technology": "Copper cable- unequalized"}
HDR_CABLE = {"identifier": "QSFP56", "vendor": "Mellanox", "part_number": "MCP1650-H002E26", "serial_number": "",
             "length": "2 m", "technology": "Copper cable- unequalized"}
COUNTERS = ("SymbolErrorCounter", "LinkDownedCounter", "LinkErrorRecoveryCounter", "PortRcvErrors",
            "PortXmitDiscards", "PortXmitWait")
EVENT_NAMES = {"down": "Link went down", "up": "Link went up", "burst": "Port state change"}


@dataclass
class SimPort:
    """One port of the lab fabric; static fields fixed at build time, the rest computed per read."""

    name: str  # <bare guid>_<number>
    guid: str  # 0x...
    number: int
    system: str  # hostname or switch name
    is_hca: bool
    hca: str = ""  # mlx5_4 for HCA ports
    peer: SimPort | None = None
    down: bool = False  # cabled but not linking
    speed: str = "NDR"
    width: str = "4x"
    symbol_per_12min: float = 0.0
    flap: tuple[float, float] | None = None  # (period_s, down_s)
    xmit_wait_rate: float = 0.0
    cable: dict = field(default_factory=dict)

    def endpoint(self) -> str:
        return f"{self.system}/{self.hca}" if self.is_hca else f"{self.system}/{self.number}"


def _bare(guid: str) -> str:
    return guid.lower().removeprefix("0x")


class LabFabric:
    """Ports and their wiring, built from the plan and the faults; answers UFM-shaped reads."""

    def __init__(self, site: Site, topology: Topology, *, time_factor: float, start: float | None = None,
                 seed: int = 0) -> None:
        self.time_factor = time_factor
        self.start = time.time() if start is None else start
        self.site = site
        self.topology = topology
        self.seed = seed
        self.busy = 0
        self._wire()
        self.pkeys: dict[str, dict] = {
            p.pkey: {"partition": p.name, "ip_over_ib": p.ip_over_ib,
                     "guids": {_bare(port.guid): {"membership": p.membership, "index0": p.index0}
                               for port in self.ports.values() if port.is_hca}}
            for p in topology.partitions
        }
        self.unhealthy: dict[str, dict] = {}
        self.tokens: set[str] = set()
        self.jobs: dict[str, dict] = {}

    def _wire(self) -> None:
        """Ports and cables exactly as planned (faults are applied on top by apply_faults)."""
        site, topology = self.site, self.topology
        self.ports: dict[str, SimPort] = {}
        self.by_endpoint: dict[str, SimPort] = {}
        self.systems: list[dict] = []
        self.burst: tuple[str, int, float] | None = None
        rng = random.Random(self.seed)
        for switch in topology.switches.values():
            self.systems.append({"system_name": switch.name, "guid": _bare(switch.guid), "type": "switch",
                                 "model": "MQM9700-NS2F", "description": f"MF0;{switch.name}:MQM9700/U1"})
            for number in range(1, switch.ports + 1):
                self._add(SimPort(f"{_bare(switch.guid)}_{number}", switch.guid, number, switch.name, False,
                                  xmit_wait_rate=rng.uniform(0.0, 50.0)))
        for node in sorted(site.nodes.values(), key=lambda n: n.hostname):
            self.systems.append({"system_name": node.hostname, "guid": _bare(node.hcas[0].guid) if node.hcas else "",
                                 "type": "host", "model": "HGX H100", "description": node.hostname})
            for hca in node.hcas:
                port = self._add(SimPort(f"{_bare(hca.guid)}_1", hca.guid, 1, node.hostname, True, hca.name,
                                         xmit_wait_rate=rng.uniform(0.0, 50.0)))
                leaf = self.by_endpoint.get(f"{hca.leaf}/{hca.port}")
                if leaf is not None:
                    self._cable(port, leaf)
        for link in topology.links:
            a, b = self.by_endpoint.get(f"{link.a}/{link.a_port}"), self.by_endpoint.get(f"{link.b}/{link.b_port}")
            if a is not None and b is not None:
                self._cable(a, b)

    def _add(self, port: SimPort) -> SimPort:
        self.ports[port.name] = port
        self.by_endpoint[port.endpoint()] = port
        return port

    @staticmethod
    def _cable(a: SimPort, b: SimPort) -> None:
        a.peer, b.peer = b, a
        a.cable = b.cable = dict(NDR_CABLE, serial_number=f"MT{zlib.crc32(f'{a.name}:{b.name}'.encode()) % 10**8:08d}")

    # --- faults -----------------------------------------------------------------------------------

    def apply_faults(self, specs: list[dict]) -> None:
        """Rewire as planned, then bend it; each spec names endpoints as `host/mlx5_4` or `switch/33`.

        Pkeys, unhealthy marks, tokens and jobs are UFM's own state and survive a rewiring."""
        self._wire()
        self.busy = 0
        for spec in specs:
            kind = spec["kind"]
            if kind == "busy":
                self.busy = int(spec.get("count", 1))
                continue
            if kind == "event_burst":  # `at_s` after the fault is applied, in UFM time
                at = self.sim_seconds() + float(spec.get("at_s", 0.0))
                self.burst = (str(spec["switch"]), int(spec.get("count", 100)), at)
                continue
            if kind == "swapped_cables":
                a, b = self.by_endpoint[spec["a"]], self.by_endpoint[spec["b"]]
                far_a, far_b = a.peer, b.peer
                if far_a is not None and far_b is not None:
                    self._cable(a, far_b)
                    self._cable(b, far_a)
                continue
            port = self.by_endpoint[spec["port"]]
            ends = [port] + ([port.peer] if port.peer else [])
            if kind == "pkey_missing":
                for entry in self.pkeys.values():
                    entry["guids"].pop(_bare(port.guid), None)
            elif kind == "port_down":
                for end in ends:
                    end.down = True
            elif kind == "missing_cable":
                for end in ends:
                    end.peer, end.cable = None, {}
            elif kind == "hdr":
                for end in ends:
                    end.speed, end.cable = "HDR", dict(HDR_CABLE, serial_number=end.cable.get("serial_number", ""))
            elif kind == "width_2x":
                for end in ends:
                    end.width = "2x"
            elif kind == "symbol_errors":
                port.symbol_per_12min = float(spec.get("per_12min", 10.0))
            elif kind == "flapping":
                for end in ends:
                    end.flap = (float(spec.get("period_s", 600.0)), float(spec.get("down_s", 5.0)))
            else:
                raise ValueError(f"unknown UFM lab fault kind '{kind}'")

    # --- time -------------------------------------------------------------------------------------

    def sim_seconds(self, now: float | None = None) -> float:
        return ((time.time() if now is None else now) - self.start) / self.time_factor

    def _timestamp(self, sim_s: float) -> str:
        """UFM's event time format: local wall time to the second."""
        return datetime.datetime.fromtimestamp(self.start + sim_s).strftime("%Y-%m-%d %H:%M:%S")

    def linked(self, port: SimPort, t: float) -> bool:
        if port.peer is None or port.down:
            return False
        if port.flap is not None:
            period, down_s = port.flap
            return (t % period) >= down_s
        return True

    def counters(self, port: SimPort, t: float) -> dict[str, int]:
        flaps = 0
        if port.flap is not None:
            period = port.flap[0]
            flaps = int(t // period) + 1 if t >= 0 else 0  # the first drop is at t = 0
        symbol = int(port.symbol_per_12min * t / 720.0)
        return {
            "SymbolErrorCounter": symbol,
            "LinkDownedCounter": flaps,
            "LinkErrorRecoveryCounter": flaps,
            "PortRcvErrors": symbol // 4,
            "PortXmitDiscards": 0,
            "PortXmitWait": int(port.xmit_wait_rate * t) if self.linked(port, t) else 0,
        }

    # --- UFM-shaped reads -------------------------------------------------------------------------

    def port_json(self, port: SimPort, t: float, *, cable_info: bool) -> dict[str, Any]:
        up = self.linked(port, t)
        peer = port.peer if up else None
        body: dict[str, Any] = {
            "name": port.name, "guid": _bare(port.guid), "number": port.number, "external_number": port.number,
            "system_name": port.system, "systemID": _bare(port.guid),
            "node_description": f"{port.system} {port.hca}" if port.is_hca else port.system,
            "description": "Computer IB Port" if port.is_hca else "Switch IB Port",
            "dname": f"{port.hca}/1" if port.is_hca else str(port.number),
            "logical_state": "Active" if up else "Down",
            "physical_state": "LinkUp" if up else ("Polling" if port.peer is not None or port.cable else "Disabled"),
            "active_speed": port.speed if up else "", "active_width": port.width if up else "",
            "max_supported_speed": "NDR",
            "peer": peer.name if peer else "N/A", "peer_guid": _bare(peer.guid) if peer else "",
            "peer_node_name": peer.system if peer else "", "peer_port_dname": str(peer.number) if peer else "",
            "severity": "Info" if up or (port.peer is None and not port.is_hca) else "Warning",
            "mtu": 4096,
        }
        if cable_info:
            body["cable_info"] = dict(port.cable)
        return body

    def ports_json(self, *, cable_info: bool, active_only: bool, now: float | None = None) -> list[dict]:
        t = self.sim_seconds(now)
        return [self.port_json(p, t, cable_info=cable_info) for p in self.ports.values()
                if not active_only or self.linked(p, t)]

    def links_json(self, now: float | None = None) -> list[dict]:
        t = self.sim_seconds(now)
        result = []
        for port in self.ports.values():
            peer = port.peer
            if peer is None or not self.linked(port, t) or port.name > peer.name:
                continue  # each link once, from the end whose name sorts first
            result.append({
                "name": f"{port.name}:{peer.name}",
                "source_guid": _bare(port.guid), "source_port": port.number,
                "destination_guid": _bare(peer.guid), "destination_port": peer.number,
                "source_port_node_description": f"{port.system} {port.hca}".strip(),
                "destination_port_node_description": f"{peer.system} {peer.hca}".strip(),
                "width": port.width, "severity": "Info",
            })
        return result

    def counters_json(self, names: list[str] | None, now: float | None = None) -> dict[str, dict[str, int]]:
        t = self.sim_seconds(now)
        chosen = [self.ports[n] for n in names if n in self.ports] if names else list(self.ports.values())
        return {p.name: self.counters(p, t) for p in chosen}

    def events(self, now: float | None = None) -> list[dict]:
        """Flap events up to now, plus the burst; ids in time order like UFM's event log."""
        t = self.sim_seconds(now)
        raw: list[tuple[float, str, SimPort]] = []
        for port in self.ports.values():
            if port.flap is None or (port.peer is not None and port.name > port.peer.name and port.peer.flap):
                continue  # a flapping link logs once, on the end whose name sorts first
            period, down_s = port.flap
            k = 0
            while k * period <= t:
                raw.append((k * period, "down", port))
                if k * period + down_s <= t:
                    raw.append((k * period + down_s, "up", port))
                k += 1
        if self.burst is not None:
            switch, count, at_s = self.burst
            ports = [p for p in self.ports.values() if p.system == switch][:count]
            if at_s <= t:
                raw.extend((at_s, "burst", p) for p in ports)
        raw.sort(key=lambda item: item[0])
        return [{
            "id": index + 1, "name": EVENT_NAMES[what], "severity": "Warning" if what != "up" else "Info",
            "timestamp": self._timestamp(at), "counter": 1, "category": "Hardware", "type": "Port",
            "object_name": port.name, "object_path": f"default / {port.system} / {port.number}",
            "write_to_syslog": True,
            "description": f"{EVENT_NAMES[what]}: {port.system} port {port.number}"
                           + (f" ({port.peer.system} port {port.peer.number})" if port.peer else ""),
        } for index, (at, what, port) in enumerate(raw)]

    def alarms(self, now: float | None = None) -> list[dict]:
        t = self.sim_seconds(now)
        return [{"id": index + 1, "name": "Symbol error rate above threshold", "severity": "Minor",
                 "object_name": port.name, "object_type": "Port",
                 "counter": self.counters(port, t)["SymbolErrorCounter"],
                 "timestamp": self._timestamp(t), "description": f"{port.system} port {port.number}"}
                for index, port in enumerate(p for p in self.ports.values() if p.symbol_per_12min > 2.88)]

    def unhealthy_json(self) -> list[dict]:
        result = []
        for name, entry in self.unhealthy.items():
            port = self.ports[name]
            peer = port.peer
            result.append({
                "UnhealthyPort": f"{port.system}/{port.number}", "UnhealthyGUID": _bare(port.guid),
                "UnhealthyPortNumber": port.number, "UnhealthyNode": port.system,
                "PeerGUID": _bare(peer.guid) if peer else "", "PeerPortNumber": peer.number if peer else 0,
                "PeerNode": peer.system if peer else "", "State": "Warning",
                "Condition": ["MANUAL"], "Isolated": entry["isolated"], "StatusTime": entry["time"],
            })
        return result


KINDS = {"port_down": ("port",), "missing_cable": ("port",), "hdr": ("port",), "width_2x": ("port",),
         "pkey_missing": ("port",), "swapped_cables": ("a", "b"), "symbol_errors": ("port",),
         "flapping": ("port",), "event_burst": ("switch",), "busy": ()}
NUMBERS = {"per_12min", "period_s", "down_s", "count", "at_s"}


def parse_fault_text(text: str, site: Site, topology: Topology) -> dict:
    """`KIND:TARGET[:NAME=VALUE,...]` -> a fault spec, checked against the site: TARGET is an endpoint
    (`host/mlx5_4`, `switch/33`), two joined by '+' for swapped_cables, a switch for event_burst,
    nothing for busy. ValueError names what is wrong."""
    kind, _, rest = text.partition(":")
    target, _, options = rest.partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown UFM fault kind '{kind}' (kinds: {', '.join(sorted(KINDS))})")
    spec: dict = {"kind": kind}
    fields = KINDS[kind]
    targets = [t for t in target.split("+") if t]
    if len(targets) != len(fields):
        raise ValueError(f"{kind} needs {' and '.join(fields) or 'no target'}, got '{target}'")
    hosts = {(node.hostname, hca.name) for node in site.nodes.values() for hca in node.hcas}
    for name, value in zip(fields, targets, strict=True):
        head, _, tail = value.partition("/")
        if name == "switch":
            ok = value in topology.switches
        elif head in topology.switches:
            ok = tail.isdigit() and 1 <= int(tail) <= topology.switches[head].ports
        else:
            ok = (head, tail) in hosts
        if not ok:
            raise ValueError(f"{kind}: '{value}' is not a {'switch' if name == 'switch' else 'port'} of the site "
                             "(write host/mlx5_N or switch/PORT)")
        spec[name] = value
    for option in (o for o in options.split(",") if o):
        key, _, number = option.partition("=")
        if key not in NUMBERS:
            raise ValueError(f"{kind}: unknown option '{key}' (options: {', '.join(sorted(NUMBERS))})")
        try:
            spec[key] = float(number)
        except ValueError:
            raise ValueError(f"{kind}: {key} must be a number, got '{number}'") from None
    return spec


def load_faults(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    return list(data)
