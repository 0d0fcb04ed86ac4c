"""The lab UFM as a lab service: `prepare` writes its config, `service` describes its process.

The fabric is the site's own plan (its `fabric.topology` file) and nodes; the password is the
`ufm_password` that `lab.control` generated into `lab_dir/secrets.yml`, where the site's `ufm`
credential points, so the lab and the client read the same secret and it never enters the repository.
Faults live in `lab_dir/ufm/faults.json` (a list of specs, see lab/ufm/fabric.py) and are re-read
whenever that file changes; `write_faults` is how tests inject them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from fleet.errors import FleetError
from fleet.site import Site
from lab.atomic import write_atomic
from lab.redfish.tls import ensure_lab_tls
from lab.service import LabService, ReadyCheck

PORT_KEY = "ufm"
HOST = "127.0.0.1"


def lab_files(lab_dir: Path) -> dict[str, Path]:
    root = lab_dir / "ufm"
    return {"config": root / "config.json", "faults": root / "faults.json", "requests": root / "requests.jsonl"}


def _port(site: Site) -> int:
    if site.lab is None or PORT_KEY not in site.lab.ports:
        raise FleetError(f"site '{site.name}' has no lab port for UFM", endpoint=str(site.path),
                         hint=f"add lab.ports.{PORT_KEY} (e.g. 8443) to the site file")
    return site.lab.ports[PORT_KEY]


def wanted(site: Site) -> bool:
    """A lab UFM runs for sites with a UFM endpoint, a fabric plan and a lab port for it."""
    return site.ufm is not None and site.fabric is not None and site.lab is not None and PORT_KEY in site.lab.ports


def prepare(site: Site, lab_dir: Path) -> Path | None:
    """Write the simulator's config (mode 0600: it holds the password); returns its path (None: no UFM here)."""
    if not wanted(site):
        return None
    assert site.ufm is not None and site.fabric is not None
    if urlsplit(site.ufm.url).scheme != "https":
        raise FleetError(f"site '{site.name}' has no https ufm.url", endpoint=str(site.path),
                         hint="add ufm: {url: https://127.0.0.1:8443/, credentials: ufm}")
    try:
        secrets = yaml.safe_load((lab_dir / "secrets.yml").read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise FleetError("cannot read the lab secrets", endpoint=str(lab_dir / "secrets.yml"),
                         service_message=err.strerror,
                         hint="run `python provision.py lab up`, which creates them") from None
    files = lab_files(lab_dir)
    files["config"].parent.mkdir(parents=True, exist_ok=True)
    tls = ensure_lab_tls(lab_dir)
    ref = site.credentials.get(site.ufm.credentials)
    config = {
        "host": HOST, "port": _port(site), "site": str(site.path), "topology": str(site.fabric.topology.path),
        "time_factor": site.lab.time_factor if site.lab else 1.0, "seed": site.lab.seed if site.lab else 0,
        "username": ref.username if ref else "admin", "password": str(secrets.get("ufm_password", "")),
        "faults_file": str(files["faults"]), "request_log": str(files["requests"]),
        "cert_file": str(tls.cert_file), "key_file": str(tls.key_file),
    }
    fd = os.open(files["config"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    return files["config"]


def write_faults(lab_dir: Path, specs: list[dict]) -> None:
    """Replace the UFM fault list; the running simulator applies it on its next request."""
    path = lab_files(lab_dir)["faults"]
    write_atomic(path, json.dumps(specs))


def requests_seen(lab_dir: Path) -> list[dict]:
    """The simulator's request log, oldest first."""
    path = lab_files(lab_dir)["requests"]
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def service(site: Site, lab_dir: Path) -> list[LabService]:
    if not wanted(site):
        return []
    port = _port(site)
    return [LabService(
        name="ufm",
        argv=[sys.executable, "-m", "lab.ufm", "--config", str(lab_files(lab_dir)["config"])],
        ready=ReadyCheck(port=port, host=HOST),  # over TLS: an accepting port (the probe has no lab CA)
        env={},
    )]
