"""Lab hosts for real: systemd-nspawn containers from the cached image, reached over SSH, thrown away.

Needs root, systemd-nspawn, debootstrap (first run only: ~1 min to build the image, then cached under
FLEET_LAB_CACHE) and equivs. Addresses come from 198.19.110.0/24, which neither lab nodes nor
molecule use, with a random offset so a developer's hosts and a test's never meet.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lab.apt import service as apt_service
from lab.hosts import image, lifecycle, light, nspawn
from lab.hosts.plan import base_image_spec
from lab.hosts.proc import pid_alive
from lab.settings import load_lab_site
from lab.sitegen import SiteShape, write_site

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "lab-apt"
GATEWAY = "198.18.0.1"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (nspawn, overlayfs, bridge)")


def _addresses(count: int) -> list[str]:
    first = random.randint(10, 250 - count)
    return [f"198.19.110.{first + i}" for i in range(count)]


def ssh(lab_dir: Path, host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", str(lab_dir / "ssh_config"), "-o", "BatchMode=yes", host, command],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _mounted(path: Path) -> bool:
    return str(path) in Path("/proc/self/mounts").read_text()


def test_two_hosts_boot_answer_ssh_and_stop_without_leftovers(lab_dir: Path) -> None:
    image.ensure_base()
    first, second = _addresses(2)
    started = time.monotonic()
    one = nspawn.start("labtest-a", first, lab_dir)
    two = nspawn.start("labtest-b", second, lab_dir)
    assert time.monotonic() - started < 60
    assert one.running and two.running

    for host, address in ((one.name, first), (two.name, second)):
        done = ssh(lab_dir, host, "hostname; ip -4 -br addr show host0; systemctl is-system-running --wait; "
                                  "python3 -c 'import apt; print(apt.__name__)'; id -u; sudo -n id -u")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.split("\n")
        assert lines[0] == host
        assert f"{address}/15" in lines[1]
        # the login is MAAS's Ubuntu user, root work goes through passwordless sudo
        assert lines[2] in ("running", "degraded") and lines[3] == "apt" and lines[4:6] == ["1000", "0"]
    # hosts reach each other over the bridge, and the lab key is the only way in
    assert ssh(lab_dir, one.name, f"ping -c1 -W2 {second}").returncode == 0
    recorded = (lab_dir / "ssh" / "known_hosts").read_text().splitlines()
    assert sorted(line.split()[0] for line in recorded) == sorted([first, second])
    assert len({line.split()[2] for line in recorded}) == 2  # each boot made its own host key
    # root is told to log in as ubuntu and dropped, as cloud-init's disable_root does
    refused = subprocess.run(["ssh", "-F", str(lab_dir / "ssh_config"), "-o", "BatchMode=yes", "-l", "root",
                              one.name, "id -u"], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 142 and 'Please login as the user "ubuntu"' in refused.stdout

    assert nspawn.start("labtest-a", first, lab_dir).pid == one.pid  # idempotent
    assert {h.name for h in lifecycle.list_hosts(lab_dir) if h.running} == {"labtest-a", "labtest-b"}

    merged = lab_dir.resolve() / "hosts" / "labtest-a" / "merged"
    assert _mounted(merged)
    assert lifecycle.stop("labtest-a", lab_dir)
    assert not (lab_dir / "hosts" / "labtest-a").exists()
    assert not _mounted(merged)
    assert not pid_alive(one.pid)
    assert not any(c.exists() for c in nspawn.cgroup_dirs(lab_dir, "labtest-a"))
    assert not lifecycle.stop("labtest-a", lab_dir)  # a second stop has nothing to do
    assert "Host labtest-a\n" not in (lab_dir / "ssh_config").read_text()
    assert ssh(lab_dir, "labtest-b", "true").returncode == 0  # the other host is untouched


def test_a_host_whose_container_was_killed_starts_again_fresh(lab_dir: Path) -> None:
    (address,) = _addresses(1)
    host = nspawn.start("labtest-c", address, lab_dir)
    assert ssh(lab_dir, host.name, "sudo -n touch /root/written-before").returncode == 0
    key_before = (lab_dir / "ssh" / "known_hosts").read_text()
    os.kill(host.pid or 0, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(host.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [h for h in lifecycle.list_hosts(lab_dir) if h.running]

    again = nspawn.start("labtest-c", address, lab_dir)
    assert again.pid != host.pid
    done = ssh(lab_dir, host.name, "sudo -n test -e /root/written-before && echo kept || echo fresh")
    assert done.stdout.strip() == "fresh"
    assert (lab_dir / "ssh" / "known_hosts").read_text() != key_before  # a reinstall comes with a new key


def test_the_light_carriers_sshd_waits_for_its_address_instead_of_dying_without_it(lab_dir: Path) -> None:
    """The carrier's sshd binds its own address only; if networkd has not put it on host0 when ssh.service
    starts, Debian's sshd exits 255 and its unit never restarts it (CI, 2026-12-03). Replayed: the address
    is taken away and sshd restarted; it waits, then serves once the address is back."""
    pid = light.ensure_carrier(lab_dir, light.LightPlan({}, "ubuntu", None, nspawn.DEFAULT_BRIDGE, GATEWAY))
    (address,) = nspawn.running_hosts(lab_dir.resolve()).values()

    def inside(*argv: str) -> str:
        return nspawn.run_inside(pid, *argv, timeout_s=60).stdout.strip()

    inside("ip", "addr", "del", f"{address}/15", "dev", "host0")
    inside("systemctl", "restart", "--no-block", "ssh.service")
    time.sleep(2)
    assert inside("systemctl", "is-active", "ssh.service") == "activating"
    inside("ip", "addr", "add", f"{address}/15", "dev", "host0")
    deadline = time.monotonic() + 20
    while inside("systemctl", "is-active", "ssh.service") != "active" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ssh(lab_dir, address, "hostname").stdout.strip() == light.CARRIER


def test_a_host_whose_sshd_died_is_refused_with_what_the_container_says_and_thrown_away(lab_dir: Path) -> None:
    from lab.hosts.image import HostError
    from lab.hosts.plan import HostFile

    address, elsewhere = _addresses(2)
    dead = HostFile("etc/ssh/sshd_config.d/30-test.conf", f"ListenAddress {elsewhere}:22\n")  # not its address
    with pytest.raises(HostError) as caught:
        nspawn.start("labtest-dead", address, lab_dir, timeout_s=8, extra_files=[dead])
    error = caught.value
    assert "the last try: port 22: Connection refused" in str(error)
    assert error.service_message.startswith("in the container:\n")
    assert "status=255" in error.service_message and f"{address}/15" in error.service_message
    assert not (lab_dir / "hosts" / "labtest-dead").exists()


def _hook(lab_dir: Path, site_file: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.hosts", "--lab-dir", str(lab_dir), "hook", "--site", str(site_file), *words],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_maas_hook_boots_deployed_nodes_up_to_the_cap_and_throws_released_ones_away(
        lab_dir: Path, tmp_path: Path) -> None:
    site_file = write_site(tmp_path / "site", SiteShape(racks=1, name="hosttest", state_dir=str(lab_dir),
                                                         max_hosts=1))
    site = load_lab_site(site_file)
    first, second = site.nodes["gpu-001-01"], site.nodes["gpu-001-02"]

    done = _hook(lab_dir, site_file, first.hostname, "deployed")
    assert done.returncode == 0, done.stderr
    assert ssh(lab_dir, first.hostname, "hostname").stdout.strip() == first.hostname
    assert ssh(lab_dir, first.address, "ip -4 -br addr").stdout.count(f"{first.address}/15") == 1

    beyond = _hook(lab_dir, site_file, second.hostname, "deployed")
    assert beyond.returncode == 0
    log_text = (lab_dir / "logs" / "hosts.log").read_text()
    assert f"WARNING lab.hosts.hook: {second.hostname}: deployed but gets NO lab host: 1 of 1" in log_text
    assert [h.name for h in lifecycle.list_hosts(lab_dir)] == [first.hostname]

    released = _hook(lab_dir, site_file, "released", first.hostname)
    assert released.returncode == 0, released.stderr
    assert lifecycle.list_hosts(lab_dir) == []
    assert not (lab_dir / "hosts" / first.hostname).exists()

    unknown = _hook(lab_dir, site_file, "gpu-999-01", "deployed")
    assert unknown.returncode == 1 and "not in the site" in unknown.stderr


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def test_apt_repository_serves_equivs_packages_that_a_host_installs_at_their_versions(
        lab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_LAB_APT_PACKAGES", str(FIXTURES))
    nspawn.start("labtest-apt", _addresses(1)[0], lab_dir)  # also brings the bridge up
    port = _free_port(GATEWAY)
    site_file = write_site(tmp_path / "site", SiteShape(racks=1, name="apttest", state_dir=str(lab_dir),
                                                         apt_port=port))
    site = load_lab_site(site_file)
    apt_service.prepare(site, lab_dir)
    described = apt_service.service(site, lab_dir)
    server = subprocess.Popen(described.argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(described.ready.url or "", timeout=2) as answer:  # noqa: S310 - lab URL
                    assert b"SHA256:" in answer.read()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "apt server did not come up"
                time.sleep(0.2)
        url = apt_service.repo_url(site)
        assert url == f"http://{GATEWAY}:{port}/"
        done = ssh(lab_dir, "labtest-apt",
                   f"echo 'deb [trusted=yes] {url} ./' | sudo -n tee /etc/apt/sources.list.d/lab.list && "
                   "sudo -n apt-get update -q && sudo -n apt-get install -y -q fleet-lab-probe-service && "
                   "dpkg-query -W -f '${Package}=${Version}\\n' fleet-lab-probe fleet-lab-probe-service && "
                   "cat /usr/share/fleet-lab-probe/version && systemctl cat fleet-lab-probe.service", timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "fleet-lab-probe=1.2.3-1\nfleet-lab-probe-service=0.9-2\n1.2.3\n" in done.stdout
        assert "ExecStart=/bin/sleep infinity" in done.stdout
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def test_the_cached_image_is_reused_not_rebuilt() -> None:
    root = image.ensure_base()
    marker = root.parent / ".complete"
    before = marker.stat().st_mtime
    started = time.monotonic()
    assert image.ensure_base() == root
    assert time.monotonic() - started < 1
    assert marker.stat().st_mtime == before
    assert root.parent.name == base_image_spec().key
    assert not (root / "etc/ssh/ssh_host_ed25519_key").exists()  # each boot brings its own host key
    assert (root / "etc/apt/sources.list").read_text() == ""  # no dead mirror for roles' apt updates
