"""os stage: another MAAS user's machine is left alone in any status, our own Allocated machine is deployed only
when our deployment claimed it, a redeploy is counted (once per generation), and a machine MAAS still calls
Deploying at our deadline waits for MAAS's own verdict instead of being deployed again.

The stage runs with the real `MaasClient.ensure_os` loop over a MAAS stand-in that records every action,
so what is asserted is what would have been sent to MAAS.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleet.maas import DeploymentFailed, MaasClient, Machine, NodeStatus
from fleet.site import OsImage, Site
from fleet.slots import Slots
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

    def whoami(self) -> str:
        return "admin"

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
        self.calls.append("tag")
        return found

    def mark_broken(self, node, found, comment):
        self.calls.append("mark_broken")
        return replace(found, status=int(NodeStatus.BROKEN))


class MaasStillDeploying(StandInMaas):
    """Our deploy deadline passes with MAAS still saying Deploying; MAAS's verdict comes `verdict` later."""

    def __init__(self, verdict: Machine | None) -> None:
        super().__init__(machine(NodeStatus.READY))
        self.verdict = verdict
        self.waited: list[float] = []

    def wait_deployed(self, node, found, *, deadline_s=0.0):
        raise DeploymentFailed("deployment timed out (MAAS still says Deploying)", node=node)

    def read(self, node, found):
        return replace(found, status=int(NodeStatus.DEPLOYING), status_name="Deploying")

    def _wait(self, node, found, busy, deadline_s):
        self.waited.append(deadline_s)
        return self.verdict or found


@pytest.fixture
def site(site: Site) -> Site:
    return replace(site, os=OsImage("jammy", "hwe-22.04"))


def stage(site: Site, maas: StandInMaas, *, reimage: bool = False) -> Os:
    return Os(site, maas, Slots(1), allow_redeploy=reimage)


@pytest.mark.parametrize("found", [
    machine(NodeStatus.ALLOCATED, owner="juju"),
    machine(NodeStatus.DEPLOYED, kernel="hwe-22.04", owner="juju"),  # the site's very image
    machine(NodeStatus.FAILED_DEPLOYMENT, owner="juju"),
    machine(NodeStatus.DEPLOYING, owner="juju"),
], ids=lambda m: m.status_name)
@pytest.mark.parametrize("reimage", [False, True])
def test_another_users_machine_is_quarantined_naming_the_owner_and_nothing_is_sent(site, db, found,
                                                                                   reimage) -> None:
    node = site.nodes["gpu-001-01"]
    db.mark_step(node.hostname, 1, "os", "claim", "done")  # even a claim of ours does not make it ours
    maas = StandInMaas(found)
    result = stage(site, maas, reimage=reimage).run(node, NodeContext(node, db, 1, "os"))
    assert result.quarantine and not result.ok
    assert "owned by MAAS user 'juju', not by this tool's user 'admin'" in result.detail
    assert maas.calls == []  # no release, deploy, mark_broken or tag: the stage stops before configure


def test_our_own_allocation_without_our_claim_is_quarantined(site, db) -> None:
    node = site.nodes["gpu-001-01"]
    maas = StandInMaas(machine(NodeStatus.ALLOCATED, owner="admin"))
    result = stage(site, maas).run(node, NodeContext(node, db, 1, "os"))
    assert result.quarantine and "Allocated to admin but not by this tool's deployment" in result.detail
    assert maas.calls == []


def test_still_deploying_at_our_deadline_waits_for_maas_verdict_then_retries_its_failure_once(site, db):
    node = site.nodes["gpu-001-01"]
    failed = replace(machine(NodeStatus.FAILED_DEPLOYMENT, owner="admin"), status_message="Node operation "
                     "'Deploying' timed out after 40 minutes.")
    maas = MaasStillDeploying(failed)
    result = stage(site, maas).run(node, NodeContext(node, db, 1, "os"))
    assert maas.waited[0] == site.timeouts.maas_verdict_s
    # MAAS's verdict (Failed deployment) came within the grace: released and deployed once more, as any failure.
    assert maas.calls[:3] == ["deploy:Ready", "release", "deploy:Ready"]
    assert "timed out after 40 minutes" in " ".join(result.evidence["maas_messages"])


def test_still_deploying_past_the_grace_is_quarantined_without_another_deployment(site, db) -> None:
    node = site.nodes["gpu-001-01"]
    maas = MaasStillDeploying(None)  # MAAS never gives its verdict
    result = stage(site, maas).run(node, NodeContext(node, db, 1, "os"))
    assert result.quarantine and "not deployed again over MAAS's head" in result.detail
    assert maas.calls.count("release") == 0 and [c for c in maas.calls if c.startswith("deploy")] == ["deploy:Ready"]


def test_our_own_allocation_left_by_a_crash_is_deployed(site, db) -> None:
    node = site.nodes["gpu-001-01"]
    db.mark_step(node.hostname, 1, "os", "claim", "done")  # the crashed run claimed it, MAAS allocated it
    maas = StandInMaas(machine(NodeStatus.ALLOCATED, owner="admin"))
    result = stage(site, maas).run(node, NodeContext(node, db, 1, "os"))
    assert result.ok and maas.calls == ["deploy:Allocated", "tag"]


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
