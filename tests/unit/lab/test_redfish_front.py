"""lab.redfish: fault choice, the front's rewrites, the emulator's power delay, and what prepare writes."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import bcrypt
import pytest
import yaml

from lab.faultfile import FaultFile
from lab.redfish.emulator import LabFakeDriver, pending_state
from lab.redfish.front import FrontConfig, _as_idrac, _only_member, choose_fault, redfish_error
from lab.redfish.service import prepare, service, system_uuid
from lab.settings import load_lab_site
from lab.sitegen import SiteShape, write_site


@pytest.mark.parametrize(("rates", "draws", "expected"), [
    ({}, [0.0, 0.0, 0.0], None),
    ({"bmc_5xx": 1.0}, [0.9, 0.9, 0.99], "bmc_5xx"),
    ({"bmc_5xx": 0.3}, [0.0, 0.0, 0.3], None),
    ({"bmc_5xx": 0.3}, [0.0, 0.0, 0.29], "bmc_5xx"),
    ({"bmc_timeout": 0.5, "bmc_5xx": 1.0}, [0.9, 0.4, 0.0], "bmc_timeout"),
    ({"bmc_timeout": 0.5, "bmc_5xx": 1.0}, [0.9, 0.6, 0.0], "bmc_5xx"),
    ({"bmc_bad_credentials": 1.0, "bmc_timeout": 1.0}, [0.5, 0.5, 0.5], "bmc_bad_credentials"),
    ({"maas_failed_deployment": 1.0}, [0.0, 0.0, 0.0], None),
])
def test_each_fault_fires_with_its_own_probability_credentials_first(rates, draws, expected):
    assert choose_fault(rates, draws) == expected


@pytest.mark.parametrize(("current", "requested", "expected"), [
    ("Off", "On", ("Off", "On")),
    ("On", "On", None),
    ("Off", "ForceOn", ("Off", "On")),
    ("On", "ForceOff", ("On", "Off")),
    ("On", "GracefulShutdown", ("On", "Off")),
    ("Off", "ForceOff", None),
    ("On", "ForceRestart", ("Off", "ForceRestart")),
    ("On", "GracefulRestart", ("Off", "GracefulRestart")),
])
def test_emulator_power_changes_match_sushy_tools(current, requested, expected):
    assert pending_state(current, requested) == expected


def test_emulator_refuses_power_cycle_like_sushy_tools():
    from sushy_tools import error

    with pytest.raises(error.NotSupportedError):
        pending_state("On", "PowerCycle")


def test_emulator_power_change_lands_after_the_configured_delay(tmp_path: Path):
    config = {"SUSHY_EMULATOR_STATE_DIR": str(tmp_path), "FLEET_LAB_POWER_DELAY_MIN_S": 0.3,
              "FLEET_LAB_POWER_DELAY_MAX_S": 0.3, "FLEET_LAB_SEED": 1,
              "SUSHY_EMULATOR_FAKE_SYSTEMS": [{"uuid": "u1", "name": "n1", "power_state": "Off", "nics": []}]}
    driver = LabFakeDriver.initialize(config, logging.getLogger("test"))()
    posted = time.time()
    driver.set_power_state("u1", "On")
    assert driver.get_power_state("u1") == "Off"
    while driver.get_power_state("u1") == "Off":
        time.sleep(0.01)
    assert 0.3 <= time.time() - posted < 0.5


def test_systems_collection_keeps_only_the_bmcs_own_member():
    body = json.dumps({"Members@odata.count": 2, "Members": [
        {"@odata.id": "/redfish/v1/Systems/a"}, {"@odata.id": "/redfish/v1/Systems/b"}]}).encode()
    data = json.loads(_only_member(body, "/redfish/v1/Systems/b"))
    assert data["Members"] == [{"@odata.id": "/redfish/v1/Systems/b"}] and data["Members@odata.count"] == 1
    other = json.loads(_only_member(body, "/redfish/v1/Systems/a"))
    assert other["Members"] == [{"@odata.id": "/redfish/v1/Systems/a"}]
    assert json.loads(_only_member(bytes(body), "/redfish/v1/Systems/b")) == data  # an equal body from a new read


def test_system_gets_the_service_tag_as_sku_and_the_model_like_idrac():
    assert _as_idrac({"PowerState": "On"}, "L00101X") == {
        "PowerState": "On", "SKU": "L00101X", "Model": "PowerEdge XE9680"}


def test_errors_carry_extended_info_like_idrac():
    body = json.loads(redfish_error(503).body)
    info = body["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageId"].endswith("ServiceTemporarilyUnavailable") and "temporarily unavailable" in info["Message"]
    assert "WWW-Authenticate" in redfish_error(401).headers


def test_the_fault_file_is_reread_when_it_changes(tmp_path: Path):
    path = tmp_path / "faults.json"
    book = FaultFile(path)
    assert book.rates("gpu-001-01") == {}
    path.write_text(json.dumps({"gpu-001-01": {"bmc_5xx": 0.5}}))
    assert book.rates("gpu-001-01") == {"bmc_5xx": 0.5}
    path.write_text(json.dumps({"gpu-001-01": {"bmc_timeout": 1.0}}))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert book.rates("gpu-001-01") == {"bmc_timeout": 1.0}
    path.write_text("{half")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert book.rates("gpu-001-01") == {"bmc_timeout": 1.0}  # a torn write keeps the last good faults
    path.unlink()
    assert book.rates("gpu-001-01") == {}


@pytest.fixture
def small_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    (lab_dir / "secrets.yml").write_text(yaml.safe_dump({"bmc_password": "pw-for-prepare"}))
    (lab_dir / "secrets.yml").chmod(0o600)  # secret files must be private
    monkeypatch.setenv("FLEET_LAB_DIR", str(lab_dir))
    return load_lab_site(write_site(tmp_path / "site", SiteShape(racks=1, time_factor=0.01, sushy_port=18000))), lab_dir


def test_prepare_writes_low_round_bcrypt_htpasswd_config_and_lab_ca(small_site):
    site, lab_dir = small_site
    prepare(site, lab_dir)
    user, digest = (lab_dir / "redfish" / "htpasswd").read_text().strip().split(":", 1)
    assert user == "root" and digest.startswith("$2b$04$")
    assert bcrypt.checkpw(b"pw-for-prepare", digest.encode())
    settings: dict = {}
    exec((lab_dir / "redfish" / "emulator.conf").read_text(), settings)  # noqa: S102 - our own generated file
    assert settings["SUSHY_EMULATOR_LISTEN_PORT"] == 18000 and settings["SUSHY_EMULATOR_FAKE_DRIVER"] is True
    assert (settings["FLEET_LAB_POWER_DELAY_MIN_S"], settings["FLEET_LAB_POWER_DELAY_MAX_S"]) == pytest.approx(
        (0.01, 0.11))
    systems = {s["name"]: s for s in settings["SUSHY_EMULATOR_FAKE_SYSTEMS"]}
    node = site.nodes["gpu-001-02"]
    assert systems[node.hostname]["uuid"] == system_uuid(site, node.hostname)
    assert systems[node.hostname]["nics"] == [{"mac": node.pxe_mac, "ip": node.address}]
    front = FrontConfig.load(lab_dir / "redfish" / "front.json")
    assert [(n.hostname, n.port, n.service_tag) for n in front.nodes][1] == (
        "gpu-001-02", int(node.bmc.address.rsplit(":", 1)[1]), node.service_tag)
    assert Path(front.cert_file).is_file() and site.bmc_tls.ca_file == lab_dir / "tls" / "ca.pem"
    assert site.bmc_tls.ca_file.is_file()


def test_prepare_with_a_known_delay_pins_both_bounds(small_site):
    site, lab_dir = small_site
    prepare(site, lab_dir, power_delay_s=2.5)
    settings: dict = {}
    exec((lab_dir / "redfish" / "emulator.conf").read_text(), settings)  # noqa: S102 - our own generated file
    assert (settings["FLEET_LAB_POWER_DELAY_MIN_S"], settings["FLEET_LAB_POWER_DELAY_MAX_S"]) == (2.5, 2.5)


def test_service_is_the_front_alone_ready_on_its_last_bmc_address(small_site):
    site, lab_dir = small_site
    prepare(site, lab_dir)
    (front,) = service(site, lab_dir)
    last = list(site.nodes.values())[-1].bmc.address
    assert f"{front.ready.host}:{front.ready.port}" == last
    assert front.argv[-1].endswith("front.json")
    config = FrontConfig.load(Path(front.argv[-1]))
    assert config.emulator_config == str(lab_dir / "redfish" / "emulator.conf")


def test_reads_run_the_emulator_on_the_event_loop_and_writes_on_a_worker_thread(tmp_path: Path):
    import asyncio
    import threading

    from aiohttp.test_utils import make_mocked_request

    from lab.redfish.front import Front, FrontNode

    threads: dict[str, str] = {}

    def app(environ, start_response):  # a WSGI app that notes where each method ran
        threads[environ["REQUEST_METHOD"]] = threading.current_thread().name
        start_response("200 OK", [("Content-Type", "application/json"), ("ETag", '"1"')])
        return [b'{"ok": true}']

    node = FrontNode("gpu-001-01", "127.0.0.1", 18001, "sys-1", "TAG0001")
    config = FrontConfig(emulator_config="", faults_file=str(tmp_path / "faults.json"), cert_file="", key_file="",
                         seed=0, timeout_hold_s=1.0, nodes=(node,))

    async def forward() -> list[tuple[int, dict[str, str], bytes]]:
        front = Front(config, app)
        try:
            return [await front._forward(make_mocked_request(method, "/redfish/v1/Systems/sys-1",
                                                             headers={"Host": "127.0.0.1:18001"}))
                    for method in ("GET", "PATCH")]
        finally:
            front._threads.shutdown(wait=True)

    answers = asyncio.run(forward())
    assert answers == [(200, {"Content-Type": "application/json", "ETag": '"1"'}, b'{"ok": true}')] * 2
    assert threads["GET"] == "MainThread" and threads["PATCH"].startswith("emulator")


def test_systems_collection_is_parsed_once_per_body_and_answers_as_before():
    from lab.redfish import front

    ids = [f"/redfish/v1/Systems/{i:04d}" for i in range(1280)]
    body = json.dumps({"@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                       "Members": [{"@odata.id": i} for i in ids], "Members@odata.count": len(ids),
                       "Name": "Computer System Collection"}).encode()
    front._collection.cache_clear()
    for member in (ids[0], ids[700], "/redfish/v1/Systems/gone"):
        before = json.loads(body)  # what every BMC answered before: the collection filtered in place
        before["Members"] = [m for m in before["Members"] if m["@odata.id"] == member]
        before["Members@odata.count"] = len(before["Members"])
        assert _only_member(body, member) == json.dumps(before).encode()
    assert front._collection.cache_info().misses == 1
