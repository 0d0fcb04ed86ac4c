"""The lab MAAS driven by the unmodified python-libmaas client and by fleet.maas.MaasClient."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import warnings
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from maas.client.bones import CallError
from maas.client.enum import NodeStatus
from maas.client.viscera import Origin
from maas.client.viscera.machines import MachineNotFound

from fleet.errors import MaasError
from fleet.maas import DeploymentFailed, MaasClient, node_tags
from fleet.site import Credentials, Site, TlsSettings, resolve_credentials
from lab import faults as lab_faults
from lab.maas.service import prepare, service, write_hook
from lab.settings import load_lab_site
from lab.sitegen import SiteShape, write_site
from tests.lab.conftest import free_port_block, restored_environ

pytestmark = pytest.mark.lab

API_KEY = "labconsumer0000001:labtoken000000001:labsecret0000000000000000000001"
TIME_FACTOR = 0.001  # deploy 0.6 s, release 0.06 s, erase 0.3 s, MAAS's 40-minute deploy timeout 2.4 s
T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class MaasLab:
    site: Site
    lab_dir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.site.maas.url

    def start(self) -> None:
        prepare(self.site, self.lab_dir)
        svc = service(self.site, self.lab_dir)
        log = open(self.lab_dir / "maas.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(svc.argv, env={**os.environ, "PYTHONPATH": str(REPO), **svc.env},
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.lab_dir / "maas.log").read_text()
            try:
                if svc.ready.url:
                    urllib.request.urlopen(svc.ready.url, timeout=1)  # noqa: S310 - loopback lab URL
                else:
                    socket.create_connection((svc.ready.host, svc.ready.port or 0), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("lab MAAS did not start")

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
            self.process = None

    def faults(self, faults: dict[str, dict[str, float]]) -> None:
        lab_faults.write(self.lab_dir, faults)

    def client(self, apikey: str | None = None) -> MaasClient:
        credentials = resolve_credentials(self.site, "maas") if apikey is None else Credentials("", apikey)
        return MaasClient(self.site.maas, credentials, TlsSettings(), poll_interval_s=0.02, request_timeout_s=10)

    def origin(self, apikey: str = API_KEY) -> Origin:
        async def connect() -> Origin:
            _profile, origin = await Origin.connect(self.url, apikey=apikey)
            return origin

        return asyncio.run(connect())


def make_lab(root: Path, racks: int, *, site_file: Path | None = None, scheme: str = "http") -> MaasLab:
    lab_dir = root / "lab"
    lab_dir.mkdir(parents=True)
    (lab_dir / "secrets.yml").write_text(yaml.safe_dump({"maas_api_key": API_KEY}))
    (lab_dir / "secrets.yml").chmod(0o600)  # secret files must be private
    port = free_port_block(1)  # below the ephemeral range: still free when a test restarts the lab
    if site_file is None:
        site_file = write_site(root / "site", SiteShape(racks=racks, maas_port=port, time_factor=TIME_FACTOR,
                                                        state_dir=str(lab_dir)))
    os.environ["FLEET_LAB_DIR"] = str(lab_dir)
    site = load_lab_site(site_file)
    assert site.lab is not None
    # The committed lab site listens on 5240: give this lab its own port and clock.
    lab = dataclasses.replace(site.lab, ports={**site.lab.ports, "maas": port}, time_factor=TIME_FACTOR)
    maas = dataclasses.replace(site.maas, url=f"{scheme}://127.0.0.1:{port}/MAAS/")
    return MaasLab(dataclasses.replace(site, lab=lab, maas=maas), lab_dir)


@contextmanager
def running(root: Path, racks: int, *, hook: list[str] | None = None, **kwargs: Any) -> Iterator[MaasLab]:
    """A MAAS lab of its own (with `hook` as its MAAS hook), started; on exit it is stopped and
    FLEET_LAB_DIR (make_lab sets it) restored."""
    with restored_environ("FLEET_LAB_DIR"):
        maas_lab = make_lab(root, racks, **kwargs)
        if hook is not None:
            write_hook(maas_lab.lab_dir, hook)
        try:
            maas_lab.start()
            yield maas_lab
        finally:
            maas_lab.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MaasLab]:
    with running(tmp_path_factory.mktemp("maas-lab"), racks=4) as maas_lab:  # rack 4: users and owners
        yield maas_lab


@pytest.fixture(autouse=True)
def no_faults(lab: MaasLab) -> Iterator[None]:
    lab.faults({})
    yield
    lab.faults({})


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Call python-libmaas inside a running loop: its @asynchronous methods then return coroutines."""
    async def main() -> T:
        return await make()

    return asyncio.run(main())


