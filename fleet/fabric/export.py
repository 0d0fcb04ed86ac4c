"""The fabric plan in NVIDIA's own formats, so users can check the cabling with NVIDIA's tools. Pure.

- UFM cabling validation (NDT) CSV: `#StartDevice,StartPort,EndDevice,EndPort,LinkType`, one row per
  cable, host ports written `<host> <hca>` and switch ports `Port <n>`, LinkType `Data` (the format of
  the UFM NDT plugin's own test topologies, github.com/Mellanox/ufm_sdk_3.0
  plugins/UFM_NDT_Plugin/tests/positive_flow_ndts/switch_to_host_topo1.ndt).
- ibdiagnet topology file (`ibdiagnet --topo_file`, ibdm's format): one block per system,
  `<type> <name>` then `   P<port> -<width>-<lane speed>G-> <remote type> <remote name> P<remote port>`;
  switches are typed by model (`MQM9700`), HCAs as `HCA-1` systems named `<host>/<hca>`, and NDR's
  lane speed is 100G (4x NDR = 400 Gb/s).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from fleet.fabric.topology import Topology, node_cables

SWITCH_MODEL = "MQM9700"
LANE_GBPS = {400: 100, 200: 50, 100: 25}


def ndt_csv(topology: Topology, nodes: Iterable[Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["#StartDevice", "StartPort", "EndDevice", "EndPort", "LinkType"])
    for cable in node_cables(nodes):
        writer.writerow([cable.hostname, f"{cable.hostname} {cable.hca}", cable.leaf, f"Port {cable.port}", "Data"])
    for link in topology.links:
        writer.writerow([link.a, f"Port {link.a_port}", link.b, f"Port {link.b_port}", "Data"])
    return out.getvalue()


def ibdiagnet_topology(topology: Topology, nodes: Iterable[Any]) -> str:
    width = topology.width
    lane = f"{LANE_GBPS.get(topology.rate_gbps, topology.rate_gbps // 4)}G"
    blocks: dict[str, list[tuple[int, str]]] = defaultdict(list)
    types: dict[str, str] = {name: SWITCH_MODEL for name in topology.switches}
    for cable in node_cables(nodes):
        host = f"{cable.hostname}/{cable.hca}"
        types[host] = "HCA-1"
        blocks[host].append((1, f"   P1 -{width}-{lane}-> {SWITCH_MODEL} {cable.leaf} P{cable.port}"))
        blocks[cable.leaf].append((cable.port, f"   P{cable.port} -{width}-{lane}-> HCA-1 {host} P1"))
    for link in topology.links:
        for (here, port), (there, far) in (link.ends(), link.ends()[::-1]):
            blocks[here].append((port, f"   P{port} -{width}-{lane}-> {SWITCH_MODEL} {there} P{far}"))
    lines = [f"# ibdiagnet topology file from the fabric plan {topology.path.name}"]
    for name in sorted(blocks):
        lines.append("")
        lines.append(f"{types[name]} {name}")
        lines.extend(line for _, line in sorted(blocks[name]))
    return "\n".join(lines) + "\n"
