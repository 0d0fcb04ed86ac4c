"""The remediation table, the escalation ladder and the watch loop's guards."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.health import CheckOutcome
from fleet.remediate import (
    DATACENTER_TECH,
    FABRIC_OWNER,
    NODE_OWNER,
    VENDOR,
    WORKLOAD_OWNER,
    Attempt,
    FindingRef,
    Fix,
    Guards,
    NodeFacts,
    admit,
    cooling_down,
    findings_of,
    is_flapping,
    plan_node,
    rack_limit,
    recent,
    remedy_for,
    ticket_text,
)
from healthcheck.config import load_config
from healthcheck.output import to_json
from healthcheck.runner import run_checks

LAB = Path(__file__).resolve().parents[2] / "fixtures" / "lab-node"


def lab_report(fixture_set: str) -> dict:
    """The node's own JSON report for one lab fixture set: the findings exactly as the checks word them."""
    return to_json(run_checks(load_config(LAB / fixture_set / "config.json"), save_state=False))


def f(check: str, message: str, fix: str = "", verdict: str = "CRITICAL") -> FindingRef:
    return FindingRef(check, verdict, message, fix)


@pytest.mark.parametrize(("finding", "ladder", "owner"), [
    (f("gpu_xid", "Xid 13 on 0000:3a:00 x1: restart the application (...)"), (Fix.NONE,), WORKLOAD_OWNER),
    (f("gpu_xid", "Xid 48 on 0000:3a:00 x1: reset the GPU (...)", "node owner: drain the node and reset GPU"),
     (Fix.RESET_GPU, Fix.REIMAGE, Fix.HANDS), NODE_OWNER),
    (f("gpu_xid", "Xid 79 on 0000:3a:00 x1: reboot the node (...)", "node owner: drain and reboot the node; if ..."),
     (Fix.REBOOT, Fix.REIMAGE, Fix.HANDS), NODE_OWNER),
    (f("gpu_xid", "Xid 54 on 0000:3a:00 x1: replace hardware (...)", "open an RMA with Dell for the GPU at 3a"),
     (Fix.HANDS,), VENDOR),
    (f("gpu_row_remap", "GPU 3: row remapping failed", "open an RMA with Dell for GPU serial 1 (no spare rows left)"),
     (Fix.HANDS,), VENDOR),
    (f("fabric_manager", "nvidia-fabricmanager is failed", "node owner: restart nvidia-fabricmanager"),
     (Fix.RESTART_FABRIC_MANAGER, Fix.REBOOT, Fix.REIMAGE, Fix.HANDS), NODE_OWNER),
    (f("gpu_nvlink", "GPU 0: NVLink 1,2 inactive", "node owner: reset the GPUs and restart nvidia-fabricmanager"),
     (Fix.RESET_GPU, Fix.RESTART_FABRIC_MANAGER, Fix.REBOOT, Fix.HANDS), NODE_OWNER),
    (f("ib_counters", "mlx5_2 port 1 link_downed rose by 3", "datacenter tech: reseat/clean or replace the cable"),
     (Fix.ISOLATE_PORT, Fix.HANDS), DATACENTER_TECH),
    (f("ib_ports", "mlx5_2 port 1: INIT/LinkUp", "fabric owner: port is physically up but not ACTIVE: check the "
       "subnet manager (UFM)"), (Fix.HANDS,), FABRIC_OWNER),
    (f("os_pins", "kernel 6.1 not in pins", "node owner: reimage"), (Fix.REIMAGE, Fix.HANDS), NODE_OWNER),
])
def test_each_finding_maps_to_its_least_disruptive_ladder_and_owner(finding, ladder, owner):
    remedy = remedy_for(finding)
    assert (remedy.ladder, remedy.owner) == (ladder, owner)


def test_a_finding_the_table_does_not_know_goes_to_hands_with_the_checks_own_owner():
    remedy = remedy_for(f("new_check", "something odd", "fabric owner: look at it"))
    assert remedy.ladder == (Fix.HANDS,)
    assert remedy.owner == FABRIC_OWNER
    assert "own fix text" in remedy.why


def test_a_new_check_whose_fix_asks_for_a_gpu_reset_gets_the_gpu_ladder():
    assert remedy_for(f("gpu_new", "odd", "node owner: nvidia-smi -r")).ladder[0] is Fix.RESET_GPU


def test_the_sick_gpu_lab_node_is_reset_first_then_reimaged_then_left_for_hands():
    findings = findings_of(lab_report("sick-gpu"))
    assert {x.check for x in findings} == {"gpu_ecc_errors", "gpu_row_remap"}
    attempts: list[Attempt] = []
    seen = []
    for at in range(4):
        plan = plan_node(findings, attempts)
        seen.append(plan.fix)
        if plan.fix is not Fix.HANDS:
            attempts.append(Attempt(plan.cause, plan.fix, float(at)))
    assert seen == [Fix.RESET_GPU, Fix.REIMAGE, Fix.HANDS, Fix.HANDS]
    assert "every fix on its ladder was tried" in plan_node(findings, attempts).reason


def test_a_link_down_node_needs_hands_at_once_when_the_site_has_no_fabric_triage():
    findings = findings_of(lab_report("link-down"))
    without = plan_node(findings, [], available=set(Fix) - {Fix.ISOLATE_PORT})
    assert without.fix is Fix.HANDS
    assert plan_node(findings, []).fix is Fix.ISOLATE_PORT


