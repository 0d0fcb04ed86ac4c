"""`provision.py fabric ...` and the fabric stage against the lab UFM: exit codes, findings, journal."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from fleet.stages.fabric import FabricStage
from fleet.state import StateDB
from fleet.workflow import NodeContext
from tests.lab.fabric_lab import FabricLab, running_ufm

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def fabric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricLab]:
    with running_ufm(tmp_path_factory.mktemp("ufmcli"), racks=12) as lab:
        yield lab


@pytest.fixture
def lab(fabric: FabricLab) -> FabricLab:
    fabric.faults([])
    return fabric


def _fabric_journal(lab: FabricLab) -> list[str]:
    db = StateDB(lab.lab.state_db)
    try:
        return [entry.event for entry in db.entries("fabric")]
    finally:
        db.close()


def test_check_of_a_rack_names_the_swap_and_exits_1(lab: FabricLab) -> None:
    lab.faults([{"kind": "swapped_cables", "a": "gpu-012-03/mlx5_4", "b": "gpu-012-04/mlx5_4"}])
    result = lab.lab.cli("fabric", "check", "--rack", "12", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [(f["subject"], f["message"], f["who"]) for f in report["findings"]] == [
        ("gpu-012-03", "gpu-012-03 mlx5_4 expected leaf-g01-r4 port 15, found leaf-g01-r4 port 16", "datacenter tech"),
        ("gpu-012-04", "gpu-012-04 mlx5_4 expected leaf-g01-r4 port 16, found leaf-g01-r4 port 15", "datacenter tech"),
    ]
    assert report["link_findings"] == [] and report["ufm_requests"] == 3


def test_check_adds_missing_pkey_guids_only_with_apply_and_journals_first(lab: FabricLab) -> None:
    lab.faults([{"kind": "pkey_missing", "port": "gpu-012-01/mlx5_3"}])
    assert lab.lab.cli("fabric", "check", "--nodes", "gpu-012-01").returncode == 1
    assert not [r for r in lab.requests() if r["method"] == "POST" and r["path"].endswith("resources/pkeys")]
    applied = lab.lab.cli("fabric", "check", "--nodes", "gpu-012-01", "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "added 1 GUID(s) to pkey 0x0a12" in applied.stderr
    assert _fabric_journal(lab)[-2:] == ["pkey_add:started", "pkey_add:done"]


def test_triage_apply_isolates_then_restore_by_switch_port(lab: FabricLab) -> None:
    lab.faults([{"kind": "flapping", "port": "leaf-g01-r2/40", "period_s": 100, "down_s": 5}])
    dry = lab.lab.cli("fabric", "triage", "--sample", "0")
    assert dry.returncode == 1, dry.stderr
    # the far end is UFM's live peer, or the cabling plan's when the triage lands in a down phase of the flap
    assert "isolate leaf-g01-r2 port 40 (to spine-p00-r2-s0 port 16" in dry.stderr
    assert "nothing isolated without --apply" in dry.stderr
    assert not [r for r in lab.requests() if r["method"] == "PUT"]
    applied = lab.lab.cli("fabric", "triage", "--sample", "0", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    name = json.loads(applied.stdout)["isolated"][0]
    assert _fabric_journal(lab)[-2:] == ["isolate:started", "isolate:done"]
    restored = lab.lab.cli("fabric", "restore", "leaf-g01-r2/40")
    assert restored.returncode == 0, restored.stderr
    puts = [r["body"] for r in lab.requests() if r["method"] == "PUT"]
    assert puts[-2:] == [{"ports": [name], "ports_policy": "UNHEALTHY", "action": "isolate"},
                         {"ports": [name], "ports_policy": "HEALTHY"}]


def test_triage_past_the_sites_cap_refuses_with_exit_2_and_isolates_nothing(lab: FabricLab) -> None:
    site_doc = yaml.safe_load(lab.lab.site_file.read_text())
    site_doc["fabric"]["max_isolated"] = 1
    lab.lab.site_file.write_text(yaml.safe_dump(site_doc, sort_keys=False))
    try:
        lab.faults([{"kind": "flapping", "port": "leaf-g01-r2/40", "period_s": 100, "down_s": 5},
                    {"kind": "flapping", "port": "leaf-g01-r3/40", "period_s": 100, "down_s": 5}])
        puts = len([r for r in lab.requests() if r["method"] == "PUT"])
        result = lab.lab.cli("fabric", "triage", "--sample", "0", "--apply")
        assert result.returncode == 2, result.stderr
        assert "refusing to isolate 2 port(s): 0 already isolated + 2 proposed = 2 > the cap of 1" in result.stderr
        assert len([r for r in lab.requests() if r["method"] == "PUT"]) == puts
    finally:
        site_doc["fabric"].pop("max_isolated")
        lab.lab.site_file.write_text(yaml.safe_dump(site_doc, sort_keys=False))


@pytest.mark.parametrize("argv", [["fabric", "check", "--rack", "999"], ["fabric", "restore", "nope/1"],
                                  ["fabric", "check", "gpu-012-01"], ["fabric", "restore"]])
def test_bad_input_is_exit_2_before_ufm_is_asked(lab: FabricLab, argv: list[str]) -> None:
    before = len(lab.requests())
    result = lab.lab.cli(*argv)
    assert result.returncode == 2, result.stderr
    assert len(lab.requests()) == before


def test_the_stage_quarantines_a_miscabled_node_with_who_acts_and_passes_the_others(lab: FabricLab) -> None:
    lab.faults([{"kind": "hdr", "port": "gpu-012-02/mlx5_5"}])
    stage = FabricStage(lab.site)
    db = StateDB(lab.lab.state_dir / "stage.db")
    try:
        results = {name: stage.run(lab.site.nodes[name], NodeContext(lab.site.nodes[name], db, 1, "fabric"))
                   for name in ("gpu-012-01", "gpu-012-02", "gpu-012-03")}
    finally:
        db.close()
    assert [name for name, r in results.items() if r.ok] == ["gpu-012-01", "gpu-012-03"]
    bad = results["gpu-012-02"]
    assert (bad.quarantine, bad.retryable) == (True, False)
    assert bad.detail == ("gpu-012-02 mlx5_5 runs at HDR 200 Gb/s, expected NDR 400 Gb/s (cable MCP1650-H002E26) "
                          "(datacenter tech)")
    assert results["gpu-012-01"].detail == "8 HCA port(s) Active at 400 Gb/s 4x, cabled as planned, in 1 pkey(s)"
    # one shared read for the healthy nodes, one fresh read for the node found wanting
    assert stage.snapshots.client.requests == 4


def test_lab_fabric_fault_injects_into_the_running_lab_ufm(lab: FabricLab) -> None:
    injected = lab.lab.lab("fabric-fault", "width_2x:gpu-012-01/mlx5_2")
    assert injected.returncode == 0, injected.stderr
    result = lab.lab.cli("fabric", "check", "--nodes", "gpu-012-01", "--json")
    assert [f["message"] for f in json.loads(result.stdout)["findings"]] == [
        "gpu-012-01 mlx5_2 runs at 2x width, expected 4x: a lane is bad, reseat or replace the cable"]
    bad = lab.lab.lab("fabric-fault", "hdr:gpu-012-01/mlx5_9")
    assert bad.returncode == 2 and "'gpu-012-01/mlx5_9' is not a port of the site" in bad.stderr
