"""Switch configuration through netmiko against the lab's SSH switch simulators, all three device types."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from fleet.errors import SwitchError
from fleet.fabric.switch import configure, render
from fleet.site import Site, resolve_credentials
from lab.control import ensure_secrets
from lab.settings import load_lab_site
from lab.sitegen import SiteShape, switch_span, write_site
from lab.switches import service as switch_service
from tests.lab.conftest import REPO, free_port, free_port_block

pytestmark = pytest.mark.lab
SWITCHES = {"dell_os10": "mgmt-r001", "cumulus_linux": "fe-g00", "mellanox_mlnxos": "leaf-g00-r3"}


@dataclass
class SwitchLab:
    site: Site
    lab_dir: Path

    def login(self) -> tuple[str, str]:
        creds = resolve_credentials(self.site, "switch")
        return creds.username, creds.secret

    def state(self, name: str) -> dict:
        return switch_service.state(self.lab_dir, name)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchLab]:
    root = tmp_path_factory.mktemp("switches")
    lab_dir = root / "lab"
    shape = SiteShape(racks=1, name="switchtest", state_dir=str(lab_dir), switch_first=free_port_block(switch_span(1)),
                      maas_port=free_port(), sushy_port=free_port(), apt_port=free_port(), ufm_port=free_port(),
                      bmc_first=free_port_block(20), max_hosts=0)
    site = load_lab_site(write_site(root / "site", shape))
    ensure_secrets(lab_dir)
    config = switch_service.prepare(site, lab_dir)
    assert config is not None
    (described,) = switch_service.service(site, lab_dir)
    ready = described.ready.port
    log = open(root / "switches.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "lab.switches", "--config", str(config)], cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with closing(socket.socket()) as probe:
                if probe.connect_ex(("127.0.0.1", ready or 0)) == 0:
                    break
            assert process.poll() is None and time.monotonic() < deadline, (root / "switches.log").read_text()
            time.sleep(0.1)
        yield SwitchLab(site, lab_dir)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("device_type", sorted(SWITCHES))
def test_diff_without_apply_changes_nothing_then_apply_saves_and_verifies(lab: SwitchLab, device_type: str) -> None:
    switch = lab.site.switches[SWITCHES[device_type]]
    user, password = lab.login()
    before = lab.state(switch.name)
    dry = configure(lab.site, switch, user, password, apply=False)
    desired = render(lab.site, switch)
    assert not dry.applied and dry.sent == []
    assert dry.diff.splitlines()[:2] == [f"--- {switch.name} running", f"+++ {switch.name} desired"]
    assert [line[1:] for line in dry.diff.splitlines() if line.startswith("+") and not line.startswith("+++")] == [
        line for line in desired if line not in ("hostname " + switch.name, "nv set system hostname " + switch.name)]
    assert lab.state(switch.name) == before  # nothing sent, nothing saved
    done = configure(lab.site, switch, user, password, apply=True)
    assert done.applied and done.sent
    after = lab.state(switch.name)
    assert after["saved"] == after["running"] and after["pending"] == []
    again = configure(lab.site, switch, user, password, apply=True)
    assert (again.diff, again.sent, again.applied) == ("", [], False)


def test_a_changed_value_shows_as_minus_old_plus_new(lab: SwitchLab) -> None:
    switch = lab.site.switches["mgmt-r001"]
    user, password = lab.login()
    configure(lab.site, switch, user, password, apply=True)
    assert lab.site.switch_config is not None
    moved = dataclasses.replace(lab.site, switch_config=dataclasses.replace(lab.site.switch_config, mtu=1500))
    diff = configure(moved, switch, user, password, apply=False).diff
    assert [line for line in diff.splitlines() if line.startswith(("- mtu", "+ mtu", "-  mtu", "+  mtu"))][:2] == [
        "- mtu 9216", "+ mtu 1500"]


def test_wrong_password_is_a_clear_login_error(lab: SwitchLab) -> None:
    switch = lab.site.switches["mgmt-r001"]
    with pytest.raises(SwitchError, match=r"switch mgmt-r001 \(127\.0\.0\.1:\d+\) refused the login of admin"):
        configure(lab.site, switch, "admin", "wrong", apply=False)


def test_an_unreachable_switch_is_named(lab: SwitchLab) -> None:
    switch = dataclasses.replace(lab.site.switches["fe-g00"], address=f"127.0.0.1:{free_port()}")
    with pytest.raises(SwitchError, match=r"switch fe-g00 .* is unreachable"):
        configure(lab.site, switch, *lab.login(), apply=True, timeout_s=3)


@pytest.mark.parametrize(("name", "ports"), [("mgmt-r001", {"eth-bogus": "x"}), ("leaf-g00-r5", {"bogus": "x"})])
def test_a_command_the_switch_rejects_is_an_error_with_its_message(lab: SwitchLab, name: str, ports: dict) -> None:
    switch = dataclasses.replace(lab.site.switches[name], ports=ports)
    with pytest.raises(SwitchError) as caught:
        configure(lab.site, switch, *lab.login(), apply=True)
    assert f"switch {name}" in str(caught.value) and "rejected a command" in str(caught.value)
    assert "Unrecognized command" in (caught.value.service_message or "") and "bogus" in caught.value.service_message


def test_long_output_pages_until_a_key_when_paging_is_on(lab: SwitchLab) -> None:
    switch = lab.site.switches["leaf-g00-r6"]
    configure(lab.site, switch, *lab.login(), apply=True)  # 40+ lines of running config
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - the lab's own simulator
    user, password = lab.login()
    client.connect("127.0.0.1", int(switch.address.rpartition(":")[2]), user, password, look_for_keys=False,
                   allow_agent=False)
    try:
        shell = client.invoke_shell()
        shell.send(b"enable\nshow running-config\n")
        text = b""
        deadline = time.monotonic() + 10
        while b"lines 1-24" not in text and time.monotonic() < deadline:
            text += shell.recv(65536)
        assert b"lines 1-24" in text and b"ib 1/64" not in text
        shell.send(b" ")
        while b"ib 1/64" not in text and time.monotonic() < deadline:
            text += shell.recv(65536)
        assert b"ib 1/64" in text
    finally:
        client.close()