def test_libmaas_lists_every_inventory_machine_ready_with_its_pxe_mac(lab: MaasLab) -> None:
    origin = lab.origin()
    machines = run(lambda: origin.Machines.read())
    assert {m.hostname for m in machines} == set(lab.site.nodes)
    for m in machines:
        assert m.status == NodeStatus.READY and m.status_name == "Ready"
        assert m.boot_interface.mac_address == lab.site.nodes[m.hostname].pxe_mac
        assert len(m.system_id) == 6


def test_machines_filter_by_mac_and_by_hostname(lab: MaasLab) -> None:
    origin = lab.origin()
    node = lab.site.nodes["gpu-002-03"]
    by_mac = run(lambda: origin.session.Machines.read(mac_address=[node.pxe_mac.upper()]))
    assert [m["hostname"] for m in by_mac] == ["gpu-002-03"]
    by_name = run(lambda: origin.Machines.read(hostnames=["gpu-001-02.maas", "gpu-003-04"]))
    assert sorted(m.hostname for m in by_name) == ["gpu-001-02", "gpu-003-04"]
    assert run(lambda: origin.session.Machines.read(mac_address=["02:00:00:00:00:99"])) == []


def test_allocate_takes_the_named_ready_machine_then_409_when_none_fit(lab: MaasLab) -> None:
    origin = lab.origin()
    machine = run(lambda: origin.Machines.allocate(hostname="gpu-003-01"))
    assert (machine.hostname, machine.status) == ("gpu-003-01", NodeStatus.ALLOCATED)
    with pytest.raises(MachineNotFound) as err:
        run(lambda: origin.Machines.allocate(hostname="gpu-003-01"))
    assert err.value.__cause__.status == 409


def test_deploy_reaches_deployed_then_release_with_erase_returns_ready(lab: MaasLab) -> None:
    origin = lab.origin()
    [machine] = run(lambda: origin.Machines.read(hostnames=["gpu-001-01"]))
    deployed = run(lambda: machine.deploy(distro_series="noble", hwe_kernel="hwe-24.04", user_data=b"#cloud-config\n",
                                  wait=True, wait_interval=0.05))
    assert (deployed.status_name, deployed.distro_series, deployed.hwe_kernel) == ("Deployed", "noble", "hwe-24.04")
    released = run(lambda: deployed.release(erase=True))
    assert released.status == NodeStatus.DISK_ERASING
    released = run(lambda: _wait_for(origin, released.system_id, {NodeStatus.DISK_ERASING, NodeStatus.RELEASING}))
    assert (released.status, released.distro_series) == (NodeStatus.READY, "")


async def _wait_for(origin: Origin, system_id: str, busy: set[NodeStatus]) -> Any:
    while True:
        machine = await origin.Machine.read(system_id)
        if machine.status not in busy:
            return machine
        await asyncio.sleep(0.05)


def test_illegal_transition_is_409_with_maas_message(lab: MaasLab) -> None:
    origin = lab.origin()
    [machine] = run(lambda: origin.Machines.read(hostnames=["gpu-001-04"]))
    with pytest.raises(CallError) as err:
        run(lambda: machine.mark_fixed())
    assert err.value.status == 409
    assert err.value.content.decode() == "Can't mark a non-broken node as 'Ready'."
    with pytest.raises(CallError) as err:
        run(lambda: machine.abort())
    assert err.value.status == 409


def test_bad_api_key_is_401_for_libmaas_and_a_maas_error_without_the_key(lab: MaasLab) -> None:
    origin = lab.origin(apikey=API_KEY[:-1] + "X")
    with pytest.raises(CallError) as err:
        run(lambda: origin.Machines.read())
    assert err.value.status == 401
    bad_key = "labconsumer0000001:labtoken000000001:wrongsecret"
    with lab.client(apikey=bad_key) as client, pytest.raises(MaasError) as wrapped:
        client.find_machine(lab.site.nodes["gpu-001-01"])
    assert wrapped.value.status == 401
    assert "wrongsecret" not in str(wrapped.value) and "API key" in str(wrapped.value)


