"""bench/soak.py's seeded fault plan and its expectations: 2% of nodes fail health (every kind of the lab's
health faults), each allowed only one end at validate, quarantined by the check that names its fault."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from bench.soak import HEALTH_CHECKS, WHO_FIXES, CrashRun, expectations, misrouted, plan_faults, who_fixes
from fleet.health import parse_node_output
from fleet.validate import verdict_result
from lab.hosts.hardware import FAULT_SETS

REPO = Path(__file__).resolve().parents[2]

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


@pytest.mark.parametrize(("kind", "fixture_set"), [(kind, name) for kind, name in FAULT_SETS])
def test_each_health_fault_s_quarantine_evidence_routes_to_its_fix_and_owner(kind: str, fixture_set: str) -> None:
    """The evidence is what validate records for the fixture set the lab gives that fault, from the real checks."""
    config = REPO / "tests" / "fixtures" / "lab-node" / fixture_set / "config.json"
    run = subprocess.run([sys.executable, "-m", "healthcheck", "--config", str(config), "--json"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    evidence = verdict_result(parse_node_output("n1", run.returncode, run.stdout, run.stderr, 0.1)).evidence
    assert who_fixes(evidence) == WHO_FIXES[kind]
    assert misrouted({"n1": kind, "n2": "healthy"}, {"n1": evidence}) == []
    assert misrouted({"n1": kind}, {}) == [f"n1 ({kind}): none by nobody, expected {WHO_FIXES[kind][0].value} by "
                                           f"{WHO_FIXES[kind][1]}"]
