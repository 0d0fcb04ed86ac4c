"""Stand-ins for the Kraken agent's registry port on lab hosts: distribution in pull-through (proxy) mode.

The Kraken agent cannot run here, but what `kraken check` and `image pull` ask of it is the registry API
v2 on the node's agent port, answered from a local cache that is filled from upstream on first request
(the agent fills it from its peers and the origins). distribution's proxy mode does exactly that
(docs/configuration.md `proxy.remoteurl`, docs/recipes/mirror.md): a manifest or blob is fetched from the
remote on first GET, stored under the storage root, served from there afterwards; pushes are refused
(405 UNSUPPORTED), as a Kraken agent only serves pulls. Its storage root is the agent's cache directory
(/var/cache/kraken/kraken-agent), so the cache the check measures is the bytes the node really holds.

Installed over the lab's SSH like anything else on a node: the Debian binary (statically linked Go but
libc) copied in, a config written, run as a transient systemd unit.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

from lab.registry.service import REGISTRY_BINARY

UNIT = "kraken-agent-standin"
REMOTE_BINARY = "/usr/local/lib/fleet-lab/docker-registry"
REMOTE_CONFIG = "/etc/fleet-lab/agent-registry.yml"
CACHE_DIR = "/var/cache/kraken/kraken-agent"


def _ssh(lab_dir: Path, host: str, command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """`command` as root on the host: it logs in like a MAAS-deployed Ubuntu, root work goes through sudo."""
    return subprocess.run(["ssh", "-F", str(lab_dir / "ssh_config"), "-o", "BatchMode=yes", host,
                           f"sudo -n sh -c {shlex.quote(command)}"],
                          input=stdin, capture_output=True, timeout=60, check=False)


def config(upstream: str, port: int) -> dict:
    return {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": CACHE_DIR}},
        "http": {"addr": f":{port}"},
        "proxy": {"remoteurl": upstream},
    }


def start(lab_dir: Path, host: str, upstream: str, port: int) -> None:
    """Install and start the stand-in on `host` (an ssh alias of the lab), listening on `port`."""
    steps = [
        (f"mkdir -p {Path(REMOTE_BINARY).parent} {Path(REMOTE_CONFIG).parent} {CACHE_DIR} && "
         f"cat > {REMOTE_BINARY} && chmod 0755 {REMOTE_BINARY}", Path(REGISTRY_BINARY).read_bytes()),
        (f"cat > {REMOTE_CONFIG}", yaml.safe_dump(config(upstream, port)).encode()),
        (f"systemctl reset-failed {UNIT} 2>/dev/null; systemd-run --unit={UNIT} --property=Restart=no "
         f"{REMOTE_BINARY} serve {REMOTE_CONFIG}", None),
    ]
    for command, data in steps:
        done = _ssh(lab_dir, host, command, data)
        if done.returncode != 0:
            raise RuntimeError(f"{host}: {command.split('&&')[0]}: {done.stderr.decode(errors='replace').strip()}")


def stop(lab_dir: Path, host: str) -> None:
    """Take the node's registry down (the unit stops; its cache stays)."""
    _ssh(lab_dir, host, f"systemctl stop {UNIT}")
