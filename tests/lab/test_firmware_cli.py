"""`provision.py firmware plan|apply` and `logs` through the real CLI against the lab's iDRACs.

Images are served by a plain HTTP repository the test starts; the lab iDRACs download them
themselves (pull). Asserted from the lab's iDRAC state and request log and the state DB.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.redfish.dell.routes import read_requests, read_state
from lab.redfish.service import RedfishLabFiles
from tests.lab.conftest import LAB_TIME_FACTOR, LabSite

pytestmark = pytest.mark.lab

MAX_PARALLEL = 2


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "repo"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def pinned(make_lab_site, repository: tuple[Path, str]) -> LabSite:
    root, url = repository
    image = json.dumps({"ComponentID": "159", "Version": "2.3.6"}).encode()
    (root / "BIOS_2.3.6.json").write_bytes(image)
    lab = make_lab_site(racks=1, faults=[{"kind": "idrac_job_fails", "nodes": ["gpu-001-03"]},
                                         {"kind": "idrac_firmware_timeout", "nodes": ["gpu-001-04"]}])
    doc = yaml.safe_load(lab.site_file.read_text())
    doc["timeouts"]["firmware_job_s"] = 600 * LAB_TIME_FACTOR  # the stuck update gives up after 3 s
    doc["firmware"] = {"repository": url, "max_parallel": MAX_PARALLEL, "components": {
        "bios": {"version": "2.3.6", "image": "BIOS_2.3.6.json", "sha256": hashlib.sha256(image).hexdigest()},
        "idrac": {"version": "7.10.70.00"},
        "hca": {"match": "ConnectX-7", "version": "28.43.1014", "apply": "node"}}}
    lab.site_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return lab


def most_at_once(windows: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_plan_then_apply_updates_one_component_at_a_time_and_quarantines_failures(make_lab_site, repository):
    lab = pinned(make_lab_site, repository)
    plan = lab.cli("firmware", "plan", "--rack", "1", "--json")
    assert plan.returncode == 0, plan.stderr
    steps = {row["hostname"]: row["steps"] for row in json.loads(plan.stdout)["nodes"]}
    assert all([(s["component"], s["how"]) for s in node] == [("bios", "bmc"), ("hca", "node")]
               for node in steps.values())
    assert "mlxfwmanager" in steps["gpu-001-01"][1]["describe"] and "doca_ofed" in steps["gpu-001-01"][1]["tool"]

    applied = lab.cli("firmware", "apply", "--rack", "1", "--yes", "--json")
    assert applied.returncode == 1, applied.stderr
    rows = {row["hostname"]: row for row in json.loads(applied.stdout)["nodes"]}
    dell = RedfishLabFiles.under(lab.lab_dir).dell_dir
    for good in ("gpu-001-01", "gpu-001-02"):
        assert rows[good]["status"] == "done", rows[good]
        state = read_state(dell, good)
        assert next(i["version"] for i in state.firmware if i["component_id"] == "159") == "2.3.6"
        assert state.resets == 1  # no OS yet: the tool reset it so the BIOS update ran in POST
    failed, late = rows["gpu-001-03"], rows["gpu-001-04"]
    assert failed["status"] == "quarantined" and "Unable to verify Update Package signature" in failed["detail"]
    assert late["status"] == "quarantined" and f"did not finish within {600 * LAB_TIME_FACTOR:g} s" in late["detail"]
    states = lab.states()
    assert (states["gpu-001-03"].status, states["gpu-001-03"].current) == ("quarantined", "firmware")
    assert any("bmc_logs" in e.detail.get("evidence", {}) for e in lab.journal("gpu-001-03")
               if e.event == "firmware:quarantined")
    seen = read_requests(dell)
    updates = [r for r in seen if r["path"].endswith("UpdateService.SimpleUpdate")]
    assert sorted(r["node"] for r in updates) == ["gpu-001-01", "gpu-001-02", "gpu-001-03", "gpu-001-04"]
    windows = []
    for update in updates:
        polls = [r["t"] for r in seen if r["node"] == update["node"] and "/Jobs/JID_" in r["path"]]
        windows.append((update["t"], max(polls)))
    assert most_at_once(windows) <= MAX_PARALLEL

    again = lab.cli("firmware", "plan", "--nodes", "gpu-001-01", "--json")
    assert [s["component"] for s in json.loads(again.stdout)["nodes"][0]["steps"]] == ["hca"]

    logs = lab.cli("logs", "gpu-001-03", "--since", "1h", "--severe", "--json")
    assert logs.returncode == 0, logs.stderr
    entries = json.loads(logs.stdout)["entries"]
    assert entries and all(e["severity"] in ("Critical", "Warning") for e in entries)
    assert any("Unable to verify Update Package signature" in e["message"] for e in entries)


def test_logs_refuses_a_bad_since_and_touches_nothing(lab_site):
    result = lab_site.cli("logs", "gpu-001-01", "--since", "yesterday")
    assert result.returncode == 2 and "--since 'yesterday'" in result.stderr
    assert not lab_site.lab_dir.exists()
