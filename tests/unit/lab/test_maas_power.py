"""The lab MAAS's power path, create form and image names, without a server."""

from __future__ import annotations

import json
import random

import pytest

from lab.maas.enlist import FormError, enlist
from lab.maas.images import ImageError, check_deploy
from lab.maas.power import PowerActionError, PowerParameters, error_message
from lab.maas.states import (
    FAILING_SCRIPT,
    REAL_DURATIONS_S,
    MachineState,
    Status,
    Timing,
    advance,
    apply_action,
    power_result,
)

TIMING = Timing(time_factor=0.01)
S = Status
REDFISH = (("node_id", "abc"), ("power_address", "127.0.0.1:1"), ("power_pass", "x"), ("power_user", "root"))


def machine(status: Status = S.NEW, **changes: object) -> MachineState:
    return MachineState(system_id="abc123", hostname="gpu-001-01", macs=("02:00:00:00:00:01",), status=status,
                        power_type="redfish", power_parameters=REDFISH, **changes)


def act(m: MachineState, action: str, now: float = 0.0, rates: dict[str, float] | None = None,
        **params: str) -> MachineState:
    return apply_action(m, action, params, now=now, timing=TIMING, rates=rates or {}, rng=random.Random(1))


def later(m: MachineState, now: float) -> MachineState:
    return advance(m, now=now, timing=TIMING, rates={}, rng=random.Random(1))[0]


def test_commissioning_waits_for_the_power_driver_then_runs_its_scaled_time() -> None:
    m = act(machine(), "commission")
    assert (m.status, m.status_message, m.power_request) == (S.COMMISSIONING, "Powering on", "on")
    assert later(m, 1e9).status == S.COMMISSIONING  # no time passes for an operation MAAS could not power
    m = power_result(m, "on", None, now=100.0, timing=TIMING)
    assert (m.power_state, m.power_request, m.commissioning_status) == ("on", None, 1)
    done = REAL_DURATIONS_S["commission"] * TIMING.time_factor
    assert later(m, 100.0 + done * 0.9).status == S.COMMISSIONING
    ready = later(m, 100.0 + done)
    assert (ready.status, ready.commissioning_status, ready.power_request) == (S.READY, 2, "shutdown")


def test_a_failed_power_on_fails_the_operation_with_maas_words_and_power_error() -> None:
    m = act(machine(), "commission")
    failed = power_result(m, "on", "Failed to complete power action: Redfish request failed with response "
                          "status code: 401.", now=1.0, timing=TIMING)
    assert failed.status == S.FAILED_COMMISSIONING and failed.power_state == "error"
    assert failed.status_message.startswith("Power on for the node failed: Failed to complete power action")
    assert [e[1] for e in failed.maas_events][-2:] == ["Failed to query node's BMC", "Failed to power on node"]
    deploying = act(machine(S.READY), "deploy")
    assert power_result(deploying, "on", "x", now=1.0, timing=TIMING).status == S.FAILED_DEPLOYMENT


def test_power_off_of_a_deployed_machine_with_its_bmc_down_keeps_the_status_and_shows_error() -> None:
    m = act(machine(S.DEPLOYED, power_state="on"), "power_off")
    assert m.power_request == "off"
    after = power_result(m, "off", "Failed talking to node's BMC: refused", now=1.0, timing=TIMING)
    assert (after.status, after.power_state) == (S.DEPLOYED, "error")


def test_failed_commissioning_fault_fails_maas_script_at_the_end() -> None:
    m = act(machine(), "commission", rates={"maas_failed_commissioning": 1.0})
    m = later(power_result(m, "on", None, now=0.0, timing=TIMING), 1e9)
    assert (m.status, m.status_message, m.commissioning_status) == (
        S.FAILED_COMMISSIONING, f"{FAILING_SCRIPT} failed", 3)
    assert m.maas_events[-1][1:] == ("Script", "WARNING", f"{FAILING_SCRIPT} failed")


