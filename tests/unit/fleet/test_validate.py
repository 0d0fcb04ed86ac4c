"""A node's health verdict becomes the validate stage's result."""

from __future__ import annotations

import pytest

from fleet.health import UNREACHABLE, CheckOutcome, NodeHealth
from fleet.validate import verdict_result

ECC = CheckOutcome("gpu_ecc", "CRITICAL", "GPU 3: 2 volatile uncorrectable ECC errors",
                   "datacenter tech: drain the node and open an RMA for GPU 3")
TEMP = CheckOutcome("gpu_thermal", "WARNING", "GPU 1 at 84 C", "check the airflow of the rack")


@pytest.mark.parametrize(
    ("health", "ok", "retryable", "quarantine"),
    [
        (NodeHealth("n", "OK"), True, True, False),
        (NodeHealth("n", "WARNING", (TEMP,)), True, True, False),
        (NodeHealth("n", "CRITICAL", (ECC, TEMP)), False, True, True),
        (NodeHealth("n", UNREACHABLE, error="ssh: connection refused"), False, True, False),
        (NodeHealth("n", "UNKNOWN", error="healthcheck exited 3"), False, False, False),
    ],
)
def test_verdicts_map_to_pass_retry_or_quarantine(health: NodeHealth, ok: bool, retryable: bool,
                                                  quarantine: bool) -> None:
    result = verdict_result(health)
    assert (result.ok, result.retryable, result.quarantine) == (ok, retryable, quarantine)


def test_critical_result_names_the_check_and_who_fixes_it() -> None:
    result = verdict_result(NodeHealth("n", "CRITICAL", (ECC,)))
    assert result.detail == "CRITICAL: gpu_ecc: GPU 3: 2 volatile uncorrectable ECC errors"
    assert result.evidence["problems"][0]["fix"].startswith("datacenter tech")


def test_warnings_pass_but_are_kept() -> None:
    result = verdict_result(NodeHealth("n", "WARNING", (TEMP,)))
    assert result.detail == "healthy with warnings: gpu_thermal: GPU 1 at 84 C"
