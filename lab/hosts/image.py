"""The lab hosts' Debian 12 root filesystem: debootstrap once, cache by content, share read-only.

Building takes about a minute and needs the Debian mirror; starting a host from the cached tree
takes a fraction of a second (an overlay). The cache key covers the package list and the setup
script (`plan.cache_key`), so changing either builds a new tree next to the old one instead of
silently reusing a stale one. Two processes that need the same image at once build it once: the
build holds a lock file, and a tree only counts once its `.complete` marker is written.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from fleet.errors import FleetError
from lab.filelock import locked
from lab.hosts.plan import ImageSpec, base_image_spec, vm_image_spec
from lab.hosts.proc import log_tail

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("/var/cache/fleet-lab")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCES_FILES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
BUILD_TIMEOUT_S = 1800


class HostError(FleetError):
    """A lab host (or its image, bridge or keys) could not be built, started or stopped."""


def cache_dir() -> Path:
    return Path(os.environ.get("FLEET_LAB_CACHE") or DEFAULT_CACHE)


def debian_mirror(sources: tuple[Path, ...] = SOURCES_FILES) -> str:
    """The Debian mirror this machine's apt uses (so a proxy or snapshot mirror set up for it is reused).

    Reads one-line (`deb URI suite ...`) and deb822 (`URIs:`) sources; takes the first URI ending in
    `/debian` (the main archive, not `-security`). FLEET_LAB_MIRROR overrides.
    """
    override = os.environ.get("FLEET_LAB_MIRROR")
    if override:
        return override
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if p.suffix in (".list", ".sources")))
        elif source.is_file():
            files.append(source)
    for path in files:
        for uri in mirror_uris(path.read_text(encoding="utf-8", errors="replace")):
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def mirror_uris(text: str) -> list[str]:
    """Every archive URI named in an apt sources text, one-line or deb822 format, in order."""
    uris: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        deb822 = re.match(r"URIs:\s*(.+)", line, re.IGNORECASE)
        if deb822:
            uris.extend(deb822.group(1).split())
            continue
        one_line = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
        if one_line:
            uris.append(one_line.group(1))
    return uris


def image_root(spec: ImageSpec) -> Path:
    return cache_dir() / "images" / spec.key / "rootfs"


def is_built(spec: ImageSpec) -> bool:
    return (image_root(spec).parent / ".complete").exists()


def ensure_base() -> Path:
    """The base image's root (built now if no complete one is cached)."""
    return _ensure(base_image_spec(), None)


def ensure_vm() -> Path:
    """The VM image's root: the base image plus a kernel and a seed unit, built from a copy of the base."""
    base = ensure_base()
    return _ensure(vm_image_spec(), base)


def _ensure(spec: ImageSpec, derive_from: Path | None) -> Path:
    root = image_root(spec)
    if is_built(spec):
        return root
    with locked(root.parent.parent / f"{spec.key}.lock"):
        if is_built(spec):  # another process finished it while we waited
            return root
        started = time.monotonic()
        scratch = root.parent.with_name(f"{spec.key}.building")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        work = scratch / "rootfs"
        if derive_from is None:
            _debootstrap(spec, work, scratch / "debootstrap.log")
            for script in spec.setup:
                _chroot_sh(work, script, scratch / "setup.log")
        else:
            _copy_tree(derive_from, work)
            extra = [p for p in spec.packages if p not in base_image_spec().packages]
            _chroot_install(work, extra, scratch / "install.log")
            for script in spec.setup[len(base_image_spec().setup):]:
                _chroot_sh(work, script, scratch / "setup.log")
        shutil.rmtree(root.parent, ignore_errors=True)
        scratch.rename(root.parent)
        (root.parent / ".complete").write_text(f"{time.monotonic() - started:.1f}\n", encoding="utf-8")
        log.info("lab image %s built in %.0f s at %s", spec.key, time.monotonic() - started, root)
    return root


def _run(argv: list[str], log_path: Path, what: str, env: dict[str, str] | None = None) -> None:
    with open(log_path, "ab") as out:
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, timeout=BUILD_TIMEOUT_S, check=False)
        except FileNotFoundError as err:
            raise HostError(f"{what}: {argv[0]} is not installed", hint="run scripts/install.sh") from err
        except subprocess.TimeoutExpired as err:
            raise HostError(f"{what} took longer than {BUILD_TIMEOUT_S} s", hint=f"read {log_path}") from err
    if done.returncode != 0:
        raise HostError(f"{what} failed with exit code {done.returncode}", service_message=log_tail(log_path),
                        hint=f"read {log_path}")


def _debootstrap(spec: ImageSpec, target: Path, log_path: Path) -> None:
    mirror = debian_mirror()
    log.info("building lab image %s with debootstrap from %s (about a minute)", spec.key, mirror)
    _run(["debootstrap", f"--variant={spec.variant}", f"--include={','.join(spec.packages)}",
          spec.suite, str(target), mirror], log_path, f"debootstrap of {spec.suite} from {mirror}")


def _chroot_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
            "HOME": "/root"}


def _chroot_sh(root: Path, script: str, log_path: Path) -> None:
    _run(["chroot", str(root), "/bin/sh", "-c", script], log_path, "lab image setup", _chroot_env())


def _chroot_install(root: Path, packages: list[str], log_path: Path) -> None:
    """apt-get install into an image whose own sources were emptied: point it at the mirror for this call only."""
    mirror = debian_mirror()
    sources = root / "etc/apt/sources.list.d/fleet-build.list"
    sources.write_text(f"deb {mirror} {base_image_spec().suite} main\n", encoding="utf-8")
    # Services must not start inside a chroot (the host is not the image): policy-rc.d says no.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
    policy.chmod(0o755)
    # The image's resolv.conf is empty on purpose (no DNS in the lab); the build needs the host's.
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        _chroot_sh(root, "apt-get update -q && apt-get install -y -q --no-install-recommends "
                   + " ".join(packages) + " && apt-get clean && rm -rf /var/lib/apt/lists/*", log_path)
    finally:
        sources.unlink(missing_ok=True)
        policy.unlink(missing_ok=True)
        resolv.write_text("", encoding="utf-8")


def _copy_tree(source: Path, target: Path) -> None:
    _run(["cp", "-a", "--reflink=auto", str(source), str(target)], target.parent / "copy.log",
         "copying the base image")
