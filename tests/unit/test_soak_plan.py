"""bench/soak.py's seeded fault plan and its expectations: 2% of nodes fail health (every kind of the lab's
health faults), each allowed only one end at validate, quarantined by the check that names its fault."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from bench.soak import HEALTH_CHECKS, CrashRun, expectations, plan_faults

NODES = [f"gpu-{rack:03d}-{slot:02d}" for rack in range(1, 129) for slot in range(1, 5)]


def test_two_percent_of_512_nodes_fail_health_with_every_kind_and_the_plan_is_seeded() -> None:
    plan = plan_faults(NODES, seed=5)
    health = Counter(kind for kind in plan.values() if kind in HEALTH_CHECKS)
    assert sum(health.values()) == round(0.02 * len(NODES))
    assert set(health) == set(HEALTH_CHECKS)
    assert plan == plan_faults(list(reversed(NODES)), seed=5)
    assert plan != plan_faults(NODES, seed=6)


def test_a_health_fault_is_quarantined_at_validate_by_its_check_and_passes_a_run_to_os() -> None:
    at_validate, at_os = expectations("validate"), expectations("os")
    assert at_validate["gpu_sick"].outcomes == (("quarantined", "validate", "CRITICAL: gpu_ecc_errors", 1),)
    assert at_validate["ib_link_down"].outcomes == (("quarantined", "validate", "CRITICAL: ib_ports", 1),)
    assert at_validate["dmesg_bad"].outcomes == (("quarantined", "validate", "CRITICAL: gpu_xid", 1),)
    assert at_os["gpu_sick"].outcomes == (("done", "os", "", 1),)
    assert at_validate["healthy"].outcomes == (("done", "validate", "", 1),)


def test_a_crash_run_counts_a_repeated_commissioning_or_maas_power_on_as_repeated() -> None:
    clean = CrashRun(1.0, True, True, 0, 1, 0, "", commissions_max=1, power_ons_extra=0)
    assert not clean.repeated
    assert replace(clean, commissions_max=2).repeated
    assert replace(clean, power_ons_extra=1).repeated
    assert replace(clean, deploys_max=2).repeated
