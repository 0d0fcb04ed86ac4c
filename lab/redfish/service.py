"""Lab BMCs as a lab service: the BMC front (one HTTPS address per node) with the sushy-tools emulator inside.

`prepare` writes what the front reads (its config, the emulator's config and htpasswd, the lab CA);
`service` describes the one subprocess for `lab.control`. Clients only ever see the front, on each
node's `bmc.address`, over HTTPS; the front calls the emulator's app (every lab system) in-process.

Until 2026-12-01 the emulator was a second process, werkzeug's server on `lab.ports["sushy"]`, and the
front forwarded every request to it over HTTP: that hop (a thread and a connection per request, the
request and answer parsed twice) was 0.6-0.9 ms of the emulator's 1.1-1.3 ms of CPU per request, on
the same 2 cores as everything else in the bring-up bench's BMC wave. The emulator's config keeps the
port: `python -m lab.redfish.emulator --config LAB_DIR/redfish/emulator.conf` still serves the same
app there on its own (the tests compare the front with it, each on its own state directory).
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml

from fleet.errors import FleetError
from fleet.site import Site
from lab.redfish.front import FrontConfig, FrontNode
from lab.redfish.tls import ensure_lab_tls
from lab.service import LabService, ReadyCheck

REPO_ROOT = Path(__file__).resolve().parents[2]
BCRYPT_ROUNDS = 4  # the emulator checks bcrypt on every request: 221 ms at 12 rounds, ~1 ms at 4
TIMEOUT_HOLD_S = 30.0  # longer than any client timeout we configure, so a held request is a timeout
EMULATOR_PORT_KEY = "sushy"
STOCK_POWER_DELAY_S = (1.0, 11.0)  # sushy-tools 2.2.0 fake driver: random.randint(1, 11) s after the POST


@dataclass(frozen=True)
class RedfishLabFiles:
    """Where the lab BMCs' files live under the lab directory."""

    root: Path

    @classmethod
    def under(cls, lab_dir: Path) -> RedfishLabFiles:
        return cls(lab_dir / "redfish")

    @property
    def emulator_config(self) -> Path:
        return self.root / "emulator.conf"

    @property
    def htpasswd(self) -> Path:
        return self.root / "htpasswd"

    @property
    def front_config(self) -> Path:
        return self.root / "front.json"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def requests_log(self) -> Path:
        """Every request the BMC front received (JSON lines), for tests to count from the lab's side."""
        return self.root / "requests.jsonl"

    @property
    def netboots(self) -> Path:
        """The boot network: one JSON line per server that network-booted (the lab MAAS reads it)."""
        return self.root / "netboots.jsonl"

    @property
    def dell_dir(self) -> Path:
        """The Dell iDRAC layer's per-node state and request log (lab.redfish.dell)."""
        return self.root / "dell"


def system_uuid(site: Site, hostname: str) -> str:
    """A stable emulator system id per node, so state survives lab restarts and reads predictably."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fleet-lab:{site.name}:{hostname}"))


def emulator_port(site: Site) -> int:
    if site.lab is None or EMULATOR_PORT_KEY not in site.lab.ports:
        raise FleetError("the site has no lab.ports.sushy for the Redfish emulator",
                         endpoint=str(site.path), hint="add lab: {ports: {sushy: 8000}} to the site")
    return site.lab.ports[EMULATOR_PORT_KEY]


def power_delay_range(site: Site, power_delay_s: float | None) -> tuple[float, float]:
    """The emulator's power-change delay: exactly `power_delay_s` when given (the benchmark's known
    delay), else sushy-tools' own 1-11 s scaled by the lab time factor."""
    if power_delay_s is not None:
        return (power_delay_s, power_delay_s)
    factor = site.lab.time_factor if site.lab else 1.0
    return (STOCK_POWER_DELAY_S[0] * factor, STOCK_POWER_DELAY_S[1] * factor)


