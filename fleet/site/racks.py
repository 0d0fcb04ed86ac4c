"""Racks and their nodes: where each node sits, how it is reached, how its HCAs must be cabled.

Racks are written inline or in rack files (`racks: [racks/*.yml]`); every problem names the file
it was written in. A faulty node is still built from its valid fields (see `_node`).
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.site.model import Bmc, Hca, Node, Rack
from fleet.site.schema import Problems, host_port, ip, join, mac, positive_int, read_yaml

GUID_RE = re.compile(r"^0x[0-9a-f]{16}$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Both reach MAAS tag names ([a-zA-Z0-9_-]) and cloud-init user-data: checked here, before they get there.
SERVICE_TAG_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")  # Dell: 7 letters and digits; other vendors' serials longer
ROLE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# Redfish's ComputerSystem.Model as the vendor writes it: iDRAC says "PowerEdge XE9680".
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()/+-]{0,63}$")
NODE_REQUIRED = {"hostname", "slot", "service_tag", "bmc", "pxe_mac", "address", "hcas"}
NODE_OPTIONAL = {"role", "gpu_count", "model"}
DEFAULTS_OPTIONAL = {"role", "gpu_count", "hca_rate_gbps", "model"}


def parse_defaults(file: Path, raw: Any, problems: Problems) -> dict:
    """node_defaults, with wrong types reported and replaced by the built-in defaults."""
    if not problems.keys(raw, file, "node_defaults", set(), DEFAULTS_OPTIONAL):
        return {}
    result = dict(raw)
    for key in ("gpu_count", "hca_rate_gbps"):
        before = len(problems.problems)
        if key in raw:
            positive_int(file, f"node_defaults.{key}", raw[key], problems, minimum=0 if key == "gpu_count" else 1)
        if len(problems.problems) != before:
            del result[key]
    return result


@dataclass(frozen=True)
class Placed:
    """Where a node was written, so cross-site problems point at its own file and key path."""

    node: Node
    file: Path
    path: str


def parse_racks(file: Path, raw: Any, defaults: dict, problems: Problems) -> tuple[list[Rack], list[Placed]]:
    entries: list[tuple[Path, str, Any]] = []
    if not isinstance(raw, list) or not raw:
        problems.add(file, "racks", "expected a non-empty list of rack files or rack mappings", "racks: [racks/*.yml]")
        return [], []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            matches = sorted(glob.glob(str(file.parent / item)))
            if not matches:
                problems.add(file, f"racks[{index}]", f"no rack file matches '{item}'", "fix the path or glob")
            for match in matches:
                rack_file = Path(match)
                before = len(problems.problems)
                data = read_yaml(rack_file, problems)
                if len(problems.problems) == before:
                    entries.append((rack_file, "", data))
        else:
            entries.append((file, f"racks[{index}]", item))
    racks: list[Rack] = []
    placed: list[Placed] = []
    seen: dict[int, str] = {}
    for rack_file, path, data in entries:
        built = _rack(rack_file, path, data, defaults, problems)
        if built is None:
            continue
        rack, rack_placed = built
        if rack.number in seen:
            problems.add(rack_file, join(path, "rack"), f"rack {rack.number} is also defined in {seen[rack.number]}",
                         "give each rack a unique number")
            continue
        seen[rack.number] = str(rack_file) + (f" {path}" if path else "")
        racks.append(rack)
        placed.extend(rack_placed)
    return sorted(racks, key=lambda r: r.number), placed


def _rack(file: Path, path: str, raw: Any, defaults: dict, problems: Problems) -> tuple[Rack, list[Placed]] | None:
    if raw is None:
        problems.add(file, path or "-", "the rack is empty", "write rack: <number> and its nodes:")
        return None
    if not problems.keys(raw, file, path, {"rack", "nodes"}, set()):
        return None
    number = raw.get("rack")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        problems.add(file, join(path, "rack"), f"rack number must be a non-negative integer, got {number!r}",
                     "rack: 12")
        return None
    nodes_raw = raw.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        problems.add(file, join(path, "nodes"), f"rack {number} has no nodes", "list its nodes or remove the rack")
        return None
    placed = []
    slots: dict[int, str] = {}
    for index, entry in enumerate(nodes_raw):
        node_path = f"{join(path, 'nodes')}[{index}]"
        node = _node(file, node_path, entry, number, defaults, problems)
        if node is None:
            continue
        if node.slot and node.slot in slots:
            problems.add(file, f"{node_path}.slot", f"slot {node.slot} of rack {number} is also {slots[node.slot]}",
                         "give each node of a rack its own slot")
            continue
        slots[node.slot] = node.hostname
        placed.append(Placed(node, file, node_path))
    nodes = tuple(sorted((p.node for p in placed), key=lambda n: n.slot))
    return Rack(number, nodes), placed


def _node(file: Path, path: str, raw: Any, rack: int, defaults: dict, problems: Problems) -> Node | None:
    """Build a node, even a faulty one: its valid fields still take part in the site-wide uniqueness
    checks, so a duplicate GUID on a node with a bad MAC is reported in the same run. A field that is
    missing is reported once (by keys()) and left empty; invalid values become empty and are skipped.
    """
    if not problems.keys(raw, file, path, NODE_REQUIRED, NODE_OPTIONAL):
        return None
    hostname = str(raw.get("hostname", ""))
    if "hostname" in raw and not HOSTNAME_RE.match(hostname):
        problems.add(file, f"{path}.hostname", f"'{hostname}' is not a valid hostname",
                     "use lowercase letters, digits and dashes, e.g. gpu-012-03")
        hostname = ""
    slot = positive_int(file, f"{path}.slot", raw["slot"], problems) if "slot" in raw else 0
    pxe_mac = mac(file, f"{path}.pxe_mac", raw["pxe_mac"], problems) if "pxe_mac" in raw else ""
    address = ip(file, f"{path}.address", raw["address"], problems) if "address" in raw else ""
    bmc = _bmc(file, f"{path}.bmc", raw["bmc"], problems) if "bmc" in raw else None
    gpu_count = positive_int(file, f"{path}.gpu_count", raw.get("gpu_count", defaults.get("gpu_count", 8)),
                              problems, minimum=0)
    rate = int(defaults.get("hca_rate_gbps", 400))
    hcas = _hcas(file, f"{path}.hcas", raw["hcas"], rate, problems) if "hcas" in raw else []
    service_tag = str(raw.get("service_tag", ""))
    if "service_tag" in raw and not SERVICE_TAG_RE.match(service_tag):
        problems.add(file, f"{path}.service_tag", f"'{service_tag}' is not a service tag",
                     "write the tag as the BMC reports it: letters and digits only, e.g. 7XQ2J93")
        service_tag = ""
    role = str(raw.get("role", defaults.get("role", "gpu")))
    if not ROLE_RE.match(role):
        where = f"{path}.role" if "role" in raw else "node_defaults.role"
        problems.add(file, where, f"'{role}' is not a valid role (it becomes the MAAS tag role-{role})",
                     "use lowercase letters, digits, '-' and '_', e.g. gpu")
        role = ""
    model = str(raw.get("model", defaults.get("model", "")))
    if model and not MODEL_RE.match(model):
        where = f"{path}.model" if "model" in raw else "node_defaults.model"
        problems.add(file, where, f"'{model}' is not a server model",
                     "write the model as the BMC reports it (Redfish ComputerSystem Model), e.g. PowerEdge XE9680")
        model = ""
    return Node(
        hostname=hostname,
        rack=rack,
        slot=slot,
        role=role,
        service_tag=service_tag,
        bmc=bmc or Bmc("", ""),
        pxe_mac=pxe_mac,
        address=address,
        gpu_count=gpu_count,
        hcas=tuple(hcas),
        model=model,
    )


def _bmc(file: Path, path: str, raw: Any, problems: Problems) -> Bmc | None:
    if not problems.keys(raw, file, path, {"address", "credentials"}, set()):
        return None
    address = host_port(file, f"{path}.address", raw["address"], problems) if "address" in raw else ""
    return Bmc(address, str(raw.get("credentials", "")))


def _hcas(file: Path, path: str, raw: Any, rate: int, problems: Problems) -> list[Hca]:
    if not isinstance(raw, list):
        problems.add(file, path, "expected a list of HCAs", "list each HCA: {name, guid, leaf, port}")
        return []
    hcas = []
    for index, entry in enumerate(raw):
        item = f"{path}[{index}]"
        if not problems.keys(entry, file, item, {"name", "guid", "leaf", "port"}, {"rate_gbps"}):
            continue
        guid = str(entry.get("guid", "")).lower()
        if "guid" in entry and not GUID_RE.match(guid):
            problems.add(file, f"{item}.guid", f"'{entry['guid']}' is not a port GUID",
                         "write 0x followed by 16 hex digits, e.g. 0xb83fd20300a1b2c3")
            guid = ""
        port = positive_int(file, f"{item}.port", entry["port"], problems) if "port" in entry else 0
        speed = positive_int(file, f"{item}.rate_gbps", entry.get("rate_gbps", rate), problems)
        hcas.append(Hca(str(entry.get("name", "")), guid, str(entry.get("leaf", "")), port, speed))
    return hcas
