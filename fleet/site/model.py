"""The site as the control plane sees it: frozen dataclasses, built only by `fleet.site.load_site`.

Secrets are never part of the model, only references to where they live (`SecretRef`);
`fleet.site.credentials.resolve_credentials` reads them when a client needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.site.burnin import BurninSettings
from fleet.site.control import AnsibleSettings, SshSettings, Timeouts
from fleet.site.dell import BiosSettings, FirmwareSettings, MaintenanceWindow
from fleet.site.watch import HealthSettings, WatchSettings, WorkloadSettings

if TYPE_CHECKING:
    from fleet.site.fabric import FabricSettings
    from fleet.site.kraken import KrakenSettings
    from fleet.site.switching import SwitchConfig


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
    model: str = ""  # the server model as its BMC reports it ("PowerEdge XE9680"); "" when the site names none


@dataclass(frozen=True)
class Rack:
    number: int
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Switch:
    """A switch's management: where to SSH, as which netmiko device type, and its port descriptions."""

    name: str
    kind: str
    address: str
    credentials: str
    device_type: str = ""  # dell_os10 | cumulus_linux | mellanox_mlnxos; empty: not configured by fleet
    ports: dict[str, str] = field(default_factory=dict)  # interface -> what is cabled to it


@dataclass(frozen=True)
class Endpoint:
    url: str
    credentials: str
    insecure_http: bool = False  # plain http accepted knowingly (maas.insecure_http: true): warned every run


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
    fabric: FabricSettings | None = None
    state_url: str | None = None  # PostgreSQL for state shared by several ops hosts; None: SQLite in the state dir
    switch_config: SwitchConfig | None = None
    burnin: BurninSettings = field(default_factory=BurninSettings)
    kraken: KrakenSettings | None = None  # the Kraken image distribution (fleet/site/kraken.py)
    health: HealthSettings = field(default_factory=HealthSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    workload: WorkloadSettings = field(default_factory=WorkloadSettings)
    bios: BiosSettings = field(default_factory=BiosSettings)
    firmware: FirmwareSettings = field(default_factory=FirmwareSettings)
    maintenance_window: MaintenanceWindow | None = None
    path_vars: dict[str, Path] = field(default_factory=dict)
    state_dir: Path | None = None
    before_run: tuple[str, ...] = ()
    ssh: SshSettings = field(default_factory=SshSettings)
    ansible: AnsibleSettings = field(default_factory=AnsibleSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    maas_power: str = "redfish"  # redfish: MAAS powers the machines through their BMCs; manual: it cannot
    # The `lab:` section as lab/ parsed it (lab.settings.load_lab_site); None from production's load_site,
    # and production code never reads it (tests/unit/test_architecture.py).
    lab: Any = None
