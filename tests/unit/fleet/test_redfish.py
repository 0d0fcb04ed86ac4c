"""fleet.redfish: the pure decisions (tables) and the retry/concurrency behaviour of Bmc on a fake transport."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from redfish.rest.v1 import RetriesExhaustedError

from fleet.errors import BmcError
from fleet.redfish import (
    BmcPool,
    BmcSettings,
    PendingReset,
    PlanError,
    RetryPolicy,
    Step,
    classify,
    failure_kind,
    normalize_mac,
    parse_system,
    plan_network_boot,
    plan_power,
    request_timeouts,
    reset_seen,
    service_message,
)
from fleet.site import Site, load_site
from lab.sitegen import SiteShape, write_site

IDRAC_RESETS = ("On", "ForceOff", "ForceRestart", "GracefulRestart", "GracefulShutdown", "PushPowerButton", "Nmi",
                "PowerCycle")
OLD_IDRAC_RESETS = ("On", "ForceOff", "GracefulShutdown", "PushPowerButton", "Nmi")
SUSHY_RESETS = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn")
PASSWORD = "unit-test-secret-7f3a"

R = lambda v: Step("reset", v)  # noqa: E731 - table shorthand
W = lambda v: Step("wait", v)  # noqa: E731
B = lambda v: Step("boot_once", v)  # noqa: E731


@pytest.mark.parametrize(("action", "state", "allowable", "expected"), [
    ("On", "Off", IDRAC_RESETS, (R("On"),)),
    ("On", "On", IDRAC_RESETS, ()),
    ("On", "PoweringOn", IDRAC_RESETS, (W("On"),)),
    ("On", "PoweringOff", IDRAC_RESETS, (W("Off"), R("On"))),
    ("ForceOff", "On", IDRAC_RESETS, (R("ForceOff"),)),
    ("ForceOff", "Off", IDRAC_RESETS, ()),
    ("ForceOff", "PoweringOn", IDRAC_RESETS, (W("On"), R("ForceOff"))),
    ("GracefulShutdown", "On", IDRAC_RESETS, (R("GracefulShutdown"),)),
    ("GracefulShutdown", "PoweringOff", IDRAC_RESETS, (W("Off"),)),
    ("PowerCycle", "On", IDRAC_RESETS, (R("PowerCycle"),)),
    ("PowerCycle", "On", SUSHY_RESETS, (R("ForceRestart"),)),
    ("PowerCycle", "On", OLD_IDRAC_RESETS, (R("ForceOff"), W("Off"), R("On"))),
    ("PowerCycle", "Off", IDRAC_RESETS, (R("On"),)),
    ("ForceRestart", "On", IDRAC_RESETS, (R("ForceRestart"),)),
    ("ForceRestart", "On", ("On", "ForceOff", "PowerCycle"), (R("PowerCycle"),)),
    ("ForceRestart", "Off", SUSHY_RESETS, (R("On"),)),
    ("PowerCycle", "PoweringOn", SUSHY_RESETS, (W("On"), R("ForceRestart"))),
    ("PowerCycle", "On", (), (R("PowerCycle"),)),
])
def test_plan_power_picks_resets_the_bmc_offers_from_the_observed_state(action, state, allowable, expected):
    assert plan_power(action, state, allowable) == expected


@pytest.mark.parametrize(("action", "state", "allowable", "says"), [
    ("Reboot", "On", IDRAC_RESETS, "unknown power action"),
    ("On", "Paused", IDRAC_RESETS, "neither On nor Off"),
    ("On", "None", IDRAC_RESETS, "neither On nor Off"),
    ("GracefulShutdown", "On", ("On", "ForceOff"), "does not offer reset type 'GracefulShutdown'"),
    ("PowerCycle", "On", ("On",), "does not offer reset type 'ForceOff'"),
])
def test_plan_power_refuses_what_cannot_be_done(action, state, allowable, says):
    with pytest.raises(PlanError, match=says):
        plan_power(action, state, allowable)


@pytest.mark.parametrize(("target", "state", "resets", "targets", "expected"), [
    ("Pxe", "Off", SUSHY_RESETS, ("Pxe", "Cd", "Hdd", "UefiHttp"), (B("Pxe"), R("On"))),
    ("Pxe", "On", SUSHY_RESETS, ("Pxe", "Hdd"), (B("Pxe"), R("ForceRestart"))),
    ("UefiHttp", "On", IDRAC_RESETS, (), (B("UefiHttp"), R("PowerCycle"))),
    ("Pxe", "PoweringOff", IDRAC_RESETS, ("Pxe",), (B("Pxe"), W("Off"), R("On"))),
])
def test_network_boot_arms_the_override_before_starting_the_server(target, state, resets, targets, expected):
    assert plan_network_boot(target, state, resets, targets) == expected


@pytest.mark.parametrize(("target", "targets", "says"), [
    ("Hdd", (), "not a network boot target"),
    ("UefiHttp", ("Pxe", "Hdd"), "does not offer boot target 'UefiHttp'"),
])
def test_network_boot_refuses_targets_that_are_not_network_or_not_offered(target, targets, says):
    with pytest.raises(PlanError, match=says):
        plan_network_boot(target, "Off", IDRAC_RESETS, targets)


@pytest.mark.parametrize(("status", "failure", "verdict"), [
    (200, None, "ok"), (204, None, "ok"), (307, None, "ok"),
    (400, None, "fail"), (401, None, "fail"), (404, None, "fail"), (409, None, "fail"), (429, None, "fail"),
    (500, None, "retry"), (502, None, "retry"), (503, None, "retry"),
    (None, "connection", "retry"), (None, "timeout", "retry"), (None, "tls", "fail"), (None, "other", "fail"),
])
def test_only_5xx_connection_errors_and_timeouts_are_retried(status, failure, verdict):
    assert classify(status, failure) == verdict


@pytest.mark.parametrize(("exc", "kind"), [
    (requests.exceptions.SSLError("bad cert"), "tls"),
    (requests.exceptions.ReadTimeout("slow"), "timeout"),
    (requests.exceptions.ConnectTimeout("slow connect"), "timeout"),
    (requests.exceptions.ConnectionError("refused"), "connection"),
    (ValueError("odd"), "other"),
    (None, "other"),
])
def test_failure_kind_names_what_went_wrong_below_http(exc, kind):
    assert failure_kind(exc) == kind


@pytest.mark.parametrize(("retry", "draw", "expected"), [
    (1, 0.0, 0.25), (1, 0.999999, 0.5), (2, 0.0, 0.5), (2, 0.5, 0.75), (3, 0.0, 1.0),
    (5, 0.0, 4.0), (6, 0.0, 4.0), (10, 0.999999, 8.0),
])
def test_backoff_doubles_is_capped_and_keeps_half_fixed(retry, draw, expected):
    assert RetryPolicy(base_delay_s=0.5, max_delay_s=8.0).delay_s(retry, draw) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("body", "expected"), [
    ({"error": {"message": "general", "@Message.ExtendedInfo": [{"Message": "Server is already powered ON."}]}},
     "Server is already powered ON."),
    ({"error": {"message": "general", "@Message.ExtendedInfo": [{"Message": "a."}, {"Message": "b."}]}}, "a. b."),
    ({"error": {"message": "Incorrect username or password", "@Message.ExtendedInfo": [{"MessageId": "x"}]}},
     "Incorrect username or password"),
    ({}, None),
])
def test_service_message_prefers_extended_info(body, expected):
    assert service_message(body) == expected


@pytest.mark.parametrize(("mac", "expected"), [
    ("02:4C:00:01:01:00", "02:4c:00:01:01:00"), ("02-4c-00-01-01-00", "02:4c:00:01:01:00"),
    ("024c.0001.0100", "02:4c:00:01:01:00"), ("bogus", "bogus"),
])
def test_normalize_mac(mac, expected):
    assert normalize_mac(mac) == expected


def test_parse_system_reads_service_tag_from_sku_then_serial_and_the_armed_override():
    idrac = {"PowerState": "On", "SKU": "ABC1234", "SerialNumber": "CN7016", "Boot": {
        "BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideTarget": "Pxe",
        "BootSourceOverrideTarget@Redfish.AllowableValues": ["None", "Pxe", "Hdd"]},
        "Actions": {"#ComputerSystem.Reset": {"ResetType@Redfish.AllowableValues": list(IDRAC_RESETS)}}}
    info = parse_system(idrac, ("02:4C:00:01:01:00", "02:4c:00:01:01:00"))
    assert (info.power_state, info.service_tag, info.macs, info.boot_once_target) == (
        "On", "ABC1234", ("02:4c:00:01:01:00",), "Pxe")
    assert info.reset_types == IDRAC_RESETS and info.boot_targets == ("None", "Pxe", "Hdd")
    disabled = parse_system({"SerialNumber": "CN7016", "Boot": {"BootSourceOverrideEnabled": "Disabled",
                                                                "BootSourceOverrideTarget": "Pxe"}})
    assert (disabled.service_tag, disabled.boot_once_target, disabled.power_state) == ("CN7016", None, "Unknown")


# ---------------------------------------------------------------- Bmc on a fake transport


class FakeResponse:
    def __init__(self, status: int, body: dict | None = None) -> None:
        self.status = status
        self.dict = body or {}

    def getheaders(self) -> dict[str, str]:
        return {}


SYSTEM_PATH = "/redfish/v1/Systems/System.Embedded.1"


def system_body(power: str = "Off") -> dict:
    return {"PowerState": power, "SKU": "L00101X",
            "EthernetInterfaces": {"@odata.id": f"{SYSTEM_PATH}/EthernetInterfaces"},
            "Actions": {"#ComputerSystem.Reset": {"target": f"{SYSTEM_PATH}/Actions/ComputerSystem.Reset",
                                                  "ResetType@Redfish.AllowableValues": list(IDRAC_RESETS)}}}


class FakeBmcService:
    """A scripted iDRAC: answers by path; `script` queues failures (status or exception) before the answer."""

    def __init__(self, power: str = "Off") -> None:
        self.power = power
        self.script: list[Any] = []
        self.calls: list[tuple[str, str, Any]] = []
        self.timeouts: list[Any] = []  # each request's (connect, read) timeout, in order
        self.authorizations: list[str] = []
        self.ca_files: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_s = 0.0
        self.expands = True  # answers $expand on collections, as iDRAC 9 does
        self._lock = threading.Lock()

    def factory(self, base_url: str, authorization: str, ca_file: str | None) -> FakeBmcService:
        self.authorizations.append(authorization)
        self.ca_files.append(ca_file)
        return self

    def _answer(self, method: str, path: str, body: Any) -> FakeResponse:
        with self._lock:
            self.calls.append((method, path, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            step = self.script.pop(0) if self.script else None
        try:
            time.sleep(self.hold_s)
            if isinstance(step, BaseException):
                raise RetriesExhaustedError() from step
            if isinstance(step, FakeResponse):
                return step
            if path == "/redfish/v1/Systems":
                return FakeResponse(200, {"Members": [{"@odata.id": SYSTEM_PATH}]})
            if path == SYSTEM_PATH and method == "GET":
                return FakeResponse(200, system_body(self.power))
            if path.split("?")[0].endswith("/EthernetInterfaces"):
                if self.expands and "?$expand=*" in path:  # iDRAC: the members' resources in place of links
                    return FakeResponse(200, {"Members": [{"@odata.id": f"{SYSTEM_PATH}/EthernetInterfaces/NIC.1",
                                                           "MACAddress": "02:4C:00:01:01:00"}]})
                return FakeResponse(200, {"Members": [{"@odata.id": f"{SYSTEM_PATH}/EthernetInterfaces/NIC.1"}]})
            if path.endswith("/NIC.1"):
                return FakeResponse(200, {"MACAddress": "02:4C:00:01:01:00"})
            return FakeResponse(204)
        finally:
            with self._lock:
                self.in_flight -= 1

    def get(self, path: str, *, timeout: Any = None, max_retry: int | None = None) -> FakeResponse:
        assert max_retry == 0, "the library's own retry loop must stay off"
        self.timeouts.append(timeout)
        return self._answer("GET", path, None)

    def post(self, path: str, *, body: Any = None, timeout: Any = None, max_retry: int | None = None) -> FakeResponse:
        assert max_retry == 0
        self.timeouts.append(timeout)
        return self._answer("POST", path, body)

    def patch(self, path: str, *, body: Any = None, timeout: Any = None, max_retry: int | None = None) -> FakeResponse:
        assert max_retry == 0
        self.timeouts.append(timeout)
        return self._answer("PATCH", path, body)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    (lab_dir / "secrets.yml").write_text(f"bmc_password: {PASSWORD}\n")
    (lab_dir / "secrets.yml").chmod(0o600)  # secret files must be private
    monkeypatch.setenv("FLEET_LAB_DIR", str(lab_dir))
    return load_site(write_site(tmp_path / "site", SiteShape(racks=2)))


def make_pool(site: Site, fake: FakeBmcService, sleeps: list[float] | None = None, **kwargs: Any) -> BmcPool:
    record = sleeps if sleeps is not None else []
    return BmcPool(site, max_requests=kwargs.pop("max_requests", 4), client_factory=fake.factory,
                   sleep=record.append, seed=1, settings=BmcSettings(poll_interval_s=0.0, **kwargs))


def test_5xx_is_retried_with_growing_backoff_then_succeeds(site: Site):
    fake = FakeBmcService()
    fake.script = [FakeResponse(503), FakeResponse(500), FakeResponse(503)]
    sleeps: list[float] = []
    info = make_pool(site, fake, sleeps).client("gpu-001-01").read_system()
    assert info.service_tag == "L00101X" and info.macs == ("02:4c:00:01:01:00",)
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]
    assert [c[1] for c in fake.calls[:4]] == ["/redfish/v1/Systems"] * 4


def test_the_nics_come_in_one_expanded_read_or_one_read_each_where_expand_is_ignored(site: Site):
    fake = FakeBmcService()
    info = make_pool(site, fake).client("gpu-001-01").read_system()
    assert info.macs == ("02:4c:00:01:01:00",)
    assert [c[1] for c in fake.calls] == ["/redfish/v1/Systems", SYSTEM_PATH,
                                         f"{SYSTEM_PATH}/EthernetInterfaces?$expand=*($levels=1)"]
    plain = FakeBmcService()
    plain.expands = False  # a service that ignores $expand lists links only
    assert make_pool(site, plain).client("gpu-001-01").read_system().macs == ("02:4c:00:01:01:00",)
    assert [c[1] for c in plain.calls][-1] == f"{SYSTEM_PATH}/EthernetInterfaces/NIC.1"


def test_4xx_is_not_retried_and_carries_the_bmcs_message(site: Site):
    fake = FakeBmcService()
    fake.script = [FakeResponse(409, {"error": {"@Message.ExtendedInfo": [{"Message": "Server is busy with a job."}]}})]
    sleeps: list[float] = []
    bmc = make_pool(site, fake, sleeps).client("gpu-001-01")
    with pytest.raises(BmcError) as caught:
        bmc.read_system()
    err = caught.value
    assert (err.status, err.node, sleeps, bmc.requests) == (409, "gpu-001-01", [], 1)
    assert err.service_message == "Server is busy with a job."
    assert err.endpoint == "GET https://127.0.0.1:20011/redfish/v1/Systems"


def test_timeouts_are_retried_until_the_policy_gives_up(site: Site):
    fake = FakeBmcService()
    fake.script = [requests.exceptions.ReadTimeout("read timed out")] * 10
    bmc = make_pool(site, fake, retry=RetryPolicy(attempts=3)).client("gpu-001-01")
    with pytest.raises(BmcError, match="did not answer in time after 3 attempts") as caught:
        bmc.read_system()
    assert caught.value.status == "timeout"
    assert bmc.counts().requests == 3 and bmc.counts().retries == 2


def test_tls_failures_are_not_retried(site: Site):
    fake = FakeBmcService()
    fake.script = [requests.exceptions.SSLError("certificate verify failed")]
    bmc = make_pool(site, fake).client("gpu-001-01")
    with pytest.raises(BmcError, match="TLS certificate was not accepted") as caught:
        bmc.read_system()
    assert "bmc_tls.ca_file" in str(caught.value) and bmc.requests == 1


def test_power_cycle_of_a_running_server_is_one_reset_and_polling_is_counted_apart(site: Site):
    fake = PowerModel(power="On")  # defined below: PowerState follows the reset (Off, then On)
    bmc = make_pool(site, fake).client("gpu-001-01")
    assert bmc.power("PowerCycle") == (R("PowerCycle"),)
    assert fake.calls[-1] == ("POST", f"{SYSTEM_PATH}/Actions/ComputerSystem.Reset", {"ResetType": "PowerCycle"})
    bmc.wait_power("On", timeout_s=1)
    assert (bmc.requests, bmc.polls) == (3, 2)


def test_network_boot_is_at_most_four_requests_on_first_contact(site: Site):
    fake = FakeBmcService(power="On")
    bmc = make_pool(site, fake).client("gpu-001-01")
    bmc.network_boot("Pxe")
    assert [(m, p.rsplit("/", 1)[-1]) for m, p, _ in fake.calls] == [
        ("GET", "Systems"), ("GET", "System.Embedded.1"), ("PATCH", "System.Embedded.1"),
        ("POST", "ComputerSystem.Reset")]
    assert fake.calls[2][2] == {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}


def test_wait_power_gives_up_at_the_deadline_with_the_last_state(site: Site):
    fake = FakeBmcService(power="Off")
    pool = BmcPool(site, max_requests=2, client_factory=fake.factory, sleep=lambda s: time.sleep(0.01),
                   settings=BmcSettings(poll_interval_s=0.01))
    bmc = pool.client("gpu-001-01")
    with pytest.raises(BmcError, match=r"did not reach power state On within 0\.05 s") as caught:
        bmc.wait_power("On", timeout_s=0.05)
    assert caught.value.status == "last seen Off" and bmc.polls >= 2 and bmc.requests == 1


def test_one_request_at_a_time_per_bmc_and_a_fleet_wide_cap(site: Site):
    shared = {"in_flight": 0, "max": 0}
    lock = threading.Lock()

    class Counting(FakeBmcService):
        def _answer(self, method: str, path: str, body: Any) -> FakeResponse:
            with lock:
                shared["in_flight"] += 1
                shared["max"] = max(shared["max"], shared["in_flight"])
            try:
                return super()._answer(method, path, body)
            finally:
                with lock:
                    shared["in_flight"] -= 1

    fakes = {name: Counting() for name in site.nodes}
    for fake in fakes.values():
        fake.hold_s = 0.005
    pool = BmcPool(site, max_requests=3, client_factory=lambda url, auth, ca: fakes[_name(site, url)],
                   settings=BmcSettings(poll_interval_s=0.0))
    threads = [threading.Thread(target=pool.client(name).read_system) for name in site.nodes for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(f.max_in_flight for f in fakes.values()) == 1
    assert shared["max"] == 3
    # Systems is looked up once per BMC, then each read is the system + the NIC collection, expanded
    assert {name: c.requests for name, c in pool.counts().items()} == {name: 1 + 3 * 2 for name in site.nodes}


def _name(site: Site, base_url: str) -> str:
    return next(n.hostname for n in site.nodes.values() if base_url.endswith(n.bmc.address))


def test_credentials_come_from_the_inventory_and_never_reach_logs_or_errors(site: Site, caplog):
    fake = FakeBmcService()
    fake.script = [FakeResponse(503), FakeResponse(401, {"error": {"message": "Incorrect username or password"}})]
    caplog.set_level(logging.DEBUG)
    bmc = make_pool(site, fake).client("gpu-001-01")
    with pytest.raises(BmcError) as caught:
        bmc.read_system()
    token = fake.authorizations[0].split()[1]
    assert fake.authorizations == [f"Basic {token}"] and len(token) > 8
    text = str(caught.value) + repr(caught.value.__dict__) + "".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in text and token not in text
    assert any(getattr(r, "node", None) == "gpu-001-01" for r in caplog.records)


def test_tls_is_verified_by_default_against_the_site_ca_and_off_only_when_asked(site: Site):
    fake = FakeBmcService()
    make_pool(site, fake).client("gpu-001-01").read_system()
    BmcPool(site, max_requests=1, insecure=True, client_factory=fake.factory).client("gpu-001-02").read_system()
    assert fake.ca_files == [str(site.bmc_tls.ca_file), None]


# ---------------------------------------------------------------- resets are never retried blindly


class PowerModel(FakeBmcService):
    """A fake iDRAC whose PowerState follows resets: each reset queues the readings GETs then see.

    `land_on_timeout`: a POST that times out for the client was still carried out by the BMC (the
    ambiguous case); otherwise a failed POST changed nothing.
    """

    def __init__(self, power: str = "On", *, land_on_timeout: bool = True) -> None:
        super().__init__(power)
        self.land_on_timeout = land_on_timeout
        self.readings: list[str] = []
        self.last_reset_time: str | None = None

    def _answer(self, method: str, path: str, body: Any) -> FakeResponse:
        if method == "GET" and path == SYSTEM_PATH and self.readings and not self.script:
            self.calls.append((method, path, body))
            self.power = self.readings.pop(0)
            return FakeResponse(200, self._body())
        if method == "GET" and path == SYSTEM_PATH and not self.script:
            self.calls.append((method, path, body))
            return FakeResponse(200, self._body())
        step = self.script[0] if self.script else None
        try:
            answer = super()._answer(method, path, body)
        except RetriesExhaustedError:
            if method == "POST" and self.land_on_timeout:
                self._apply(body["ResetType"])
            raise
        if method == "POST" and step is None:
            self._apply(body["ResetType"])
        return answer

    def _body(self) -> dict:
        body = system_body(self.power)
        if self.last_reset_time:
            body["LastResetTime"] = self.last_reset_time
        return body

    def _apply(self, reset: str) -> None:
        self.readings = {"On": ["PoweringOn", "On"], "ForceOff": ["Off"],
                         "ForceRestart": ["Off", "PoweringOn", "On"], "PowerCycle": ["Off", "On"]}[reset]

    def posts(self) -> list[str]:
        return [body["ResetType"] for method, _, body in self.calls if method == "POST"]


def test_a_timed_out_reset_that_landed_is_not_sent_again(site: Site):
    fake = PowerModel(power="On")
    fake.script = [None, None, requests.exceptions.ReadTimeout("read timed out")]  # Systems, system, POST
    bmc = make_pool(site, fake, reset_confirm_s=5.0).client("gpu-001-01")
    bmc.power("PowerCycle")
    assert fake.posts() == ["PowerCycle"]
    assert bmc.wait_power("On", timeout_s=5) == "On"


@pytest.mark.parametrize("failure", [FakeResponse(503), FakeResponse(500),
                                     requests.exceptions.ConnectionError("connection reset by peer")])
def test_a_failed_reset_is_sent_again_only_after_the_read_back_shows_it_did_not_land(site: Site, failure):
    fake = PowerModel(power="On", land_on_timeout=False)
    fake.script = [None, None, failure]
    bmc = make_pool(site, fake, reset_confirm_s=0.05).client("gpu-001-01")
    bmc.power("PowerCycle")
    assert fake.posts() == ["PowerCycle", "PowerCycle"]
    gets_between = [c for c in fake.calls[3:-1] if c[0] == "GET"]
    assert gets_between, "the power state was read back before the reset was sent again"


def test_a_5xx_reset_whose_effect_shows_on_read_back_is_not_sent_again(site: Site):
    fake = PowerModel(power="Off")
    fake.script = [None, None, FakeResponse(500)]
    bmc = make_pool(site, fake, reset_confirm_s=5.0).client("gpu-001-01")
    fake.readings = ["Off", "PoweringOn", "On"]  # the BMC answered 500 but powers the server on anyway
    bmc.power("On")
    assert fake.posts() == ["On"]


def test_a_reset_refused_with_4xx_is_neither_retried_nor_read_back(site: Site):
    fake = PowerModel(power="On")
    fake.script = [None, None, FakeResponse(409, {"error": {"message": "busy"}})]
    bmc = make_pool(site, fake, reset_confirm_s=5.0).client("gpu-001-01")
    with pytest.raises(BmcError, match="HTTP 409"):
        bmc.power("PowerCycle")
    assert fake.posts() == ["PowerCycle"] and len(fake.calls) == 3


def test_a_reset_that_never_shows_is_given_up_after_the_policy_without_a_flood(site: Site):
    fake = PowerModel(power="On", land_on_timeout=False)
    fake.script = [None, None, FakeResponse(503), None, FakeResponse(503), None, FakeResponse(503)]
    bmc = make_pool(site, fake, reset_confirm_s=0.0, retry=RetryPolicy(attempts=3)).client("gpu-001-01")
    with pytest.raises(BmcError, match="HTTP 503 after 3 attempts"):
        bmc.power("PowerCycle")
    assert fake.posts() == ["PowerCycle"] * 3


def test_get_and_patch_are_still_retried_blindly(site: Site):
    fake = PowerModel(power="On")
    fake.script = [FakeResponse(503), None, FakeResponse(503), None, FakeResponse(502)]
    bmc = make_pool(site, fake).client("gpu-001-01")
    bmc.network_boot("Pxe")
    assert [m for m, _, _ in fake.calls] == ["GET", "GET", "GET", "GET", "PATCH", "PATCH", "POST"]


# ---------------------------------------------------------------- power waits prove the transition


def test_waiting_for_on_after_cycling_a_running_server_needs_to_see_it_leave_on(site: Site):
    fake = PowerModel(power="On")
    pool = BmcPool(site, max_requests=2, client_factory=fake.factory, sleep=lambda s: time.sleep(0.005),
                   settings=BmcSettings(poll_interval_s=0.005))
    bmc = pool.client("gpu-001-01")
    bmc.power("PowerCycle")
    fake.readings = []  # the BMC accepted the reset but the server never went down
    with pytest.raises(BmcError, match="never left On") as caught:
        bmc.wait_power("On", timeout_s=0.05)
    assert "PowerCycle" in str(caught.value)


def test_waiting_for_on_after_a_cycle_returns_once_off_was_seen(site: Site):
    fake = PowerModel(power="On")
    bmc = make_pool(site, fake).client("gpu-001-01")
    bmc.network_boot("Pxe")
    assert fake.readings == ["Off", "On"]
    assert bmc.wait_power("On", timeout_s=5) == "On" and fake.readings == []


def test_a_changed_last_reset_time_proves_a_warm_restart_the_power_state_never_shows(site: Site):
    fake = PowerModel(power="On")
    fake.last_reset_time = "2026-12-01T07:00:00+00:00"
    bmc = make_pool(site, fake).client("gpu-001-01")
    bmc.power("ForceRestart")
    fake.readings = ["On"]
    fake.last_reset_time = "2026-12-01T07:31:02+00:00"  # iDRAC: a warm reset keeps PowerState On
    assert bmc.wait_power("On", timeout_s=5) == "On"


def test_waiting_with_no_reset_sent_takes_the_state_as_it_is(site: Site):
    fake = PowerModel(power="On")
    assert make_pool(site, fake).client("gpu-001-01").wait_power("On", timeout_s=1) == "On"


P = PendingReset


@pytest.mark.parametrize(("pending", "state", "last_reset", "seen"), [
    (P("On", "Off"), "Off", None, False),
    (P("On", "Off"), "PoweringOn", None, True),
    (P("On", "Off"), "On", None, True),
    (P("ForceOff", "On"), "On", None, False),
    (P("ForceOff", "On"), "PoweringOff", None, True),
    (P("GracefulShutdown", "On"), "Off", None, True),
    (P("PowerCycle", "On"), "On", None, False),
    (P("PowerCycle", "On"), "Off", None, True),
    (P("ForceRestart", "On"), "PoweringOn", None, True),
    (P("ForceRestart", "On", "2026-12-01T07:00:00Z"), "On", "2026-12-01T07:00:00Z", False),
    (P("ForceRestart", "On", "2026-12-01T07:00:00Z"), "On", "2026-12-01T07:00:09Z", True),
    (P("ForceRestart", "On", "2026-12-01T07:00:00Z"), "On", None, False),
])
def test_reset_seen_only_on_evidence_of_the_change(pending, state, last_reset, seen):
    assert reset_seen(pending, state, last_reset) is seen


class HtmlResponse(FakeResponse):
    """What the DMTF library returns for a body that is not JSON: `.dict` raises JsonDecodingError."""

    read = "<html><body>Login</body></html>"

    def __init__(self) -> None:
        self.status = 200

    @property
    def dict(self):
        from redfish.rest.v1 import JsonDecodingError

        raise JsonDecodingError("Unable to decode response: <html><body>Login</body></html>")


def test_a_bmc_answering_html_is_named_as_not_redfish_and_not_retried(site: Site):
    fake = FakeBmcService()
    fake.script = [HtmlResponse()]
    sleeps: list[float] = []
    bmc = make_pool(site, fake, sleeps).client("gpu-001-01")
    with pytest.raises(BmcError, match="not JSON") as caught:
        bmc.read_system()
    assert "bmc.address" in str(caught.value) and caught.value.status == "not JSON"
    assert bmc.requests == 1 and sleeps == []


def test_power_on_seen_within_watches_for_a_late_landing_change(site: Site):
    fake = PowerModel(power="Off")
    bmc = make_pool(site, fake, reset_confirm_s=5.0).client("gpu-001-01")
    fake.readings = ["Off", "Off", "PoweringOn"]  # the reset sent before a crash lands a little later
    assert bmc.power_on_seen_within(5.0) is True
    idle = make_pool(site, PowerModel(power="Off")).client("gpu-001-02")
    assert idle.power_on_seen_within(0.05) is False


# ---------------------------------------------------------------- timeouts bounded by the caller's deadline


@pytest.mark.parametrize(("remaining", "expected"), [
    (None, (5.0, 30.0)),  # no deadline: the client's normal timeouts
    (600.0, (5.0, 30.0)), (30.0, (5.0, 30.0)),  # never above them
    (12.0, (5.0, 12.0)), (4.5, (4.5, 4.5)),  # cut to what is left
    (1.0, (2.0, 2.0)), (0.0, (2.0, 2.0)), (-7.0, (2.0, 2.0)),  # never below the floor, deadline passed or not
])
def test_a_request_that_serves_a_deadline_waits_no_longer_than_what_is_left_of_it(remaining, expected):
    assert request_timeouts(5.0, 30.0, remaining, 2.0) == expected


def test_the_floor_never_lifts_a_timeout_above_the_clients_own():
    assert request_timeouts(1.0, 0.3, 0.1, 2.0) == (1.0, 0.3)


def test_a_power_wait_bounds_its_reads_by_its_own_timeout(site: Site):
    fake = FakeBmcService(power="Off")
    bmc = make_pool(site, fake).client("gpu-001-01")
    bmc.system_path()  # found before the wait: that read serves no deadline
    bmc.wait_power("Off", timeout_s=3.0)
    connect, read = fake.timeouts[-1]
    assert fake.timeouts[0] == (5.0, 30.0)
    assert 2.9 < read <= 3.0 and connect == read
    fake.power = "On"
    assert bmc.power_on_seen_within(2.5)
    assert 2.4 < fake.timeouts[-1][1] <= 2.5


def test_a_reset_post_and_its_read_back_keep_the_normal_timeouts_inside_a_short_power_call(site: Site):
    """Issue 10 item 1: after an ambiguous reset only the read-back decides; a shortened read would see less."""
    fake = FakeBmcService(power="Off")
    fake.script = [None, None, requests.exceptions.ReadTimeout("held"), FakeResponse(200, system_body("On"))]
    bmc = make_pool(site, fake).client("gpu-001-01")
    assert bmc.power("On", timeout_s=1.0) == (Step("reset", "On"),)
    assert [c[0] for c in fake.calls] == ["GET", "GET", "POST", "GET"]
    assert fake.timeouts == [(5.0, 30.0)] * 4


def test_the_lifecycle_controller_wait_bounds_each_read_by_what_is_left_of_lc_ready_s(site: Site):
    from fleet.dell import lc
    fake = FakeBmcService()
    fake.script = [FakeResponse(200, {"LCStatus": "NotReady"})] * 3 + [FakeResponse(200, {"LCStatus": "Ready"})]
    now = [0.0]
    bmc = make_pool(site, fake).client("gpu-001-01")
    lc.wait_ready(bmc, timeout_s=4.5, poll_s=1.0, sleep=lambda s: now.__setitem__(0, now[0] + s),
                  clock=lambda: now[0])
    reads = [read for _connect, read in fake.timeouts]
    assert reads == pytest.approx([4.5, 3.5, 2.5, 2.0], abs=0.05)  # the last look gets the 2 s floor


def test_a_job_follow_bounds_each_read_by_what_is_left_of_the_job_deadline(site: Site):
    from fleet.dell import jobs
    fake = FakeBmcService()
    fake.script = [FakeResponse(200, {"Id": "JID_1", "JobState": "Running"})] * 2 + [
        FakeResponse(200, {"Id": "JID_1", "JobState": "Completed"})]
    now = [0.0]
    bmc = make_pool(site, fake).client("gpu-001-01")
    job, verdict = jobs.follow(bmc, "JID_1", deadline_s=9.0, poll_s=4.0,
                               sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert (job.state, verdict) == ("Completed", jobs.Verdict.DONE)
    assert [read for _connect, read in fake.timeouts] == pytest.approx([9.0, 5.0, 2.0], abs=0.05)
