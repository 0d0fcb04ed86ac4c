"""os stage: someone's Allocated machine is left alone, and a redeploy is counted (once per generation).

The stage runs with the real `MaasClient.ensure_os` loop over a MAAS stand-in that records every action,
so what is asserted is what would have been sent to MAAS.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from fleet.maas import MaasClient, Machine, NodeStatus
from fleet.site import OsImage, Site
from fleet.stages.deploy import Os
from fleet.workflow import NodeContext

IMAGES = {"jammy": ("ga-22.04", "hwe-22.04")}


def machine(status: int, *, kernel: str | None = None, owner: str = "") -> Machine:
    return Machine("abc123", "gpu-001-01", int(status), NodeStatus(status).name.replace("_", " ").capitalize(), "",
                   "jammy" if kernel else "", (), hwe_kernel=kernel, owner=owner)


class StandInMaas(MaasClient):
    """MAAS as far as ensure_os talks to it; `reports_kernel` is the kernel MAAS names after any deploy."""

    def __init__(self, found: Machine, reports_kernel: str | None = None) -> None:  # no event loop, no session
        self.found = found
        self.reports_kernel = reports_kernel
        self.calls: list[str] = []

    def boot_images(self) -> dict[str, tuple[str, ...]]:
        return IMAGES

    def find_machine(self, node):
        return self.found

    def release(self, node, found, *, erase=False, quick_erase=False, comment=None):
        self.calls.append("release")
        return replace(found, status=int(NodeStatus.RELEASING))

    def wait_ready(self, node, found, *, deadline_s=0.0):
        self.found = machine(NodeStatus.READY)
        return self.found

    def deploy(self, node, found, image, *, user_data=None, comment=None):
        self.calls.append(f"deploy:{found.status_name}")
        return replace(found, status=int(NodeStatus.DEPLOYING))

    def wait_deployed(self, node, found, *, deadline_s=0.0):
        self.found = machine(NodeStatus.DEPLOYED, kernel=self.reports_kernel or "hwe-22.04", owner="admin")
        return self.found

    def tag(self, node, found, tags):
        return found


@pytest.fixture
def site(site: Site) -> Site:
    return replace(site, os=OsImage("jammy", "hwe-22.04"))


def stage(site: Site, maas: StandInMaas, *, reimage: bool = False) -> Os:
    return Os(site, maas, threading.BoundedSemaphore(1), allow_redeploy=reimage)


def test_someones_allocated_machine_is_quarantined_naming_the_owner_and_nothing_is_sent(site, db) -> None:
    node = site.nodes["gpu-001-01"]
    maas = StandInMaas(machine(NodeStatus.ALLOCATED, owner="juju"))
    result = stage(site, maas).run(node, NodeContext(node, db, 1, "os"))
    assert result.quarantine and "Allocated to juju and not by this tool" in result.detail
    assert maas.calls == []


def test_our_own_allocation_left_by_a_crash_is_deployed(site, db) -> None:
    node = site.nodes["gpu-001-01"]
    db.mark_step(node.hostname, 1, "os", "claim", "done")  # the crashed run claimed it, MAAS allocated it
    maas = StandInMaas(machine(NodeStatus.ALLOCATED, owner="admin"))
    result = stage(site, maas).run(node, NodeContext(node, db, 1, "os"))
    assert result.ok and maas.calls == ["deploy:Allocated"]


def test_a_redeploy_that_maas_still_names_otherwise_is_done_once_then_quarantined_with_both_names(
        site, db) -> None:
    node = site.nodes["gpu-001-01"]
    maas = StandInMaas(machine(NodeStatus.DEPLOYED, kernel="ga-22.04"), reports_kernel="ga-22.04")
    first = stage(site, maas, reimage=True).run(node, NodeContext(node, db, 1, "os"))
    assert first.quarantine and maas.calls == ["release", "deploy:Ready"]
    assert "after 1 redeploy(s): MAAS says jammy/ga-22.04, the site wants jammy/hwe-22.04" in first.detail
    again = stage(site, maas, reimage=True).run(node, NodeContext(node, db, 1, "os"))
    assert again.quarantine and maas.calls == ["release", "deploy:Ready"]  # counted: not sent round again
    other_generation = stage(site, maas, reimage=True).run(node, NodeContext(node, db, 2, "os"))
    assert other_generation.quarantine and maas.calls.count("release") == 2
