"""The cluster model: sites, racks, nodes, BMCs, IB HCAs and their expected cabling.

One YAML site file (plus the rack files it includes) is the single source of truth for the
control plane, the Ansible inventory plugin and the lab. Loading validates everything at once
and reports every problem with the file, the key path and the fix, because an operator
fixing a 512-node inventory one error per run would never finish. Nothing is contacted here:
secrets are only references, read when a client needs them (`resolve_credentials`).
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import InventoryError, Problem

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
GUID_RE = re.compile(r"^0x[0-9a-f]{16}$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SECRET_KINDS = ("env", "file", "vault")
LAB_DIR_ENV = "FLEET_LAB_DIR"
FAULT_KINDS = (
    "bmc_5xx",
    "bmc_timeout",
    "bmc_bad_credentials",
    "maas_failed_deployment",
    "maas_failed_release",
    "maas_stuck_deploying",
    "gpu_sick",
    "ib_link_down",
    "dmesg_bad",
)

try:  # the C loader parses the 512-node lab site ~10x faster
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseLoader = yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe loader that rejects duplicate keys: YAML keeps the last one silently, which would
    hide a copy-pasted `pxe_mac:` line in a node."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key '{key_node.value}'", key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class Hca:
    """One InfiniBand HCA port and where it must be cabled."""

    name: str
    guid: str
    leaf: str
    port: int
    rate_gbps: int


@dataclass(frozen=True)
class Bmc:
    """Out-of-band controller: `host:port` and the name of its credentials in the site."""

    address: str
    credentials: str


@dataclass(frozen=True)
class Node:
    """One GPU server as the inventory expects it to be."""

    hostname: str
    rack: int
    slot: int
    role: str
    service_tag: str
    bmc: Bmc
    pxe_mac: str
    address: str
    gpu_count: int
    hcas: tuple[Hca, ...]


@dataclass(frozen=True)
class Rack:
    number: int
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Switch:
    name: str
    kind: str
    address: str
    credentials: str


@dataclass(frozen=True)
class Endpoint:
    url: str
    credentials: str


@dataclass(frozen=True)
class TlsSettings:
    """TLS for a service: verification is on unless the site or the operator turns it off."""

    verify: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True)
class OsImage:
    distro_series: str = "jammy"
    hwe_kernel: str = ""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives; the value itself never enters the model."""

    kind: str
    value: str
    key: str = ""

    def __repr__(self) -> str:
        return f"SecretRef({self.kind}:{self.value}{'#' + self.key if self.key else ''})"


@dataclass(frozen=True)
class CredentialRef:
    name: str
    username: str
    secret: SecretRef


@dataclass(frozen=True)
class Credentials:
    """A resolved credential. repr/str never show the secret, so it cannot leak into logs."""

    username: str
    secret: str = field(repr=False)

    def __str__(self) -> str:
        return f"Credentials(username={self.username!r}, secret=***)"


@dataclass(frozen=True)
class FaultSpec:
    """A lab fault: a kind, applied to named nodes and/or a seeded fraction of the fleet."""

    kind: str
    nodes: tuple[str, ...] = ()
    fraction: float = 0.0
    rate: float = 1.0


@dataclass(frozen=True)
class LabHosts:
    max_hosts: int = 8
    bridge: str = "fleetlab0"
    gateway: str = "198.18.0.1"


@dataclass(frozen=True)
class LabSettings:
    state_dir: Path
    time_factor: float
    seed: int
    ports: dict[str, int]
    faults: tuple[FaultSpec, ...]
    hosts: LabHosts


@dataclass(frozen=True)
class Site:
    name: str
    path: Path
    racks: tuple[Rack, ...]
    nodes: dict[str, Node]
    switches: dict[str, Switch]
    maas: Endpoint
    ufm: Endpoint | None
    bmc_tls: TlsSettings
    maas_tls: TlsSettings
    credentials: dict[str, CredentialRef]
    os: OsImage
    pins: dict[str, str]
    lab: LabSettings | None


