"""`maas.power: manual` end to end: MAAS cannot reach the BMCs, so every boot MAAS waits for is ours.

A new rack unknown to the lab MAAS, on a site that says `maas.power: manual`: the pxe stage
network-boots three nodes, the lab BMCs put those boots on the lab's boot network, the lab MAAS
enlists them (New, named by MAAS, no power type) and the stage renames each to its inventory name
(`PUT machines/{id}/`); the commission stage sends commissioning and boots them for it, the os
stage deploys and boots them for that; the two deployed nodes go on through hostkey, configure and
validate on light lab hosts (lab/hosts/light.py). One node's PXE network is then cut off from MAAS
(`pxe_unserved`): its commissioning boot never reaches MAAS, and MAAS fails the commissioning on
its own (lab-scaled) 20-minute deadline; the node is quarantined with MAAS's message and the next
step, booted once; requeued once its network is fixed, it is commissioned again with a boot of its own
and goes on like the others. Proven from the lab's side: the boot network's feed (one line per
network boot), MAAS's own event log ("PXE Request" per boot of a known machine, in MAAS's words
for the boot purpose), MAAS's op log (each operation accepted, then under way only after one boot
of ours; the rename; the deadline) and the BMC front's request log (no request from MAAS at all).
A second run repeats none of it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest
import yaml

from lab import faults as lab_faults
from lab.maas.service import lab_files
from lab.redfish.service import RedfishLabFiles
from tests.lab.conftest import LabSite

pytestmark = pytest.mark.lab
NODES = ("gpu-001-01", "gpu-001-02")
UNSERVED = "gpu-001-03"  # its commissioning boot never reaches MAAS
UNTOUCHED = ("gpu-001-04",)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def manual_site(make_lab_site: Callable[..., LabSite]) -> LabSite:
    lab = make_lab_site(racks=1, max_hosts=len(NODES) + 1, light_hosts=True)
    raw = yaml.safe_load(lab.site_file.read_text(encoding="utf-8"))
    raw["maas"]["power"] = "manual"
    lab.site_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return lab


def boots(lab: LabSite) -> Counter[str]:
    """Network boots per node, from the lab's boot network (written by the BMC front)."""
    feed = RedfishLabFiles.under(lab.lab_dir).netboots
    lines = feed.read_text(encoding="utf-8").splitlines() if feed.exists() else []
    return Counter(json.loads(line)["node"] for line in lines)


def bmc_requests(lab: LabSite) -> list[dict]:
    log = RedfishLabFiles.under(lab.lab_dir).requests_log
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def pxe_requests(lab: LabSite, system_id: str) -> list[str]:
    """MAAS's "PXE Request" events for the machine, oldest first, from the lab MAAS's saved state
    (written within half a second; the CLI has returned by then only if MAAS saw Deployed)."""
    state = json.loads(lab_files(lab.lab_dir)["state"].read_text(encoding="utf-8"))
    return [event[3] for event in state["machines"][system_id]["maas_events"] if event[1] == "PXE Request"]


def maas_ops(lab: LabSite, *hostnames: str) -> list[str]:
    """The lab MAAS's op log for the machine MAAS calls (or called) `hostnames`: operations, network
    boots, renames and deadlines."""
    lines = (lab.lab_dir / "logs" / "maas.log").read_text(encoding="utf-8").splitlines()
    return [line.split(f"{name}: ", 1)[1] for line in lines for name in hostnames if f" {name}: " in line
            and (" accepted: " in line or "network boot" in line or "PXE Request" in line or "power" in line
                 or "hostname changed" in line or "timed out" in line)]


def maas_name(lab: LabSite, host: str) -> str:
    """The name MAAS gave the machine at enlistment (journaled by the rename)."""
    return next(str(e.detail["maas_hostname"]) for e in lab.journal(host) if e.event == "rename:started")


