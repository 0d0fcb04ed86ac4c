"""Build a flat apt repository from equivs control files, once per set of control files.

Layout (flat, like NVIDIA's CUDA repository): `<repo>/Packages`, `Packages.gz`, `Release` and the
`.deb` files side by side, so a host's source is `deb [trusted=yes] http://198.18.0.1:8081/ ./`.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import logging
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleet.errors import FleetError
from lab.filelock import locked

log = logging.getLogger(__name__)

PACKAGES_DIR = Path(__file__).resolve().parent / "packages"
# Bump when the way a repository is laid out changes, so cached repositories are rebuilt.
LAYOUT_VERSION = "flat-1"
BUILD_WORKERS = 2


class AptRepoError(FleetError):
    """The lab apt repository could not be built or served."""


def control_files(ctl_dir: Path) -> list[Path]:
    return sorted(ctl_dir.glob("*.ctl"))


def repo_key(ctl_files: list[Path]) -> str:
    """Hash of the control files' names and contents: the same stand-ins give the same cached repository."""
    digest = hashlib.sha256(LAYOUT_VERSION.encode())
    for path in sorted(ctl_files, key=lambda p: p.name):
        digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def release_text(files: dict[str, bytes], date: str) -> str:
    """A Release file listing the index files with their sizes and hashes (what apt checks them against)."""
    lines = ["Origin: fleet-lab", "Label: fleet-lab", "Suite: lab", "Codename: lab", f"Date: {date}",
             "Architectures: amd64 all", "Description: lab stand-ins for NVIDIA's repositories (unsigned)"]
    for field, algorithm in (("MD5Sum", "md5"), ("SHA256", "sha256")):
        lines.append(f"{field}:")
        for name, content in sorted(files.items()):
            lines.append(f" {hashlib.new(algorithm, content).hexdigest()} {len(content)} {name}")
    return "\n".join(lines) + "\n"


def _equivs(ctl: Path, out_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="equivs-") as work:
        done = subprocess.run(["equivs-build", str(ctl.resolve())], cwd=work, capture_output=True, text=True,
                              check=False)
        debs = list(Path(work).glob("*.deb"))
        if done.returncode != 0 or not debs:
            raise AptRepoError(f"equivs-build failed for {ctl.name}",
                               service_message=(done.stderr or done.stdout)[-2000:],
                               hint=f"fix {ctl}")
        for deb in debs:
            shutil.move(str(deb), out_dir / deb.name)


def build_repo(ctl_dir: Path, cache_root: Path) -> Path:
    """The repository for the control files in `ctl_dir`, built now unless a complete one is cached."""
    ctls = control_files(ctl_dir)
    if not ctls:
        raise AptRepoError(f"no equivs control files (*.ctl) in {ctl_dir}")
    key = repo_key(ctls)
    repo = cache_root / "apt" / key
    if (repo / ".complete").exists():
        return repo
    repo.parent.mkdir(parents=True, exist_ok=True)
    with locked(repo.parent / f"{key}.lock"):
        if (repo / ".complete").exists():
            return repo
        started = time.monotonic()
        scratch = repo.with_name(f"{key}.building")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        with ThreadPoolExecutor(BUILD_WORKERS) as pool:
            list(pool.map(lambda ctl: _equivs(ctl, scratch), ctls))
        scanned = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=scratch,
                                 capture_output=True, check=False)
        if scanned.returncode != 0:
            raise AptRepoError("dpkg-scanpackages failed", service_message=scanned.stderr.decode()[-2000:])
        index = {"Packages": scanned.stdout, "Packages.gz": gzip.compress(scanned.stdout, mtime=0)}
        for name, content in index.items():
            (scratch / name).write_bytes(content)
        (scratch / "Release").write_text(release_text(index, email.utils.formatdate(usegmt=True)), encoding="utf-8")
        shutil.rmtree(repo, ignore_errors=True)
        scratch.rename(repo)
        (repo / ".complete").write_text(f"{time.monotonic() - started:.1f}\n", encoding="utf-8")
        log.info("lab apt repository %s: %d packages built in %.0f s", key, len(ctls), time.monotonic() - started)
    return repo
