"""bench/soak.py on a small lab (16 nodes, every fault kind of the soak at least once, health faults included):
every node ends as its injected fault allows at validate (light lab hosts: lab/hosts/light.py), judged from the
lab's own logs; runs killed with SIGKILL and resumed converge without a repeated destructive request. The
512-node figures are the bench's (bench/README.md)."""

from __future__ import annotations

import pytest

from bench.bringup import Delays
from bench.soak import HEALTH_CHECKS, crash_runs, soak

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_a_small_soak_ends_every_node_as_its_fault_allows() -> None:
    # No fault-free run first (clean_s given): its wall time only makes the bench's faulty/clean ratio, which
    # this test never judges, and it cost a second 16-node bring-up (~50 s) of the suite's time.
    verdicts, wrong_owner, faulty_s, _ = soak(racks=4, seed=7, delays=Delays(0.5, 3.0), until="validate",
                                              clean_s=0.0)
    assert {v.fault for v in verdicts} == {"healthy", "bmc_5xx", "bmc_timeout", "bmc_bad_credentials", "bmc_html",
                                           "commission_fails_once", "commission_fails_always", "deploy_fails_once",
                                           "deploy_fails_always", "gpu_sick", "ib_link_down", "dmesg_bad"}
    # The health-faulty nodes reached validate on their light hosts and were quarantined there by their check.
    assert {(v.fault, v.status, v.where) for v in verdicts if v.fault in HEALTH_CHECKS} == {
        (kind, "quarantined", "validate") for kind in HEALTH_CHECKS}
    # Every node as its fault allows, a timeout BMC included (done, or quarantined where MAAS's own driver gave
    # up on it): MAAS's deadlines on the lab clock leave room for the lab MAAS's driver waiting a real 10 s on
    # each held request (lab/sitegen.py, maas_deadline_factor), so how loaded the machine is never decides it.
    assert [v for v in verdicts if not v.ok] == []
    # Each health quarantine's evidence routes to its fault's first fix and owner (fleet.remediate).
    assert wrong_owner == []
    assert faulty_s > 0


def test_runs_killed_at_seeded_points_converge_without_repeating_destructive_requests() -> None:
    runs = crash_runs(racks=1, runs=2, seed=11, delays=Delays(0.5, 3.0))
    assert [r for r in runs if not r.matches or r.repeated] == []
