"""Triage decisions on hand-made UFM data: NVIDIA's thresholds, burst collapsing and the cap."""

from __future__ import annotations

import dataclasses
import time

import pytest

from fleet.fabric.triage import Counters, TriageSettings, collapse, isolation_cap, triage
from fleet.fabric.ufm import Port


def _port(name: str, system: str, number: int, peer: str, *, hca: str = "") -> Port:
    return Port(name, "0x" + name.split("_")[0], number, system, f"{system} {hca}" if hca else system, bool(hca),
                "Active", "LinkUp", "NDR", "4x", peer, "", None, "Info")


SPINE = _port("aa_33", "spine-1", 33, "bb_1")
CORE = _port("bb_1", "core-1", 1, "aa_33")
LEAF = _port("cc_5", "leaf-1", 5, "dd_1")
HCA = _port("dd_1", "gpu-001-01", 1, "cc_5", hca="mlx5_0")
PORTS = [SPINE, CORE, LEAF, HCA]


def _counters(t: float, **symbols: int) -> Counters:
    return Counters(t, {p.name: {"SymbolErrorCounter": symbols.get(p.name.split("_")[0], 0), "LinkDownedCounter": 0}
                        for p in PORTS})


@pytest.mark.parametrize(("errors", "flagged"), [(2, False), (3, True)])
def test_symbol_ber_is_judged_against_1e_14_over_nvidias_12_minute_window(errors: int, flagged: bool) -> None:
    # 400 Gb/s x 720 s x 1e-14 = 2.88 errors: 2 is within the budget, 3 is over it
    plan = triage(PORTS, _counters(0.0), _counters(720.0, aa=errors), [], [])
    assert [p.port for p in plan.isolate] == (["aa_33"] if flagged else [])


def test_a_window_shorter_than_12_minutes_is_not_judged_and_says_so() -> None:
    plan = triage(PORTS, _counters(0.0), _counters(60.0, aa=500), [], [])
    assert plan.isolate == []
    assert plan.notes == ["symbol BER not judged: the counters span 60 s of UFM time, NVIDIA's threshold needs 720 s"]


def test_an_access_link_is_reported_on_its_switch_end_not_isolated() -> None:
    plan = triage(PORTS, _counters(0.0), _counters(720.0, dd=50), [], [])
    assert plan.isolate == []
    assert [(p.port, p.where, p.access) for p in plan.report] == [
        ("cc_5", "leaf-1 port 5 (to gpu-001-01 mlx5_0)", True)]
    plan = triage(PORTS, _counters(0.0), _counters(720.0, dd=50), [], [], TriageSettings(isolate_access_links=True))
    assert [p.port for p in plan.isolate] == ["cc_5"]


def _down(port: Port) -> Port:
    """The port as UFM lists it while its link is down: no peer."""
    return dataclasses.replace(port, logical_state="Down", physical_state="Polling", peer="N/A")


FLAPS = [{"name": "Link went down", "timestamp": f"2026-12-01 07:0{n}:00", "object_name": "aa_33",
          "object_path": "default / spine-1 / 33"} for n in range(1, 4)]
PLAN = {("spine-1", "33"): ("core-1", "1"), ("core-1", "1"): ("spine-1", "33"),
        ("leaf-1", "5"): ("gpu-001-01", "mlx5_0"), ("gpu-001-01", "mlx5_0"): ("leaf-1", "5")}


def test_a_port_caught_down_names_its_far_end_from_the_cabling_plan() -> None:
    ports = [_down(SPINE), _down(CORE), LEAF, HCA]
    blind = triage(ports, _counters(0.0), _counters(1.0), FLAPS, [])
    assert [p.where for p in blind.isolate] == ["spine-1 port 33"]
    plan = triage(ports, _counters(0.0), _counters(1.0), FLAPS, [], planned=PLAN)
    assert [p.where for p in plan.isolate] == [
        "spine-1 port 33 (to core-1 port 1, per the cabling plan: UFM sees the link down now)"]


def test_a_switch_port_to_a_host_that_is_down_is_still_an_access_link() -> None:
    flaps = [dict(e, object_name="cc_5", object_path="default / leaf-1 / 5") for e in FLAPS]
    ports = [SPINE, CORE, _down(LEAF), _down(HCA)]
    blind = triage(ports, _counters(0.0), _counters(1.0), flaps, [])
    assert [p.port for p in blind.isolate] == ["cc_5"]  # without the plan it would cut a node off a rail
    plan = triage(ports, _counters(0.0), _counters(1.0), flaps, [], planned=PLAN)
    assert plan.isolate == [] and [(p.port, p.access) for p in plan.report] == [("cc_5", True)]


def test_events_from_one_switch_in_one_second_are_one_cause() -> None:
    burst = [{"name": "Link went down", "timestamp": "2026-12-01 07:00:00", "object_name": f"ee_{n}",
              "object_path": f"default / spine-9 / {n}"} for n in range(1, 41)]
    lone = [{"name": "Link went down", "timestamp": f"2026-12-01 07:0{n}:00", "object_name": "aa_33",
             "object_path": "default / spine-1 / 33"} for n in range(1, 4)]
    causes, singles = collapse(burst + lone, burst_min=5)
    assert [(c.system, c.count) for c in causes] == [("spine-9", 40)]
    assert singles == lone
    plan = triage(PORTS, _counters(0.0), _counters(1.0), burst + lone, [])
    assert [(p.port, p.reasons) for p in plan.isolate] == [("aa_33", ("flapping: 3 link-down events",))]


def test_events_older_than_the_window_are_history_not_evidence() -> None:
    start = time.mktime(time.strptime("2026-12-01 07:00:00", "%Y-%m-%d %H:%M:%S"))
    old = [{"name": "Link went down", "timestamp": f"2026-12-01 0{h}:00:00", "object_name": "aa_33",
            "object_path": "default / spine-1 / 33"} for h in range(1, 4)]
    plan = triage(PORTS, _counters(start), _counters(start + 1.0), old, [], TriageSettings(events_window_s=3600))
    assert plan.isolate == []
    plan = triage(PORTS, _counters(start), _counters(start + 1.0), old, [], TriageSettings(events_window_s=7 * 3600))
    assert [p.port for p in plan.isolate] == ["aa_33"]


def test_sm_unhealthy_ports_are_proposed_and_isolated_ones_count_toward_the_cap() -> None:
    unhealthy = [{"UnhealthyGUID": "aa", "UnhealthyPortNumber": 33, "Condition": ["HIGH_BER"], "Isolated": False},
                 *({"UnhealthyGUID": f"{n:02x}", "UnhealthyPortNumber": 1, "Isolated": True} for n in range(10))]
    plan = triage(PORTS, _counters(0.0), _counters(1.0), [], unhealthy)
    assert [(p.port, p.reasons) for p in plan.isolate] == [("aa_33", ("marked unhealthy by the SM (HIGH_BER)",))]
    assert (plan.already_isolated, plan.cap) == (10, 10)
    assert plan.refused.startswith("refusing to isolate 1 port(s): 10 already isolated + 1 proposed = 11 > the cap")
    assert plan.refused.endswith("look at spine-1, which has 1 of the proposed ports first")


@pytest.mark.parametrize(("ports", "configured", "cap"), [(100, None, 10), (24576, None, 122), (24576, 3, 3)])
def test_the_isolation_cap_is_max_10_or_half_a_percent_unless_the_site_sets_it(
        ports: int, configured: int | None, cap: int) -> None:
    assert isolation_cap(ports, configured) == cap
