"""The lab host's "hardware": what its GPUs, HCAs and kernel log look like to the health checks.

Lab hosts have no GPUs or HCAs, so each gets a copy of the lab node fixture sets
(`tests/fixtures/lab-node/`: nvidia-smi XML, an IB sysfs tree, dmesg, /proc/modules) and a `current`
link to the set its injected faults call for. The health checks read those files through their
configured sources, exactly as they read real devices; nothing inside the checks is mocked.
The GPUs report the driver the lab installed (the site's pin), as real ones would.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from lab.hosts import nspawn

if TYPE_CHECKING:  # the light-host hook (lab/hosts/light.py) runs per deploy and must not load the site model
    from fleet.site import Site

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "tests" / "fixtures" / "lab-node"
TARGET = Path("opt/fleet-lab/hardware")
HEALTHY = "healthy"
# Worst first: a node with several faults shows the one a technician would see first.
FAULT_SETS = (("gpu_sick", "sick-gpu"), ("ib_link_down", "link-down"), ("dmesg_bad", "bad-dmesg"))
FIXTURE_DRIVER = "580.159.04"  # the driver of the real H200 capture the fixtures come from


def choose_set(node_faults: dict[str, float]) -> str:
    """The fixture set for a node's faults (pure)."""
    for kind, name in FAULT_SETS:
        if node_faults.get(kind, 0.0) > 0:
            return name
    return HEALTHY


def install(root: Path, site: Site, hostname: str, lab_dir: Path) -> str:
    """Copy the fixture sets under `root` (a host's filesystem) and point `current` at the node's set."""
    install_sets(root, site.pins.get("nvidia_driver"))
    return select(root, hostname, lab_dir)


def install_sets(root: Path, driver: str | None) -> Path:
    """Copy the fixture sets and the nvidia-smi stand-in under `root`; the GPUs report `driver` (the site's
    pin) when given. Returns the sets' directory."""
    target = root / TARGET
    if target.exists():
        shutil.rmtree(target)
    # The fixture sets' dmesg-baseline.json is for the unit tests that name it: a lab host, like a real site's
    # node on day one, gets its baseline from the control plane (the healthcheck_agent role), not with its hardware.
    skip = shutil.ignore_patterns("*.py", "README.md", "__pycache__", "config.json", "dmesg-baseline.json")
    shutil.copytree(SOURCE / "bin", target / "bin", ignore=skip)
    for name in (HEALTHY, *(fault_set for _kind, fault_set in FAULT_SETS)):
        # A fault set holds only what differs from a healthy node: lay it over a healthy copy.
        shutil.copytree(SOURCE / HEALTHY, target / name, ignore=skip)
        shutil.copytree(SOURCE / name, target / name, ignore=skip, dirs_exist_ok=True)
    if driver:
        for xml in target.glob("*/nvidia-smi-q.xml"):
            xml.write_text(xml.read_text(encoding="utf-8").replace(FIXTURE_DRIVER, driver), encoding="utf-8")
    return target


def select(root: Path, hostname: str, lab_dir: Path) -> str:
    """(Re)point `current` at the set the node's faults call for; used again when faults change."""
    chosen = choose_set(node_faults(lab_dir, hostname))
    link = root / TARGET / "current"
    tmp = link.with_name("current.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(chosen)
    os.replace(tmp, link)
    return chosen


def reselect_running(lab_dir: Path) -> dict[str, str]:
    """After `lab fault`: every running host's hardware follows the new faults at once."""
    chosen = {}
    for name in nspawn.running_hosts(lab_dir):
        root = nspawn.hosts_dir(lab_dir) / name / "merged"
        if (root / TARGET / "current").is_symlink():  # not the light-host carrier: its nodes mount their sets
            chosen[name] = select(root, name, lab_dir)
    return chosen


def node_faults(lab_dir: Path, hostname: str) -> dict[str, float]:
    """The node's injected faults, as faults.json says now."""
    return all_faults(lab_dir).get(hostname, {})


def all_faults(lab_dir: Path) -> dict[str, dict[str, float]]:
    """Every node's injected faults, as faults.json says now (one read for a batch of nodes)."""
    try:
        return json.loads((lab_dir / "faults.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
