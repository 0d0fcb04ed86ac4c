"""slurmd and munge for the lab hosts, as Debian's own .deb files, fetched once and cached.

Lab hosts reach no Debian mirror (their image is built once, then they are offline), so the packages
are downloaded on this machine: the set apt would install on top of the lab host image (asked of apt
with the image's dpkg status, so nothing already in the image is fetched), cached under the lab cache
by the package list and the image. Installing them on a host is `dpkg -i` of the ones it lacks.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from lab.filelock import locked
from lab.hosts.image import HostError

PACKAGES = ("slurmd", "munge")


def _apt(argv: list[str], what: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise HostError(f"{what} failed (exit {done.returncode})", service_message=done.stderr.strip()[-800:],
                        hint="the lab fetches slurmd from this machine's Debian mirror: check apt-get update works")
    return done.stdout


def needed(image_root: Path) -> list[str]:
    """name=version of each package apt would install on the image for slurmd and munge."""
    with tempfile.TemporaryDirectory(prefix="fleet-slurm-apt-") as empty:
        (Path(empty) / "partial").mkdir()
        out = _apt(["apt-get", "install", "--print-uris", "-qq", "--no-install-recommends",
                    "-o", f"Dir::State::status={image_root / 'var/lib/dpkg/status'}",
                    "-o", f"Dir::Cache::archives={empty}", *PACKAGES], "apt-get --print-uris of slurmd")
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].endswith(".deb"):
            name, version, _arch = parts[1][: -len(".deb")].split("_")
            found.append(f"{name}={version.replace('%3a', ':')}")
    return sorted(found)


def ensure(image_root: Path, cache: Path) -> Path:
    """The directory of .deb files (fetched now if no complete copy is cached)."""
    wanted = needed(image_root)
    key = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
    folder = cache / "slurm-debs" / key
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder.parent / f"{key}.lock"):
        if not (folder / ".complete").exists():
            _apt(["apt-get", "download", "-q", *wanted], "apt-get download of slurmd and munge", cwd=folder)
            (folder / ".complete").write_text("\n".join(wanted) + "\n", encoding="utf-8")
    return folder
