"""`provision.py --rack N` against the lab, through the real CLI: bring-up, faults, crash and resume, locks, input.

Each test generates its own small site (tests/lab/conftest.py) and asserts the end state where it
lives: the state DB, the journal, MAAS (through fleet.maas), the JSON report and the exit code.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.maas import node_tags
from tests.lab.conftest import LabSite, bmc_log

pytestmark = pytest.mark.lab

RACK1 = ["gpu-001-01", "gpu-001-02", "gpu-001-03", "gpu-001-04"]
# The report's keys scripts rely on (more may be added; none of these may go).
REPORT_KEYS = {"site", "run_id", "until", "started", "finished", "nodes", "summary"}
NODE_KEYS = {"hostname", "status", "stage", "detail", "attempts", "counters", "seconds"}
MAX_DISCOVER_REQUESTS = 3  # Systems, the system, its EthernetInterfaces (expanded: the NIC comes with it)


def run_rack(lab: LabSite, tmp_path: Path, *args: str, name: str = "report.json") -> tuple[int, dict, str]:
    """Run `provision.py --rack 1 --until os ARGS --json-report`; (exit code, report, stderr)."""
    report = tmp_path / name
    result = lab.cli("--rack", "1", "--until", "os", "--json-report", str(report), *args)
    assert report.exists(), f"no report (exit {result.returncode}): {result.stderr[-2000:]}"
    return result.returncode, json.loads(report.read_text(encoding="utf-8")), result.stderr


def by_host(report: dict) -> dict[str, dict]:
    return {row["hostname"]: row for row in report["nodes"]}


def deploys_accepted(lab: LabSite, hostname: str) -> int:
    """Deployments the lab MAAS started for the node (its log has one line per accepted deploy)."""
    text = (lab.lab_dir / "logs" / "maas.log").read_text(encoding="utf-8")
    return text.count(f"{hostname}: deploy accepted")


MACHINE_OS = "fleet-lab-machine-os"  # the lab's stand-in for the commissioning OS powering itself off


def resets(lab: LabSite, hostname: str, *, maas: bool) -> list[str]:
    """The ResetTypes the BMC accepted from MAAS's power driver (User-Agent MAAS), or from us (any
    other client but the machine's own OS)."""
    return [e["reset"] for e in bmc_log(lab, hostname) if e.get("reset") and e["status"] < 300
            and e["agent"] != MACHINE_OS and (e["agent"] == "MAAS") == maas]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# -- a rack end to end ------------------------------------------------------------------------

def test_a_rack_reaches_os_deployed_and_every_record_agrees(lab_site: LabSite, tmp_path: Path) -> None:
    code, report, stderr = run_rack(lab_site, tmp_path)

    assert code == 0, stderr
    assert set(report) >= REPORT_KEYS
    assert report["until"] == "os" and report["site"] == "labtest"
    assert report["summary"] == {"done": 4}
    assert report["finished"] > report["started"]
    rows = by_host(report)
    assert sorted(rows) == RACK1
    states = lab_site.states()
    status = {row["hostname"]: row for row in lab_site.status_json("--rack", "1")["nodes"]}
    site = lab_site.site
    for host in RACK1:
        row = rows[host]
        assert set(row) >= NODE_KEYS
        assert (row["status"], row["stage"], row["detail"]) == ("done", "os", "")
        assert list(row["seconds"]) == ["discover", "bios", "pxe", "commission", "os"]
        counters = row["counters"]
        # Ours: discover's reads only (identity, plus the BIOS/firmware compliance read). MAAS powers the
        # machine (commissioning, deployment) itself.
        identity = counters["bmc_requests_discover"] - counters.get("bmc_requests_compliance", 0)
        assert counters["bmc_requests"] == counters["bmc_requests_discover"], counters
        assert identity <= MAX_DISCOVER_REQUESTS, counters
        assert resets(lab_site, host, maas=False) == []
        # MAAS's Redfish driver: a one-time PXE boot and power on for commissioning, again for deployment
        # (ForceOff first when the machine was still on), and the commissioning OS powered itself off.
        assert resets(lab_site, host, maas=True).count("On") == 2
        maas_patches = [e for e in bmc_log(lab_site, host) if e["agent"] == "MAAS" and e["method"] == "PATCH"]
        assert len(maas_patches) == 2 and all(e["status"] < 300 for e in maas_patches)
        assert [e.get("reset") for e in bmc_log(lab_site, host) if e["agent"] == MACHINE_OS][-1] == "ForceOff"
        assert (states[host].status, states[host].stage) == ("done", "os")
        assert (status[host]["status"], status[host]["stage"]) == ("done", "os")
        machine = lab_site.machine(host)
        assert machine.status_name == "Deployed"
        assert machine.distro_series == site.os.distro_series
        assert set(node_tags(site.nodes[host])) <= set(machine.tags)
        events = lab_site.events(host)
        assert not [e for e in events if e.startswith("pxe/network_boot")]
        assert events.index("commission/register:started") < events.index("commission/register:done")
        assert events.index("commission/register:done") < events.index("os/ensure_os:started")
        assert deploys_accepted(lab_site, host) == 1


