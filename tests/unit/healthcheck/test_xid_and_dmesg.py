"""Xid/SXid classification and the dmesg baseline, on the real H200 kernel log and derived faults."""

from __future__ import annotations

import pytest

from healthcheck.kernlog import (
    DmesgBaselineCheck,
    learn_baseline,
    load_baseline,
    novel_lines,
    save_baseline,
    template,
)
from healthcheck.model import Verdict
from healthcheck.xid import REBOOT, REPLACE, RESET_GPU, RESTART_APP, SxidCheck, XidCheck, classify_xid
from tests.unit.healthcheck.helpers import DEVICE, device_config, device_dmesg, readings


@pytest.mark.parametrize(
    ("code", "message", "action", "verdict"),
    [
        (79, "GPU has fallen off the bus.", REBOOT, Verdict.CRITICAL),
        (48, "An uncorrectable double bit error", RESET_GPU, Verdict.CRITICAL),
        (95, "Uncontained memory error", RESET_GPU, Verdict.CRITICAL),
        (64, "Row Remapper: failure", REPLACE, Verdict.CRITICAL),
        (13, "Graphics SM Warp Exception", RESTART_APP, Verdict.WARNING),
        (31, "MMU Fault", RESTART_APP, Verdict.WARNING),
        (154, "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)", REBOOT, Verdict.CRITICAL),
        (154, "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)", RESET_GPU, Verdict.CRITICAL),
    ],
)
def test_xid_is_classified_by_nvidia_catalogue(code, message, action, verdict):
    assert classify_xid(code, message) == (action, verdict)


def test_xid_code_missing_from_the_catalogue_is_a_warning_that_says_so():
    action, verdict = classify_xid(999, "something new")
    assert verdict is Verdict.WARNING and "not in NVIDIA's catalogue" in action


def test_real_kernel_log_has_no_xid_and_no_sxid():
    assert XidCheck().evaluate(readings(), device_config()).verdict is Verdict.OK
    assert SxidCheck().evaluate(readings(), device_config()).verdict is Verdict.OK


def test_xid79_fault_is_critical_with_reboot_and_counts_in_evidence():
    result = XidCheck().evaluate(readings(kernel_log=device_dmesg("xid79")), device_config())
    assert result.verdict is Verdict.CRITICAL
    assert "Xid 79" in result.summary and "reboot" in result.fix
    assert result.evidence["xid_79"] == 1


def test_sxid_fatal_is_critical_and_non_fatal_a_warning():
    log = (
        "[ 10.0] nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 12028, Non-fatal, Link 32 egress non-posted PRIV error",
        "[ 11.0] nvidia-nvswitch3: SXid (PCI:0000:08:00.0): 24007, Fatal, Link 12 sourcetrack timeout error",
    )
    result = SxidCheck().evaluate(readings(kernel_log=log), device_config())
    assert result.verdict is Verdict.CRITICAL
    assert (result.evidence["sxid_fatal"], result.evidence["sxid_nonfatal"]) == (1, 1)


def test_template_replaces_volatile_parts():
    line = (
        "[ 1234.567890] mlx5_core 0000:3b:00.1: eth2: Link up, MAC 0c:42:a1:00:11:22 GUID a088:c203:0012:1a2b "
        "GPU-4f8c3080-e6eb-6cf6-474a-498378981860 addr 0xffff8881 ffffffffc080c000 serial 1652826063861"
    )
    assert template(line) == "mlx#_core #: eth#: Link up, MAC # GUID # GPU-# addr # # serial #"


@pytest.mark.parametrize(
    "line",
    [
        "[    0.000000] Linux version 6.18.44",
        "Nov 29 07:05:12 gpu-012-03 kernel: Linux version 6.18.44",
        "[Sun Nov 29 07:04:45 2026] Linux version 6.18.44",
        "<6>[   12.5] Linux version 6.18.44",
    ],
)
def test_timestamp_and_host_prefixes_all_give_the_same_template(line):
    assert template(line) == "Linux version #.#.#"


def test_line_starting_with_a_digit_is_not_whitelisted():
    known = frozenset({template("[ 1.0] eth0: link up")})
    lines = ("[ 2.0] eth1: link up", "[ 3.0] 12 blk_update_request: I/O error", "12345 anything at all")
    novel = novel_lines(lines, known)
    assert [n.line_no for n in novel] == [2, 3]


