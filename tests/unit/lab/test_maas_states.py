"""The lab MAAS state machine: MAAS's transitions, timers, faults, without a server."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from lab.maas.states import (
    INSTALL_FAILED_MESSAGE,
    REAL_DURATIONS_S,
    TRANSITIONS,
    IllegalTransition,
    MachineState,
    Status,
    Timing,
    advance,
    apply_action,
    due,
    os_booted,
)

TIMING = Timing(time_factor=0.01)
S = Status


def machine(status: Status = S.READY, **changes: object) -> MachineState:
    return MachineState(system_id="abc123", hostname="gpu-001-01", macs=("02:00:00:00:00:01",),
                        status=status, **changes)


def act(m: MachineState, action: str, now: float = 0.0, rates: dict[str, float] | None = None,
        **params: str) -> MachineState:
    return apply_action(m, action, params, now=now, timing=TIMING, rates=rates or {}, rng=random.Random(1))


def run_until(m: MachineState, now: float, rates: dict[str, float] | None = None) -> tuple[MachineState, list[str]]:
    return advance(m, now=now, timing=TIMING, rates=rates or {}, rng=random.Random(1))


@pytest.mark.parametrize(
    ("start", "action", "params", "expected"),
    [
        (S.READY, "deploy", {}, S.DEPLOYING),
        (S.ALLOCATED, "deploy", {}, S.DEPLOYING),
        (S.DEPLOYED, "release", {}, S.RELEASING),
        (S.DEPLOYED, "release", {"erase": "true"}, S.DISK_ERASING),
        (S.FAILED_DEPLOYMENT, "release", {}, S.RELEASING),
        (S.BROKEN, "release", {}, S.RELEASING),
        (S.READY, "release", {}, S.READY),
        (S.DEPLOYING, "abort", {}, S.ALLOCATED),
        (S.DISK_ERASING, "abort", {}, S.FAILED_DISK_ERASING),
        (S.READY, "commission", {}, S.COMMISSIONING),
        (S.NEW, "commission", {}, S.COMMISSIONING),
        (S.DEPLOYED, "mark_broken", {"comment": "bad GPU"}, S.BROKEN),
        (S.BROKEN, "mark_fixed", {}, S.READY),
        (S.DEPLOYED, "rescue_mode", {}, S.ENTERING_RESCUE_MODE),
        (S.DEPLOYED, "power_off", {}, S.DEPLOYED),
        (S.READY, "test", {}, S.TESTING),
        (S.DEPLOYED, "test", {}, S.TESTING),
    ],
)
def test_allowed_action_moves_to_maas_status(start: Status, action: str, params: dict, expected: Status) -> None:
    assert act(machine(start), action, **params).status == expected


@pytest.mark.parametrize(
    ("start", "action", "message"),
    [
        (S.DEPLOYED, "deploy", "Invalid transition: Deployed -> Deploying."),
        (S.DEPLOYING, "deploy", "Invalid transition: Deploying -> Deploying."),
        (S.FAILED_DEPLOYMENT, "deploy", "Invalid transition: Failed deployment -> Deploying."),
        (S.BROKEN, "deploy", "Invalid transition: Broken -> Deploying."),
        (S.DEPLOYED, "commission", "Invalid transition: Deployed -> Commissioning."),
        (S.NEW, "release", "Invalid transition: New -> Releasing."),
        (S.COMMISSIONING, "release", "Invalid transition: Commissioning -> Releasing."),
        (S.READY, "mark_fixed", "Can't mark a non-broken node as 'Ready'."),
        (S.RESCUE_MODE, "rescue_mode", "Invalid transition: Rescue mode -> Entering rescue mode."),
    ],
)
def test_illegal_action_is_refused_with_maas_message(start: Status, action: str, message: str) -> None:
    with pytest.raises(IllegalTransition) as err:
        act(machine(start), action)
    assert str(err.value) == message


def test_every_status_has_transitions_and_failure_states_lead_out() -> None:
    assert set(TRANSITIONS) == set(Status)
    for failed in (S.FAILED_DEPLOYMENT, S.FAILED_RELEASING, S.FAILED_DISK_ERASING):
        assert TRANSITIONS[failed] & {S.RELEASING, S.READY}


def test_deploy_takes_scaled_ten_minutes_then_deployed_with_image_and_event() -> None:
    m = act(machine(), "deploy", distro_series="noble", hwe_kernel="hwe-24.04", user_data="I2Nsb3Vk")
    assert (m.owner, m.distro_series, m.hwe_kernel) == ("admin", "noble", "hwe-24.04")
    deploy_s = REAL_DURATIONS_S["deploy"] * TIMING.time_factor
    halfway, events = run_until(m, deploy_s / 2)
    assert halfway.status == S.DEPLOYING and events == []
    assert halfway.status_message != m.status_message  # progress moves through MAAS's events
    rebooted, events = run_until(m, deploy_s)
    # Curtin is done and the machine reboots into its OS (the lab event): MAAS says Deployed only once that
    # OS's cloud-init asked for its user-data.
    assert (rebooted.status, rebooted.status_message, events) == (S.DEPLOYING, "Rebooting", ["deployed"])
    assert run_until(rebooted, deploy_s * 2) == (rebooted, [])
    done, events = run_until(os_booted(rebooted, rebooted.pending.started), deploy_s)
    assert (done.status, done.status_name, done.power_state) == (S.DEPLOYED, "Deployed", "on")
    assert events == []


def test_the_os_boots_in_the_last_sixth_of_the_deployment_and_deployed_waits_for_the_end() -> None:
    m = act(machine(), "deploy")
    deploy_s = REAL_DURATIONS_S["deploy"] * TIMING.time_factor
    before, events = run_until(m, deploy_s * 5 / 6 - 0.01)
    assert (before.status, events) == (S.DEPLOYING, [])
    rebooting, events = run_until(m, deploy_s * 5 / 6)
    assert events == ["deployed"]
    up = os_booted(rebooting, rebooting.pending.started)
    assert not due(up, deploy_s - 0.01) and run_until(up, deploy_s - 0.01)[0].status == S.DEPLOYING
    assert due(up, deploy_s) and run_until(up, deploy_s)[0].status == S.DEPLOYED


def test_an_os_that_never_phones_home_fails_the_deployment_at_maas_forty_minute_timeout() -> None:
    m = act(machine(), "deploy")
    rebooting, _ = run_until(m, REAL_DURATIONS_S["deploy"] * TIMING.time_factor)
    timeout_s = 40 * 60 * TIMING.time_factor
    assert run_until(rebooting, timeout_s - 0.01)[0].status == S.DEPLOYING
    failed, events = run_until(rebooting, timeout_s)
    assert (failed.status, failed.status_message, events) == (
        S.FAILED_DEPLOYMENT, "Node operation 'Deploying' timed out after 40 minutes.", [])


def test_an_os_boot_reported_for_another_deployment_changes_nothing() -> None:
    rebooting, _ = run_until(act(machine(), "deploy"), REAL_DURATIONS_S["deploy"] * TIMING.time_factor)
    assert os_booted(rebooting, rebooting.pending.started + 1) == rebooting
    released = act(rebooting, "release")
    assert os_booted(released, rebooting.pending.started) == released


def test_release_with_erase_goes_through_disk_erasing_then_releasing_to_ready() -> None:
    deployed = machine(S.DEPLOYED, owner="admin", distro_series="jammy")
    m = act(deployed, "release", erase="true")
    erase_s = REAL_DURATIONS_S["erase"] * TIMING.time_factor
    release_s = REAL_DURATIONS_S["release"] * TIMING.time_factor
    m, events = run_until(m, erase_s)
    assert m.status == S.RELEASING and events == []
    m, events = run_until(m, erase_s + release_s)
    assert (m.status, m.owner, m.distro_series) == (S.READY, None, "")
    assert events == ["released"]


def test_failed_deployment_fault_ends_in_failed_deployment_with_maas_message() -> None:
    m = act(machine(), "deploy", rates={"maas_failed_deployment": 1.0})
    m, events = run_until(m, 1e6, rates={"maas_failed_deployment": 1.0})
    assert (m.status, m.status_message) == (S.FAILED_DEPLOYMENT, INSTALL_FAILED_MESSAGE)
    assert events == []


def test_stuck_deploying_holds_until_maas_forty_minute_timeout() -> None:
    m = act(machine(), "deploy", rates={"maas_stuck_deploying": 1.0})
    timeout_s = 40 * 60 * TIMING.time_factor
    still, _ = run_until(m, timeout_s - 0.01)
    assert still.status == S.DEPLOYING
    failed, _ = run_until(m, timeout_s)
    assert failed.status == S.FAILED_DEPLOYMENT
    assert failed.status_message == "Node operation 'Deploying' timed out after 40 minutes."


def test_failed_release_fault_ends_in_releasing_failed_after_five_minutes() -> None:
    m = act(machine(S.DEPLOYED), "release", rates={"maas_failed_release": 1.0})
    m, events = run_until(m, 5 * 60 * TIMING.time_factor)
    assert (m.status, m.status_name) == (S.FAILED_RELEASING, "Releasing failed")
    assert events == []


def test_fault_rate_is_a_probability_per_deploy() -> None:
    rng = random.Random(7)
    outcomes = [
        apply_action(machine(), "deploy", {}, now=0, timing=TIMING, rates={"maas_failed_deployment": 0.5},
                     rng=rng).pending.outcome
        for _ in range(400)
    ]
    assert 120 < outcomes.count("fail") < 280


def test_power_change_lands_after_a_delay() -> None:
    m = act(machine(S.DEPLOYED, power_state="on"), "power_off")
    assert m.power_state == "on"
    m, _ = run_until(m, REAL_DURATIONS_S["power"] * TIMING.time_factor)
    assert m.power_state == "off"


@pytest.mark.parametrize(("start", "action", "params"), [
    (S.READY, "deploy", {}),
    (S.DEPLOYED, "release", {"erase": "true"}),
    (S.DEPLOYED, "power_off", {}),
    (S.NEW, "commission", {}),
])
def test_the_clock_tick_may_skip_a_machine_that_is_not_due(start: Status, action: str, params: dict) -> None:
    """Between events `advance` changes at most a deployment's progress message, and `due` says when an
    event comes; so skipping a machine that is not due (the simulator's tick does) hides nothing from a read."""
    m = act(machine(start, power_state="on" if start == S.DEPLOYED else "off"), action, **params)
    end = 60 * 60 * TIMING.time_factor
    seen_due = False
    for step in range(1, 400):
        now = end * step / 400
        moved, events = run_until(m, now)
        if due(m, now):
            seen_due = True
            assert moved != m or events
            m = moved
        else:
            assert events == [] and moved == replace(m, status_message=moved.status_message)
    assert seen_due


def test_hardware_tests_power_the_machine_on_then_return_it_to_where_it_was() -> None:
    testing = act(machine(S.DEPLOYED, power_type="redfish"), "test")
    assert (testing.status, testing.power_request) == (S.TESTING, "on")
    done, _ = run_until(replace(testing, pending=replace(testing.pending, awaiting_power=False)),
                        REAL_DURATIONS_S["test"] * TIMING.time_factor)
    assert (done.status, done.status_message, done.power_request) == (S.DEPLOYED, "Deployed", "shutdown")
