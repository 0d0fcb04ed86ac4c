"""Who powers a machine: MAAS through its BMC, or (maas.power: manual) the pxe stage, never an owned one."""

from __future__ import annotations

import pytest
from maas.client.enum import NodeStatus

from fleet.maas import Machine
from fleet.stages.commission import commission_step
from fleet.stages.pxe import decide_pxe


def machine(status: NodeStatus) -> Machine:
    return Machine("abc123", "gpu-001-01", int(status), status.name.replace("_", " ").capitalize(), "", "jammy", ())


# With manual power MAAS waits for these to network-boot; every other status is someone's work.
MANUAL_BOOTS = {NodeStatus.NEW, NodeStatus.COMMISSIONING}


@pytest.mark.parametrize("status", list(NodeStatus))
def test_a_machine_maas_powers_is_never_power_cycled_by_us_whatever_its_status(status: NodeStatus) -> None:
    run, reason = decide_pxe(machine(status), "redfish")
    assert not run and "MAAS powers it" in reason


@pytest.mark.parametrize("status", list(NodeStatus))
def test_with_manual_power_only_new_and_commissioning_machines_are_network_booted(status: NodeStatus) -> None:
    run, _ = decide_pxe(machine(status), "manual")
    assert run == (status in MANUAL_BOOTS)


def test_with_manual_power_an_unknown_machine_is_network_booted_to_enlist() -> None:
    assert decide_pxe(None, "manual")[0] is True
    assert decide_pxe(None, "redfish")[0] is False


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