def test_running_the_same_command_again_touches_no_done_node(lab_site: LabSite, tmp_path: Path) -> None:
    code, _first, stderr = run_rack(lab_site, tmp_path, name="first.json")
    assert code == 0, stderr
    journal_before = {host: lab_site.events(host) for host in RACK1}

    code, again, stderr = run_rack(lab_site, tmp_path, name="again.json")

    assert code == 0, stderr
    assert again["summary"] == {"done": 4}
    for host, row in by_host(again).items():
        assert row["counters"].get("bmc_requests", 0) == 0, row  # not a single BMC request: no power cycle
        assert row["counters"].get("bmc_polls", 0) == 0, row
        assert row["seconds"] == {}
        assert lab_site.events(host) == journal_before[host]  # nothing new was journaled for the node
        assert deploys_accepted(lab_site, host) == 1
        assert lab_site.machine(host).status_name == "Deployed"


# -- faults -----------------------------------------------------------------------------------

def test_faults_end_each_node_where_it_should_and_the_rest_finish(lab_site: LabSite, tmp_path: Path) -> None:
    flaky, locked_out, bad_install, healthy = RACK1
    code, report, stderr = run_rack(
        lab_site, tmp_path,
        "--fault", f"bmc_5xx:{flaky}:0.5",
        "--fault", f"bmc_bad_credentials:{locked_out}",
        "--fault", f"maas_failed_deployment:{bad_install}",
    )

    assert code == 1, stderr
    rows = by_host(report)
    states = lab_site.states()

    # BMC answering 500 half the time: our requests are retried to success, at the cost of more
    # requests. The same BMC answers MAAS's power driver the same way (the lab MAAS powers machines
    # through it, as real MAAS does), and its 5-6 request power-on rarely gets through MAAS's three
    # tries: then commissioning or the deployment fails and the node is quarantined at the stage that
    # met it, with MAAS's reason. Either end is right; a node stopped elsewhere or left in between is not.
    assert rows[flaky]["counters"]["bmc_requests"] > rows[healthy]["counters"]["bmc_requests"]
    flaky_deployed = states[flaky].status == "done"
    if flaky_deployed:
        assert states[flaky].stage == "os"
        assert lab_site.machine(flaky).status_name == "Deployed"
    else:
        assert (states[flaky].status, states[flaky].current) in (
            ("quarantined", "commission"), ("quarantined", "os")), states[flaky]
        assert "Power on for the node failed: Failed to complete power action: Redfish request failed with " \
               "response status code: 50" in states[flaky].last_error
        # ... and the BMC's own log shows MAAS's driver meeting the same 5xx answers
        assert any(entry["agent"] == "MAAS" and entry["fault"] == "bmc_5xx" for entry in bmc_log(lab_site, flaky))
    assert report["summary"] == ({"done": 2, "quarantined": 2} if flaky_deployed
                                 else {"done": 1, "quarantined": 3})

    # Wrong BMC credentials: stopped at discover, the message says 401 and names the node.
    locked = states[locked_out]
    assert (locked.status, locked.current, locked.stage) == ("quarantined", "discover", "")
    assert "401" in locked.last_error and locked_out in locked.last_error
    assert bmc_log(lab_site, locked_out) and not [e for e in bmc_log(lab_site, locked_out) if e["agent"] == "MAAS"]
    assert lab_site.maas().lookup(lab_site.site.nodes[locked_out]) is None  # never registered in MAAS

    # Every deployment fails: retried once (two deployments), then quarantined and MAAS Broken.
    failed = states[bad_install]
    assert (failed.status, failed.current, failed.stage) == ("quarantined", "os", "commission")
    assert "MAAS" in failed.last_error
    assert failed.evidence["deploy_attempts"] == 2
    assert deploys_accepted(lab_site, bad_install) == 2
    assert lab_site.machine(bad_install).status_name == "Broken"

    assert (states[healthy].status, states[healthy].stage) == ("done", "os")
    counted = rows[healthy]["counters"]
    assert counted["bmc_requests"] - counted.get("bmc_requests_compliance", 0) <= MAX_DISCOVER_REQUESTS
    status = {row["hostname"]: row for row in lab_site.status_json("--rack", "1")["nodes"]}
    assert {host: status[host]["status"] for host in RACK1} == {host: states[host].status for host in RACK1}
    assert status[locked_out]["detail"] == locked.last_error


