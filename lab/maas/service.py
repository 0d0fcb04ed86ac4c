"""The lab MAAS as a lab service: `prepare` writes its config, `service` describes its process.

The machines come from the site inventory (hostname, PXE MAC as the boot interface), each with a
MAAS-style 6-character system_id derived from its hostname, so ids are stable across `lab reset`
and across machines. The API key is the one `lab.control` generated into `lab_dir/secrets.yml`,
which is also where the site's `maas` credential reference points: the lab and the client read the
same file and the key never appears in the repository.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from fleet.errors import FleetError
from fleet.site import Site
from lab.atomic import write_atomic
from lab.maas.states import Status
from lab.maas.store import Config, MachineSpec, system_id_for
from lab.redfish.service import RedfishLabFiles, bmc_password, system_uuid
from lab.redfish.tls import ensure_lab_tls
from lab.service import LabService, ReadyCheck

PORT_KEY = "maas"
HOST = "127.0.0.1"


def lab_files(lab_dir: Path) -> dict[str, Path]:
    root = lab_dir / "maas"
    return {
        "config": root / "config.json",
        "state": root / "state.json",
        "hook": root / "hook.json",
        "faults": lab_dir / "faults.json",
    }


def _api_key(lab_dir: Path) -> str:
    path = lab_dir / "secrets.yml"
    try:
        key = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("maas_api_key", "")
    except OSError as err:
        raise FleetError("cannot read the lab secrets", endpoint=str(path), service_message=str(err),
                         hint="run `python provision.py lab up`, which creates them") from None
    if str(key).count(":") != 2:
        raise FleetError("lab secret maas_api_key is not consumer:token:secret", endpoint=str(path),
                         hint="delete the lab directory (`python provision.py lab reset`) to regenerate it")
    return str(key)


def _port(site: Site) -> int:
    if site.lab is None or PORT_KEY not in site.lab.ports:
        raise FleetError(f"site '{site.name}' has no lab port for MAAS", endpoint=str(site.path),
                         hint=f"add lab.ports.{PORT_KEY} (e.g. 5240) to the site file")
    return site.lab.ports[PORT_KEY]


def prepare(
    site: Site,
    lab_dir: Path,
    *,
    hook: Sequence[str] | None = None,
    hook_boots_os: bool = False,
    hook_batch: bool = False,
    commissioned: bool = True,
    enlisted: bool = True,
    bmc_power: bool = False,
) -> Path:
    """Write the simulator's config (mode 0600: it holds the API key); returns its path.

    `hook` is an argv the simulator runs as `argv + [hostname, event]` when a deployed machine reboots
    into its OS (`deployed`) or finishes releasing (`released`); `None` keeps whatever hook file is
    already in the lab dir, `[]` removes it. With `hook_boots_os` the hook's `deployed` run is the
    machine's boot: MAAS reports Deployed only once it finished, as real MAAS does once the booted OS's
    cloud-init phoned home (lab.maas.states); without it the hook runs beside Deployed. With `hook_batch`
    one run takes every machine with the same event due (`argv + [event, hostname, ...]`). The simulator
    re-reads the hook file when it changes, so another lab component may write it after this.
    `commissioned=False` starts machines as New.
    `enlisted=False` leaves every machine unknown to MAAS, as on a new rack: a client registers
    them (`machines create`). `bmc_power=True` gives the pre-enlisted machines the Redfish power
    parameters an operator would have registered (the node's BMC address, the lab's BMC user and
    password, the emulator's system id), so MAAS powers them through the lab BMCs; without it they
    have power type `manual` (the MAAS-only lab has no BMCs).
    """
    files = lab_files(lab_dir)
    taken: set[str] = set()
    machines = []
    password = bmc_password(lab_dir) if bmc_power else ""
    for hostname in sorted(site.nodes):
        node = site.nodes[hostname]
        system_id = system_id_for(hostname, taken)
        taken.add(system_id)
        power = (("power_address", node.bmc.address), ("power_user", site.credentials[node.bmc.credentials].username),
                 ("power_pass", password), ("node_id", system_uuid(site, hostname)))
        machines.append(MachineSpec(
            hostname=hostname, system_id=system_id, macs=(node.pxe_mac.lower(),),
            initial_status=Status.READY if commissioned else Status.NEW, enlisted=enlisted,
            power_type="redfish" if bmc_power else "manual", power_parameters=power if bmc_power else (),
        ))
    assert site.lab is not None  # _port() has checked
    # A site whose MAAS URL is https gets a MAAS behind TLS, certified by the lab CA (lab_dir/tls/ca.pem).
    tls = ensure_lab_tls(lab_dir) if _https(site) else None
    config = Config(
        host=HOST, port=_port(site), api_key=_api_key(lab_dir), time_factor=site.lab.time_factor,
        seed=site.lab.seed, state_file=files["state"], faults_file=files["faults"],
        hook_file=files["hook"], machines=tuple(machines),
        cert_file=tls.cert_file if tls else None, key_file=tls.key_file if tls else None,
        bmc_ca_file=ensure_lab_tls(lab_dir).ca_file,
        netboots_file=RedfishLabFiles.under(lab_dir).netboots,
    )
    config.dump(files["config"])
    if hook is not None:
        write_hook(lab_dir, hook, boots_os=hook_boots_os, batch=hook_batch)
    return files["config"]


def write_hook(lab_dir: Path, argv: Sequence[str], *, boots_os: bool = False, batch: bool = False) -> None:
    """Set (or, with an empty argv, clear) the command the simulator runs on deployed/released;
    `boots_os`: Deployed waits for its `deployed` run; `batch`: one run takes several machines (see `prepare`)."""
    write_atomic(lab_files(lab_dir)["hook"], json.dumps({"argv": list(argv), "boots_os": boots_os, "batch": batch}))


def _https(site: Site) -> bool:
    return urlsplit(site.maas.url).scheme == "https"


def service(site: Site, lab_dir: Path) -> LabService:
    port = _port(site)
    # Over TLS the readiness probe would need the lab CA; an accepting port is enough there.
    ready = ReadyCheck(port=port, host=HOST) if _https(site) else ReadyCheck(
        url=f"http://{HOST}:{port}/MAAS/api/2.0/version/")
    return LabService(
        name="maas",
        argv=[sys.executable, "-m", "lab.maas", "--config", str(lab_files(lab_dir)["config"])],
        ready=ready,
        env={},
    )