def test_wrapper_deploys_then_finds_it_done_and_tags_it(lab: MaasLab) -> None:
    node = lab.site.nodes["gpu-002-01"]
    with lab.client() as client:
        outcome = client.ensure_os(node, lab.site.os, user_data=b"#cloud-config\n", deploy_timeout_s=5)
        assert outcome.deployed and outcome.attempts == 1 and outcome.failures == ()
        again = client.ensure_os(node, lab.site.os, deploy_timeout_s=5)
        assert again.deployed and again.attempts == 0  # already Deployed with the right image: untouched
        tagged = client.tag(node.hostname, again.machine, node_tags(node))
        assert set(tagged.tags) >= {"rack-002", "role-gpu"}
        assert set(client.find_machine(node).tags) >= {"rack-002", "role-gpu"}


def test_a_tag_is_read_or_created_once_per_client_and_recreated_after_maas_loses_it(lab: MaasLab) -> None:
    first, second = lab.site.nodes["gpu-001-03"], lab.site.nodes["gpu-003-04"]
    with lab.client() as client:
        client.tag(first.hostname, client.find_machine(first), ["fleet-test-once"])
        machine = client.find_machine(second)
        before = client.requests
        assert "fleet-test-once" in client.tag(second.hostname, machine, ["fleet-test-once"]).tags
        assert client.requests - before == 1  # update_nodes only: the tag is known to exist
        origin = lab.origin()
        run(lambda: origin.session.Tag.delete(name="fleet-test-once"))
        machine = client.find_machine(second)
        with pytest.raises(MaasError) as err:
            client.tag(second.hostname, machine, ["fleet-test-once"])
        assert err.value.status == 404
        assert "fleet-test-once" in client.tag(second.hostname, machine, ["fleet-test-once"]).tags
        assert "fleet-test-once" in client.find_machine(second).tags
    changes = [line.split(": ", 1)[1] for line in (lab.lab_dir / "maas.log").read_text().splitlines()
               if ": tag fleet-test-once " in line]  # the simulator's op log: a line per tag change
    assert changes == [f"{first.hostname}: tag fleet-test-once added", f"{second.hostname}: tag fleet-test-once added",
                       f"{first.hostname}: tag fleet-test-once removed (tag deleted)",
                       f"{second.hostname}: tag fleet-test-once removed (tag deleted)",
                       f"{second.hostname}: tag fleet-test-once added"]


def test_wrapper_releases_a_deployed_machine_with_erase_and_waits_ready(lab: MaasLab) -> None:
    node = lab.site.nodes["gpu-002-02"]
    with lab.client() as client:
        machine = client.deploy(node.hostname, client.find_machine(node), lab.site.os)
        machine = client.wait_deployed(node.hostname, machine, deadline_s=5)
        machine = client.release(node.hostname, machine, erase=True)
        assert machine.status == NodeStatus.DISK_ERASING
        assert client.wait_ready(node.hostname, machine, deadline_s=5).status == NodeStatus.READY


def test_failed_deployment_is_retried_once_then_marked_broken(lab: MaasLab) -> None:
    node = lab.site.nodes["gpu-002-04"]
    lab.faults({node.hostname: {"maas_failed_deployment": 1.0}})
    with lab.client() as client:
        outcome = client.ensure_os(node, lab.site.os, deploy_timeout_s=5, release_timeout_s=5)
        assert not outcome.deployed and outcome.attempts == 2
        assert len(outcome.failures) == 2 and all("Installation failed" in f for f in outcome.failures)
        machine = client.find_machine(node)
        assert machine.status == NodeStatus.BROKEN
        assert "2 failed deployment(s)" in machine.status_message


def test_stuck_deploying_times_out_at_maas_deadline(lab: MaasLab) -> None:
    node = lab.site.nodes["gpu-003-02"]
    lab.faults({node.hostname: {"maas_stuck_deploying": 1.0}})
    deadline_s = 40 * 60 * TIME_FACTOR
    with lab.client() as client:
        machine = client.deploy(node.hostname, client.find_machine(node), lab.site.os)
        started = time.monotonic()
        with pytest.raises(DeploymentFailed) as err:
            client.wait_deployed(node.hostname, machine, deadline_s=deadline_s)
        assert time.monotonic() - started >= deadline_s * 0.9
        assert "timed out" in str(err.value)


