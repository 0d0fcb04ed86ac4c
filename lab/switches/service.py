"""The lab switches as a lab service: `prepare` writes their config and host key, `service` their process.

Every switch of the site with a `device_type` gets an SSH simulator on its own address's port
(`switches.<name>.address`), all in one process. The login is the site's switch credential user and
the `switch_password` that `lab.control` generated into `lab_dir/secrets.yml`; what each switch runs
and has saved is in `lab_dir/switches/state/<name>.json` (lab/switches/server.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import paramiko
import yaml

from fleet.errors import FleetError
from fleet.site import Site
from lab.service import LabService, ReadyCheck


def lab_files(lab_dir: Path) -> dict[str, Path]:
    root = lab_dir / "switches"
    return {"config": root / "config.json", "host_key": root / "host_key", "state": root / "state"}


def managed(site: Site) -> list:
    return [switch for switch in site.switches.values() if switch.device_type]


def prepare(site: Site, lab_dir: Path) -> Path | None:
    """Write the simulators' config (mode 0600: it holds the password) and, once, their host key;
    None for a site without a switch to simulate."""
    if not managed(site):
        return None
    files = lab_files(lab_dir)
    files["config"].parent.mkdir(parents=True, exist_ok=True)
    try:
        secrets = yaml.safe_load((lab_dir / "secrets.yml").read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise FleetError("cannot read the lab secrets", endpoint=str(lab_dir / "secrets.yml"),
                         service_message=err.strerror, hint="run `python provision.py lab up`") from None
    if not files["host_key"].is_file():
        paramiko.RSAKey.generate(2048).write_private_key_file(str(files["host_key"]))
        os.chmod(files["host_key"], 0o600)
    switches = managed(site)
    users = {site.credentials[s.credentials].username for s in switches if s.credentials in site.credentials}
    config = {
        "state_dir": str(files["state"]), "host_key": str(files["host_key"]),
        "username": next(iter(sorted(users)), "admin"), "password": str(secrets.get("switch_password", "")),
        "switches": [{"name": s.name, "device_type": s.device_type, "port": int(s.address.rpartition(":")[2])}
                     for s in switches],
    }
    fd = os.open(files["config"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    return files["config"]


def state(lab_dir: Path, name: str) -> dict:
    """What a simulated switch runs and has saved (hostname, running, saved, pending)."""
    return json.loads((lab_files(lab_dir)["state"] / f"{name}.json").read_text(encoding="utf-8"))


def service(site: Site, lab_dir: Path) -> list[LabService]:
    switches = managed(site)
    if not switches:
        return []
    last = int(switches[-1].address.rpartition(":")[2])
    return [LabService(
        name="switches",
        argv=[sys.executable, "-m", "lab.switches", "--config", str(lab_files(lab_dir)["config"])],
        ready=ReadyCheck(port=last),  # every port is bound before any is served: the last one means all
        env={},
    )]
