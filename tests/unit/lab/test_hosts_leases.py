"""Address leases: unique across every lab dir on the machine, taken over when the holder is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.hosts import leases
from lab.hosts.image import HostError


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLEET_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _host(lab_dir: Path, name: str, pid: int | None) -> None:
    folder = lab_dir / "hosts" / name
    folder.mkdir(parents=True)
    if pid is not None:
        (folder / "pid").write_text(str(pid))


def test_an_address_held_by_a_live_host_of_another_lab_is_refused(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    _host(theirs, "gpu-001-01", os.getpid())
    leases.claim("198.18.1.11", theirs, "gpu-001-01")
    with pytest.raises(HostError, match="taken by lab host gpu-001-01"):
        leases.claim("198.18.1.11", mine, "gpu-001-01")
    leases.claim("198.18.1.11", theirs, "gpu-001-01")  # the holder may claim again


@pytest.mark.parametrize("gone", ["lab dir deleted", "pid exited"])
def test_a_stale_lease_is_taken_over(tmp_path: Path, gone: str) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    if gone == "pid exited":
        _host(theirs, "old", 2**22 + 17)  # above pid_max's default: no such process
    leases.claim("198.18.1.12", theirs, "old")
    leases.claim("198.18.1.12", mine, "new")


def test_release_gives_back_only_ones_own_lease(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    _host(theirs, "a", os.getpid())
    leases.claim("198.18.1.13", theirs, "a")
    leases.release("198.18.1.13", mine, "a")
    with pytest.raises(HostError):
        leases.claim("198.18.1.13", mine, "b")
    leases.release("198.18.1.13", theirs, "a")
    leases.claim("198.18.1.13", mine, "b")


def test_allocation_skips_live_leases_and_separates_containers_from_vms(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    _host(lab, "one", None)  # being started: no pid yet, still alive
    assert leases.allocate(lab, "one") == "198.19.100.10"
    assert leases.allocate(lab, "two") == "198.19.100.11"
    assert leases.allocate(lab, "one") == "198.19.100.10"  # its own lease again
    assert leases.allocate(lab, "vm-one", vm=True) == "198.19.101.10"


def test_a_lease_taken_for_a_host_not_yet_started_holds_while_the_process_that_took_it_runs(tmp_path: Path) -> None:
    """The window that let two molecule lanes boot containers on one address: a lease is taken, then the image,
    keys and overlay come before the host's state dir exists. Another lab must not take the address meanwhile."""
    lab, other = tmp_path / "lab", tmp_path / "other"
    lab.mkdir()
    assert leases.allocate(lab, "container-runtime") == "198.19.100.10"  # no state dir yet: being started
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lease = leases._dir() / "198.19.100.10"
        lease.write_text(json.dumps({**json.loads(lease.read_text()), "pid": sleeper.pid}))  # another process's
        assert leases.allocate(other, "nccl") == "198.19.100.11"
        with pytest.raises(HostError, match="taken by lab host container-runtime"):
            leases.claim("198.19.100.10", other, "nccl")
        leases.claim("198.19.100.10", lab, "container-runtime")  # its own host, from another process: fine
    finally:
        sleeper.kill()
        sleeper.wait()
    lease.write_text(json.dumps({**json.loads(lease.read_text()), "pid": sleeper.pid}))
    assert leases.allocate(other, "base") == "198.19.100.10"  # the process that took it is gone: stale