def test_faults_file_is_reread_at_run_time(lab: MaasLab) -> None:
    node = lab.site.nodes["gpu-003-03"]
    with lab.client() as client:
        machine = client.deploy(node.hostname, client.find_machine(node), lab.site.os)
        lab.faults({node.hostname: {"maas_failed_release": 1.0}})
        machine = client.release(node.hostname, client.wait_deployed(node.hostname, machine, deadline_s=5))
        with pytest.raises(MaasError) as err:
            client.wait_ready(node.hostname, machine, deadline_s=5)
        assert err.value.status == "Releasing failed"
        assert "timed out after 5 minutes" in (err.value.service_message or "")


def test_many_threads_share_one_client(lab: MaasLab) -> None:
    nodes = list(lab.site.nodes.values())
    with lab.client() as client, ThreadPoolExecutor(max_workers=12) as pool:
        found = list(pool.map(client.find_machine, nodes * 3))
    assert [m.hostname for m in found] == [n.hostname for n in nodes * 3]


def test_nodes_waiting_together_share_one_machines_read_per_poll_interval(tmp_path: Path) -> None:
    with running(tmp_path, racks=2) as maas_lab:
        nodes = list(maas_lab.site.nodes.values())
        with maas_lab.client() as client, ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            machines = [client.deploy(n.hostname, client.find_machine(n), maas_lab.site.os) for n in nodes]
            before, started = client.requests, time.monotonic()
            done = list(pool.map(lambda nm: client.wait_deployed(nm[0].hostname, nm[1], deadline_s=5),
                                 zip(nodes, machines, strict=True)))
            reads, elapsed = client.requests - before, time.monotonic() - started
        assert [(m.hostname, m.status) for m in done] == [(n.hostname, NodeStatus.DEPLOYED) for n in nodes]
        # One read per interval for all 8 (plus a round a late waiter may start), not one per node.
        assert reads <= elapsed / client.poll_interval_s + 3, (reads, elapsed)


def test_state_survives_restart_and_hook_runs_on_deployed_and_released(tmp_path: Path) -> None:
    record = tmp_path / "hook.log"
    with running(tmp_path, racks=1, hook=["sh", "-c", f'echo "$0 $1" >> {record}']) as maas_lab:
        node = maas_lab.site.nodes["gpu-001-01"]
        with maas_lab.client() as client:
            machine = client.wait_deployed(node.hostname, client.deploy(node.hostname, client.find_machine(node),
                                                                           maas_lab.site.os), deadline_s=5)
            system_id = machine.system_id
        # The hook runs in the simulator's process group, which stop() signals: let it finish first.
        _wait_for_lines(record, 1)
        maas_lab.stop()
        maas_lab.start()
        with maas_lab.client() as client:
            machine = client.find_machine(node)
            assert (machine.system_id, machine.status) == (system_id, NodeStatus.DEPLOYED)
            client.wait_ready(node.hostname, client.release(node.hostname, machine), deadline_s=5)
        _wait_for_lines(record, 2)
        assert _lines(record) == ["gpu-001-01 deployed", "gpu-001-01 released"]