# -- crash and resume -------------------------------------------------------------------------

def test_sigkill_mid_run_then_rerun_reaches_the_same_end_without_repeating_destructive_steps(
        make_lab_site: Callable[..., LabSite], tmp_path: Path) -> None:
    lab = make_lab_site(racks=2, time_factor=0.01)  # 6 s deployments: plenty of time to kill mid-way
    hosts = sorted(lab.site.nodes)
    run = lab.start("--rack", "1-2", "--until", "os")

    def some_node_past_commission() -> bool:
        assert run.poll() is None, "the run ended before it could be killed"
        return lab.state_db.exists() and any(s.stage == "commission" for s in lab.states().values())

    wait_for(some_node_past_commission, 60, "a node to complete commission")
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=10)
    killed_at = lab.states()
    assert any(state.status == "running" for state in killed_at.values())

    result = lab.cli("--rack", "1-2", "--until", "os", "--json-report", str(tmp_path / "resume.json"))

    assert result.returncode == 0, result.stderr
    states = lab.states()
    assert {host: (states[host].status, states[host].stage) for host in hosts} == {
        host: ("done", "os") for host in hosts}
    for host in hosts:
        events = lab.events(host)
        # A registration that completed is never sent again; one cut short may be (the stage re-reads MAAS).
        done_at = [i for i, event in enumerate(events) if event == "commission/register:done"]
        assert len(done_at) == 1, events
        assert "commission/register:started" not in events[done_at[0]:], events
        assert deploys_accepted(lab, host) == 1, f"{host} was deployed twice"
        assert lab.machine(host).status_name == "Deployed"
        assert "/lock_taken_over" in events, "the dead run's lock was not taken over"
    for host, before in killed_at.items():
        if before.stage == "commission":  # commissioned when killed: the resumed run did not redo it
            resumed = by_host(json.loads((tmp_path / "resume.json").read_text(encoding="utf-8")))[host]
            assert "commission" not in resumed["seconds"], resumed


# -- locks ------------------------------------------------------------------------------------

def test_a_second_run_on_the_same_rack_is_refused_and_names_the_holder(
        make_lab_site: Callable[..., LabSite]) -> None:
    lab = make_lab_site(racks=1, time_factor=0.01)
    first = lab.start("--rack", "1", "--until", "os")
    try:
        wait_for(lambda: _locked(lab), 60, "the first run to lock its nodes")

        second = lab.cli("--rack", "1", "--until", "os")

        assert second.returncode == 2, second.stderr
        assert "locked by another run" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "provision.py --rack 1 --until os" in second.stderr
        assert first.wait(timeout=90) == 0  # the holder was not disturbed
    finally:
        if first.poll() is None:
            first.kill()


def _locked(lab: LabSite) -> bool:
    import sqlite3

    if not lab.state_db.exists():
        return False
    with sqlite3.connect(lab.state_db, timeout=10) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM locks").fetchone()[0] == 4
        except sqlite3.OperationalError:  # the schema is still being created
            return False


