"""The lab describes itself: its settings and faults, parsed from the site's `lab:` section.

Production code never sees this: `fleet.site.load_site` leaves the `lab:` section alone, and the
lab site's production-facing values (state dir, ssh_config, apt repository, deadlines scaled to the
lab clock) are ordinary site settings its generator writes (lab/sitegen.py). The lab loads a site
with `load_lab_site`, which is production's loader plus this section, so a site's problems,
the lab's included, are still reported all at once with file, key and fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.site import Site, load_site
from fleet.site.schema import Problems, ip, nearest, positive_int

LAB_DIR_ENV = "FLEET_LAB_DIR"

FAULT_KINDS = (
    "bmc_5xx",
    "bmc_timeout",
    "bmc_bad_credentials",
    "maas_failed_deployment",
    "maas_failed_release",
    "maas_stuck_deploying",
    "maas_failed_commissioning",
    "bmc_no_nics_yet",
    "pxe_unserved",  # the node's network boots never reach MAAS (no MAAS DHCP on its PXE network)
    "gpu_sick",
    "ib_link_down",
    "dmesg_bad",
    # lab/redfish/dell: a job that fails, a BIOS value that does not stick, an update that never ends,
    # a Lifecycle Controller not ready for ten (scaled) minutes, SEL entries for a failed PSU / a memory error
    "idrac_job_fails",
    "idrac_bios_not_sticky",
    "idrac_firmware_timeout",
    "idrac_lc_not_ready",
    "idrac_sel_psu",
    "idrac_sel_memory",
)


@dataclass(frozen=True)
class FaultSpec:
    """A lab fault: a kind, applied to named nodes and/or a seeded fraction of the fleet."""

    kind: str
    nodes: tuple[str, ...] = ()
    fraction: float = 0.0
    rate: float = 1.0


@dataclass(frozen=True)
class LabHosts:
    """How deployed nodes get lab hosts: one nspawn container each (at most `max_hosts`), or with `light`
    one shared container carrying every node as its own address + sshd (lab/hosts/light.py), cheap
    enough for a 512-node soak up to validate; light hosts run no Ansible roles."""

    max_hosts: int = 8
    bridge: str = "fleetlab0"
    gateway: str = "198.18.0.1"
    light: bool = False


@dataclass(frozen=True)
class LabSettings:
    state_dir: Path
    time_factor: float
    seed: int
    ports: dict[str, int]
    faults: tuple[FaultSpec, ...]
    hosts: LabHosts


def lab_dir(file: Path, lab: Any) -> Path:
    """The lab's state directory: FLEET_LAB_DIR wins, so tests and parallel labs never share state."""
    override = os.environ.get(LAB_DIR_ENV)
    if override:
        return Path(override).resolve()
    state_dir = lab.get("state_dir", ".lab") if isinstance(lab, dict) else ".lab"
    return (file.parent / str(state_dir)).resolve()

LAB_OPTIONAL = {"state_dir", "time_factor", "seed", "ports", "faults", "hosts"}


def parse_lab(file: Path, raw: Any, nodes: set[str], problems: Problems) -> LabSettings | None:
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
    seed = positive_int(file, "lab.seed", raw.get("seed", 0), problems, minimum=0)
    hosts_raw = raw.get("hosts") or {}
    hosts = LabHosts()
    if problems.keys(hosts_raw, file, "lab.hosts", set(), {"max", "bridge", "gateway", "light"}):
        light = hosts_raw.get("light", False)
        if not isinstance(light, bool):
            problems.add(file, "lab.hosts.light", f"expected true or false, got {light!r}", "light: true")
            light = False
        hosts = LabHosts(
            positive_int(file, "lab.hosts.max", hosts_raw.get("max", hosts.max_hosts), problems, minimum=0),
            str(hosts_raw.get("bridge", hosts.bridge)),
            ip(file, "lab.hosts.gateway", hosts_raw.get("gateway", hosts.gateway), problems),
            light,
        )
    return LabSettings(
        state_dir=lab_dir(file, raw),
        time_factor=float(factor),
        seed=seed,
        ports=ports,
        faults=tuple(_faults(file, raw.get("faults") or [], nodes, problems)),
        hosts=hosts,
    )


def _faults(file: Path, raw: Any, nodes: set[str], problems: Problems) -> list[FaultSpec]:
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
            near = nearest(name, nodes)
            problems.add(file, f"{path}.nodes", f"unknown node '{name}'",
                         f"did you mean '{near}'?" if near else "name a node of this site")
        if not unknown:
            specs.append(spec)
    return specs


def parse_fault(entry: dict) -> FaultSpec:
    """Build a FaultSpec from a mapping (the site's lab.faults or the CLI); ValueError names what is wrong."""
    kind = str(entry.get("kind"))
    if kind not in FAULT_KINDS:
        near = nearest(kind, set(FAULT_KINDS))
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


def load_lab_site(path: str | Path) -> Site:
    """A site with its `lab:` section parsed (`site.lab: LabSettings | None`); InventoryError lists every problem."""
    return load_site(path, sections={"lab": parse_lab})
