"""Everything gathered from one node, before any decision is made.

Each field is the reading or ``Missing(reason)``; checks are pure functions of this object and
the config, which is what lets fixture files and unit tests drive exactly the production logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from healthcheck.gpu import GpuSnapshot
from healthcheck.probe import Missing

if TYPE_CHECKING:
    from healthcheck.kernlog import Learning


@dataclass(frozen=True)
class IbPort:
    hca: str
    port: int
    state: str  # "ACTIVE", "DOWN", ...
    phys_state: str  # "LinkUp", "Polling", "Disabled", ...
    rate_gbps: float | None
    link_layer: str
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class IbHca:
    name: str
    firmware: str
    node_guid: str
    pci: str
    ports: tuple[IbPort, ...]


@dataclass(frozen=True)
class NetLink:
    name: str
    operstate: str
    speed_mbps: int | None


@dataclass(frozen=True)
class DiskUsage:
    mount: str
    mounted: bool
    used_pct: float | None
    size_bytes: int | None


@dataclass(frozen=True)
class DockerState:
    server_version: str
    runtimes: tuple[str, ...]
    default_runtime: str
    gpu_container: str | Missing | None  # None: not asked to run one


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    state: str
    age_s: float
    cmdline: str


@dataclass(frozen=True)
class OsInfo:
    kernel_release: str
    version_id: str
    pretty_name: str


@dataclass(frozen=True)
class Readings:
    gpus: GpuSnapshot | Missing
    kernel_log: tuple[str, ...] | Missing
    modules: frozenset[str] | Missing
    ib: tuple[IbHca, ...] | Missing
    ib_previous: dict[str, int] | None  # counters from the last run, keyed "hca/port/counter"
    net: dict[str, NetLink] | Missing
    disks: tuple[DiskUsage, ...] | Missing
    swaps: tuple[str, ...] | Missing
    docker: DockerState | Missing
    nvswitch_present: bool
    fabric_manager: str | Missing  # systemctl is-active answer
    os: OsInfo | Missing
    processes: tuple[Process, ...] | Missing
    dmesg_baseline: frozenset[str] | Learning | Missing