def test_unknown_line_fault_is_flagged_in_order_and_nothing_else():
    baseline = load_baseline(DEVICE / "dmesg-baseline.json")
    result = DmesgBaselineCheck().evaluate(
        readings(kernel_log=device_dmesg("unknown-line"), dmesg_baseline=baseline), device_config()
    )
    assert result.verdict is Verdict.WARNING
    assert result.evidence["novel_lines"] == 1
    assert "blk_update_request" in result.summary


def test_real_log_of_a_second_boot_matches_the_baseline_learned_from_the_first():
    baseline = load_baseline(DEVICE / "dmesg-baseline.json")
    second = tuple((DEVICE / "run2" / "dmesg-run2.txt").read_text().splitlines())
    result = DmesgBaselineCheck().evaluate(readings(kernel_log=second, dmesg_baseline=baseline), device_config())
    assert result.verdict is Verdict.OK, result.summary


def test_baseline_keeps_templates_seen_on_enough_nodes_and_round_trips(tmp_path):
    logs = {"a": ["[1.0] common 1", "[2.0] only on a"], "b": ["[1.5] common 22", "[3.0] only on b"]}
    strict = learn_baseline(logs, min_nodes=2)
    assert strict.templates == frozenset({"common #"})
    save_baseline(learn_baseline(logs), tmp_path / "b.json")
    assert load_baseline(tmp_path / "b.json") == frozenset({"common #", "only on a", "only on b"})


def test_missing_baseline_is_unknown_not_ok(tmp_path):
    missing = load_baseline(tmp_path / "absent.json")
    result = DmesgBaselineCheck().evaluate(readings(dmesg_baseline=missing), device_config())
    assert result.verdict is Verdict.UNKNOWN and "baseline" in result.summary


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[ 5.1] br-68cd35923155: port 26(vethdab5471) entered blocking state",
         "br-#: port #(veth#) entered blocking state"),
        ("[ 5.2] eth0: renamed from veth5de9f99", "eth#: renamed from veth#"),
        ("[ 5.3] IPv6: ADDRCONF(NETDEV_CHANGE): vethe7d4e83: link becomes ready",
         "IPv#: ADDRCONF(NETDEV_CHANGE): veth#: link becomes ready"),
        ("[ 5.4] vethabcdeff: entered promiscuous mode", "veth#: entered promiscuous mode"),
        ("[ 5.5] Code: 48 8b 05 ff ff <0f> 1f 44 00 00 cc", "Code: #"),
        ("[ 5.6] RAX: ffffffffffffffda RBX: 00007ffd1c2e3a40", "RAX: # RBX: #"),
    ],
)
def test_hex_like_tokens_fold_like_numbers(line, expected):
    assert template(line) == expected


def test_words_made_of_hex_letters_stay_words():
    assert template("[ 1.0] cannot be added: bad face of a cafe") == "cannot be added: bad face of a cafe"


def test_docker_churn_of_another_node_matches_a_baseline_learned_elsewhere():
    learned = learn_baseline({"a": ["[1.0] docker0: port 3(veth1c2a7b3) entered forwarding state",
                                    "[2.0] eth0: renamed from vethaa01bc9"],
                              "b": ["[1.0] docker0: port 12(vethfe9d0c1) entered forwarding state",
                                    "[2.0] eth0: renamed from veth5de9f99"]}, min_nodes=2)
    other = ["[7.0] docker0: port 40(veth0d3e4f5) entered forwarding state", "[8.0] eth0: renamed from vethbeef123"]
    assert novel_lines(other, learned.templates) == []


def test_prefix_strip_fast_path_agrees_with_the_prefix_pattern():
    from healthcheck.kernlog import _PREFIX, strip_prefix

    lines = [*device_dmesg(""), "[  1.2] gpu-012-03 kernel: eth0: up", "[Sun Nov 29 07:04:45 2026] x",
             "<6>[ 12.5] y", "Nov 29 07:05:12 host kernel: z", "[no close", "[1.0]", "[ 2.0] two words kernel: k"]
    for line in lines:
        assert strip_prefix(line) == _PREFIX.sub("", line, count=1), line
