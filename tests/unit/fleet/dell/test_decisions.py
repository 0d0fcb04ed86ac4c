"""fleet.dell's pure decisions: registry checks, BIOS diff and PATCH body, JobState verdicts, reboots,
firmware compliance and plans, log evidence and --since."""

from __future__ import annotations

import hashlib

import pytest

from fleet.dell import bios, compliance, firmware, jobs, logs
from fleet.dell.firmware import ComponentStatus, Installed
from fleet.site.dell import FirmwarePin

REGISTRY = {
    "SysProfile": bios.AttributeSpec("SysProfile", "Enumeration", ("PerfOptimized", "PerfPerWattOptimizedDapc")),
    "AcPwrRcvryUserDelay": bios.AttributeSpec("AcPwrRcvryUserDelay", "Integer", (), 60, 600),
    "SystemServiceTag": bios.AttributeSpec("SystemServiceTag", "String", read_only=True),
}


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("SysProfile", "PerfOptimized", None),
    ("SysProfile", "Fast", "does not allow 'Fast'"),
    ("AcPwrRcvryUserDelay", 120, None),
    ("AcPwrRcvryUserDelay", 30, "takes 60..600, not 30"),
    ("AcPwrRcvryUserDelay", "120", "takes an integer"),
    ("SystemServiceTag", "ABC", "is read-only"),
    ("Sriov", "Enabled", "no such attribute"),
])
def test_a_pin_the_registry_does_not_allow_is_named_with_why(name, value, problem):
    found = bios.pin_problems({name: value}, REGISTRY)
    assert (problem is None and found == {}) or (problem is not None and problem in found[name])


def test_registry_entries_parse_into_specs():
    body = {"RegistryEntries": {"Attributes": [
        {"AttributeName": "BootMode", "Type": "Enumeration", "ReadOnly": False,
         "Value": [{"ValueName": "Uefi"}, {"ValueName": "Bios"}]},
        {"AttributeName": "Delay", "Type": "Integer", "LowerBound": 1, "UpperBound": 9}]}}
    specs = bios.parse_registry(body)
    assert specs["BootMode"].allowed == ("Uefi", "Bios") and (specs["Delay"].lower, specs["Delay"].upper) == (1, 9)


