"""The lab's image registry and the tracker's Redis, as lab services on the bridge.

Both are the real programs from Debian, not simulators: `docker-registry` (distribution 2.8, the
reference implementation of the Docker registry API v2 that Kraken's origin reads from through its
`registry_blob`/`registry_tag` backends, lib/backend/registrybackend) and `redis-server` (what Kraken's
tracker keeps its peer sets in, tracker/peerstore/config.go). So every status code, header and error body
a client sees is the real one: `GET /v2/` 200 with `Docker-Distribution-API-Version: registry/2.0`; a
manifest by tag with `Docker-Content-Digest`; `404 MANIFEST_UNKNOWN` / `BLOB_UNKNOWN` JSON errors
(distribution registry/api/errcode); Redis answering `+PONG`.

They start only for a site whose `lab.ports` names them (`registry`, `redis`): the default lab does not
pay for them. Both bind the bridge's own address (198.18.0.1), so lab hosts reach them and nothing
outside the machine does; ports come from the site, which the tests pick free.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from fleet.site import Site
from lab.hosts import bridge
from lab.service import LabService, ReadyCheck

REGISTRY_BINARY = "/usr/bin/docker-registry"  # Debian package docker-registry
REDIS_BINARY = "/usr/bin/redis-server"  # Debian package redis-server


def _ports(site: Site) -> tuple[str, str, int | None, int | None]:
    if site.lab is None:
        return "", "", None, None
    ports = site.lab.ports
    return site.lab.hosts.bridge, site.lab.hosts.gateway, ports.get("registry"), ports.get("redis")


def registry_url(site: Site) -> str:
    _bridge, gateway, port, _redis = _ports(site)
    return f"http://{gateway}:{port}"


def registry_config(root: Path, listen: str) -> dict:
    """distribution's config.yml (docs/configuration.md): filesystem storage, deletes allowed, no auth."""
    return {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": listen, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }


def prepare(site: Site, lab_dir: Path) -> None:
    bridge_name, gateway, port, redis_port = _ports(site)
    if port is None and redis_port is None:
        return
    for binary in (REGISTRY_BINARY if port else None, REDIS_BINARY if redis_port else None):
        if binary and not shutil.which(binary):
            raise FileNotFoundError(f"{binary} is missing: run scripts/install.sh (apt docker-registry redis-server)")
    bridge.ensure_bridge(bridge_name, gateway)
    if port is not None:
        folder = lab_dir / "registry"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        config = registry_config(folder / "data", f"{gateway}:{port}")
        (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if redis_port is not None:
        (lab_dir / "redis").mkdir(parents=True, exist_ok=True)


def service(site: Site, lab_dir: Path) -> list[LabService]:
    _bridge, gateway, port, redis_port = _ports(site)
    found = []
    if port is not None:
        found.append(LabService(
            name="registry", argv=[REGISTRY_BINARY, "serve", str(lab_dir / "registry" / "config.yml")],
            ready=ReadyCheck(url=f"http://{gateway}:{port}/v2/", host=gateway),
        ))  # fmt: skip
    if redis_port is not None:
        # The peer store needs no persistence (announces expire); protected mode off: it binds the bridge only.
        found.append(LabService(
            name="redis",
            argv=[REDIS_BINARY, "--bind", gateway, "--port", str(redis_port), "--save", "", "--appendonly", "no",
                  "--protected-mode", "no", "--dir", str(lab_dir / "redis")],
            ready=ReadyCheck(port=redis_port, host=gateway),
        ))  # fmt: skip
    return found
