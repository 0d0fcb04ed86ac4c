"""A lab host as a QEMU VM: its own kernel, the same keys and bridge, nothing left after stop.

Slow on machines without a working KVM (software emulation: about a minute to SSH, more under load);
the VM image is built once (~2 min on top of the base image) and cached under FLEET_LAB_CACHE.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from lab.hosts import lifecycle, vm

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab VMs need root (tap devices on the bridge)")


def test_a_vm_boots_its_own_kernel_on_the_bridge_and_leaves_nothing_after_stop(lab_dir: Path) -> None:
    address = f"198.19.111.{random.randint(10, 250)}"
    host = vm.start("labtest-vm", address, lab_dir)
    assert host.kind == "vm" and host.running
    done = subprocess.run(
        ["ssh", "-F", str(lab_dir / "ssh_config"), "-o", "BatchMode=yes", "labtest-vm",
         "hostname; uname -r; ip -4 -br addr show eth0; systemctl is-active ssh fleet-seed"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    name, kernel, link, ssh_state, seed_state = done.stdout.split("\n")[:5]
    assert name == "labtest-vm"
    assert kernel.endswith("-amd64") and kernel != os.uname().release  # not the host's kernel
    assert f"{address}/15" in link
    assert (ssh_state, seed_state) == ("active", "active")
    boot_s = float((lab_dir.resolve() / "hosts" / "labtest-vm" / "boot_s").read_text())
    assert boot_s > 0

    tap = (lab_dir.resolve() / "hosts" / "labtest-vm" / "tap").read_text().strip()
    assert lifecycle.stop("labtest-vm", lab_dir)
    assert not (lab_dir / "hosts" / "labtest-vm").exists()
    assert subprocess.run(["ip", "link", "show", tap], capture_output=True, check=False).returncode != 0
    assert lifecycle.list_hosts(lab_dir) == []