def test_diff_keeps_only_what_differs_and_the_patch_sends_only_that():
    current = {"SysProfile": "PerfPerWattOptimizedDapc", "LogicalProc": "Enabled", "AcPwrRcvryUserDelay": 60}
    pins = {"SysProfile": "PerfOptimized", "LogicalProc": "Enabled", "AcPwrRcvryUserDelay": 60}
    changes = bios.diff(pins, current)
    assert changes == {"SysProfile": ("PerfPerWattOptimizedDapc", "PerfOptimized")}
    assert bios.settings_body(changes, None) == {"Attributes": {"SysProfile": "PerfOptimized"},
                                                 "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}}
    window = bios.settings_body(changes, bios.Window("2026-12-01T22:00:00+00:00", 7200))
    assert window["@Redfish.SettingsApplyTime"] == {"ApplyTime": "InMaintenanceWindowOnReset",
                                                     "MaintenanceWindowStartTime": "2026-12-01T22:00:00+00:00",
                                                     "MaintenanceWindowDurationInSeconds": 7200}


def job(state: str) -> jobs.Job:
    return jobs.Job("JID_1", state, "BIOSConfiguration", "Configure: BIOS.Setup.1-1", "", "", 0)


@pytest.mark.parametrize(("state", "reset_sent", "verdict"), [
    ("Completed", False, jobs.Verdict.DONE),
    ("CompletedWithErrors", True, jobs.Verdict.PARTIAL),
    ("Failed", True, jobs.Verdict.FAILED),
    ("RebootFailed", True, jobs.Verdict.FAILED),
    ("Unknown", True, jobs.Verdict.FAILED),
    ("Scheduled", False, jobs.Verdict.REBOOT),
    ("Scheduled", True, jobs.Verdict.WAIT),
    ("RebootPending", False, jobs.Verdict.REBOOT),
    ("Running", False, jobs.Verdict.WAIT),
    ("Downloading", False, jobs.Verdict.WAIT),
    ("Downloaded", False, jobs.Verdict.WAIT),
    ("RebootCompleted", True, jobs.Verdict.WAIT),
    ("SomethingNew", False, jobs.Verdict.WAIT),
])
def test_job_states_map_to_what_the_caller_does(state, reset_sent, verdict):
    assert jobs.interpret(job(state), reset_sent=reset_sent) == verdict


@pytest.mark.parametrize(("has_os", "selected", "in_window", "reboot"), [
    (False, False, True, True),
    (True, False, True, False),
    (True, True, True, True),
    (False, True, False, False),
])
def test_reboots_only_nodes_without_an_os_or_named_ones_inside_the_window(has_os, selected, in_window, reboot):
    assert jobs.decide_reboot(has_os=has_os, selected=selected, in_window=in_window).reboot is reboot


def test_a_named_node_in_use_is_not_rebooted():
    decision = jobs.decide_reboot(has_os=True, selected=True, busy="gpu: 4242 python")
    assert not decision.reboot and "in use (gpu: 4242 python)" in decision.reason


@pytest.mark.parametrize(("status", "has_os"), [("Deployed", True), ("Deploying", True), ("Allocated", False)])
@pytest.mark.parametrize("selected", [True, False])
def test_another_maas_users_machine_is_never_rebooted_for_a_job(status, has_os, selected):
    from fleet.maas.decide import Machine, foreign_owner

    machine = Machine(system_id="abc123", hostname="gpu-001-01", status=0, status_name=status,
                      status_message="", distro_series="jammy", tags=(), owner="alice")
    owner = foreign_owner(machine, "admin")
    decision = jobs.decide_reboot(has_os=has_os, selected=selected, owner=owner)
    assert not decision.reboot and "'alice'" in decision.reason and "ask alice to release it" in decision.reason
    ours = Machine(system_id="abc123", hostname="gpu-001-01", status=0, status_name=status,
                   status_message="", distro_series="jammy", tags=(), owner="admin")
    assert jobs.decide_reboot(has_os=has_os, selected=True, owner=foreign_owner(ours, "admin")).reboot


@pytest.mark.parametrize(("location", "jid"), [
    ("/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/JID_609237056489", "JID_609237056489"),
    ("https://10.0.0.1/redfish/v1/TaskService/Tasks/JID_1/", "JID_1"),
])
def test_the_job_id_comes_from_location(location, jid):
    assert jobs.job_id(location) == jid


def test_a_location_without_a_job_is_an_error():
    with pytest.raises(ValueError):
        jobs.job_id("/redfish/v1/Systems/System.Embedded.1/Bios/Settings")


INSTALLED = [Installed("Installed-159-2.3.5", "BIOS", "2.3.5", True, "159"),
             Installed("Installed-25227-7.10.70.00", "Integrated Dell Remote Access Controller", "7.10.70.00", True,
                       "25227"),
             Installed("Installed-0-28.39.1002__InfiniBand.Slot.31-1", "Mellanox ConnectX-7", "28.39.1002", False, "0"),
             Installed("Installed-0-28.42.1000__InfiniBand.Slot.32-1", "Mellanox ConnectX-7", "28.42.1000", False, "0")]
PINS = [FirmwarePin("idrac", "Integrated Dell Remote Access Controller", "7.20.10.00", "idrac.exe", "ab"),
        FirmwarePin("bios", "BIOS", "2.3.5", "bios.exe", "cd"),
        FirmwarePin("hca", "ConnectX-7", "28.42.1000"),
        FirmwarePin("psu", "Power Supply", "00.1D.7D", "psu.exe", "ef")]


def test_firmware_compliance_is_per_component_over_every_matching_device():
    statuses = {s.component: s for s in firmware.compliance(PINS, INSTALLED)}
    assert not statuses["idrac"].ok and statuses["bios"].ok
    assert not statuses["hca"].ok and statuses["hca"].versions == ("28.39.1002", "28.42.1000")
    assert statuses["psu"].ok and statuses["psu"].versions == ()  # not listed: reported, not a difference


def test_the_plan_updates_through_the_bmc_what_it_can_and_names_the_node_tool_for_the_rest():
    plan = firmware.plan_node("gpu-001-01", PINS, firmware.compliance(PINS, INSTALLED))
    assert [(s.component, s.how) for s in plan.steps] == [("idrac", "bmc"), ("hca", "node")]
    assert "mlxfwmanager" in plan.steps[1].describe() and "doca_ofed" in plan.steps[1].tool
    no_image = firmware.plan_node("n", [FirmwarePin("idrac", "Integrated", "9")],
                                  [ComponentStatus("idrac", "9", ("7",), True, False)])
    assert no_image.steps == () and "no image" in no_image.problems[0]


def test_an_image_is_used_only_with_the_pinned_checksum():
    data = b"firmware"
    assert firmware.checksum_problem(data, hashlib.sha256(data).hexdigest().upper()) is None
    assert "the site pins" in firmware.checksum_problem(data, "00" * 32)


def test_compliance_leaves_refused_pins_out_of_the_diff():
    result = compliance.evaluate({"SysProfile": "Fast", "AcPwrRcvryUserDelay": 90}, REGISTRY,
                                 {"SysProfile": "PerfOptimized", "AcPwrRcvryUserDelay": 60}, PINS[1:2], INSTALLED)
    assert result.bios == {"AcPwrRcvryUserDelay": (60, 90)} and list(result.inventory_problems) == ["SysProfile"]
    assert result.bios_version == "2.3.5" and not result.ok
    assert result.differences() == ["BIOS AcPwrRcvryUserDelay is 60, pinned 90"]


def entry(created: str, severity: str, log: str = "sel") -> logs.LogEntry:
    return logs.LogEntry(log, created, created, severity, "X", "m")


def test_evidence_is_the_newest_critical_and_warning_entries():
    entries = [entry("2026-12-01T08:00:00+00:00", "OK"), entry("2026-12-01T07:00:00+00:00", "Critical"),
               entry("2026-12-01T09:00:00+00:00", "Warning", "lclog"), entry("2026-12-01T06:00:00+00:00", "Critical")]
    assert [e.created[11:13] for e in logs.evidence(entries, limit=2)] == ["09", "07"]


@pytest.mark.parametrize(("text", "age_s"), [("90m", 5400), ("6h", 21600), ("2d", 172800), ("30s", 30)])
def test_since_takes_an_age(text, age_s):
    assert logs.parse_since(text, now=1_000_000.0) == 1_000_000.0 - age_s


def test_since_takes_an_iso_time_and_refuses_anything_else():
    assert logs.parse_since("2026-12-01T08:00:00+00:00") == logs.created_s("2026-12-01T08:00:00+00:00")
    with pytest.raises(ValueError, match="90m"):
        logs.parse_since("yesterday")
