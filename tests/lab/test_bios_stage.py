"""The bios stage and discover's compliance through the real CLI against the lab (iDRAC layer included).

Rack 1's nodes leave the lab factory with SR-IOV off and a power-saving profile; the site pins
SR-IOV on and PerfOptimized. Asserted from the lab's iDRAC state and request log and the state DB.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import yaml

from lab.redfish.dell.routes import read_requests, read_state
from lab.redfish.service import RedfishLabFiles
from tests.lab.conftest import LabSite

pytestmark = pytest.mark.lab

PINS = {"BootMode": "Uefi", "SriovGlobalEnable": "Enabled", "SysProfile": "PerfOptimized"}


def pinned(make_lab_site: Callable[..., LabSite], **kwargs: object) -> LabSite:
    lab = make_lab_site(racks=1, **kwargs)
    site_file = lab.site_file
    doc = yaml.safe_load(site_file.read_text())
    doc["bios"] = {"attributes": PINS}
    site_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return lab


def rows(result) -> dict[str, dict]:
    return {row["hostname"]: row for row in json.loads(result.stdout)["nodes"]}


def test_bios_differences_are_applied_through_one_job_per_node_and_verified(make_lab_site):
    lab = pinned(make_lab_site, faults=[{"kind": "idrac_bios_not_sticky", "nodes": ["gpu-001-03"]},
                                        {"kind": "idrac_job_fails", "nodes": ["gpu-001-04"]},
                                        {"kind": "idrac_sel_psu", "nodes": ["gpu-001-04"]}])
    result = lab.cli("--rack", "1", "--until", "bios", "--json")
    report = rows(result)
    assert result.returncode == 1, result.stderr
    dell = RedfishLabFiles.under(lab.lab_dir).dell_dir
    for good in ("gpu-001-01", "gpu-001-02"):
        assert report[good]["status"] == "done", report[good]
        counters = report[good]["counters"]
        assert (counters["bios_differences"], counters["firmware_differences"]) == (2, 0)
        assert counters["bmc_requests_compliance"] <= 3
        state = read_state(dell, good)
        assert {name: state.bios[name] for name in PINS} == PINS and state.resets == 1
        patches = [r["body"] for r in read_requests(dell) if r["node"] == good and r["method"] == "PATCH"]
        assert patches == [{"Attributes": {"SriovGlobalEnable": "Enabled", "SysProfile": "PerfOptimized"},
                            "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}}]
        events = lab.events(good)
        assert "bios/bios_job:done" in events
        assert any(e.startswith("bios/bios_reboot:JID_") and e.endswith(":done") for e in events)
        discover = next(e for e in lab.journal(good) if e.stage == "discover" and e.event == "stage:ok")
        assert "2 difference(s) from the pins" in discover.detail["detail"]
        assert discover.detail["evidence"]["compliance"]["bios_diff"]["SysProfile"]["want"] == "PerfOptimized"
    sticky, failed = report["gpu-001-03"], report["gpu-001-04"]
    assert (sticky["status"], sticky["current"]) == ("quarantined", "bios") and "did not stick" in sticky["detail"]
    assert (failed["status"], failed["current"]) == ("quarantined", "bios") and "Unable to apply" in failed["detail"]
    quarantine = [e for e in lab.journal("gpu-001-04") if e.event == "stage:quarantined"][-1]
    logs = json.dumps(quarantine.__dict__, default=str)
    assert "PSU0003" in logs and "Unable to apply the BIOS configuration" in logs
