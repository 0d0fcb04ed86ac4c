"""Address leases on the lab bridge, shared by every lab dir on the machine.

All labs (a developer's, each test's, each molecule scenario's) put their hosts on the same bridge,
so an address must be unique machine-wide, not only within one lab dir. A lease is a file
`FLEET_LAB_CACHE/leases/<address>` naming the lab dir and host that hold it, and the process that
took it, written under a lock. A lease whose holder no longer runs (its pid is gone, its lab dir
deleted) is stale and is taken over, so a crashed test never blocks an address for good.

Until the host has a pid (it is being started: the image, keys and overlay come first, seconds when
another start holds the image lock), the lease lives as long as the process that took it. It used to
live only while the host's state dir existed, which `start` makes after those steps: two molecule lanes
both took 198.19.100.10 in that window, and the second container to boot answered the first one's SSH
with its own host key (CI, 2026-12-06).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.filelock import locked
from lab.hosts import image
from lab.hosts.image import HostError
from lab.hosts.plan import FIRST_HOST_OFFSET, MOLECULE_NSPAWN_RANGE, MOLECULE_VM_RANGE
from lab.hosts.proc import pid_alive


def _dir() -> Path:
    folder = image.cache_dir() / "leases"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _locked() -> Iterator[Path]:
    folder = _dir()
    with locked(folder / ".lock"):
        yield folder


def _holder(lab_dir: Path, name: str) -> dict:
    return {"lab_dir": str(lab_dir.resolve()), "name": name, "pid": os.getpid()}


def _same(holder: dict | None, me: dict) -> bool:
    """The same host (lab dir and name), whichever process took the lease for it."""
    return holder is not None and (holder.get("lab_dir"), holder.get("name")) == (me["lab_dir"], me["name"])


def _holder_alive(holder: dict) -> bool:
    """True while the holding host runs (its pid), or is being started by a live process (no pid yet)."""
    lab_dir = Path(str(holder.get("lab_dir", "")))
    if not lab_dir.is_dir():
        return False
    pid_file = lab_dir / "hosts" / str(holder.get("name", "")) / "pid"
    if pid_file.exists():
        text = pid_file.read_text(encoding="utf-8").strip()
        return text.isdigit() and pid_alive(int(text))
    starter = holder.get("pid")
    if isinstance(starter, int):
        return pid_alive(starter)
    return pid_file.parent.is_dir()  # a lease written before leases named their process


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def claim(address: str, lab_dir: Path, name: str) -> None:
    """Take `address` for host `name` of `lab_dir`; refuse if another live host holds it."""
    me = _holder(lab_dir, name)
    with _locked() as folder:
        path = folder / address
        holder = _read(path)
        if holder and not _same(holder, me) and _holder_alive(holder):
            raise HostError(f"address {address} is taken by lab host {holder['name']} of {holder['lab_dir']}",
                            node=name, hint="stop that host or choose another address")
        path.write_text(json.dumps(me), encoding="utf-8")


def release(address: str, lab_dir: Path, name: str) -> None:
    """Give `address` back if this host holds it (never someone else's lease)."""
    me = _holder(lab_dir, name)
    with _locked() as folder:
        path = folder / address
        if _same(_read(path), me):
            path.unlink(missing_ok=True)


def allocate(lab_dir: Path, name: str, *, vm: bool = False,
             network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None) -> str:
    """The first address of the molecule range (VM or container), or of `network`, that no live host holds,
    claimed for `name`."""
    network = network or (MOLECULE_VM_RANGE if vm else MOLECULE_NSPAWN_RANGE)
    me = _holder(lab_dir, name)
    with _locked() as folder:
        for offset in range(FIRST_HOST_OFFSET, network.num_addresses - 1):
            address = str(ipaddress.IPv4Address(int(network.network_address) + offset))
            holder = _read(folder / address)
            if holder is None or _same(holder, me) or not _holder_alive(holder):
                (folder / address).write_text(json.dumps(me), encoding="utf-8")
                return address
    raise HostError(f"every address of {network} is taken by a running lab host", node=name,
                    hint="stop molecule instances left running (python -m lab.hosts --lab-dir DIR stop-all)")


def molecule_leases_held() -> list[str]:
    """Addresses of the molecule ranges that a live host holds now."""
    held: list[str] = []
    with _locked() as folder:
        for path in sorted(folder.iterdir()):
            try:
                address = ipaddress.IPv4Address(path.name)
            except ValueError:
                continue
            holder = _read(path)
            if (address in MOLECULE_NSPAWN_RANGE or address in MOLECULE_VM_RANGE) and holder and _holder_alive(holder):
                held.append(path.name)
    return held