def test_a_manual_power_site_enlists_renames_commissions_and_deploys_by_our_network_boots(
        make_lab_site: Callable[..., LabSite]) -> None:
    lab = manual_site(make_lab_site)
    enlisted = lab.cli("--nodes", ",".join((*NODES, UNSERVED)), "--until", "pxe", "--json")
    assert enlisted.returncode == 0, enlisted.stdout[-2000:] + enlisted.stderr[-3000:]
    lab_faults.write(lab.lab_dir, {UNSERVED: {"pxe_unserved": 1.0}})  # its PXE network loses MAAS's DHCP

    result = lab.cli("--nodes", ",".join((*NODES, UNSERVED)), "--until", "validate", "--json")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    report = {row["hostname"]: row for row in json.loads(result.stdout)["nodes"]}
    # Past os as on a real rack: the deployed node answers at its inventory address as MAAS's Ubuntu does
    # (a light lab host, started by the lab MAAS's deployed-hook under the machine's MAAS name: now ours).
    assert {host: report[host]["status"] for host in NODES} == {host: "done" for host in NODES}
    for host in NODES:
        assert {"hostkey", "configure", "validate"} <= {e.stage for e in lab.journal(host)}, report[host]

    # Three boots a node: enlistment, commissioning, deployment; one commissioning boot for the node MAAS
    # never heard from; none for the nodes not selected.
    assert boots(lab) == Counter({NODES[0]: 3, NODES[1]: 3, UNSERVED: 2})
    requests = bmc_requests(lab)
    assert not [e for e in requests if e["agent"] == "MAAS"], "MAAS's manual driver never touches a BMC"
    assert not [e for e in requests if e["node"] in UNTOUCHED and e["method"] != "GET"]

    for host in NODES:
        machine = lab.machine(host)
        assert (machine.hostname, machine.status_name, machine.power_type) == (host, "Deployed", "")
        started = [e.event.removesuffix(":started") for e in lab.journal(host) if e.event.endswith(":started")
                   and (e.event.startswith("boot:") or e.event.startswith("rename"))]
        assert started == ["boot:enlist", "rename", "boot:commission", "boot:deploy"]  # journaled before each
        # The enlistment boot came from a MAC MAAS did not know yet; then one boot per operation.
        wait_for(lambda sid=machine.system_id: len(pxe_requests(lab, sid)) == 2, 5.0, f"{host}'s PXE requests saved")
        assert pxe_requests(lab, machine.system_id) == ["commissioning", "installation"]  # MAAS's words
        # Each MAAS operation started by exactly one boot of ours, and MAAS never powered anything itself.
        petname = maas_name(lab, host)
        assert petname != host and petname.count("-") == 1  # MAAS named it at enlistment
        assert maas_ops(lab, petname, host) == [
            f"enlisted by network boot: New ({lab.site.nodes[host].pxe_mac.lower()})",
            f"hostname changed to {host} (by admin)",
            "commission accepted: New -> Commissioning (by admin)",
            "PXE Request (commissioning): Commissioning under way",
            "deploy accepted: Allocated -> Deploying (by admin)",
            "PXE Request (installation): Deploying under way",
        ]

    # The boot MAAS never saw: MAAS's deadline, its message, the next step, quarantined; booted once.
    machine = lab.machine(UNSERVED)
    deadline = "Node operation 'Commissioning' timed out after 20 minutes."
    assert (machine.hostname, machine.status_name, machine.status_message) == (
        UNSERVED, "Failed commissioning", deadline)
    assert report[UNSERVED]["status"] == "quarantined"
    state = lab.states()[UNSERVED]
    assert deadline in state.last_error and lab.site.nodes[UNSERVED].pxe_mac in state.last_error
    assert "DHCP" in state.last_error and "powers on" in state.last_error
    assert maas_ops(lab, maas_name(lab, UNSERVED), UNSERVED)[-2:] == [
        "commission accepted: New -> Commissioning (by admin)",
        f"Commissioning -> Failed commissioning ({deadline})",
    ]

    # Its PXE network fixed, a person requeues it: a new commissioning with a boot of its own, then on as the others.
    lab_faults.write(lab.lab_dir, {})
    retried = lab.cli("--nodes", UNSERVED, "--retry-quarantined", "--until", "validate", "--json")
    assert retried.returncode == 0, retried.stdout[-2000:] + retried.stderr[-3000:]
    assert (lab.machine(UNSERVED).status_name, boots(lab)[UNSERVED]) == ("Deployed", 4)
    assert [e.event.removesuffix(":started") for e in lab.journal(UNSERVED) if e.event.startswith("boot:")
            and e.event.endswith(":started")] == ["boot:enlist", "boot:commission", "boot:commission:2", "boot:deploy"]

    again = lab.cli("--nodes", ",".join((*NODES, UNSERVED)), "--until", "validate", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert boots(lab) == Counter({NODES[0]: 3, NODES[1]: 3, UNSERVED: 4}), "a completed boot is never repeated"
    assert [lab.machine(host).hostname for host in NODES] == list(NODES)  # renamed once, found by name