def prepare(site: Site, lab_dir: Path, *, power_delay_s: float | None = None,
            timeout_hold_s: float = TIMEOUT_HOLD_S) -> None:
    """Write the emulator config, htpasswd, front config and the lab CA for this site."""
    files = RedfishLabFiles.under(lab_dir)
    files.state_dir.mkdir(parents=True, exist_ok=True)
    password = bmc_password(lab_dir)
    users = sorted({site.credentials[node.bmc.credentials].username for node in site.nodes.values()})
    lines = [f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()}\n" for user in users]
    files.htpasswd.write_text("".join(lines), encoding="utf-8")
    files.htpasswd.chmod(0o600)
    tls = ensure_lab_tls(lab_dir)
    low, high = power_delay_range(site, power_delay_s)
    systems = [
        {"uuid": system_uuid(site, node.hostname), "name": node.hostname, "power_state": "Off",
         "nics": [{"mac": node.pxe_mac, "ip": node.address}]}
        for node in site.nodes.values()
    ]
    port = emulator_port(site)
    settings = {
        "SUSHY_EMULATOR_LISTEN_IP": "127.0.0.1",
        "SUSHY_EMULATOR_LISTEN_PORT": port,
        "SUSHY_EMULATOR_FAKE_DRIVER": True,
        "SUSHY_EMULATOR_FAKE_SYSTEMS": systems,
        "SUSHY_EMULATOR_STATE_DIR": str(files.state_dir),
        "SUSHY_EMULATOR_AUTH_FILE": str(files.htpasswd),
        "FLEET_LAB_POWER_DELAY_MIN_S": low,
        "FLEET_LAB_POWER_DELAY_MAX_S": high,
        "FLEET_LAB_SEED": site.lab.seed if site.lab else 0,
    }
    # The emulator reads its config with Flask's from_pyfile: Python assignments of literals.
    files.emulator_config.write_text(
        "# Generated by lab.redfish.service.prepare from the site inventory.\n"
        + "".join(f"{key} = {value!r}\n" for key, value in settings.items()),
        encoding="utf-8",
    )
    nodes = []
    for node in site.nodes.values():
        host, _, node_port = node.bmc.address.rpartition(":")
        nodes.append(FrontNode(node.hostname, host.strip("[]"), int(node_port),
                               system_uuid(site, node.hostname), node.service_tag, node.pxe_mac))
    FrontConfig(
        emulator_config=str(files.emulator_config),
        faults_file=str(lab_dir / "faults.json"),
        cert_file=str(tls.cert_file),
        key_file=str(tls.key_file),
        seed=site.lab.seed if site.lab else 0,
        timeout_hold_s=timeout_hold_s,
        nodes=tuple(nodes),
        requests_log=str(files.requests_log),
        dell_dir=str(files.dell_dir),
        netboots_log=str(files.netboots),
        time_factor=site.lab.time_factor if site.lab else 1.0,
    ).dump(files.front_config)


def service(site: Site, lab_dir: Path) -> list[LabService]:
    """The BMC front, with the emulator's app inside it; up once its last BMC address accepts connections."""
    files = RedfishLabFiles.under(lab_dir)
    last_host, _, last_port = list(site.nodes.values())[-1].bmc.address.rpartition(":")
    return [
        LabService(
            name="redfish-front",
            argv=[sys.executable, "-m", "lab.redfish.front", "--config", str(files.front_config)],
            ready=ReadyCheck(port=int(last_port), host=last_host.strip("[]")),
            env={"PYTHONPATH": str(REPO_ROOT)},
        ),
    ]


def bmc_password(lab_dir: Path) -> str:
    secrets_file = lab_dir / "secrets.yml"
    try:
        secrets = yaml.safe_load(secrets_file.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise FleetError(f"cannot read the lab secrets ({err.strerror})", endpoint=str(secrets_file),
                         hint="start the lab with `python provision.py lab up`, which writes it") from None
    if not secrets.get("bmc_password"):
        raise FleetError("the lab secrets have no bmc_password", endpoint=str(secrets_file),
                         hint="add bmc_password to that file or recreate the lab") from None
    return str(secrets["bmc_password"])
