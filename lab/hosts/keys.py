"""The lab's SSH identity: one client key root trusts on every host, one host key every host presents.

Both live under the lab dir, so two labs (a developer's and a test's) never trust each other. All
hosts of a lab share one host key and `known_hosts` pins it for the whole lab block: a host that is
reimaged (a fresh overlay) keeps answering with the same key, so `StrictHostKeyChecking` stays on
without a stale-key failure after every release and deploy.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.hosts.image import HostError
from lab.hosts.plan import LAB_NETWORK

# ssh's host pattern for the whole lab block (198.18.0.0/15).
LAB_PATTERNS = "198.18.*,198.19.*"


@dataclass(frozen=True)
class LabKeys:
    client_key: Path
    client_pub: str
    host_key: str
    host_pub: str
    known_hosts: Path
    ssh_config: Path


def ssh_dir(lab_dir: Path) -> Path:
    return lab_dir / "ssh"


def _keypair(path: Path, comment: str) -> tuple[str, str]:
    pub = path.with_name(path.name + ".pub")
    if not (path.exists() and pub.exists()):
        path.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        done = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise HostError(f"ssh-keygen could not make {path}", service_message=done.stderr)
    return path.read_text(encoding="utf-8"), pub.read_text(encoding="utf-8").strip()


def ensure_keys(lab_dir: Path) -> LabKeys:
    """Create the lab's keys once (idempotent; a half-written pair is made again)."""
    folder = ssh_dir(lab_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    client = folder / "id_ed25519"
    _, client_pub = _keypair(client, "fleet-lab-client")
    host_key, host_pub = _keypair(folder / "host_ed25519_key", "fleet-lab-host")
    known_hosts = folder / "known_hosts"
    pinned = f"{LAB_PATTERNS} {' '.join(host_pub.split()[:2])}\n"
    if not known_hosts.exists() or pinned not in known_hosts.read_text(encoding="utf-8"):
        known_hosts.write_text(pinned, encoding="utf-8")
    return LabKeys(client, client_pub, host_key, host_pub, known_hosts, lab_dir / "ssh_config")


def control_dir(lab_dir: Path) -> Path:
    """Where ControlMaster sockets go: a short path, because a unix socket path is limited to 107 bytes
    and a lab dir under pytest's tmp_path is already long."""
    digest = hashlib.sha256(str(lab_dir.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"fleetlab-ssh-{digest}"


def render_ssh_config(keys: LabKeys, control: Path, hosts: dict[str, str]) -> str:
    """ssh/Ansible client settings for the lab: every lab address, plus each running host by name."""
    common = (
        "  User root\n"
        f"  IdentityFile {keys.client_key}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {keys.known_hosts}\n"
        "  StrictHostKeyChecking accept-new\n"
        "  ControlMaster auto\n"
        f"  ControlPath {control}/%C\n"
        "  ControlPersist 120s\n"
        "  ConnectTimeout 5\n"
        "  ServerAliveInterval 5\n"
        "  LogLevel ERROR\n"
    )
    blocks = [f"# Lab hosts ({LAB_NETWORK}); written by lab.hosts, rewritten when hosts start or stop.\n"]
    for name, address in sorted(hosts.items()):
        blocks.append(f"Host {name}\n  HostName {address}\n{common}")
    blocks.append(f"Host {LAB_PATTERNS.replace(',', ' ')}\n{common}")
    return "\n".join(blocks)


def write_ssh_config(lab_dir: Path, hosts: dict[str, str]) -> Path:
    keys = ensure_keys(lab_dir)
    control = control_dir(lab_dir)
    control.mkdir(mode=0o700, exist_ok=True)
    tmp = keys.ssh_config.with_suffix(".tmp")
    tmp.write_text(render_ssh_config(keys, control, hosts), encoding="utf-8")
    tmp.replace(keys.ssh_config)
    return keys.ssh_config
