"""pxe stage on a `maas.power: manual` site: the enlisted machine gets its inventory name; an interrupted
boot of a server that is On is not sent again; MAAS's deadline for a boot it never saw names the next step."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from maas.client.enum import NodeStatus

from fleet.errors import MaasError
from fleet.maas import Machine
from fleet.maas.manual import decide_rename, maas_generated, no_boot_next_step, recommission
from fleet.stages.commission import Commission
from fleet.stages.pxe import Pxe, network_boot_once
from fleet.workflow import NodeContext

ME = "admin"


def machine(hostname: str, status: NodeStatus = NodeStatus.NEW, owner: str = "") -> Machine:
    return Machine("abc123", hostname, int(status), status.name.replace("_", " ").capitalize(), "", "", (),
                   owner=owner)


@pytest.mark.parametrize(("maas_name", "status", "owner", "rename", "refuse"), [
    ("ample-hawk", NodeStatus.NEW, "", True, False),  # MAAS's name at enlistment
    ("ample-hawk", NodeStatus.COMMISSIONING, "", True, False),
    ("ample-hawk", NodeStatus.READY, "", True, False),
    ("ample-hawk", NodeStatus.FAILED_COMMISSIONING, "", True, False),
    ("ample-hawk", NodeStatus.DEPLOYED, ME, False, False),  # deployed under that name: DNS says so
    ("ample-hawk", NodeStatus.ALLOCATED, ME, False, False),
    ("ample-hawk", NodeStatus.READY, "alice", False, False),  # someone else's
    ("gpu-001-01", NodeStatus.NEW, "", False, False),  # already ours
    ("rack7-node3", NodeStatus.NEW, "", False, True),  # a name a person gave it: a person decides
    ("db-primary-2", NodeStatus.READY, "", False, True),
])
def test_only_a_name_maas_generated_on_an_unclaimed_machine_is_replaced(
        maas_name: str, status: NodeStatus, owner: str, rename: bool, refuse: bool) -> None:
    decision = decide_rename(machine(maas_name, status, owner), "gpu-001-01", me=ME)
    assert (decision.rename, decision.refuse) == (rename, refuse)
    if refuse:
        assert maas_name in decision.reason and "gpu-001-01" in decision.reason and "run again" in decision.reason


@pytest.mark.parametrize(("name", "generated"), [("ample-hawk", True), ("gpu-001-01", False), ("node", False),
                                                  ("big-red-fox", False), ("Ample-Hawk", False)])
def test_maas_generated_names_are_two_lowercase_words(name: str, generated: bool) -> None:
    assert maas_generated(name) == generated


def test_maas_deadline_on_a_manual_site_names_the_power_and_pxe_checks() -> None:
    message = "Node operation 'Commissioning' timed out after 20 minutes."
    step = no_boot_next_step("manual", message, "02:4c:00:00:01:01")
    assert step is not None and "02:4c:00:00:01:01" in step and "powers on" in step and "DHCP" in step
    assert no_boot_next_step("redfish", message, "02:4c:00:00:01:01") is None
    assert no_boot_next_step("manual", "20-maas-03-machine-resources failed", "02:4c:00:00:01:01") is None


@dataclass
class FakeBmc:
    """What network_boot_once uses of a BMC: the boots sent and what the power reads back."""

    on: bool
    boots: list[str] = field(default_factory=list)
    requests: int = 0
    polls: int = 0
    reset_confirm_s: float = 0.0

    def network_boot(self, target: str) -> None:
        self.boots.append(target)
        self.on = True

    def wait_power(self, state: str) -> str:
        return state

    def power_on_seen_within(self, timeout_s: float) -> bool:
        self.polls += 1
        return self.on


@dataclass
class FakePool:
    bmc: FakeBmc

    def client(self, node):
        return self.bmc


@pytest.mark.parametrize(("before", "on_now", "sent_again"), [
    ("Off", True, False), ("On", True, False), ("", True, False),  # it ends On: landed, whatever before
    ("Off", False, True), ("On", False, True),  # still Off: it never landed
])
def test_an_interrupted_boot_is_sent_again_only_to_a_server_that_is_off(site, db, before, on_now, sent_again):
    node = site.nodes["gpu-001-01"]
    ctx = NodeContext(node, db, 1, "commission")
    ctx.journal("boot:commission:started", power_state=before)
    db.mark_step(node.hostname, 1, "commission", "boot:commission", "started")  # the run died here
    bmc = FakeBmc(on=on_now)
    sent = network_boot_once(ctx, FakePool(bmc), node, "boot:commission", power_state=before)
    assert (sent, len(bmc.boots)) == (sent_again, int(sent_again))
    assert db.step_done(node.hostname, 1, "commission", "boot:commission")
    assert not network_boot_once(ctx, FakePool(bmc), node, "boot:commission") and len(bmc.boots) == int(sent_again)


@dataclass
class FakeMaas:
    """A MAAS that knows the machine already; records renames, or refuses them as MAAS words it."""

    known: Machine
    refuse: str = ""
    renamed: list[str] = field(default_factory=list)

    def lookup(self, node) -> Machine:
        return self.known

    def whoami(self) -> str:
        return ME

    def set_hostname(self, node: str, m: Machine, hostname: str) -> Machine:
        if self.refuse:
            raise MaasError("MAAS refused machines/abc123 update hostname", node=node, status=400,
                            service_message=self.refuse)
        self.renamed.append(hostname)
        return replace(m, hostname=hostname)


def run_pxe(site, db, maas: FakeMaas):
    node = site.nodes["gpu-001-01"]
    stage = Pxe(replace(site, maas_power="manual"), FakePool(FakeBmc(on=False)), maas)
    return stage.run(node, NodeContext(node, db, 1, "pxe")), [e.event for e in db.entries(node.hostname)]


def test_an_enlisted_machine_is_renamed_to_the_inventory_name_journaled_first(site, db):
    maas = FakeMaas(machine("ample-hawk"))
    result, events = run_pxe(site, db, maas)
    assert result.ok and maas.renamed == ["gpu-001-01"] and "renamed to gpu-001-01" in result.detail
    assert events[-2:] == ["rename:started", "rename:done"]


def test_a_name_maas_refuses_quarantines_with_maas_message(site, db):
    message = '{"hostname": ["Node with this Hostname already exists."]}'
    result, events = run_pxe(site, db, FakeMaas(machine("ample-hawk"), refuse=message))
    assert not result.ok and result.quarantine and "already exists" in result.detail
    assert events[-1] == "rename:started"


def test_a_name_someone_gave_the_machine_is_kept_and_the_node_quarantined(site, db):
    maas = FakeMaas(machine("rack7-node3"))
    result, events = run_pxe(site, db, maas)
    assert not result.ok and result.quarantine and "rack7-node3" in result.detail and maas.renamed == []
    assert "rename:started" not in events


DEADLINE = "Node operation 'Commissioning' timed out after 20 minutes."


@pytest.mark.parametrize(("maas_power", "message", "requeued", "again"), [
    ("manual", DEADLINE, True, True),
    ("manual", DEADLINE, False, False),  # nobody asked: quarantined, not retried on its own
    ("manual", "20-maas-03-machine-resources failed", True, False),  # the hardware's failure, not our boot's
    ("redfish", DEADLINE, True, False),  # MAAS powers it: a person recommissions it in MAAS
])
def test_only_a_requeued_manual_commissioning_that_never_got_its_boot_is_sent_again(maas_power, message, requeued,
                                                                                  again):
    assert recommission(maas_power, message, requeued=requeued) == again


@dataclass
class FakeCommissioningMaas:
    """MAAS failed our commissioning on its deadline; a commission sent now starts a new one."""

    known: Machine
    commissioned: list[str] = field(default_factory=list)

    def lookup(self, node) -> Machine:
        return self.known

    def commission(self, node: str, m: Machine) -> Machine:
        self.commissioned.append(node)
        self.known = replace(m, status=int(NodeStatus.COMMISSIONING), status_name="Commissioning", status_message="")
        return self.known

    def wait_commissioned(self, node: str, m: Machine, *, deadline_s: float) -> Machine:
        self.known = replace(m, status=int(NodeStatus.READY), status_name="Ready")
        return self.known

    def failed_scripts(self, node: str, m: Machine) -> tuple[str, ...]:
        return ()


def test_a_requeued_node_whose_boot_never_reached_maas_is_commissioned_again_with_a_boot_of_its_own(site, db):
    node = site.nodes["gpu-001-01"]
    failed = replace(machine("gpu-001-01", NodeStatus.FAILED_COMMISSIONING), status_message=DEADLINE)
    maas, bmc = FakeCommissioningMaas(failed), FakeBmc(on=False)
    stage = Commission(replace(site, maas_power="manual"), maas, FakePool(bmc))
    for step in ("commission", "boot:commission"):  # our first commissioning and its boot, done
        db.mark_step(node.hostname, 1, "commission", step, "done")
    db.journal(node.hostname, "commission", "commission:done")
    quarantined = stage.run(node, NodeContext(node, db, 1, "commission"))
    assert quarantined.quarantine and "--retry-quarantined" in quarantined.detail and maas.commissioned == []

    db.journal(node.hostname, "", "requeued", reason="--retry-quarantined", at="commission")
    result = stage.run(node, NodeContext(node, db, 1, "commission"))
    assert result.ok and maas.commissioned == ["gpu-001-01"] and bmc.boots == ["Pxe"]
    assert db.step_done(node.hostname, 1, "commission", "commission:2")
    assert db.step_done(node.hostname, 1, "commission", "boot:commission:2")
    maas.known = failed  # and failing again without a new request is not retried again
    assert stage.run(node, NodeContext(node, db, 1, "commission")).quarantine and len(maas.commissioned) == 1