class _Collector:
    """Gathers problems so that loading reports all of them at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, file: Path | str, key: str, message: str, fix: str) -> None:
        self.problems.append(Problem(str(file), key, message, fix))

    def keys(self, data: Any, file: Path, path: str, required: set[str], optional: set[str]) -> bool:
        """Check a mapping's keys; False when it is not a mapping at all."""
        if not isinstance(data, dict):
            self.add(file, path, f"expected a mapping, got {type(data).__name__}", "write key: value pairs here")
            return False
        allowed = required | optional
        for key in data:
            if key not in allowed:
                near = _nearest(str(key), allowed)
                fix = f"did you mean '{near}'?" if near else f"allowed keys: {', '.join(sorted(allowed))}"
                self.add(file, _join(path, key), "unknown key", fix)
        for key in sorted(required - set(data)):
            self.add(file, _join(path, key), "missing required field", f"add '{key}' under {path or 'the top level'}")
        return True


def _lab_dir(file: Path, lab: Any) -> Path:
    """The lab's state directory: FLEET_LAB_DIR wins, so tests and parallel labs never share state."""
    override = os.environ.get(LAB_DIR_ENV)
    if override:
        return Path(override).resolve()
    state_dir = lab.get("state_dir", ".lab") if isinstance(lab, dict) else ".lab"
    return (file.parent / str(state_dir)).resolve()


def _path(base: Path, text: str, lab_dir: Path | None) -> Path:
    """A path from the site: $FLEET_LAB_DIR means the lab dir, other $VARS expand, relative to the site file."""
    if lab_dir is not None:
        text = text.replace("${" + LAB_DIR_ENV + "}", str(lab_dir)).replace("$" + LAB_DIR_ENV, str(lab_dir))
    path = Path(os.path.expandvars(text)).expanduser()
    return path if path.is_absolute() else (base.parent / path).resolve()


