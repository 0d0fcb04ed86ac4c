"""The lab apt repository as a lab service: built (or taken from the cache) in `prepare`, served on the bridge.

It listens on the bridge's own address (`lab.hosts.gateway`, 198.18.0.1) so lab hosts reach it and
nothing outside the machine does; `prepare` creates the bridge first because one cannot bind an
address no interface has yet.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fleet.site import Site
from lab.apt.build import PACKAGES_DIR, AptRepoError, build_repo
from lab.hosts import bridge, image
from lab.service import LabService, ReadyCheck

NAME = "apt"
DEFAULT_PORT = 8081


def packages_dir() -> Path:
    """Where the control files are: FLEET_LAB_APT_PACKAGES (tests) or lab/apt/packages."""
    return Path(os.environ.get("FLEET_LAB_APT_PACKAGES") or PACKAGES_DIR)


def _settings(site: Site) -> tuple[str, str, int]:
    if site.lab is None:
        raise AptRepoError(f"site {site.path} has no lab: section, so it has no lab apt repository")
    return site.lab.hosts.bridge, site.lab.hosts.gateway, site.lab.ports.get(NAME, DEFAULT_PORT)


def repo_url(site: Site) -> str:
    _bridge, gateway, port = _settings(site)
    return f"http://{gateway}:{port}/"


def prepare(site: Site, lab_dir: Path) -> None:
    """Build the repository (cached) and link it as `lab_dir/apt/repo`; bring the bridge up."""
    bridge_name, gateway, _port = _settings(site)
    repo = build_repo(packages_dir(), image.cache_dir())
    link = lab_dir / "apt" / "repo"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(repo)
    bridge.ensure_bridge(bridge_name, gateway)


def service(site: Site, lab_dir: Path) -> LabService:
    _bridge, gateway, port = _settings(site)
    root = (lab_dir / "apt" / "repo").resolve()
    return LabService(
        name=NAME,
        argv=[sys.executable, "-m", "lab.apt.server", "--root", str(root), "--bind", gateway, "--port", str(port)],
        ready=ReadyCheck(url=f"http://{gateway}:{port}/Release", host=gateway),
    )