def test_a_manual_machine_changes_power_by_itself_after_a_delay() -> None:
    m = act(MachineState(system_id="a", hostname="h", macs=(), status=S.DEPLOYED, power_state="on"), "power_off")
    assert m.power_request is None and m.power_target == "off"


def params(**fields: object) -> dict[str, list[str]]:
    base: dict[str, object] = {"architecture": "amd64/generic", "mac_addresses": "02:00:00:00:00:09",
                               "hostname": "gpu-001-09", "power_type": "redfish",
                               "power_parameters": json.dumps(dict(REDFISH))}
    base.update(fields)
    return {k: v if isinstance(v, list) else [str(v)] for k, v in base.items() if v is not None}


def test_create_builds_a_new_redfish_machine_from_libmaas_fields() -> None:
    m = enlist(params(), {}, "xyz123", now=0.0)
    assert (m.status, m.hostname, m.macs, m.power_type) == (S.NEW, "gpu-001-09", ("02:00:00:00:00:09",), "redfish")
    assert dict(m.power_parameters)["node_id"] == "abc"
    assert enlist(params(architecture="amd64"), {}, "x", now=0.0).architecture == "amd64/generic"


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"architecture": None}, "architecture", "This field is required."),
        ({"mac_addresses": None}, "mac_addresses", "This field is required."),
        ({"power_type": "telnet"}, "power_type", "telnet is not one of the available choices"),
        ({"power_parameters": json.dumps({"power_address": "a"})}, "power_parameters", "power_user: This field"),
        ({"power_parameters": "not json"}, "power_parameters", "Enter a valid JSON object."),
        ({"mac_addresses": "02:00:00:00:00:01"}, "mac_addresses", "already in use on gpu-001-01"),
        ({"hostname": "gpu-001-01"}, "hostname", "Node with this Hostname already exists."),
    ],
)
def test_create_refuses_what_maas_form_refuses(fields: dict, field: str, says: str) -> None:
    existing = {"abc123": machine(S.READY)}
    with pytest.raises(FormError) as err:
        enlist(params(**fields), existing, "xyz123", now=0.0)
    assert any(says in message for message in err.value.errors[field])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"distro_series": "jammy", "hwe_kernel": "ga-22.04"}),
        ({"distro_series": "ubuntu/jammy"}, {"distro_series": "jammy", "hwe_kernel": "ga-22.04"}),
        ({"distro_series": "jammy", "hwe_kernel": "hwe-22.04"}, {"distro_series": "jammy", "hwe_kernel": "hwe-22.04"}),
        ({"distro_series": "noble"}, {"distro_series": "noble", "hwe_kernel": "ga-24.04"}),
    ],
)
def test_deploy_names_release_and_kernel_in_maas_words(fields: dict, expected: dict) -> None:
    assert check_deploy(fields, "amd64/generic") == expected


def test_deploy_refuses_a_release_or_kernel_maas_has_no_image_for() -> None:
    with pytest.raises(ImageError) as series:
        check_deploy({"distro_series": "focal"}, "amd64/generic")
    assert "'focal' is not a valid distro_series" in series.value.errors["distro_series"][0]
    with pytest.raises(ImageError) as kernel:
        check_deploy({"distro_series": "jammy", "hwe_kernel": "hwe-20.04"}, "amd64/generic")
    assert kernel.value.errors["hwe_kernel"] == ["hwe-20.04 is not available for ubuntu/jammy on amd64/generic."]


def test_driver_errors_are_worded_as_maas_words_them() -> None:
    assert error_message(PowerActionError("Redfish request failed with response status code: 401.")) == (
        "Failed to complete power action: Redfish request failed with response status code: 401.")
    assert error_message(ConnectionRefusedError("refused")).startswith("Failed talking to node's BMC: ")
    assert "timeout" in error_message(TimeoutError())


def test_power_parameters_hide_the_password_and_default_to_https() -> None:
    p = PowerParameters("10.0.0.5", "root", "s3cret", "1")
    assert p.url == "https://10.0.0.5" and "s3cret" not in repr(p)