def _nearest(word: str, choices: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def load_site(path: str | Path) -> Site:
    """Load and validate a site; raise InventoryError listing every problem found."""
    site_file = Path(path).resolve()
    problems = _Collector()
    if not site_file.is_file():
        problems.add(site_file, "-", "site file not found", "pass --site PATH to an existing site.yml")
        raise InventoryError(problems.problems)
    before = len(problems.problems)
    raw = _read_yaml(site_file, problems)
    if raw is None and len(problems.problems) == before:
        problems.add(site_file, "-", "the site file is empty", "start from inventory/example-production/site.yml")
    site = _build_site(site_file, raw, problems) if raw is not None else None
    if problems.problems or site is None:
        raise InventoryError(problems.problems)
    return site


def _read_yaml(file: Path, problems: _Collector) -> Any:
    try:
        with open(file, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Loader)  # noqa: S506 - Loader is a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        problem = str(getattr(err, "problem", err))
        fix = "keep only one of the two" if problem.startswith("found duplicate key") else "fix the YAML syntax"
        problems.add(file, where, f"not valid YAML ({problem})", fix)
    except OSError as err:
        problems.add(file, "-", f"cannot read file ({err.strerror})", "check the path and permissions")
    return None


SITE_REQUIRED = {"site", "maas", "credentials", "racks"}
SITE_OPTIONAL = {"description", "ufm", "bmc_tls", "maas_tls", "os", "pins", "switches", "node_defaults", "lab"}
NODE_REQUIRED = {"hostname", "slot", "service_tag", "bmc", "pxe_mac", "address", "hcas"}
NODE_OPTIONAL = {"role", "gpu_count"}
DEFAULTS_OPTIONAL = {"role", "gpu_count", "hca_rate_gbps"}


def _build_site(file: Path, raw: Any, problems: _Collector) -> Site | None:
    if not problems.keys(raw, file, "", SITE_REQUIRED, SITE_OPTIONAL):
        return None
    credentials = _credentials(file, raw.get("credentials"), problems)
    defaults = _defaults(file, raw.get("node_defaults") or {}, problems)
    racks, placed = _racks(file, raw.get("racks"), defaults, problems)
    switches = _switches(file, raw.get("switches") or {}, problems)
    maas = _endpoint(file, "maas", raw.get("maas"), problems)
    ufm = _endpoint(file, "ufm", raw["ufm"], problems) if raw.get("ufm") else None
    nodes = {node.hostname: node for rack in racks for node in rack.nodes}
    lab = _lab(file, raw["lab"], set(nodes), problems) if raw.get("lab") is not None else None
    lab_dir = lab.state_dir if lab else None
    # names written under credentials:, valid or not: a broken entry is reported once, by itself
    declared = {str(name) for name in raw["credentials"]} if isinstance(raw.get("credentials"), dict) else set()
    _cross_check(file, placed, switches, declared, {"maas": maas, "ufm": ufm}, problems)
    return Site(
        name=str(raw.get("site", "")),
        path=file,
        racks=tuple(racks),
        nodes=nodes,
        switches=switches,
        maas=maas or Endpoint("", ""),
        ufm=ufm,
        bmc_tls=_tls(file, "bmc_tls", raw.get("bmc_tls"), lab_dir, problems),
        maas_tls=_tls(file, "maas_tls", raw.get("maas_tls"), lab_dir, problems),
        credentials=credentials,
        os=_os(file, raw.get("os"), problems),
        pins=_pins(file, raw.get("pins") or {}, problems),
        lab=lab,
    )


def _defaults(file: Path, raw: Any, problems: _Collector) -> dict:
    """node_defaults, with wrong types reported and replaced by the built-in defaults."""
    if not problems.keys(raw, file, "node_defaults", set(), DEFAULTS_OPTIONAL):
        return {}
    result = dict(raw)
    for key in ("gpu_count", "hca_rate_gbps"):
        before = len(problems.problems)
        if key in raw:
            _positive_int(file, f"node_defaults.{key}", raw[key], problems, minimum=0 if key == "gpu_count" else 1)
        if len(problems.problems) != before:
            del result[key]
    return result


def _pins(file: Path, raw: Any, problems: _Collector) -> dict[str, str]:
    """Version pins are name -> version string; a nested value is a mistake, not a version."""
    if not isinstance(raw, dict):
        problems.add(file, "pins", f"expected a mapping of name -> version, got {type(raw).__name__}",
                     "pins: {nvidia_driver: '550.127.05'}")
        return {}
    pins = {}
    for name, version in raw.items():
        if isinstance(version, (dict, list)) or version is None:
            problems.add(file, f"pins.{name}", "expected a version string", "quote it: nvidia_driver: '550.127.05'")
        else:
            pins[str(name)] = str(version)
    return pins


def _credentials(file: Path, raw: Any, problems: _Collector) -> dict[str, CredentialRef]:
    result: dict[str, CredentialRef] = {}
    if not isinstance(raw, dict):
        if raw is not None:
            problems.add(file, "credentials", "expected a mapping of name -> reference", "see inventory/README.md")
        return result
    for name, entry in raw.items():
        path = f"credentials.{name}"
        if not problems.keys(entry, file, path, {"secret"}, {"username"}):
            continue
        secret = entry.get("secret")
        if isinstance(secret, str):
            problems.add(
                file,
                f"{path}.secret",
                "inline secret: secrets must never be written into the inventory",
                "reference it instead: {env: VAR}, {file: PATH, key: K} or {vault: PATH, key: K}",
            )
            continue
        ref = _secret_ref(file, f"{path}.secret", secret, problems)
        if ref:
            result[name] = CredentialRef(name, str(entry.get("username", "")), ref)
    return result


def _secret_ref(file: Path, path: str, raw: Any, problems: _Collector) -> SecretRef | None:
    if raw is None:
        return None
    if not problems.keys(raw, file, path, set(), set(SECRET_KINDS) | {"key"}):
        return None
    kinds = [k for k in SECRET_KINDS if k in raw]
    if len(kinds) != 1:
        problems.add(file, path, "a secret reference needs exactly one of env, file, vault", "e.g. {env: BMC_PASSWORD}")
        return None
    kind = kinds[0]
    if kind in ("file", "vault") and not raw.get("key"):
        problems.add(file, f"{path}.key", f"a {kind} reference needs the key to read", "add key: <name in the file>")
        return None
    return SecretRef(kind, str(raw[kind]), str(raw.get("key", "")))


@dataclass(frozen=True)
class _Placed:
    """Where a node was written, so cross-site problems point at its own file and key path."""

    node: Node
    file: Path
    path: str


def _racks(file: Path, raw: Any, defaults: dict, problems: _Collector) -> tuple[list[Rack], list[_Placed]]:
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
                data = _read_yaml(rack_file, problems)
                if len(problems.problems) == before:
                    entries.append((rack_file, "", data))
        else:
            entries.append((file, f"racks[{index}]", item))
    racks: list[Rack] = []
    placed: list[_Placed] = []
    seen: dict[int, str] = {}
    for rack_file, path, data in entries:
        built = _rack(rack_file, path, data, defaults, problems)
        if built is None:
            continue
        rack, rack_placed = built
        if rack.number in seen:
            problems.add(rack_file, _join(path, "rack"), f"rack {rack.number} is also defined in {seen[rack.number]}",
                         "give each rack a unique number")
            continue
        seen[rack.number] = str(rack_file) + (f" {path}" if path else "")
        racks.append(rack)
        placed.extend(rack_placed)
    return sorted(racks, key=lambda r: r.number), placed


def _rack(file: Path, path: str, raw: Any, defaults: dict, problems: _Collector) -> tuple[Rack, list[_Placed]] | None:
    if raw is None:
        problems.add(file, path or "-", "the rack is empty", "write rack: <number> and its nodes:")
        return None
    if not problems.keys(raw, file, path, {"rack", "nodes"}, set()):
        return None
    number = raw.get("rack")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        problems.add(file, _join(path, "rack"), f"rack number must be a non-negative integer, got {number!r}",
                     "rack: 12")
        return None
    nodes_raw = raw.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        problems.add(file, _join(path, "nodes"), f"rack {number} has no nodes", "list its nodes or remove the rack")
        return None
    placed = []
    slots: dict[int, str] = {}
    for index, entry in enumerate(nodes_raw):
        node_path = f"{_join(path, 'nodes')}[{index}]"
        node = _node(file, node_path, entry, number, defaults, problems)
        if node is None:
            continue
        if node.slot and node.slot in slots:
            problems.add(file, f"{node_path}.slot", f"slot {node.slot} of rack {number} is also {slots[node.slot]}",
                         "give each node of a rack its own slot")
            continue
        slots[node.slot] = node.hostname
        placed.append(_Placed(node, file, node_path))
    nodes = tuple(sorted((p.node for p in placed), key=lambda n: n.slot))
    return Rack(number, nodes), placed


def _node(file: Path, path: str, raw: Any, rack: int, defaults: dict, problems: _Collector) -> Node | None:
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
    slot = _positive_int(file, f"{path}.slot", raw["slot"], problems) if "slot" in raw else 0
    mac = _mac(file, f"{path}.pxe_mac", raw["pxe_mac"], problems) if "pxe_mac" in raw else ""
    address = _ip(file, f"{path}.address", raw["address"], problems) if "address" in raw else ""
    bmc = _bmc(file, f"{path}.bmc", raw["bmc"], problems) if "bmc" in raw else None
    gpu_count = _positive_int(file, f"{path}.gpu_count", raw.get("gpu_count", defaults.get("gpu_count", 8)),
                              problems, minimum=0)
    rate = int(defaults.get("hca_rate_gbps", 400))
    hcas = _hcas(file, f"{path}.hcas", raw["hcas"], rate, problems) if "hcas" in raw else []
    return Node(
        hostname=hostname,
        rack=rack,
        slot=slot,
        role=str(raw.get("role", defaults.get("role", "gpu"))),
        service_tag=str(raw.get("service_tag", "")),
        bmc=bmc or Bmc("", ""),
        pxe_mac=mac,
        address=address,
        gpu_count=gpu_count,
        hcas=tuple(hcas),
    )


def _positive_int(file: Path, path: str, value: Any, problems: _Collector, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.add(file, path, f"expected an integer >= {minimum}, got {value!r}", "write a plain number")
        return 0
    return value


def _mac(file: Path, path: str, value: Any, problems: _Collector) -> str:
    text = str(value or "").lower()
    if not MAC_RE.match(text):
        problems.add(file, path, f"'{value}' is not a MAC address", "write six hex pairs: 7c:c2:55:0a:12:34")
        return ""
    return text


def _ip(file: Path, path: str, value: Any, problems: _Collector) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        problems.add(file, path, f"'{value}' is not an IP address", "write an IPv4 or IPv6 address: 10.12.3.4")
        return ""


def _host_port(file: Path, path: str, value: Any, problems: _Collector) -> str:
    host, sep, port = str(value or "").rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        problems.add(file, path, f"'{value}' is not host:port", "write e.g. 10.0.12.3:443")
        return ""
    if (host[:1].isdigit() or host.startswith("[")) and not _ip(file, path, host.strip("[]"), problems):
        return ""
    return str(value)


def _bmc(file: Path, path: str, raw: Any, problems: _Collector) -> Bmc | None:
    if not problems.keys(raw, file, path, {"address", "credentials"}, set()):
        return None
    address = _host_port(file, f"{path}.address", raw["address"], problems) if "address" in raw else ""
    return Bmc(address, str(raw.get("credentials", "")))


def _hcas(file: Path, path: str, raw: Any, rate: int, problems: _Collector) -> list[Hca]:
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
        port = _positive_int(file, f"{item}.port", entry["port"], problems) if "port" in entry else 0
        speed = _positive_int(file, f"{item}.rate_gbps", entry.get("rate_gbps", rate), problems)
        hcas.append(Hca(str(entry.get("name", "")), guid, str(entry.get("leaf", "")), port, speed))
    return hcas


def _switches(file: Path, raw: Any, problems: _Collector) -> dict[str, Switch]:
    result: dict[str, Switch] = {}
    if not isinstance(raw, dict):
        problems.add(file, "switches", "expected a mapping of switch name -> settings", "switches: {leaf-01: {...}}")
        return result
    for name, entry in raw.items():
        path = f"switches.{name}"
        if problems.keys(entry, file, path, {"kind", "address"}, {"credentials"}):
            address = _host_port(file, f"{path}.address", entry.get("address"), problems)
            result[str(name)] = Switch(str(name), str(entry.get("kind")), address, str(entry.get("credentials", "")))
    return result


def _endpoint(file: Path, path: str, raw: Any, problems: _Collector) -> Endpoint | None:
    if not problems.keys(raw, file, path, {"url", "credentials"}, set()):
        return None
    url = str(raw.get("url", ""))
    if not re.match(r"^https?://[^/]+", url):
        problems.add(file, f"{path}.url", f"'{url}' is not an http(s) URL", "write e.g. http://maas.example:5240/MAAS/")
    return Endpoint(url, str(raw.get("credentials", "")))


def _tls(file: Path, path: str, raw: Any, lab_dir: Path | None, problems: _Collector) -> TlsSettings:
    if raw is None or not problems.keys(raw, file, path, set(), {"verify", "ca_file"}):
        return TlsSettings()
    verify = raw.get("verify", True)
    if not isinstance(verify, bool):
        problems.add(file, f"{path}.verify", f"expected true or false, got {verify!r}", "verify: true")
    ca_file = raw.get("ca_file")
    return TlsSettings(verify is not False, _path(file, str(ca_file), lab_dir) if ca_file else None)


def _os(file: Path, raw: Any, problems: _Collector) -> OsImage:
    if raw is None or not problems.keys(raw, file, "os", {"distro_series"}, {"hwe_kernel"}):
        return OsImage()
    return OsImage(str(raw["distro_series"]), str(raw.get("hwe_kernel", "")))


LAB_OPTIONAL = {"state_dir", "time_factor", "seed", "ports", "faults", "hosts"}


def _lab(file: Path, raw: Any, nodes: set[str], problems: _Collector) -> LabSettings | None:
    if not problems.keys(raw, file, "lab", set(), LAB_OPTIONAL):
        return None
    ports_raw = raw.get("ports") or {}
    ports: dict[str, int] = {}
    if not isinstance(ports_raw, dict):
        problems.add(file, "lab.ports", "expected a mapping of service -> port", "ports: {maas: 5240}")
        ports_raw = {}
    for name, port in ports_raw.items():
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            problems.add(file, f"lab.ports.{name}", f"'{port}' is not a TCP port", "use a number from 1 to 65535")
        else:
            ports[str(name)] = port
    factor = raw.get("time_factor", 0.005)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
        problems.add(file, "lab.time_factor", f"expected a positive number, got {factor!r}", "time_factor: 0.005")
        factor = 0.005
    seed = _positive_int(file, "lab.seed", raw.get("seed", 0), problems, minimum=0)
    hosts_raw = raw.get("hosts") or {}
    hosts = LabHosts()
    if problems.keys(hosts_raw, file, "lab.hosts", set(), {"max", "bridge", "gateway"}):
        hosts = LabHosts(
            _positive_int(file, "lab.hosts.max", hosts_raw.get("max", hosts.max_hosts), problems, minimum=0),
            str(hosts_raw.get("bridge", hosts.bridge)),
            _ip(file, "lab.hosts.gateway", hosts_raw.get("gateway", hosts.gateway), problems),
        )
    return LabSettings(
        state_dir=_lab_dir(file, raw),
        time_factor=float(factor),
        seed=seed,
        ports=ports,
        faults=tuple(_faults(file, raw.get("faults") or [], nodes, problems)),
        hosts=hosts,
    )


def _faults(file: Path, raw: Any, nodes: set[str], problems: _Collector) -> list[FaultSpec]:
    if not isinstance(raw, list):
        problems.add(file, "lab.faults", f"expected a list of faults, got {type(raw).__name__}",
                     "faults: [{kind: bmc_5xx, fraction: 0.02}]")
        return []
    specs = []
    for index, entry in enumerate(raw):
        path = f"lab.faults[{index}]"
        if not problems.keys(entry, file, path, {"kind"}, {"nodes", "fraction", "rate"}):
            continue
        try:
            spec = parse_fault(entry)
        except ValueError as err:
            problems.add(file, path, str(err), f"kinds: {', '.join(FAULT_KINDS)}; fraction and rate in 0..1")
            continue
        unknown = [name for name in spec.nodes if name not in nodes]
        for name in unknown:
            near = _nearest(name, nodes)
            problems.add(file, f"{path}.nodes", f"unknown node '{name}'",
                         f"did you mean '{near}'?" if near else "name a node of this site")
        if not unknown:
            specs.append(spec)
    return specs


def parse_fault(entry: dict) -> FaultSpec:
    """Build a FaultSpec from a mapping (the site's lab.faults or the CLI); ValueError names what is wrong."""
    kind = str(entry.get("kind"))
    if kind not in FAULT_KINDS:
        near = _nearest(kind, set(FAULT_KINDS))
        raise ValueError(f"unknown fault kind '{kind}'" + (f" (did you mean '{near}'?)" if near else ""))
    numbers = {}
    for name, default in (("fraction", 0.0), ("rate", 1.0)):
        value = entry.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        numbers[name] = float(value)
    fraction, rate = numbers["fraction"], numbers["rate"]
    if not (0.0 <= fraction <= 1.0 and 0.0 < rate <= 1.0):
        raise ValueError(f"fraction {fraction} or rate {rate} out of range")
    nodes = entry.get("nodes") or []
    if isinstance(nodes, str):
        nodes = [nodes]
    if not isinstance(nodes, list):
        raise ValueError(f"nodes must be a hostname or a list of hostnames, got {type(nodes).__name__}")
    if not nodes and not fraction:
        raise ValueError("a fault needs nodes or a fraction")
    return FaultSpec(kind, tuple(str(n) for n in nodes), fraction, rate)


def _cross_check(
    file: Path,
    placed: list[_Placed],
    switches: dict[str, Switch],
    credentials: set[str],
    endpoints: dict[str, Endpoint | None],
    problems: _Collector,
) -> None:
    """Uniqueness and references across the whole site: the errors a per-field check cannot see.

    Each problem is reported where the second occurrence was written (its file and key path) and
    names the first, because that is the pair the operator has to compare.
    """
    seen: dict[str, dict[str, str]] = {k: {} for k in ("hostname", "bmc", "mac", "guid", "address", "tag", "cable")}

    def unique(kind: str, value: str, where: _Placed, key: str, what: str) -> None:
        if not value:
            return
        here = f"{where.file}: {_join(where.path, key)}"
        if value in seen[kind]:
            first = seen[kind][value]
            problems.add(where.file, _join(where.path, key), f"duplicate {what} '{value}' (also at {first})",
                         f"every {what} must be unique across the site")
        else:
            seen[kind][value] = here

    # credentials name -> every place that uses it (file, key path)
    users: dict[str, list[tuple[Path, str]]] = {}
    for name, endpoint in endpoints.items():
        if endpoint is not None:
            users.setdefault(endpoint.credentials, []).append((file, f"{name}.credentials"))
    for name, switch in switches.items():
        if switch.credentials:
            users.setdefault(switch.credentials, []).append((file, f"switches.{name}.credentials"))
    for where in placed:
        node = where.node
        unique("hostname", node.hostname, where, "hostname", "hostname")
        unique("bmc", node.bmc.address, where, "bmc.address", "BMC address")
        unique("mac", node.pxe_mac, where, "pxe_mac", "MAC")
        unique("address", node.address, where, "address", "node address")
        unique("tag", node.service_tag, where, "service_tag", "service tag")
        users.setdefault(node.bmc.credentials, []).append((where.file, _join(where.path, "bmc.credentials")))
        for index, hca in enumerate(node.hcas):
            key = f"hcas[{index}]"
            unique("guid", hca.guid, where, f"{key}.guid", "GUID")
            if hca.leaf and hca.port:
                unique("cable", f"{hca.leaf} port {hca.port}", where, key, "leaf switch port")
            if switches and hca.leaf and hca.leaf not in switches:
                near = _nearest(hca.leaf, set(switches))
                problems.add(where.file, _join(where.path, f"{key}.leaf"), f"unknown switch '{hca.leaf}'",
                             f"did you mean '{near}'?" if near else "add it under switches: or fix the name")
    for name in sorted(set(users) - credentials):
        first_file, first_key = users[name][0]
        others = len(users[name]) - 1
        near = _nearest(name, credentials)
        also = f" (used in {others} more place(s))" if others else ""
        fix = f"did you mean '{near}'?" if near else f"define {name}: {{username: ..., secret: {{env: VAR}}}}"
        problems.add(first_file, first_key, f"credentials '{name}' are not defined{also}", fix)


def resolve_credentials(site: Site, name: str) -> Credentials:
    """Read a credential's secret from where its reference points; only clients call this, late."""
    from fleet.errors import FleetError

    ref = site.credentials.get(name)
    if ref is None:
        raise FleetError(f"credentials '{name}' are not defined in the site", hint="add them under credentials:")
    return Credentials(ref.username, _read_secret(site, ref))


def _read_secret(site: Site, ref: CredentialRef) -> str:
    from fleet.errors import FleetError

    secret = ref.secret
    where = f"credentials.{ref.name}.secret"
    if secret.kind == "env":
        value = os.environ.get(secret.value)
        if not value:
            raise FleetError(f"{where}: environment variable {secret.value} is not set",
                             hint=f"export {secret.value}=... before running")
        return value
    path = _path(site.path, secret.value, site.lab.state_dir if site.lab else None)
    if secret.kind == "vault":
        data = _read_vault(path, where)
    else:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as err:
            raise FleetError(f"{where}: cannot read {path} ({err.strerror})",
                             hint="create the file (mode 0600) or fix the path") from None
        except yaml.YAMLError:
            # the parser's message quotes the offending text, which may be the secret itself
            raise FleetError(f"{where}: {path} is not valid YAML", hint="write key: value lines") from None
    if not isinstance(data, dict) or not data.get(secret.key):
        raise FleetError(f"{where}: key '{secret.key}' not found in {path}", hint="add the key to that file")
    return str(data[secret.key])


def _read_vault(path: Path, where: str) -> Any:
    """Decrypt an ansible-vault file with the password file named by ANSIBLE_VAULT_PASSWORD_FILE."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    from fleet.errors import FleetError

    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        raise FleetError(f"{where}: {path} is an ansible-vault file but ANSIBLE_VAULT_PASSWORD_FILE is not set",
                         hint="export ANSIBLE_VAULT_PASSWORD_FILE=/path/to/vault-password")
    try:
        password = Path(password_file).read_bytes().strip()
        plain = VaultLib([("default", VaultSecret(password))]).decrypt(path.read_bytes())
    except Exception as err:  # noqa: BLE001 - ansible raises several unrelated types here
        raise FleetError(f"{where}: cannot decrypt {path} ({type(err).__name__})",
                         hint="check the vault password file") from None
    return yaml.safe_load(plain)


def parse_racks(text: str) -> list[int]:
    """'12' -> [12]; '12-15' -> [12, 13, 14, 15]; ValueError on anything else."""
    start, sep, end = text.strip().partition("-")
    if not start.isdigit() or (sep and not end.isdigit()):
        raise ValueError(f"'{text}' is not a rack number or range (e.g. 12 or 12-15)")
    first, last = int(start), int(end) if sep else int(start)
    if last < first:
        raise ValueError(f"'{text}': the range ends before it starts")
    return list(range(first, last + 1))


def select_nodes(site: Site, racks: list[str] | None = None, names: list[str] | None = None) -> list[Node]:
    """Resolve --rack/--nodes selections; ValueError names the unknown rack or node."""
    chosen: dict[str, Node] = {}
    known = {rack.number: rack for rack in site.racks}
    for text in racks or []:
        for number in parse_racks(text):
            if number not in known:
                raise ValueError(f"rack {number} is not in site '{site.name}' (racks {_span(known)})")
            chosen.update((node.hostname, node) for node in known[number].nodes)
    for name in names or []:
        if name not in site.nodes:
            near = _nearest(name, set(site.nodes))
            hint = f"; did you mean {near}?" if near else ""
            raise ValueError(f"node '{name}' is not in site '{site.name}'{hint}")
        chosen[name] = site.nodes[name]
    return sorted(chosen.values(), key=lambda n: (n.rack, n.slot))


def _span(racks: dict[int, Rack]) -> str:
    numbers = sorted(racks)
    return f"{numbers[0]}-{numbers[-1]}" if numbers else "none"
