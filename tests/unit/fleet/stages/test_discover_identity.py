"""discover's identity match: service tag, PXE MAC and model; UNKNOWN while the BMC cannot tell."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleet.redfish import SystemInfo
from fleet.site import Bmc, Node
from fleet.stages.discover import identity_problems, identity_unknown

MAC = "7c:c2:55:01:01:00"
NODE = Node("gpu-001-01", 1, 1, "gpu", "TAG0101", Bmc("10.1.1.11:443", "bmc"), MAC, "10.2.1.11", 8, (),
            "PowerEdge XE9680")


def seen(tag: str = "TAG0101", macs: tuple[str, ...] = (MAC,), model: str = "PowerEdge XE9680") -> SystemInfo:
    return SystemInfo("On", tag, macs, None, model=model)


def test_the_identity_matches_when_tag_mac_and_model_agree_the_model_in_any_case() -> None:
    assert identity_problems(NODE, seen()) == []
    assert identity_problems(NODE, seen(model="POWEREDGE XE9680")) == []
    assert identity_unknown(NODE, seen()) == []


def test_another_model_behind_the_bmc_is_a_problem_naming_both_models() -> None:
    (problem,) = identity_problems(NODE, seen(model="PowerEdge XE8640"))
    assert "reports model 'PowerEdge XE8640', inventory says 'PowerEdge XE9680'" in problem
    assert "10.1.1.11:443" in problem


def test_a_site_that_names_no_model_checks_none() -> None:
    unnamed = replace(NODE, model="")
    assert identity_problems(unnamed, seen(model="PowerEdge XE8640")) == []
    assert identity_unknown(unnamed, seen(model="")) == []


@pytest.mark.parametrize(
    ("info", "unknown"),
    [
        (seen(macs=()), ["no NICs listed (iDRAC's inventory collection has not run yet)"]),
        (seen(tag=""), ["no service tag"]),
        (seen(model=""), ["no model"]),
    ],
)
def test_an_identity_the_bmc_cannot_tell_yet_is_unknown_not_a_match(info: SystemInfo, unknown: list[str]) -> None:
    assert identity_problems(NODE, info) == []
    assert identity_unknown(NODE, info) == unknown
