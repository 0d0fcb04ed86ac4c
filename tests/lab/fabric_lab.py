"""A running lab UFM over a generated site, for the fabric lab tests (started alone: no MAAS, no BMCs)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet.fabric.topology import Topology
from fleet.fabric.ufm import UfmClient
from fleet.site import Site, resolve_credentials
from lab.control import ensure_secrets
from lab.settings import load_lab_site
from lab.ufm import service as ufm_service
from tests.lab.conftest import REPO, LabSite, make_site


@dataclass
class FabricLab:
    lab: LabSite
    site: Site
    topology: Topology
    process: subprocess.Popen

    @property
    def lab_dir(self) -> Path:
        return self.lab.lab_dir

    def client(self, **kwargs: object) -> UfmClient:
        assert self.site.ufm is not None
        creds = resolve_credentials(self.site, self.site.ufm.credentials)
        return UfmClient(self.site.ufm.url, creds.username, creds.secret,
                         ca_file=str(self.lab_dir / "tls" / "ca.pem"), **kwargs)  # type: ignore[arg-type]

    def faults(self, specs: list[dict]) -> None:
        """Replace the fault list; waits past the mtime granularity so the simulator sees the change."""
        time.sleep(0.01)
        ufm_service.write_faults(self.lab_dir, specs)

    def requests(self) -> list[dict]:
        return ufm_service.requests_seen(self.lab_dir)


@contextmanager
def running_ufm(root: Path, *, racks: int, time_factor: float = 0.005) -> Iterator[FabricLab]:
    lab = make_site(root, racks=racks, time_factor=time_factor, max_hosts=0)
    ensure_secrets(lab.lab_dir)
    site = load_lab_site(lab.site_file)
    config = ufm_service.prepare(site, lab.lab_dir)
    assert config is not None
    (described,) = ufm_service.service(site, lab.lab_dir)
    log = open(lab.lab_dir / "ufm.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "lab.ufm", "--config", str(config)], cwd=REPO, env=lab.env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with closing(socket.socket()) as probe:
                if probe.connect_ex(("127.0.0.1", described.ready.port or 0)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((lab.lab_dir / "ufm.log").read_text(encoding="utf-8"))
            time.sleep(0.1)
        assert site.fabric is not None
        yield FabricLab(lab, site, site.fabric.topology, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
