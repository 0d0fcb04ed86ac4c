"""The BMC front calls the sushy-tools emulator in-process: a client sees what the emulator's own server answers.

Two labs of the same site, each with its own state directory: one BMC front (the emulator's app inside it)
and the emulator served on its own by werkzeug (`python -m lab.redfish.emulator`, what the front forwarded
to over HTTP until the emulator moved into it). The same requests go to both, in the same order (reads,
writes, refusals, bad credentials, query strings), and every answer the front passes through must match
the stand-alone emulator's in status, the headers the front forwards, and body bytes; the answers the front
rewrites (the system, the Systems collection) must match once the front's documented rewrites are applied.
"""

from __future__ import annotations

import base64
import datetime
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from fleet.site import Site
from lab.redfish.front import FORWARD_RESPONSE_HEADERS, LAB_MODEL
from lab.redfish.service import prepare, service, system_uuid
from lab.service import LabService, ReadyCheck
from lab.settings import load_lab_site
from lab.sitegen import SiteShape, write_site
from tests.lab.conftest import bmc_log, bmc_span, free_port_block, free_ports
from tests.lab.test_redfish_lab import running

pytestmark = pytest.mark.lab

PASSWORD = "lab-test-inprocess-5d1e"
NODE = "gpu-001-02"
SYSTEMS = "/redfish/v1/Systems"


@dataclass(frozen=True)
class Pair:
    """The front (HTTPS, the node's BMC address) and the stand-alone emulator (HTTP) of the same site."""

    site: Site
    front_lab: Path
    front_url: str
    emulator_url: str

    def both(self, method: str, path: str, *, auth: str | None = PASSWORD,
             **kwargs) -> tuple[requests.Response, requests.Response]:
        headers = dict(kwargs.pop("headers", {}))
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"root:{auth}".encode()).decode()
        ca = str(self.site.bmc_tls.ca_file)
        front = requests.request(method, self.front_url + path, headers=headers, verify=ca, timeout=10,
                                 allow_redirects=False, **kwargs)
        alone = requests.request(method, self.emulator_url + path, headers=headers, timeout=10,
                                 allow_redirects=False, **kwargs)
        return front, alone


def forwarded_headers(response: requests.Response) -> dict[str, str]:
    return {k: response.headers[k] for k in (*FORWARD_RESPONSE_HEADERS, "Location") if k in response.headers}


def assert_same(front: requests.Response, alone: requests.Response) -> None:
    if front.content != alone.content and b'"DateTime"' in alone.content:
        assert_same_but_clock(front, alone)
        return
    assert (front.status_code, forwarded_headers(front), front.content) == (
        alone.status_code, forwarded_headers(alone), alone.content)


def assert_same_but_clock(front: requests.Response, alone: requests.Response) -> None:
    """A Manager carries the emulator's wall clock to the second (sushy_tools/emulator/main.py, manager_resource:
    "DateTime": datetime.now()), so two answers a few milliseconds apart can straddle a second: the same answer
    but for DateTime, and the two clocks at most 2 s apart."""
    first, second = front.json(), alone.json()
    clocks = [datetime.datetime.fromisoformat(doc.pop("DateTime")) for doc in (first, second)]
    assert abs((clocks[0] - clocks[1]).total_seconds()) <= 2
    assert (front.status_code, forwarded_headers(front), first) == (alone.status_code, forwarded_headers(alone), second)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("redfish-inprocess")
    bmc_first = free_port_block(bmc_span(1))
    (sushy,) = free_ports(1, set(range(bmc_first, bmc_first + bmc_span(1))))
    labs = [root / "front", root / "alone"]
    for lab_dir in labs:
        lab_dir.mkdir()
        (lab_dir / "secrets.yml").write_text(yaml.safe_dump({"bmc_password": PASSWORD}))
        (lab_dir / "secrets.yml").chmod(0o600)
    site_file = write_site(root / "site", SiteShape(racks=1, bmc_first=bmc_first, sushy_port=sushy,
                                                    state_dir=str(labs[0]), max_hosts=0))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLEET_LAB_DIR", str(labs[0]))
        site = load_lab_site(site_file)
        for lab_dir in labs:  # a power change lands long after the test: both read the same power states
            prepare(site, lab_dir, power_delay_s=600.0)
        config = labs[1] / "redfish" / "emulator.conf"
        alone = LabService("emulator-alone", [sys.executable, "-m", "lab.redfish.emulator", "--config", str(config)],
                           ReadyCheck(url=f"http://127.0.0.1:{sushy}/redfish/v1/"))
        with running([*service(site, labs[0]), alone], labs[0]):
            yield Pair(site, labs[0], f"https://{site.nodes[NODE].bmc.address}", f"http://127.0.0.1:{sushy}")


