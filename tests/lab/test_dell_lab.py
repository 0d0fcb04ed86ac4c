"""fleet.dell against the lab's iDRAC layer, through the DMTF `redfish` library, asserting from the lab's own log.

One emulator + front for the module (2 racks, 8 nodes); each test uses its own node so state does
not leak; the lab's time factor makes a BIOS job run in 0.3 s and an update in about half a second.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.dell import bios, compliance, firmware, jobs, lc, logs
from fleet.errors import BmcError, FleetError
from fleet.redfish import BmcPool, BmcSettings, RetryPolicy
from fleet.site.dell import FirmwarePin
from lab import faults as lab_faults
from lab.redfish.dell import model
from lab.redfish.dell.routes import read_requests, read_state
from lab.redfish.service import RedfishLabFiles, prepare, service
from lab.settings import load_lab_site
from tests.lab.test_redfish_lab import bmc_lab_site, running

pytestmark = pytest.mark.lab

TIME_FACTOR = 0.002
FAST = BmcSettings(connect_timeout_s=2.0, read_timeout_s=5.0, poll_interval_s=0.02, power_timeout_s=10.0,
                   retry=RetryPolicy(attempts=3, base_delay_s=0.02, max_delay_s=0.1))
FACTORY_PINS = {"BootMode": "Uefi", "LogicalProc": "Enabled", "ProcVirtualization": "Enabled"}
FIRMWARE_PINS = [FirmwarePin("bios", "BIOS", "2.3.5", "bios-2.3.6.json"),
                 FirmwarePin("idrac", "Integrated Dell Remote Access Controller", "7.10.70.00", "idrac.json"),
                 FirmwarePin("hca", "ConnectX-7", "28.42.1000")]


class Lab:
    def __init__(self, site, lab_dir: Path, repo: Path, repo_url: str) -> None:
        self.site, self.lab_dir, self.repo, self.repo_url = site, lab_dir, repo, repo_url
        self.dell_dir = RedfishLabFiles.under(lab_dir).dell_dir

    def pool(self) -> BmcPool:
        return BmcPool(self.site, max_requests=8, settings=FAST, seed=5)

    def faults(self, faults: dict[str, dict[str, float]]) -> None:
        lab_faults.write(self.lab_dir, faults)

    def seen(self, node: str, method: str | None = None, needle: str = "") -> list[dict]:
        return [r for r in read_requests(self.dell_dir) if r["node"] == node
                and (method is None or r["method"] == method) and needle in r["path"]]

    def state(self, node: str) -> model.DellNode:
        found = read_state(self.dell_dir, node)
        assert found is not None
        return found

    def image(self, name: str, component_id: str, version: str) -> str:
        data = json.dumps({"ComponentID": component_id, "Version": version}).encode()
        (self.repo / name).write_bytes(data)
        return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("dell-lab")
    lab_dir, site_file = bmc_lab_site(root, time_factor=TIME_FACTOR)
    repo = root / "repo"
    repo.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(repo))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("FLEET_LAB_DIR", str(lab_dir))
            site = load_lab_site(site_file)
            prepare(site, lab_dir)
            with running(service(site, lab_dir), lab_dir):
                yield Lab(site, lab_dir, repo, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()


@pytest.fixture(autouse=True)
def no_faults(lab: Lab) -> Iterator[None]:
    lab.faults({})
    yield
    lab.faults({})


def reboot(bmc):
    def act(job: jobs.Job) -> bool:
        bmc.power("ForceRestart")
        return True
    return act


def test_a_compliant_node_is_read_in_three_requests_and_the_registry_once_per_bios_version(lab: Lab):
    pool, cache = lab.pool(), bios.RegistryCache()
    first, second = pool.client("gpu-001-01"), pool.client("gpu-001-02")
    for bmc in (first, second):
        bmc.system_path()  # discover found the system already
    before = (first.requests, second.requests)
    one = compliance.read(first, FACTORY_PINS, FIRMWARE_PINS, cache)
    two = compliance.read(second, FACTORY_PINS, FIRMWARE_PINS, cache)
    assert one.ok and two.ok, (one.differences(), two.differences())
    assert first.requests - before[0] == 3 and second.requests - before[1] == 2
    assert [r["path"] for r in lab.seen("gpu-001-02")] == [firmware.INVENTORY_EXPANDED,
                                                           f"{second.system_path()}/Bios"]


def test_differences_and_pins_the_registry_refuses_are_told_apart(lab: Lab):
    bmc = lab.pool().client("gpu-001-03")
    pins = {"SriovGlobalEnable": "Enabled", "SysProfile": "PerfOptimized", "LogicalProc": "Enabled",
            "SysProfle": "PerfOptimized", "AcPwrRcvryUserDelay": 5, "ProcCStates": "Maybe"}
    result = compliance.read(bmc, pins, [FirmwarePin("bios", "BIOS", "2.4.0", "x")], bios.RegistryCache())
    assert result.bios == {"SriovGlobalEnable": ("Disabled", "Enabled"),
                           "SysProfile": ("PerfPerWattOptimizedDapc", "PerfOptimized")}
    assert set(result.inventory_problems) == {"SysProfle", "AcPwrRcvryUserDelay", "ProcCStates"}
    assert [s.versions for s in result.firmware] == [("2.3.5",)] and not result.ok


def test_bios_job_patches_only_the_differences_waits_for_the_reset_then_applies(lab: Lab):
    bmc = lab.pool().client("gpu-001-04")
    system = bmc.system_path()
    pins = {**FACTORY_PINS, "SriovGlobalEnable": "Enabled", "SysProfile": "PerfOptimized"}
    changes = bios.diff(pins, bios.read(bmc, system).attributes)
    lc.wait_ready(bmc, timeout_s=5, poll_s=0.05)
    jid = bios.patch(bmc, system, bios.settings_body(changes, None))
    assert jobs.read_job(bmc, jid).state == "Scheduled"
    assert bios.read_pending(bmc, system) == {"SriovGlobalEnable": "Enabled", "SysProfile": "PerfOptimized"}
    job, verdict = jobs.follow(bmc, jid, deadline_s=10, poll_s=0.05, on_reboot=reboot(bmc))
    assert (verdict, job.state, job.message) == (jobs.Verdict.DONE, "Completed", "Job completed successfully.")
    assert bios.diff(pins, bios.read(bmc, system).attributes) == {}
    patches = lab.seen("gpu-001-04", "PATCH")
    assert [p["body"] for p in patches] == [{"Attributes": {"SriovGlobalEnable": "Enabled",
                                                            "SysProfile": "PerfOptimized"},
                                             "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}}]
    state = lab.state("gpu-001-04")
    assert state.pending == {} and state.resets == 1 and state.bios["SysProfile"] == "PerfOptimized"


def test_a_second_patch_is_refused_until_the_stuck_queue_is_cleared(lab: Lab):
    bmc = lab.pool().client("gpu-002-01")
    system = bmc.system_path()
    body = bios.settings_body({"MemTest": ("Disabled", "Enabled")}, None)
    stale = bios.patch(bmc, system, body)
    with pytest.raises(bios.PendingCommitted):
        bios.patch(bmc, system, bios.settings_body({"ErrPrompt": ("Enabled", "Disabled")}, None))
    assert [j.id for j in jobs.list_jobs(bmc) if j.active] == [stale]
    jobs.clear_queue(bmc)
    fresh = bios.patch(bmc, system, bios.settings_body({"ErrPrompt": ("Enabled", "Disabled")}, None))
    assert [j.id for j in jobs.list_jobs(bmc)] == [fresh]
    assert [r["body"] for r in lab.seen("gpu-002-01", "POST", "DeleteJobQueue")] == [{"JobID": "JID_CLEARALL"}]
    assert lab.state("gpu-002-01").pending == {"ErrPrompt": "Disabled"}


def test_a_failed_job_and_an_attribute_that_does_not_stick(lab: Lab):
    pool = lab.pool()
    lab.faults({"gpu-002-02": {"idrac_job_fails": 1.0}, "gpu-002-03": {"idrac_bios_not_sticky": 1.0}})
    failed, sticky = pool.client("gpu-002-02"), pool.client("gpu-002-03")
    change = {"ProcTurboMode": ("Enabled", "Disabled"), "OsWatchdogTimer": ("Disabled", "Enabled")}
    job, verdict = jobs.follow(failed, bios.patch(failed, failed.system_path(), bios.settings_body(change, None)),
                               deadline_s=10, poll_s=0.05, on_reboot=reboot(failed))
    assert verdict == jobs.Verdict.FAILED and "Unable to apply" in job.message
    job, verdict = jobs.follow(sticky, bios.patch(sticky, sticky.system_path(), bios.settings_body(change, None)),
                               deadline_s=10, poll_s=0.05, on_reboot=reboot(sticky))
    assert verdict == jobs.Verdict.DONE
    left = bios.diff({name: want for name, (_, want) in change.items()},
                     bios.read(sticky, sticky.system_path()).attributes)
    assert left == {"OsWatchdogTimer": ("Disabled", "Enabled")}
    assert lab.state("gpu-002-02").bios["ProcTurboMode"] == "Enabled"


def test_a_job_in_a_maintenance_window_ignores_resets_outside_it(lab: Lab):
    bmc = lab.pool().client("gpu-002-04")
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
    jid = bios.patch(bmc, bmc.system_path(), bios.settings_body({"MemTest": ("Disabled", "Enabled")},
                                                               bios.Window(start, 600)))
    bmc.power("ForceRestart")
    time.sleep(0.4)
    job = jobs.read_job(bmc, jid)
    assert job.state == "Scheduled" and lab.state("gpu-002-04").bios["MemTest"] == "Disabled"
    assert [r["body"]["@Redfish.SettingsApplyTime"]["ApplyTime"] for r in lab.seen("gpu-002-04", "PATCH")] == [
        "InMaintenanceWindowOnReset"]
    jobs.clear_queue(bmc)


def test_lifecycle_controller_not_ready_for_its_minutes_then_ready(lab: Lab):
    bmc = lab.pool().client("gpu-001-01")
    lab.faults({"gpu-001-01": {"idrac_lc_not_ready": 1.0}})
    with pytest.raises(BmcError, match="not ready"):
        lc.wait_ready(bmc, timeout_s=0.2, poll_s=0.05)
    with pytest.raises(BmcError) as refused:
        bios.patch(bmc, bmc.system_path(), bios.settings_body({"MemTest": ("Disabled", "Enabled")}, None))
    assert refused.value.status == 503
    status = lc.wait_ready(bmc, timeout_s=model.LC_NOT_READY_S * TIME_FACTOR + 3, poll_s=0.1)
    assert status.ready and lab.state("gpu-001-01").lc_fault_seen


def test_firmware_pulled_from_the_repository_waits_for_post_and_idrac_applies_at_once(lab: Lab):
    bmc = lab.pool().client("gpu-001-02")
    lab.image("bios-2.3.6.json", "159", "2.3.6")
    lab.image("idrac-7.20.json", "25227", "7.20.10.00")
    service = firmware.read_service(bmc)
    jid = firmware.simple_update(bmc, service, f"{lab.repo_url}/bios-2.3.6.json")
    _job, verdict = jobs.follow(bmc, jid, deadline_s=10, poll_s=0.05, on_reboot=reboot(bmc))
    assert verdict == jobs.Verdict.DONE
    jid = firmware.simple_update(bmc, service, f"{lab.repo_url}/idrac-7.20.json")
    _job, verdict = jobs.follow(bmc, jid, deadline_s=10, poll_s=0.05, on_reboot=None)
    assert verdict == jobs.Verdict.DONE
    versions = {item.name: item.version for item in firmware.read_inventory(bmc)}
    assert versions["BIOS"] == "2.3.6" and versions["Integrated Dell Remote Access Controller"] == "7.20.10.00"
    assert lab.state("gpu-001-02").resets == 1  # only the BIOS update asked for POST
    previous = lab.state("gpu-001-02").previous
    assert any(item["component_id"] == "159" and item["version"] == "2.3.5" for item in previous)


def test_firmware_pushed_over_http_then_installed(lab: Lab):
    bmc = lab.pool().client("gpu-001-03")
    data = json.dumps({"ComponentID": "105152", "Version": "22.80.1"}).encode()
    service = firmware.read_service(bmc)
    uri = firmware.push(bmc, service, data, "Network_Firmware_22.80.1.json")
    assert uri.endswith("/Available-105152-22.80.1")
    _job, verdict = jobs.follow(bmc, firmware.simple_update(bmc, service, uri), deadline_s=10, poll_s=0.05,
                               on_reboot=reboot(bmc))
    assert verdict == jobs.Verdict.DONE
    assert {i.name: i.version for i in firmware.read_inventory(bmc)}["Broadcom Adv. Dual 25Gb Ethernet"] == "22.80.1"
    posts = lab.seen("gpu-001-03", "POST", "/UpdateService/FirmwareInventory")
    assert [p["status"] for p in posts] == [201]


def test_a_firmware_update_that_never_finishes_times_out_and_a_bad_download_fails(lab: Lab):
    bmc = lab.pool().client("gpu-001-04")
    lab.faults({"gpu-001-04": {"idrac_firmware_timeout": 1.0}})
    lab.image("cpld.json", "27763", "1.0.9")
    service = firmware.read_service(bmc)
    with pytest.raises(jobs.JobTimeout) as late:
        jobs.follow(bmc, firmware.simple_update(bmc, service, f"{lab.repo_url}/cpld.json"), deadline_s=1.5,
                    poll_s=0.05, on_reboot=reboot(bmc))
    assert late.value.job.state == "Running"
    jobs.clear_queue(bmc, force=True)
    lab.faults({})
    lc.wait_ready(bmc, timeout_s=model.LC_RESTART_S * TIME_FACTOR + 3, poll_s=0.05)
    job, verdict = jobs.follow(bmc, firmware.simple_update(bmc, service, f"{lab.repo_url}/missing.json"),
                               deadline_s=5, poll_s=0.05)
    assert verdict == jobs.Verdict.FAILED and "Unable to transfer" in job.message


def test_sel_shows_the_failed_psu_and_memory_error_and_the_lc_log_pages(lab: Lab):
    bmc = lab.pool().client("gpu-002-01")
    lab.faults({"gpu-002-01": {"idrac_sel_psu": 1.0, "idrac_sel_memory": 1.0}})
    found = logs.read_evidence(bmc)
    assert {(e.log, e.message_id) for e in found if e.severity == "Critical"} >= {
        ("sel", "PSU0003"), ("sel", "MEM0001"), ("lclog", "PSU0003"), ("lclog", "MEM0001")}
    before = bmc.requests
    everything = logs.read(bmc, "lclog")
    assert len(everything) > 2 * model.PAGE_SIZE and bmc.requests - before >= 3
    assert [e.created_s for e in everything] == sorted((e.created_s for e in everything), reverse=True)
    recent = logs.read(bmc, "lclog", since_s=time.time() - 3600)
    assert 0 < len(recent) < len(everything)


def test_a_node_plan_runs_one_component_at_a_time_and_a_failed_update_stops_the_rest(lab: Lab, tmp_path: Path):
    from fleet.dell.update import ImageStore, apply_node
    from fleet.site.dell import FirmwareSettings
    from fleet.state import StateDB
    from fleet.workflow import NodeContext

    sha_bios = lab.image("bios-2.3.7.json", "159", "2.3.7")
    sha_nic = lab.image("nic-22.91.json", "105152", "22.91.5")
    pins = (FirmwarePin("bios", "BIOS", "2.3.7", "bios-2.3.7.json", sha_bios),
            FirmwarePin("nic", "Broadcom", "22.91.5", "nic-22.91.json", sha_nic))
    settings = FirmwareSettings(repository=lab.repo_url, components=pins)
    db = StateDB(tmp_path / "state.db")
    pool = lab.pool()

    def run(name: str):
        bmc = pool.client(name)
        plan = firmware.plan_node(name, pins, firmware.compliance(pins, firmware.read_inventory(bmc)))
        ctx = NodeContext(lab.site.nodes[name], db, 0, "firmware")
        return apply_node(bmc, plan, ctx, settings, ImageStore(settings), timeouts=lab.site.timeouts,
                          may_reboot=lambda: jobs.decide_reboot(has_os=False, selected=False))

    lab.faults({"gpu-002-03": {"idrac_job_fails": 1.0}})
    failed = run("gpu-002-03")
    assert failed.status == "quarantined" and "bios" in failed.detail and "other updates stopped" in failed.detail
    assert not lab.seen("gpu-002-03", "POST", "SimpleUpdate")[1:]  # the NIC update was never sent
    lab.faults({})
    again = run("gpu-002-03")  # the failed step was not completed: the next apply tries it again
    assert (again.status, again.applied) == ("done", ["bios 2.3.7", "nic 22.91.5"]), again.detail
    posts = [r["t"] for r in lab.seen("gpu-002-03", "POST", "SimpleUpdate")]
    last_bios_poll = max(r["t"] for r in lab.seen("gpu-002-03", "GET", "/Jobs/JID_") if r["t"] < posts[-1])
    assert len(posts) == 3 and last_bios_poll < posts[-1]  # the NIC job started after the BIOS job ended
    assert run("gpu-002-03").detail == "nothing to update through the iDRAC"

    bad = FirmwareSettings(repository=lab.repo_url, components=(FirmwarePin("bios", "BIOS", "2.9.9", "bios-2.3.7.json",
                                                                            "0" * 64),))
    with pytest.raises(FleetError, match="not the pinned one"):
        ImageStore(bad).get(firmware.plan_node("x", bad.components, [firmware.ComponentStatus(
            "bios", "2.9.9", ("2.3.7",), True, False)]).steps[0])


def test_push_transfer_uploads_the_checked_image_then_installs_it(lab: Lab, tmp_path: Path):
    from fleet.dell.update import ImageStore, apply_node
    from fleet.site.dell import FirmwareSettings
    from fleet.state import StateDB
    from fleet.workflow import NodeContext

    sha = lab.image("psu-00.1E.json", "104200", "00.1E.10")
    pins = (FirmwarePin("psu", "Power Supply", "00.1E.10", "psu-00.1E.json", sha),)
    settings = FirmwareSettings(repository=lab.repo_url, transfer="push", components=pins)
    bmc = lab.pool().client("gpu-002-02")
    plan = firmware.plan_node("gpu-002-02", pins, firmware.compliance(pins, firmware.read_inventory(bmc)))
    ctx = NodeContext(lab.site.nodes["gpu-002-02"], StateDB(tmp_path / "state.db"), 0, "firmware")
    outcome = apply_node(bmc, plan, ctx, settings, ImageStore(settings), timeouts=lab.site.timeouts,
                         may_reboot=lambda: jobs.decide_reboot(has_os=False, selected=False))
    assert outcome.status == "done", outcome.detail
    pushed = lab.seen("gpu-002-02", "POST", "/UpdateService/FirmwareInventory")
    installs = [r["body"] for r in lab.seen("gpu-002-02", "POST", "SimpleUpdate")]
    assert [p["status"] for p in pushed] == [201]
    assert installs == [{"ImageURI": "/redfish/v1/UpdateService/FirmwareInventory/Available-104200-00.1E.10",
                         "@Redfish.OperationApplyTime": "OnReset"}]
    assert {i["version"] for i in lab.state("gpu-002-02").firmware if i["component_id"] == "104200"} == {"00.1E.10"}
