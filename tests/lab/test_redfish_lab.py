"""The lab BMCs (sushy-tools emulator + per-BMC HTTPS front) driven through fleet.redfish and the DMTF library."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from fleet.errors import BmcError
from fleet.redfish import BmcPool, BmcSettings, RetryPolicy, Step, dmtf_client
from fleet.site import Site, TlsSettings
from lab import faults as lab_faults
from lab.redfish.service import prepare, service
from lab.service import LabService, ReadyCheck
from lab.settings import load_lab_site
from lab.sitegen import SiteShape, write_site
from tests.lab.conftest import bmc_log

pytestmark = pytest.mark.lab

PASSWORD = "lab-test-bmc-secret-91c2"
HOLD_S = 1.0  # the timeout fault holds a request this long, then carries it out
FAST = BmcSettings(connect_timeout_s=2.0, read_timeout_s=2.0, poll_interval_s=0.02, power_timeout_s=10.0,
                   reset_confirm_s=1.0, retry=RetryPolicy(attempts=4, base_delay_s=0.02, max_delay_s=0.1))


def free_base(span: int) -> int:
    """A port base where base..base+span are all free on 127.0.0.1, so parallel labs never clash.

    Below the kernel's ephemeral range (32768+): there, an outgoing connection can take a lab port,
    and a connect to an unbound local port can even "succeed" by connecting to itself.
    """
    for _ in range(50):
        base = random.randrange(10000, 32000 - span)
        try:
            for port in range(base, base + span + 1):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


def bmc_lab_site(root: Path, *, time_factor: float) -> tuple[Path, Path]:
    """A 2-rack lab site on free ports: (its lab dir, holding the BMC password in a private secrets file; the site)."""
    lab_dir = root / "lab"
    lab_dir.mkdir()
    (lab_dir / "secrets.yml").write_text(yaml.safe_dump({"bmc_password": PASSWORD}))
    (lab_dir / "secrets.yml").chmod(0o600)  # secret files must be private
    base = free_base(40)
    return lab_dir, write_site(root / "site", SiteShape(racks=2, bmc_first=base, sushy_port=base + 35,
                                                        time_factor=time_factor, state_dir=str(lab_dir)))


def wait_ready(ready: ReadyCheck, process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"lab service exited with {process.returncode}"
        try:
            if ready.url:
                urllib.request.urlopen(ready.url, timeout=1)  # noqa: S310 - loopback lab URL
                return
            with socket.create_connection((ready.host, ready.port or 0), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"not ready: {ready}")


@contextmanager
def running(services: Iterable[LabService], lab_dir: Path) -> Iterator[None]:
    """Each service in its own process group (output in lab_dir/<name>.log), ready before the next starts;
    every one started is stopped (SIGTERM to its group) on the way out, also when a later one fails."""
    processes = []
    try:
        for svc in services:
            log = open(lab_dir / f"{svc.name}.log", "wb")  # noqa: SIM115 - lives as long as the process
            process = subprocess.Popen(svc.argv, env={**os.environ, **svc.env}, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            processes.append(process)
            wait_ready(svc.ready, process)
        yield
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


@dataclasses.dataclass(frozen=True)
class RedfishLab:
    site: Site
    lab_dir: Path
    start_s: float

    def faults(self, faults: dict[str, dict[str, float]]) -> None:
        lab_faults.write(self.lab_dir, faults)

    def resets(self, hostname: str, since: float) -> list[dict]:
        """Reset POSTs the BMC front received for `hostname` since `since`, from its own request log."""
        return [e for e in bmc_log(self.lab_dir, hostname, since) if e.get("reset")]

    def pool(self, **kwargs) -> BmcPool:
        return BmcPool(self.site, max_requests=kwargs.pop("max_requests", 8), settings=kwargs.pop("settings", FAST),
                       seed=3, **kwargs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedfishLab]:
    lab_dir, site_file = bmc_lab_site(tmp_path_factory.mktemp("redfish-lab"), time_factor=0.01)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLEET_LAB_DIR", str(lab_dir))
        site = load_lab_site(site_file)
        started = time.monotonic()
        prepare(site, lab_dir, timeout_hold_s=HOLD_S)
        with running(service(site, lab_dir), lab_dir):
            yield RedfishLab(site, lab_dir, time.monotonic() - started)


@pytest.fixture(autouse=True)
def no_faults(lab: RedfishLab) -> Iterator[None]:
    lab.faults({})
    yield
    lab.faults({})


def test_each_bmc_shows_only_its_own_system_with_the_inventorys_tag_and_mac(lab: RedfishLab):
    pool = lab.pool()
    since = time.time()
    for node in lab.site.nodes.values():
        info = pool.client(node).read_system()
        assert info.service_tag == node.service_tag
        assert info.macs == (node.pxe_mac,)
        assert info.power_state in ("On", "Off")
        assert "ForceRestart" in info.reset_types and "Pxe" in info.boot_targets
    assert lab.start_s < 10
    # The NICs came in one read ($expand, as iDRAC expands collections): Systems, the system, its NICs.
    first = next(iter(lab.site.nodes))
    paths = [e["path"].rsplit("/", 1)[-1] for e in bmc_log(lab.lab_dir, first, since)]
    assert len(paths) == 3 and paths[0] == "Systems" and paths[-1] == "EthernetInterfaces", paths


def test_power_on_and_off_land_later_and_polling_sees_them(lab: RedfishLab):
    bmc = lab.pool().client("gpu-001-01")
    bmc.power("ForceOff")
    bmc.wait_power("Off", timeout_s=5)
    assert bmc.power("On") == (Step("reset", "On"),)
    polls_before = bmc.polls
    assert bmc.wait_power("On", timeout_s=5) == "On"
    assert bmc.polls > polls_before
    assert bmc.power("On") == ()  # already on: nothing sent (iDRAC would refuse it)
    assert bmc.power("ForceOff") == (Step("reset", "ForceOff"),)
    bmc.wait_power("Off", timeout_s=5)
    assert bmc.read_system().power_state == "Off"


def test_network_boot_arms_pxe_and_cycles_with_what_the_bmc_offers(lab: RedfishLab):
    pool = lab.pool()
    bmc = pool.client("gpu-001-02")
    bmc.power("On")
    bmc.wait_power("On", timeout_s=5)
    fresh = lab.pool().client("gpu-001-02")
    steps = fresh.network_boot("Pxe")
    # sushy-tools offers ForceRestart but not PowerCycle; ForceRestart goes Off at once, On later
    assert steps == (Step("boot_once", "Pxe"), Step("reset", "ForceRestart"))
    assert fresh.requests <= 4
    fresh.wait_power("On", timeout_s=5)
    info = fresh.read_system()
    assert info.boot_once_target == "Pxe"  # armed "Once" reads back "Continuous", like iDRAC


def test_wrong_password_is_refused_with_401_and_not_retried(lab: RedfishLab):
    secrets = lab.lab_dir / "secrets.yml"
    secrets.write_text(yaml.safe_dump({"bmc_password": "not-the-password"}))
    try:
        bmc = lab.pool().client("gpu-001-03")
        with pytest.raises(BmcError) as caught:
            bmc.read_system()
    finally:
        secrets.write_text(yaml.safe_dump({"bmc_password": PASSWORD}))
    assert caught.value.status == 401 and bmc.requests == 1
    assert "Incorrect username or password" in str(caught.value)


def test_injected_bad_credentials_fault_answers_401_with_idracs_message(lab: RedfishLab):
    lab.faults({"gpu-001-04": {"bmc_bad_credentials": 1.0}})
    bmc = lab.pool().client("gpu-001-04")
    with pytest.raises(BmcError) as caught:
        bmc.read_system()
    assert caught.value.status == 401 and bmc.requests == 1
    assert "invalid username and/or password" in (caught.value.service_message or "")


def test_5xx_is_retried_then_succeeds_once_the_bmc_recovers(lab: RedfishLab):
    lab.faults({"gpu-002-01": {"bmc_5xx": 1.0}})
    pauses: list[float] = []

    def recover_after_first_failure(seconds: float) -> None:
        pauses.append(seconds)
        lab.faults({})
        time.sleep(seconds)

    bmc = lab.pool(sleep=recover_after_first_failure).client("gpu-002-01")
    assert bmc.read_system().service_tag == "L00201X"
    assert len(pauses) == 1 and bmc.counts().retries == 1


def test_5xx_that_persists_becomes_one_bmc_error_with_the_bmcs_message(lab: RedfishLab):
    lab.faults({"gpu-002-02": {"bmc_5xx": 1.0}})
    bmc = lab.pool().client("gpu-002-02")
    with pytest.raises(BmcError, match="after 4 attempts") as caught:
        bmc.read_system()
    assert caught.value.status in (500, 503) and bmc.requests == 4
    assert "service" in (caught.value.service_message or "")


def test_a_hung_bmc_times_out_and_is_retried(lab: RedfishLab):
    lab.faults({"gpu-002-03": {"bmc_timeout": 1.0}})
    settings = dataclasses.replace(FAST, read_timeout_s=0.3)

    def recover(seconds: float) -> None:
        lab.faults({})
        time.sleep(seconds)

    bmc = lab.pool(settings=settings, sleep=recover).client("gpu-002-03")
    assert bmc.read_system().service_tag == "L00203X"
    assert bmc.counts().retries == 1

    lab.faults({"gpu-002-03": {"bmc_timeout": 1.0}})
    stuck = lab.pool(settings=dataclasses.replace(settings, retry=RetryPolicy(attempts=2, base_delay_s=0.01)))
    with pytest.raises(BmcError, match="did not answer in time after 2 attempts"):
        stuck.client("gpu-002-03").read_system()


def test_tls_is_verified_against_the_lab_ca_and_refused_without_it(lab: RedfishLab, monkeypatch):
    no_ca = dataclasses.replace(lab.site, bmc_tls=TlsSettings(verify=True, ca_file=None))
    bmc = BmcPool(no_ca, max_requests=2, settings=FAST).client("gpu-002-04")
    with pytest.raises(BmcError, match="TLS certificate was not accepted") as caught:
        bmc.read_system()
    assert caught.value.status == "tls" and bmc.requests == 1
    assert BmcPool(no_ca, max_requests=2, settings=FAST, insecure=True).client("gpu-002-04").read_system()


def test_every_bmc_is_verified_through_one_context_and_the_ca_file_is_not_looked_up_per_request(
        lab: RedfishLab, monkeypatch):
    """Three stat calls per request give up the GIL three times: 1,280 node threads queue for it."""
    ca_file = str(lab.site.bmc_tls.ca_file)
    looked_up: list[str] = []
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path) == ca_file:
            looked_up.append(ca_file)
        return real_stat(path, *args, **kwargs)

    pool = lab.pool()
    first, second = pool.client("gpu-002-01"), pool.client("gpu-002-02")
    assert first.read_system().service_tag and second.read_system().service_tag  # one stat each, for the version
    monkeypatch.setattr(os, "stat", stat)
    for _ in range(3):
        first.read_system()
        second.read_system()
    assert looked_up == []
    contexts = {id(bmc._rest()._session.get_adapter("https://x")._context) for bmc in (first, second)}
    assert len(contexts) == 1

def test_the_site_ca_file_wins_over_requests_ca_bundle_in_the_environment(lab: RedfishLab, monkeypatch):
    """REQUESTS_CA_BUNDLE replaces a Session's verify; our CA file must still be the one that applies."""
    ca_file = lab.site.bmc_tls.ca_file
    assert ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    system_ca = dataclasses.replace(lab.site, bmc_tls=TlsSettings(verify=True, ca_file=Path(
        "/etc/ssl/certs/ca-certificates.crt")))
    with pytest.raises(BmcError, match="TLS certificate"):
        BmcPool(system_ca, max_requests=2, settings=FAST).client("gpu-002-04").read_system()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert lab.pool().client("gpu-002-04").read_system().service_tag == "L00204X"


