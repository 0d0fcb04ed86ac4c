"""decide_os_action: the next OS step for every MAAS status the workflow can meet."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from maas.client.enum import NodeStatus

from fleet.errors import MaasError
from fleet.maas import MaasClient, Machine, OsStep, decide_os_action, image_matches, nobodys
from fleet.site import Credentials, Endpoint, OsImage, TlsSettings

JAMMY = OsImage(distro_series="jammy", hwe_kernel="hwe-22.04")
ME = "admin"  # our MAAS user (whoami)


def machine(status: NodeStatus, distro: str = "", kernel: str | None = None, message: str = "") -> Machine:
    return Machine(system_id="abc123", hostname="gpu-012-03", status=int(status),
                   status_name=status.name.replace("_", " ").capitalize(), status_message=message,
                   distro_series=distro, tags=(), hwe_kernel=kernel)


@pytest.mark.parametrize(
    ("status", "distro", "kernel", "failed", "step"),
    [
        (NodeStatus.DEPLOYED, "jammy", "hwe-22.04", 0, OsStep.NOTHING),
        (NodeStatus.DEPLOYED, "focal", None, 0, OsStep.REDEPLOY),
        (NodeStatus.DEPLOYED, "jammy", "ga-22.04", 0, OsStep.REDEPLOY),
        (NodeStatus.READY, "", None, 0, OsStep.DEPLOY),
        (NodeStatus.ALLOCATED, "", None, 0, OsStep.QUARANTINE),  # someone's claim (see the claimed test)
        (NodeStatus.TESTING, "", None, 0, OsStep.QUARANTINE),
        (NodeStatus.NEW, "", None, 0, OsStep.COMMISSION),
        (NodeStatus.DEPLOYING, "jammy", None, 0, OsStep.WAIT),
        (NodeStatus.RELEASING, "", None, 0, OsStep.WAIT),
        (NodeStatus.DISK_ERASING, "", None, 0, OsStep.WAIT),
        (NodeStatus.COMMISSIONING, "", None, 0, OsStep.WAIT),
        (NodeStatus.FAILED_DEPLOYMENT, "jammy", None, 0, OsStep.RETRY),
        (NodeStatus.FAILED_DEPLOYMENT, "jammy", None, 1, OsStep.RETRY),
        (NodeStatus.FAILED_DEPLOYMENT, "jammy", None, 2, OsStep.QUARANTINE),
        (NodeStatus.FAILED_RELEASING, "", None, 0, OsStep.RETRY),
        (NodeStatus.FAILED_DISK_ERASING, "", None, 2, OsStep.QUARANTINE),
        (NodeStatus.BROKEN, "", None, 0, OsStep.QUARANTINE),
        (NodeStatus.RESCUE_MODE, "", None, 0, OsStep.QUARANTINE),
        (NodeStatus.FAILED_COMMISSIONING, "", None, 0, OsStep.QUARANTINE),
        (NodeStatus.MISSING, "", None, 0, OsStep.QUARANTINE),
        (NodeStatus.RESERVED, "", None, 0, OsStep.QUARANTINE),
    ],
)
def test_decision_table(status: NodeStatus, distro: str, kernel: str | None, failed: int, step: OsStep) -> None:
    assert decide_os_action(machine(status, distro, kernel), JAMMY, me=ME, failed_attempts=failed).step == step


def test_an_allocated_machine_of_ours_is_deployed_only_when_our_deployment_claimed_it() -> None:
    held = replace(machine(NodeStatus.ALLOCATED), owner=ME)
    refused = decide_os_action(held, JAMMY, me=ME)
    assert refused.step == OsStep.QUARANTINE and "to admin but not by this tool's deployment" in refused.reason
    assert decide_os_action(held, JAMMY, me=ME, claimed=True).step == OsStep.DEPLOY


# Every MAAS status, for a machine nobody owns (MAAS's null) and for one our own MAAS user owns.
BY_STATUS = {
    NodeStatus.NEW: OsStep.COMMISSION, NodeStatus.COMMISSIONING: OsStep.WAIT,
    NodeStatus.FAILED_COMMISSIONING: OsStep.QUARANTINE, NodeStatus.MISSING: OsStep.QUARANTINE,
    NodeStatus.READY: OsStep.DEPLOY, NodeStatus.RESERVED: OsStep.QUARANTINE, NodeStatus.DEPLOYED: OsStep.NOTHING,
    NodeStatus.RETIRED: OsStep.QUARANTINE, NodeStatus.BROKEN: OsStep.QUARANTINE, NodeStatus.DEPLOYING: OsStep.WAIT,
    NodeStatus.ALLOCATED: OsStep.QUARANTINE, NodeStatus.FAILED_DEPLOYMENT: OsStep.RETRY,
    NodeStatus.RELEASING: OsStep.WAIT, NodeStatus.FAILED_RELEASING: OsStep.RETRY, NodeStatus.DISK_ERASING: OsStep.WAIT,
    NodeStatus.FAILED_DISK_ERASING: OsStep.RETRY, NodeStatus.RESCUE_MODE: OsStep.QUARANTINE,
    NodeStatus.ENTERING_RESCUE_MODE: OsStep.WAIT, NodeStatus.FAILED_ENTERING_RESCUE_MODE: OsStep.QUARANTINE,
    NodeStatus.EXITING_RESCUE_MODE: OsStep.WAIT, NodeStatus.FAILED_EXITING_RESCUE_MODE: OsStep.QUARANTINE,
    NodeStatus.TESTING: OsStep.QUARANTINE, NodeStatus.FAILED_TESTING: OsStep.QUARANTINE,
}


def test_the_status_table_covers_every_maas_status() -> None:
    assert set(BY_STATUS) == set(NodeStatus)


@pytest.mark.parametrize("owner", ["", ME], ids=["nobody", "us"])
@pytest.mark.parametrize("status", list(NodeStatus), ids=lambda s: s.name)
def test_a_machine_nobody_or_we_own_is_decided_by_its_status(status: NodeStatus, owner: str) -> None:
    action = decide_os_action(replace(machine(status, "jammy", "hwe-22.04"), owner=owner), JAMMY, me=ME)
    assert action.step == BY_STATUS[status] and "owned by MAAS user" not in action.reason


@pytest.mark.parametrize("claimed", [False, True])
@pytest.mark.parametrize("status", list(NodeStatus), ids=lambda s: s.name)
def test_another_users_machine_is_hands_off_in_every_status_naming_the_owner(status: NodeStatus,
                                                                             claimed: bool) -> None:
    # Deployed with our very image, Failed deployment with attempts left, Deploying, Allocated with our
    # claim journaled (a stale claim: the machine changed hands since): none is ours to act on.
    theirs = replace(machine(status, "jammy", "hwe-22.04"), owner="alice")
    action = decide_os_action(theirs, JAMMY, me=ME, claimed=claimed, failed_attempts=0)
    assert action.step == OsStep.QUARANTINE
    assert "owned by MAAS user 'alice', not by this tool's user 'admin'" in action.reason
    assert "ask alice to release it in MAAS" in action.reason


def test_foreign_owner_is_empty_for_nobody_us_and_an_unknown_machine() -> None:
    from fleet.maas import foreign_owner

    assert foreign_owner(None, ME) == ""
    assert foreign_owner(replace(machine(NodeStatus.DEPLOYED), owner=""), ME) == ""
    assert foreign_owner(replace(machine(NodeStatus.DEPLOYED), owner=ME), ME) == ""
    assert "'bob'" in foreign_owner(replace(machine(NodeStatus.DEPLOYED), owner="bob"), ME)


def test_deploying_past_our_deadline_and_maas_verdict_grace_is_quarantined_not_deployed_again() -> None:
    deploying = replace(machine(NodeStatus.DEPLOYING, "jammy"), owner=ME)
    assert decide_os_action(deploying, JAMMY, me=ME, claimed=True).step == OsStep.WAIT
    overdue = decide_os_action(deploying, JAMMY, me=ME, claimed=True, overdue=True)
    assert overdue.step == OsStep.QUARANTINE and "not deployed again over MAAS's head" in overdue.reason
    # MAAS's own verdict, once it comes, is decided as usual: a failed deployment is retried.
    failed = replace(deploying, status=int(NodeStatus.FAILED_DEPLOYMENT), status_name="Failed deployment")
    assert decide_os_action(failed, JAMMY, me=ME, claimed=True, failed_attempts=1, overdue=True).step == OsStep.RETRY


@pytest.mark.parametrize("status", list(NodeStatus))
def test_only_an_unknown_new_or_ready_machine_is_nobodys(status: NodeStatus) -> None:
    assert nobodys(machine(status)) is (status in (NodeStatus.NEW, NodeStatus.READY))
    assert nobodys(None)


def test_failed_deployment_reason_carries_maas_message_and_attempts() -> None:
    failed = machine(NodeStatus.FAILED_DEPLOYMENT, "jammy", message="Installation failed")
    action = decide_os_action(failed, JAMMY, me=ME, failed_attempts=2)
    assert "Installation failed" in action.reason and "2 failed attempt" in action.reason


def test_max_attempts_one_quarantines_after_the_first_failure() -> None:
    failed = machine(NodeStatus.FAILED_DEPLOYMENT, "jammy")
    assert decide_os_action(failed, JAMMY, me=ME, failed_attempts=1, max_attempts=1).step == OsStep.QUARANTINE


def test_redeploy_reason_names_both_images() -> None:
    action = decide_os_action(machine(NodeStatus.DEPLOYED, "focal"), JAMMY, me=ME)
    assert "focal" in action.reason and "jammy" in action.reason


def test_image_without_pinned_kernel_accepts_maas_default_kernel() -> None:
    assert image_matches(machine(NodeStatus.DEPLOYED, "jammy", "ga-22.04"), OsImage("jammy", ""))
    assert not image_matches(machine(NodeStatus.DEPLOYED, "noble", None), OsImage("jammy", ""))


def test_missing_ca_file_is_a_maas_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MaasError) as err:
        MaasClient(Endpoint("https://maas.example:5443/MAAS/", "maas"), Credentials("", "a:b:c"),
                   TlsSettings(verify=True, ca_file=tmp_path / "missing.pem"))
    assert "maas_tls.ca_file" in str(err.value) and "a:b:c" not in str(err.value)


def test_malformed_api_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(MaasError) as err:
        MaasClient(Endpoint("https://127.0.0.1:5240/MAAS/", "maas"), Credentials("", "just-a-secret"), TlsSettings())
    assert "just-a-secret" not in str(err.value) and "consumer:token:secret" in str(err.value)


def test_plain_http_maas_is_refused_unless_the_site_accepts_it_and_then_warned_on_every_client(caplog):
    from fleet.errors import MaasError

    key = Credentials("", "consumer:token:secret")
    with pytest.raises(MaasError, match="refusing plain-HTTP MAAS"):
        MaasClient(Endpoint("http://maas.example:5240/MAAS/", "maas"), key, TlsSettings())
    caplog.set_level("WARNING")
    for _ in range(2):
        MaasClient(Endpoint("http://maas.example:5240/MAAS/", "maas", insecure_http=True), key, TlsSettings()).close()
    warnings = [r.getMessage() for r in caplog.records if "plain HTTP" in r.getMessage()]
    assert len(warnings) == 2 and "secret" not in " ".join(warnings)


def api_machine(system_id: str, hostname: str, *macs: str) -> dict:
    """A machine as MAAS's API returns it (fields this tool reads), with its interfaces' MACs."""
    interfaces = [{"name": f"eno{n}", "mac_address": mac} for n, mac in enumerate(macs, 1)]
    return {"system_id": system_id, "hostname": hostname, "status": int(NodeStatus.READY), "status_name": "Ready",
            "boot_interface": interfaces[0] if interfaces else None, "interface_set": interfaces, "tag_names": []}


def node(hostname: str = "gpu-012-03", pxe_mac: str = "7c:c2:55:0c:03:00"):
    from dataclasses import replace

    from tests.unit.fleet.test_workflow import make_node
    return replace(make_node(12, 3), hostname=hostname, pxe_mac=pxe_mac)


def test_a_machine_found_by_its_pxe_mac_is_the_nodes_machine_whatever_its_hostname() -> None:
    from fleet.maas import pick_machine

    found = pick_machine(node(), [api_machine("abc123", "maas-named-it", "7c:c2:55:0c:03:00")], None)
    assert found.system_id == "abc123" and found.macs == ("7c:c2:55:0c:03:00",)


def test_a_machine_matching_only_by_hostname_is_an_error_naming_both_macs() -> None:
    from fleet.maas import pick_machine

    stale = api_machine("old999", "gpu-012-03", "7c:c2:55:ff:ff:00", "7c:c2:55:ff:ff:01")
    with pytest.raises(MaasError) as err:
        pick_machine(node(), [], [stale])
    text = str(err.value)
    assert "old999" in text and "7c:c2:55:ff:ff:00" in text and "7c:c2:55:0c:03:00" in text
    assert "swapped" in text and "not used" in text


def test_no_machine_by_mac_or_hostname_is_not_enlisted() -> None:
    from fleet.maas import pick_machine

    with pytest.raises(MaasError, match="not enlisted"):
        pick_machine(node(), [], [])


def test_two_machines_with_the_pxe_mac_are_an_error_naming_them() -> None:
    from fleet.maas import pick_machine

    with pytest.raises(MaasError, match="2 MAAS machines match by PXE MAC: a1, b2"):
        pick_machine(node(), [api_machine("b2", "x", "7c:c2:55:0c:03:00"), api_machine("a1", "y", "7c:c2:55:0c:03:00")],
                     None)


@pytest.mark.parametrize(
    ("site", "maas", "kernel", "same"),
    [
        (OsImage("jammy", ""), "jammy", "ga-22.04", True),  # MAAS reports its default kernel by name
        (OsImage("ubuntu/jammy", ""), "jammy", "ga-22.04", True),
        (OsImage("jammy", "hwe-22.04"), "ubuntu/jammy", "hwe-22.04", True),
        (OsImage("jammy", "hwe-j"), "jammy", "hwe-22.04", True),  # MAAS's letter alias
        (OsImage("jammy", "hwe-22.04-edge"), "jammy", "hwe-22.04-edge", True),
        (OsImage("jammy", ""), "jammy", "hwe-22.04", False),
        (OsImage("jammy", "hwe-22.04"), "jammy", "ga-22.04", False),
        (OsImage("noble", ""), "jammy", "ga-22.04", False),
    ],
)
def test_release_and_kernel_are_compared_in_maas_names(site: OsImage, maas: str, kernel: str, same: bool) -> None:
    assert image_matches(machine(NodeStatus.DEPLOYED, maas, kernel), site) is same


def test_a_redeploy_that_still_does_not_match_is_quarantined_with_both_names() -> None:
    other = machine(NodeStatus.DEPLOYED, "jammy", "hwe-22.04")
    assert decide_os_action(other, OsImage("jammy", ""), me=ME).step == OsStep.REDEPLOY
    action = decide_os_action(other, OsImage("jammy", ""), me=ME, redeploys=1)
    assert action.step == OsStep.QUARANTINE
    assert "jammy/hwe-22.04" in action.reason and "jammy/(default kernel)" in action.reason


def test_the_site_image_is_checked_against_maas_boot_resources() -> None:
    from fleet.maas import image_problem

    images = {"jammy": ("ga-22.04", "hwe-22.04"), "noble": ("ga-24.04",)}
    assert image_problem(OsImage("ubuntu/jammy", "hwe-j"), images) == ""
    assert "not among MAAS's boot images (jammy, noble)" in image_problem(OsImage("focal", ""), images)
    assert "not a kernel MAAS has for jammy" in image_problem(OsImage("jammy", "hwe-24.04"), images)


@pytest.mark.parametrize("status", [NodeStatus.FAILED_DEPLOYMENT, NodeStatus.FAILED_RELEASING])
def test_a_failure_of_maas_power_control_quarantines_at_once_without_another_deployment(status: NodeStatus) -> None:
    failed = machine(status, "jammy", message="Power on for the node failed: Redfish request failed: HTTP 503")
    action = decide_os_action(failed, OsImage("jammy"), me=ME, failed_attempts=0)
    assert action.step == OsStep.QUARANTINE
    assert "HTTP 503" in action.reason and "cannot power it through its BMC" in action.reason
