"""release stage: a machine MAAS is still releasing (or erasing) is waited for, never released again."""

from __future__ import annotations

import pytest

from fleet.maas import Machine, NodeStatus
from fleet.stages.release import Release, release_step
from fleet.workflow import NodeContext


def machine(status: int, name: str = "", owner: str = "") -> Machine:
    return Machine("abc123", "gpu-001-01", status, name or NodeStatus(status).name, "", "jammy", (), owner=owner)


@pytest.mark.parametrize(("status", "step"), [
    (NodeStatus.READY, "nothing"),
    (NodeStatus.RELEASING, "wait"),
    (NodeStatus.DISK_ERASING, "wait"),
    (NodeStatus.DEPLOYED, "release"),
    (NodeStatus.FAILED_DEPLOYMENT, "release"),
    (NodeStatus.ALLOCATED, "release"),
])
def test_release_step_from_the_machines_status(status, step):
    assert release_step(machine(status)) == step


class FakeMaas:
    def __init__(self, status: int, owner: str = "") -> None:
        self.status = status
        self.owner = owner
        self.calls: list[str] = []

    def whoami(self) -> str:
        return "admin"

    def find_machine(self, node):
        return machine(self.status, owner=self.owner)

    def release(self, node, found, *, erase=False, comment=None):
        self.calls.append("release")
        self.status = NodeStatus.DISK_ERASING if erase else NodeStatus.RELEASING
        return machine(self.status)

    def wait_ready(self, node, found, *, deadline_s):
        self.calls.append(f"wait:{found.status_name}")
        self.status = NodeStatus.READY
        return machine(self.status)


@pytest.mark.parametrize("status", [NodeStatus.RELEASING, NodeStatus.DISK_ERASING])
def test_resume_on_a_machine_still_releasing_waits_instead_of_releasing_again(site, db, status):
    node = site.nodes["gpu-001-01"]
    ctx = NodeContext(node, db, 1, "release")
    db.mark_step(node.hostname, 1, "release", "release", "started")  # the earlier run died mid-release
    maas = FakeMaas(status)
    result = Release(site, maas, erase=True).run(node, ctx)
    assert result.ok and maas.calls == [f"wait:{NodeStatus(status).name}"]


def test_a_deployed_machine_is_released_once_then_waited_for(site, db):
    node = site.nodes["gpu-001-01"]
    maas = FakeMaas(NodeStatus.DEPLOYED)
    assert Release(site, maas).run(node, NodeContext(node, db, 1, "release")).ok
    assert maas.calls == ["release", "wait:RELEASING"]
    maas.status = NodeStatus.DEPLOYED  # a second run of the stage in the same generation: release done already
    result = Release(site, maas).run(node, NodeContext(node, db, 1, "release"))
    assert not result.ok and "released earlier" in result.detail
    assert maas.calls == ["release", "wait:RELEASING"]


def test_the_release_forgets_the_nodes_host_key_once_journaled(site, db):
    from fleet.hostkeys import FORGOTTEN, HostKey, KnownHosts, known_hosts_file

    node, other = site.nodes["gpu-001-01"], site.nodes["gpu-001-02"]
    known = KnownHosts(known_hosts_file(site))
    key = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOJuMIje1PXQbdY5fGZLqHlgKdr39VnhceML2CW0POCK")
    known.record(node.address, key)
    known.record(other.address, key)
    assert Release(site, FakeMaas(NodeStatus.DEPLOYED)).run(node, NodeContext(node, db, 1, "release")).ok
    assert known.lookup(node.address) is None and known.lookup(other.address) == key
    events = [e.event for e in db.entries(node.hostname)]
    assert events.index("release:started") < events.index(FORGOTTEN) < events.index("release:done")


@pytest.mark.parametrize("status", [NodeStatus.DEPLOYED, NodeStatus.FAILED_DEPLOYMENT, NodeStatus.ALLOCATED,
                                    NodeStatus.DEPLOYING])
def test_another_users_machine_is_not_released_unless_the_reimage_is_forced(site, db, status):
    node = site.nodes["gpu-001-01"]
    maas = FakeMaas(status, owner="alice")
    result = Release(site, maas).run(node, NodeContext(node, db, 1, "release"))
    assert result.quarantine and maas.calls == []
    assert "owned by MAAS user 'alice'" in result.detail and f"reimage {node.hostname} --force" in result.detail
    forced = Release(site, maas, force=True).run(node, NodeContext(node, db, 1, "release"))
    assert forced.ok and maas.calls[0] == "release"
    events = [e.event for e in db.entries(node.hostname)]
    assert events.index("release:taking_over") < events.index("release:started")


def test_our_own_deployed_machine_is_released_without_force(site, db):
    node = site.nodes["gpu-001-01"]
    maas = FakeMaas(NodeStatus.DEPLOYED, owner="admin")
    assert Release(site, maas).run(node, NodeContext(node, db, 1, "release")).ok and maas.calls[0] == "release"