def test_bmc_traffic_ignores_a_proxy_set_in_the_environment(lab: RedfishLab, monkeypatch):
    """An ops host's HTTPS_PROXY must not carry out-of-band traffic (the proxy here is a closed port)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("https_proxy", proxy)
    bmc = lab.pool().client("gpu-002-03")
    assert bmc.read_system().service_tag == "L00203X"
    assert bmc.counts().retries == 0


def test_credentials_never_reach_the_logs(lab: RedfishLab, caplog):
    caplog.set_level(logging.DEBUG)
    lab.faults({"gpu-001-01": {"bmc_5xx": 0.5}})
    pool = lab.pool(settings=dataclasses.replace(FAST, retry=RetryPolicy(attempts=8, base_delay_s=0.01)))
    bmc = pool.client("gpu-001-01")
    bmc.read_system()
    bmc.network_boot("Pxe")
    lab.faults({"gpu-001-01": {"bmc_bad_credentials": 1.0}})
    with pytest.raises(BmcError) as caught:
        pool.client("gpu-001-01").read_system()
    import base64

    token = base64.b64encode(f"root:{PASSWORD}".encode()).decode()
    text = str(caught.value) + "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records and PASSWORD not in text and token not in text


@pytest.mark.slow
def test_ansible_redfish_command_baseline_arms_pxe_and_leaves_every_node_on(lab: RedfishLab):
    from bench.redfish_ansible.oob import run_oob_playbook

    nodes = list(lab.site.nodes.values())
    pool = lab.pool()
    pool.client(nodes[-1]).power("ForceOff")
    pool.client(nodes[-1]).wait_power("Off", timeout_s=5)
    pool.client(nodes[0]).power("On")  # both playbook branches: PowerOn for off nodes, ForceRestart for on ones
    elapsed_s = run_oob_playbook(lab.site, nodes, forks=8, poll_delay_s=0.1, power_timeout_s=10)
    after = {node.hostname: pool.client(node).read_system() for node in nodes}
    assert {(i.power_state, i.boot_once_target) for i in after.values()} == {("On", "Pxe")}
    assert elapsed_s > 0


def _powered_on(lab: RedfishLab, node: str) -> float:
    """`node` is on; returns the time after, from which its resets are the test's own."""
    bmc = lab.pool().client(node)
    bmc.power("On")
    bmc.wait_power("On", timeout_s=5)
    return time.time()


