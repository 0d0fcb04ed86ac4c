"""The lab's SSH identity: one client key every host trusts, and a fresh host key for every boot.

Both live under the lab dir, so two labs (a developer's and a test's) never trust each other. A real
server reinstalled by MAAS comes back with new host keys (cloud-init generates them on first boot),
and a client that pinned the old one must notice: so every lab host start makes a new key. The lab
records what each address presented at boot in its own `ssh/known_hosts` (the lab's knowledge, used by
lab.hosts itself and by molecule scenarios); the fleet tool keeps its own known_hosts and judges a
changed key against its journal, as it must against a real site.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from lab.atomic import write_atomic
from lab.filelock import locked
from lab.hosts.plan import LAB_NETWORK

# ssh's host pattern for the whole lab block (198.18.0.0/15).
LAB_PATTERNS = "198.18.*,198.19.*"


@dataclass(frozen=True)
class LabKeys:
    client_key: Path
    client_pub: str
    known_hosts: Path
    ssh_config: Path


def ssh_dir(lab_dir: Path) -> Path:
    return lab_dir / "ssh"


def _new_keypair(path: Path, comment: str) -> tuple[str, str]:
    """A fresh ed25519 pair at `path` and `path`.pub, the OpenSSH files ssh-keygen writes (private 0600), made
    with the `cryptography` package in this process: a 512-node deploy wave makes 512 host keys, and one
    ssh-keygen process each was most of a light host's boot."""
    private = Ed25519PrivateKey.generate()
    private_text = private.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    public = f"{private.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()} {comment}"
    write_atomic(path, private_text, mode=0o600)
    write_atomic(path.with_name(path.name + ".pub"), public + "\n", mode=0o644)
    return private_text, public


def _keypair(path: Path, comment: str) -> tuple[str, str]:
    """The pair at `path`, made when either half is missing (a half-written pair is made again)."""
    pub = path.with_name(path.name + ".pub")
    if path.exists() and pub.exists():
        return path.read_text(encoding="utf-8"), pub.read_text(encoding="utf-8").strip()
    return _new_keypair(path, comment)


def ensure_keys(lab_dir: Path) -> LabKeys:
    """Create the lab's keys once (idempotent; a half-written pair is made again)."""
    folder = ssh_dir(lab_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    client = folder / "id_ed25519"
    _, client_pub = _keypair(client, "fleet-lab-client")
    known_hosts = folder / "known_hosts"
    known_hosts.touch(exist_ok=True)
    return LabKeys(client, client_pub, known_hosts, lab_dir / "ssh_config")


def new_host_key(path: Path) -> tuple[str, str]:
    """A host key made now (the old one at `path`, if any, is replaced): (private, public)."""
    return _new_keypair(path, "fleet-lab-host")


def known_hosts_changed(text: str, changes: dict[str, str | None]) -> str:
    """known_hosts text with each address's line in `changes` replaced by its key (or dropped when None)."""
    kept = [line for line in text.splitlines() if line and line.split(" ", 1)[0] not in changes]
    kept += [f"{address} {' '.join(pub.split()[:2])}" for address, pub in changes.items() if pub is not None]
    return "".join(line + "\n" for line in kept)


def update_host_keys(lab_dir: Path, changes: dict[str, str | None]) -> None:
    """The lab's record for several addresses at once (one rewrite): address -> its new key, None: forgotten."""
    known_hosts = ensure_keys(lab_dir).known_hosts
    with locked(known_hosts.with_suffix(".lock")):  # hosts start and stop concurrently
        text = known_hosts_changed(known_hosts.read_text(encoding="utf-8"), changes)
        write_atomic(known_hosts, text)


def record_host_key(lab_dir: Path, address: str, host_pub: str) -> None:
    """The lab's record of the key the host at `address` presents since this boot."""
    update_host_keys(lab_dir, {address: host_pub})


def forget_host_key(lab_dir: Path, address: str) -> None:
    update_host_keys(lab_dir, {address: None})


def control_dir(lab_dir: Path) -> Path:
    """Where ControlMaster sockets go: a short path, because a unix socket path is limited to 107 bytes
    and a lab dir under pytest's tmp_path is already long."""
    digest = hashlib.sha256(str(lab_dir.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"fleetlab-ssh-{digest}"


def render_ssh_config(keys: LabKeys, control: Path, hosts: dict[str, str], user: str = "ubuntu") -> str:
    """ssh/Ansible client settings for the lab: every lab address, plus each running host by name.

    The known_hosts named here is the lab's record (what each host presented at boot), checked
    strictly; a client with its own record (the fleet tool) passes its own file on the command line,
    which takes precedence over this file."""
    common = (
        f"  User {user}\n"
        f"  IdentityFile {keys.client_key}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {keys.known_hosts}\n"
        "  StrictHostKeyChecking yes\n"
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
    return write_atomic(keys.ssh_config, render_ssh_config(keys, control, hosts))