def test_with_a_hook_that_boots_the_os_deployed_comes_only_once_it_finished_and_never_if_it_fails(
        tmp_path: Path) -> None:
    """Real MAAS says Deployed when the deployed OS's cloud-init asks for its user-data (the machine is up);
    the lab's light hosts boot in the hook, so MAAS's Deployed waits for it, and an OS that never comes up
    fails the deployment at MAAS's 40-minute monitor (2.4 s here)."""
    record = tmp_path / "hook.log"
    hook = ["sh", "-c", f'sleep 1; [ "$0" = gpu-001-02 ] && exit 3; echo "$0 $1" >> {record}']
    with running(tmp_path, racks=1) as maas_lab:
        write_hook(maas_lab.lab_dir, hook, boots_os=True)
        nodes = [maas_lab.site.nodes["gpu-001-01"], maas_lab.site.nodes["gpu-001-02"]]
        with maas_lab.client() as client:
            started = time.monotonic()
            sent = [client.deploy(n.hostname, client.find_machine(n), maas_lab.site.os) for n in nodes]
            client.wait_deployed(nodes[0].hostname, sent[0], deadline_s=5)
            assert _lines(record) == ["gpu-001-01 deployed"]  # its host was up before MAAS said Deployed
            assert time.monotonic() - started >= 1.0  # the 0.6 s deployment waited for the 1 s boot
            with pytest.raises(DeploymentFailed, match="timed out after 40 minutes"):
                client.wait_deployed(nodes[1].hostname, sent[1], deadline_s=5)
        assert "gpu-001-02: hook for deployed exited 3" in (maas_lab.lab_dir / "maas.log").read_text(encoding="utf-8")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for_lines(path: Path, count: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(_lines(path)) < count:
        time.sleep(0.05)


def test_the_512_node_lab_site_lists_and_resolves_through_one_client(tmp_path: Path) -> None:
    with running(tmp_path, racks=0, site_file=REPO / "inventory" / "lab" / "site.yml") as maas_lab:
        origin = maas_lab.origin()
        started = time.monotonic()
        machines = run(lambda: origin.Machines.read())
        list_s = time.monotonic() - started
        assert len(machines) == 512 == len(maas_lab.site.nodes)
        nodes = list(maas_lab.site.nodes.values())
        with maas_lab.client() as client, ThreadPoolExecutor(max_workers=32) as pool:
            started = time.monotonic()
            found = list(pool.map(client.find_machine, nodes))
            find_s = time.monotonic() - started
        assert [m.hostname for m in found] == [n.hostname for n in nodes]
        (tmp_path / "timing.json").write_text(json.dumps({"list_512_s": list_s, "find_512_s": find_s}))
        print(f"list 512: {list_s:.3f} s; find_machine x512 with 32 threads: {find_s:.2f} s")


def test_tls_is_verified_by_default_and_the_site_ca_file_is_honoured(tmp_path: Path) -> None:
    node_name = "gpu-001-01"
    credentials = Credentials("", API_KEY)
    with running(tmp_path, racks=1, scheme="https") as maas_lab:
        node = maas_lab.site.nodes[node_name]
        endpoint = maas_lab.site.maas
        with MaasClient(endpoint, credentials, TlsSettings()) as client, pytest.raises(MaasError) as err:
            client.find_machine(node)
        assert "certificate" in str(err.value).lower()
        ca = TlsSettings(verify=True, ca_file=maas_lab.lab_dir / "tls" / "ca.pem")
        with MaasClient(endpoint, credentials, ca) as client:
            assert client.find_machine(node).hostname == node_name
        # Turning verification off must not go through python-libmaas's deprecated verify_ssl.
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            with MaasClient(endpoint, credentials, TlsSettings(verify=False)) as client:
                assert client.find_machine(node).hostname == node_name


def _ops(lab: MaasLab, hostname: str, since: int) -> list[str]:
    """The lab MAAS's op log for one machine since byte `since`: '<op> accepted: <from> -> <to> (by <user>)'."""
    text = (lab.lab_dir / "maas.log").read_bytes()[since:].decode(errors="replace")
    return [line.split(f"{hostname}: ", 1)[1] for line in text.splitlines()
            if f" {hostname}: " in line and (" accepted: " in line or ": allocated" in line)]


def test_whoami_names_each_keys_user_and_another_users_machine_is_left_alone(lab: MaasLab) -> None:
    from lab.maas.users import key_of, lab_users

    node = lab.site.nodes["gpu-004-01"]
    alice_key = key_of(lab_users(API_KEY), "alice")
    with lab.client() as ours, lab.client(apikey=alice_key) as alice, \
            lab.client(apikey=key_of(lab_users(API_KEY), "bob")) as bob:
        assert (ours.whoami(), alice.whoami(), bob.whoami()) == ("admin", "alice", "bob")
        assert ours.find_machine(node).owner == ""  # MAAS's null: nobody holds a Ready machine
        theirs = alice.wait_deployed(node.hostname, alice.deploy(node.hostname, alice.find_machine(node),
                                                                 lab.site.os), deadline_s=5)
        assert ours.find_machine(node).owner == "alice"
        with pytest.raises(MaasError) as refused:  # NodePermission.edit: only its owner or an admin
            bob.release(node.hostname, theirs)
        assert refused.value.status == 403
        at = (lab.lab_dir / "maas.log").stat().st_size
        outcome = ours.ensure_os(node, lab.site.os, deploy_timeout_s=5)  # the site's very image: still theirs
    assert not outcome.deployed and "owned by MAAS user 'alice'" in outcome.reason
    time.sleep(0.1)
    assert _ops(lab, node.hostname, at) == []  # nothing released, deployed or powered by us


def test_still_deploying_at_our_deadline_waits_for_maas_own_verdict_instead_of_deploying_again(
        lab: MaasLab) -> None:
    node = lab.site.nodes["gpu-004-02"]
    lab.faults({node.hostname: {"maas_stuck_deploying": 1.0}})
    maas_timeout_s = 40 * 60 * TIME_FACTOR
    at = (lab.lab_dir / "maas.log").stat().st_size
    with lab.client() as client:
        # Our deadline passes first (half MAAS's timeout); MAAS marks Failed deployment within the grace.
        outcome = client.ensure_os(node, lab.site.os, deploy_timeout_s=maas_timeout_s / 2,
                                   verdict_grace_s=maas_timeout_s, max_attempts=1)
    assert not outcome.deployed and outcome.attempts == 1
    assert outcome.failures == ("Node operation 'Deploying' timed out after 40 minutes.",)  # MAAS's verdict
    # Nothing was done to it while MAAS still said Deploying: it was given up only on MAAS's own verdict.
    assert _ops(lab, node.hostname, at) == [
        "allocated (by admin)", "deploy accepted: Allocated -> Deploying (by admin)",
        "mark_broken accepted: Failed deployment -> Broken (by admin)"]
    node = lab.site.nodes["gpu-004-03"]
    lab.faults({node.hostname: {"maas_stuck_deploying": 1.0}})
    with lab.client() as client:  # MAAS gives no verdict within the grace: quarantined, not deployed again
        outcome = client.ensure_os(node, lab.site.os, deploy_timeout_s=0.2, verdict_grace_s=0.2)
    assert not outcome.deployed and "not deployed again over MAAS's head" in outcome.reason
    assert [op for op in _ops(lab, node.hostname, at) if op.startswith(("deploy", "release"))] == [
        "deploy accepted: Allocated -> Deploying (by admin)"]


def test_a_batch_hook_boots_several_machines_in_one_run_and_only_those_it_reports_done_are_deployed(
        tmp_path: Path) -> None:
    """The light hosts' hook is a batch hook (one process for every machine rebooting meanwhile): each
    machine it says `done` for is Deployed; one it leaves out fails at MAAS's 40-minute monitor."""
    record = tmp_path / "hook.log"
    script = (f'sleep 0.5; echo "run $0 $*" >> {record}; for h in "$@"; do [ "$h" = gpu-001-02 ] && continue; '
              'echo "done $h"; done; exit 1')
    with running(tmp_path, racks=1) as maas_lab:
        write_hook(maas_lab.lab_dir, ["sh", "-c", script], boots_os=True, batch=True)
        nodes = [maas_lab.site.nodes[f"gpu-001-0{i}"] for i in (1, 2, 3, 4)]
        with maas_lab.client() as client:
            sent = [client.deploy(n.hostname, client.find_machine(n), maas_lab.site.os) for n in nodes]
            for node, op in zip(nodes, sent, strict=True):
                if node.hostname == "gpu-001-02":
                    with pytest.raises(DeploymentFailed, match="timed out after 40 minutes"):
                        client.wait_deployed(node.hostname, op, deadline_s=5)
                else:
                    client.wait_deployed(node.hostname, op, deadline_s=5)
        runs = _lines(record)
        assert sorted(h for run in runs for h in run.split()[2:]) == sorted(n.hostname for n in nodes)
        assert len(runs) < len(nodes)  # the machines that rebooted together went in one run
        assert all(run.split()[1] == "deployed" for run in runs)
        assert "gpu-001-02: hook for deployed exited 1 without it" in (maas_lab.lab_dir / "maas.log").read_text(
            encoding="utf-8")