def _fault_on_reset(lab: RedfishLab, hostname: str, kind: str):
    """A client factory whose reset POSTs (only) meet `kind` at the BMC front; GETs stay clean."""
    class Client:
        def __init__(self, inner) -> None:
            self._inner = inner

        def get(self, path, **kwargs):
            return self._inner.get(path, **kwargs)

        def patch(self, path, **kwargs):
            return self._inner.patch(path, **kwargs)

        def post(self, path, **kwargs):
            lab.faults({hostname: {kind: 1.0}})
            try:
                return self._inner.post(path, **kwargs)
            finally:
                lab.faults({})

    return lambda url, auth, ca: Client(dmtf_client(url, auth, ca))


def test_a_reset_that_times_out_but_lands_later_is_sent_once_and_its_cycle_is_seen(lab: RedfishLab):
    node = "gpu-002-04"
    since = _powered_on(lab, node)
    settings = dataclasses.replace(FAST, read_timeout_s=0.3, reset_confirm_s=HOLD_S * 4)
    hung = lab.pool(settings=settings, client_factory=_fault_on_reset(lab, node, "bmc_timeout")).client(node)
    hung.power("ForceRestart")
    assert hung.wait_power("On", timeout_s=5) == "On"
    resets = lab.resets(node, since)
    assert [(r["reset"], r["fault"], r["forwarded"]) for r in resets] == [("ForceRestart", "bmc_timeout", True)]


def test_a_reset_refused_with_5xx_is_sent_again_only_after_the_read_back_shows_nothing_happened(lab: RedfishLab):
    node = "gpu-002-04"
    since = _powered_on(lab, node)
    calls = {"n": 0}
    flaky = _fault_on_reset(lab, node, "bmc_5xx")

    def first_post_fails(url, auth, ca):
        client = flaky(url, auth, ca)
        clean = dmtf_client(url, auth, ca)

        class Once:
            get, patch = clean.get, clean.patch

            def post(self, path, **kwargs):
                calls["n"] += 1
                return (client if calls["n"] == 1 else clean).post(path, **kwargs)
        return Once()

    retried = lab.pool(client_factory=first_post_fails).client(node)
    retried.power("ForceRestart")
    assert retried.wait_power("On", timeout_s=5) == "On"
    resets = [(r["reset"], r["forwarded"]) for r in lab.resets(node, since)]
    assert resets == [("ForceRestart", False), ("ForceRestart", True)]