# -- input and dry run ------------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_touches_nothing(lab_site: LabSite) -> None:
    result = lab_site.cli("--rack", "1", "--until", "os", "--dry-run")

    assert result.returncode == 0, result.stderr
    for host in RACK1:
        assert f"{host}: discover -> bios -> pxe -> commission -> os" in result.stdout
    assert not lab_site.state_dir.exists()
    assert not (lab_site.lab_dir / "pids").exists()  # the lab was not started either


@pytest.mark.parametrize(("args", "says"), [
    (["--rack", "7"], "7"),
    ([], "no nodes selected"),
    (["reimage"], "reimage needs the nodes named"),
    (["--rack", "1", "--until", "bogus"], "invalid choice"),
    (["--nodes", "gpu-999-01"], "gpu-999-01"),
    (["--rack", "1", "--bmc-requests", "0"], "--bmc-requests"),
])
def test_bad_input_exits_2_and_touches_nothing(lab_site: LabSite, args: list[str], says: str) -> None:
    result = lab_site.cli(*args)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert says in result.stderr
    assert not lab_site.state_dir.exists()
    assert not (lab_site.lab_dir / "pids").exists()


# -- reimage ----------------------------------------------------------------------------------

def test_reimage_asks_without_a_tty_then_releases_and_redeploys_one_node(
        make_lab_site: Callable[..., LabSite], tmp_path: Path) -> None:
    lab_site = make_lab_site(max_hosts=0)  # no lab host behind any node (one could land behind the target)
    code, _report, stderr = run_rack(lab_site, tmp_path)
    assert code == 0, stderr
    target, *others = RACK1

    # No lab host runs behind a node brought to `os` only: the in-use probe cannot reach it, and
    # what it cannot check counts as in use.
    unknown = lab_site.cli("reimage", target, "--yes", "--until", "os")
    assert unknown.returncode == 2
    assert "cannot reach the node to check it is idle" in unknown.stderr and "--force" in unknown.stderr
    refused = lab_site.cli("reimage", target, "--force", "--until", "os")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert "reimage_requested" not in [e.split("/")[-1] for e in lab_site.events(target)]

    done = lab_site.cli("reimage", target, "--yes", "--force", "--until", "os", "--json-report",
                        str(tmp_path / "reimage.json"))

    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "reimage.json").read_text(encoding="utf-8"))
    assert [row["hostname"] for row in report["nodes"]] == [target]
    assert list(report["nodes"][0]["seconds"]) == ["release", "discover", "bios", "pxe", "commission", "os"]
    state = lab_site.states()[target]
    assert (state.status, state.stage, state.generation) == ("done", "os", 2)
    events = lab_site.events(target)
    requested = events.index("/reimage_requested")
    assert requested < events.index("release/stage:ok")
    after = events[requested:]
    assert not [e for e in after if e.startswith("pxe/network_boot")]
    # MAAS powered it off on release and PXE-booted it again for the new deployment.
    assert resets(lab_site, target, maas=True)[-2:] == ["ForceOff", "On"]
    assert resets(lab_site, target, maas=False) == []
    assert deploys_accepted(lab_site, target) == 2
    assert lab_site.machine(target).status_name == "Deployed"
    for host in others:
        assert deploys_accepted(lab_site, host) == 1
        assert lab_site.states()[host].generation == 1


# -- scale ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sixteen_racks_reach_os_together(make_lab_site: Callable[..., LabSite], tmp_path: Path) -> None:
    lab = make_lab_site(racks=16)
    report_path = tmp_path / "report.json"
    started = time.monotonic()
    result = lab.cli("--rack", "1-16", "--until", "os", "--json-report", str(report_path), timeout_s=300)
    wall_s = time.monotonic() - started

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["summary"] == {"done": 64}
    assert all(row["counters"]["bmc_requests"] - row["counters"].get("bmc_requests_compliance", 0)
               <= MAX_DISCOVER_REQUESTS for row in report["nodes"])
    # 64 nodes at once, not rack after rack: far less than 16 one-rack runs (each >= one 3 s deployment).
    assert wall_s < 16 * 3.0, wall_s
