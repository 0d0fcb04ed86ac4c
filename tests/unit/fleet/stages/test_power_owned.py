"""Who powers a machine: MAAS through its BMC, or (maas.power: manual) we, for our own operations only."""

from __future__ import annotations

from dataclasses import replace

import pytest
from maas.client.enum import NodeStatus

from fleet.maas import Machine
from fleet.maas.manual import Boot, boot_step, decide_boot
from fleet.stages.commission import commission_step


def machine(status: NodeStatus, power_type: str = "", owner: str = "") -> Machine:
    return Machine("abc123", "gpu-001-01", int(status), status.name.replace("_", " ").capitalize(), "", "jammy", (),
                   owner=owner, power_type=power_type)


# With manual power MAAS waits for a network boot in these, one per operation.
WAITING = {Boot.COMMISSION: NodeStatus.COMMISSIONING, Boot.DEPLOY: NodeStatus.DEPLOYING}


@pytest.mark.parametrize("operation", list(Boot))
@pytest.mark.parametrize("status", [None, *NodeStatus])
def test_a_machine_maas_powers_is_never_booted_by_us_whatever_its_status(status: NodeStatus | None,
                                                                          operation: Boot) -> None:
    decision = decide_boot(None if status is None else machine(status), "redfish", operation, ours=True)
    assert not decision.boot and "MAAS powers it" in decision.reason


@pytest.mark.parametrize("operation", [Boot.COMMISSION, Boot.DEPLOY])
@pytest.mark.parametrize("status", list(NodeStatus))
def test_with_manual_power_only_the_status_of_our_waiting_operation_is_booted(status: NodeStatus,
                                                                               operation: Boot) -> None:
    assert decide_boot(machine(status), "manual", operation, ours=True).boot == (status == WAITING[operation])


@pytest.mark.parametrize("power_type", ["", "manual"])
@pytest.mark.parametrize("operation", [Boot.COMMISSION, Boot.DEPLOY])
def test_someone_elses_commissioning_or_deployment_is_never_booted(operation: Boot, power_type: str) -> None:
    decision = decide_boot(machine(WAITING[operation], power_type, owner="alice"), "manual", operation, ours=False)
    assert not decision.boot and "someone else's (alice)" in decision.reason


@pytest.mark.parametrize("operation", list(Boot))
def test_a_deployed_machine_is_never_booted(operation: Boot) -> None:
    assert not decide_boot(machine(NodeStatus.DEPLOYED), "manual", operation, ours=True).boot


@pytest.mark.parametrize("power_type", ["ipmi", "redfish", "virsh"])
def test_a_machine_maas_has_a_power_driver_for_is_left_to_maas_even_on_a_manual_site(power_type: str) -> None:
    decision = decide_boot(machine(NodeStatus.COMMISSIONING, power_type), "manual", Boot.COMMISSION, ours=True)
    assert not decision.boot and f"'{power_type}'" in decision.reason


@pytest.mark.parametrize("status", list(NodeStatus))
def test_only_an_unknown_machine_is_booted_to_enlist(status: NodeStatus) -> None:
    assert decide_boot(None, "manual", Boot.ENLIST).boot
    assert not decide_boot(machine(status), "manual", Boot.ENLIST, ours=True).boot


def test_an_unknown_machine_is_never_booted_for_commissioning_or_deployment() -> None:
    assert not decide_boot(None, "manual", Boot.COMMISSION, ours=True).boot
    assert not decide_boot(None, "manual", Boot.DEPLOY, ours=True).boot


def test_each_maas_operation_has_its_own_journaled_step() -> None:
    steps = {boot_step(Boot.ENLIST), boot_step(Boot.COMMISSION), boot_step(Boot.DEPLOY), boot_step(Boot.DEPLOY, 2)}
    assert len(steps) == 4
    assert boot_step(Boot.DEPLOY, 1) == boot_step(Boot.DEPLOY)


def test_machine_reads_maas_power_type() -> None:
    base = machine(NodeStatus.NEW)
    data = {"system_id": "x", "hostname": "h", "status": 0, "power_type": "manual"}
    assert Machine.from_api(data).power_type == "manual"
    assert Machine.from_api({**data, "power_type": None}).power_type == ""
    assert replace(base, power_type="ipmi").power_type == "ipmi"


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (None, "register"),
        (NodeStatus.NEW, "commission"),
        (NodeStatus.COMMISSIONING, "wait"),
        (NodeStatus.TESTING, "owned"),  # not from our commissioning: someone's hardware tests
        (NodeStatus.FAILED_COMMISSIONING, "failed"),
        (NodeStatus.READY, "done"),
        (NodeStatus.DEPLOYED, "done"),
        (NodeStatus.ALLOCATED, "done"),
    ],
)
def test_commission_step_follows_maas_status(status: NodeStatus | None, step: str) -> None:
    assert commission_step(None if status is None else machine(status)) == step


def test_testing_after_our_own_commissioning_is_waited_for() -> None:
    assert commission_step(machine(NodeStatus.TESTING), ours=True) == "wait"