def test_xid_79_from_the_kernel_log_reboots_and_the_warning_dmesg_line_is_not_a_cause():
    findings = findings_of(lab_report("bad-dmesg"))
    assert [x.check for x in findings] == ["gpu_xid"]
    assert plan_node(findings, []).fix is Fix.REBOOT


def test_hands_outrank_a_gpu_reset_and_a_reboot_covers_a_reset():
    reset = f("gpu_ecc_errors", "GPU 1: 2 volatile uncorrectable ECC errors", "node owner: drain and reset GPU 1")
    reboot = f("gpu_xid", "Xid 79 on 1: reboot the node (..)", "node owner: drain and reboot the node")
    cable = f("ib_ports", "mlx5_0 port 1: DOWN/Polling", "datacenter tech: reseat or replace the cable/transceiver")
    assert plan_node([reset, reboot], []).fix is Fix.REBOOT
    assert plan_node([reset, cable], [], available={Fix.RESET_GPU, Fix.REBOOT}).fix is Fix.HANDS


def test_attempts_for_another_cause_do_not_climb_this_causes_ladder():
    findings = findings_of(lab_report("sick-gpu"))
    other = [Attempt("gpu_xid", Fix.REBOOT, 0.0), Attempt("gpu_xid", Fix.REIMAGE, 1.0)]
    assert plan_node(findings, other).fix is Fix.RESET_GPU


def test_findings_come_from_the_summary_and_fix_when_there_is_no_report():
    checks = [CheckOutcome("gpu_ecc_errors", "CRITICAL", "GPU 3: 4 volatile uncorrectable", "node owner: reset"),
              CheckOutcome("swap", "WARNING", "swap on", "")]
    assert findings_of(None, checks) == [f("gpu_ecc_errors", "GPU 3: 4 volatile uncorrectable", "node owner: reset")]


@pytest.mark.parametrize(("rack_size", "percent", "limit"), [(4, 25, 1), (4, 50, 2), (4, 10, 1), (8, 25, 2)])
def test_rack_limit_is_the_percentage_rounded_down_and_at_least_one(rack_size, percent, limit):
    assert rack_limit(rack_size, Guards(max_rack_percent=percent)) == limit


def test_admission_respects_the_fleet_cap_and_the_rack_cap():
    rack_of = {"a1": 1, "a2": 1, "b1": 2, "c1": 3, "c2": 3}
    sizes = {1: 4, 2: 4, 3: 4}
    result = admit(["a2", "b1", "c1", "c2"], ["a1"], rack_of, sizes, Guards(max_nodes=3, max_rack_percent=25))
    assert result.admitted == ("b1", "c1")
    assert "rack 1" in result.deferred["a2"]
    assert "watch.max_nodes" in result.deferred["c2"]


def test_a_node_already_in_remediation_is_neither_admitted_again_nor_deferred():
    result = admit(["a1"], ["a1"], {"a1": 1}, {1: 4}, Guards())
    assert (result.admitted, dict(result.deferred)) == ((), {})


def test_cooldown_counts_from_the_last_attempt():
    attempts = [Attempt("x", Fix.RESET_GPU, 100.0), Attempt("x", Fix.REBOOT, 1000.0)]
    guards = Guards(cooldown_s=600)
    assert cooling_down(attempts, 1200.0, guards) == pytest.approx(400.0)
    assert cooling_down(attempts, 1700.0, guards) == 0.0
    assert cooling_down([], 0.0, guards) == 0.0


def test_attempts_older_than_the_escalation_window_no_longer_count():
    old, new = Attempt("x", Fix.RESET_GPU, 0.0), Attempt("x", Fix.REBOOT, 9000.0)
    assert recent([old, new], 10000.0, Guards(escalation_window_s=5000)) == [new]


def test_a_node_flipping_between_ok_and_critical_is_flapping_and_warnings_count_as_ok():
    guards = Guards(flap_transitions=3, flap_window_s=100)
    flips = [(10, "OK"), (20, "CRITICAL"), (30, "WARNING"), (40, "CRITICAL")]
    assert is_flapping(flips, 50, guards)
    assert not is_flapping(flips, 125, guards)  # the first change left the window
    steady = [(10, "CRITICAL"), (20, "UNREACHABLE"), (30, "CRITICAL"), (40, "UNKNOWN")]
    assert not is_flapping(steady, 50, guards)


def test_the_ticket_names_the_service_tag_the_serial_the_evidence_sel_and_what_was_tried():
    findings = findings_of(lab_report("sick-gpu"))
    tried = [Attempt("gpu_ecc_errors", Fix.RESET_GPU, 1.0), Attempt("gpu_ecc_errors", Fix.REIMAGE, 3.0)]
    plan = plan_node(findings, tried)
    text = ticket_text(NodeFacts("gpu-002-01", "LAB0201", 2, 1), plan, findings,
                       ["2026-12-01 07:00 Memory ECC uncorrectable error (GPU 3)"], tried)
    assert "service tag LAB0201" in text
    assert "1652826063903" in text
    assert "4 volatile uncorrectable ECC errors" in text
    assert "Memory ECC uncorrectable error" in text
    assert "reset_gpu for gpu_ecc_errors, reimage for gpu_ecc_errors" in text