def test_what_the_front_passes_through_is_byte_for_byte_the_emulators_own_answer(pair: Pair):
    sid = system_uuid(pair.site, NODE)
    since = time.time()
    sent = 0
    nics, _ = pair.both("GET", f"{SYSTEMS}/{sid}/EthernetInterfaces")
    managers, _ = pair.both("GET", "/redfish/v1/Managers")
    manager = managers.json()["Members"][0]["@odata.id"]
    nic = nics.json()["Members"][0]["@odata.id"]
    sent += 2
    for method, path, kwargs in [
        ("GET", "/redfish/v1/", {"auth": None}),  # the service root needs no credentials
        ("GET", "/redfish/v1/Chassis", {}),
        ("GET", f"{SYSTEMS}/{sid}/EthernetInterfaces", {}),
        ("GET", nic, {}),
        ("GET", manager, {}),
        ("GET", "/redfish/v1/Managers?$select=Id&only", {}),
        ("GET", f"{SYSTEMS}/{sid}/BIOS", {}),
        ("GET", f"{SYSTEMS}/{sid}/SecureBoot", {}),
        ("GET", "/redfish/v1/NoSuchThing", {}),
        ("DELETE", f"{SYSTEMS}/{sid}", {}),  # 405 with Allow
        ("GET", f"{SYSTEMS}/{sid}/EthernetInterfaces", {"auth": "wrong-password"}),  # 401, WWW-Authenticate
        ("GET", f"{SYSTEMS}/{sid}/EthernetInterfaces", {"auth": None}),
        ("PATCH", f"{SYSTEMS}/{sid}", {"json": {"Boot": {"BootSourceOverrideTarget": "Pxe",
                                                         "BootSourceOverrideEnabled": "Once"}}}),
        ("PATCH", f"{SYSTEMS}/{sid}", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("PATCH", f"{SYSTEMS}/{sid}", {"data": json.dumps({"Boot": {"BootSourceOverrideTarget": "Hdd"}})}),
        ("POST", f"{SYSTEMS}/{sid}/Actions/ComputerSystem.Reset", {"json": {"ResetType": "ForceOff"}}),
        ("POST", f"{SYSTEMS}/{sid}/Actions/ComputerSystem.Reset", {"json": {"ResetType": "PowerCycle"}}),
        ("POST", f"{SYSTEMS}/{sid}/Actions/ComputerSystem.Reset", {"json": {"ResetType": "On"}}),
        ("POST", f"{SYSTEMS}/{sid}/Actions/ComputerSystem.Reset", {"json": {}}),
    ]:
        front, alone = pair.both(method, path, **kwargs)
        assert_same(front, alone)
        sent += 1
    statuses = {e["status"] for e in bmc_log(pair.front_lab, NODE, since)}
    assert {200, 204, 401, 404, 405} <= statuses and any(s >= 400 and s not in (401, 404, 405) for s in statuses)
    log = bmc_log(pair.front_lab, NODE, since)
    assert len(log) == sent and all(e["forwarded"] and e["fault"] is None for e in log)
    assert [e["reset"] for e in log if "reset" in e] == ["ForceOff", "PowerCycle", "On", None]


def test_the_rewritten_answers_are_the_emulators_with_only_the_fronts_documented_changes(pair: Pair):
    sid = system_uuid(pair.site, NODE)
    front, alone = pair.both("GET", f"{SYSTEMS}/{sid}")
    assert (front.status_code, forwarded_headers(front)) == (alone.status_code, forwarded_headers(alone))
    system, stock = front.json(), alone.json()
    assert (system.pop("SKU"), system.pop("Model")) == (pair.site.nodes[NODE].service_tag, LAB_MODEL)
    assert system.pop("Bios") == {"@odata.id": f"{SYSTEMS}/{sid}/Bios"} and system.pop("BiosVersion")
    assert system == stock
    front, alone = pair.both("GET", SYSTEMS)
    members = [m for m in alone.json()["Members"] if m["@odata.id"] == f"{SYSTEMS}/{sid}"]
    assert front.json() == {**alone.json(), "Members": members, "Members@odata.count": 1}
    assert len(alone.json()["Members"]) == len(pair.site.nodes)
