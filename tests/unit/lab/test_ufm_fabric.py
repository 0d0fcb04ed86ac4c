"""The lab UFM's fabric model: planned wiring, faults bending it, counters and events moving with time."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.site import load_site
from lab.ufm.fabric import LabFabric

LAB = Path(__file__).resolve().parents[3] / "inventory" / "lab" / "site.yml"


@pytest.fixture(scope="module")
def fabric() -> LabFabric:
    site = load_site(LAB)
    assert site.fabric is not None
    return LabFabric(site, site.fabric.topology, time_factor=1.0, start=1_000_000.0)


def test_every_planned_cable_is_an_active_link(fabric: LabFabric) -> None:
    fabric.apply_faults([])
    assert len(fabric.links_json(now=1_000_010.0)) == 4096 + 8192
    port = fabric.by_endpoint["gpu-012-03/mlx5_4"]
    assert (port.peer.system, port.peer.number) == ("leaf-g01-r4", 15)


def test_symbol_errors_rise_with_time_at_the_faults_rate(fabric: LabFabric) -> None:
    fabric.apply_faults([{"kind": "symbol_errors", "port": "leaf-g01-r4/33", "per_12min": 10}])
    port = fabric.by_endpoint["leaf-g01-r4/33"]
    assert [fabric.counters(port, t)["SymbolErrorCounter"] for t in (0, 720, 1440)] == [0, 10, 20]
    assert fabric.counters(fabric.by_endpoint["leaf-g01-r4/34"], 1440)["SymbolErrorCounter"] == 0


def test_a_flapping_link_goes_down_each_period_on_both_ends_and_logs_each_change(fabric: LabFabric) -> None:
    fabric.apply_faults([{"kind": "flapping", "port": "leaf-g01-r2/40", "period_s": 100, "down_s": 5}])
    port = fabric.by_endpoint["leaf-g01-r2/40"]
    assert [fabric.linked(port, t) for t in (2, 50, 102, 150)] == [False, True, False, True]
    assert fabric.counters(port, 250)["LinkDownedCounter"] == fabric.counters(port.peer, 250)["LinkDownedCounter"] == 3
    names = [e["name"] for e in fabric.events(now=1_000_250.0)]
    assert names == ["Link went down", "Link went up"] * 3


def test_swapped_cables_exchange_far_ends_and_a_missing_one_has_no_peer(fabric: LabFabric) -> None:
    fabric.apply_faults([{"kind": "swapped_cables", "a": "gpu-012-03/mlx5_4", "b": "gpu-012-04/mlx5_4"},
                         {"kind": "missing_cable", "port": "gpu-012-01/mlx5_0"}])
    assert fabric.by_endpoint["gpu-012-03/mlx5_4"].peer.number == 16
    assert fabric.by_endpoint["gpu-012-01/mlx5_0"].peer is None
    fabric.apply_faults([])  # the plan again
    assert fabric.by_endpoint["gpu-012-03/mlx5_4"].peer.number == 15


def test_fault_text_is_checked_against_the_site() -> None:
    from lab.ufm.fabric import parse_fault_text

    site = load_site(LAB)
    assert site.fabric is not None
    topology = site.fabric.topology
    assert parse_fault_text("flapping:leaf-g01-r2/40:period_s=100,down_s=5", site, topology) == {
        "kind": "flapping", "port": "leaf-g01-r2/40", "period_s": 100.0, "down_s": 5.0}
    assert parse_fault_text("swapped_cables:gpu-012-03/mlx5_4+gpu-012-04/mlx5_4", site, topology)["b"] == \
        "gpu-012-04/mlx5_4"
    for text, message in [("hdr:leaf-g01-r2/65", "not a port"), ("event_burst:leaf-x", "not a switch"),
                          ("swapped_cables:gpu-012-03/mlx5_4", "needs a and b"), ("x:y", "unknown UFM fault kind"),
                          ("hdr:gpu-012-03/mlx5_4:speed=1", "unknown option")]:
        with pytest.raises(ValueError, match=message):
            parse_fault_text(text, site, topology)
