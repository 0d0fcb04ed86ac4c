"""The lab MAAS's manual power and enlistment by network boot, without a server."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from lab.maas.enlist import BootNetwork, FormError, update
from lab.maas.states import (
    MachineState,
    Status,
    Timing,
    advance,
    apply_action,
    due,
    network_booted,
    os_booted,
    power_result,
)

TIMING = Timing(time_factor=0.01)
MAC = "02:00:00:00:00:01"


def act(m: MachineState, action: str, now: float) -> MachineState:
    return apply_action(m, action, {}, now=now, timing=TIMING, rates={}, rng=random.Random(1))


def later(m: MachineState, now: float) -> MachineState:
    started = m.pending.started if m.pending is not None else 0.0
    m, events = advance(m, now=now, timing=TIMING, rates={}, rng=random.Random(1))
    if "deployed" in events:  # no lab host boots here: the OS is up at the reboot, as the server has it then
        m = advance(os_booted(m, started), now=now, timing=TIMING, rates={}, rng=random.Random(1))[0]
    return m


def feed(path: Path, *boots: tuple[float, str]) -> None:
    with path.open("a", encoding="utf-8") as out:
        for ts, mac in boots:
            out.write(json.dumps({"ts": ts, "node": "gpu-001-01", "mac": mac}) + "\n")


def test_an_unknown_mac_that_network_boots_is_enlisted_new_after_the_enlistment_boot(tmp_path: Path) -> None:
    net, machines = BootNetwork(tmp_path / "netboots.jsonl", enlist_s=1.8), {}
    feed(net.path, (100.0, MAC), (100.5, MAC))  # a second boot during enlistment is the same enlistment
    assert net.step(machines, lambda mac: "sys001", now=101.0, rng=random.Random(1)) == []
    assert net.step(machines, lambda mac: "sys001", now=101.9, rng=random.Random(1)) == [
        ("sys001", f"enlisted by network boot: New ({MAC})")]
    m = machines["sys001"]
    assert (m.status, m.macs, m.power_type, m.power_state) == (Status.NEW, (MAC,), "", "unknown")
    assert m.hostname.count("-") == 1 and m.hostname != "gpu-001-01"  # MAAS names it (petname)


def test_a_manual_machine_waits_for_its_network_boot_for_commissioning_and_deploying(tmp_path: Path) -> None:
    net = BootNetwork(tmp_path / "netboots.jsonl", enlist_s=1.8)
    feed(net.path, (0.0, MAC))
    machines: dict[str, MachineState] = {}
    net.step(machines, lambda mac: "sys001", now=2.0, rng=random.Random(1))
    assert machines["sys001"].power_request == "shutdown"  # the enlistment environment powers it off
    m = power_result(machines["sys001"], "shutdown", None, now=3.0, timing=TIMING)
    m = act(m, "commission", now=10.0)
    assert m.power_request is None and m.power_target is None  # MAAS's manual driver touches nothing
    boot_at = 10.0 + TIMING.timeout(Status.COMMISSIONING) - 0.01
    m = later(m, now=boot_at)
    assert m.status == Status.COMMISSIONING  # nobody booted it: it waits, up to MAAS's deadline
    machines["sys001"] = m
    feed(net.path, (boot_at, MAC))
    assert net.step(machines, lambda mac: "sys001", now=boot_at, rng=random.Random(1)) == [
        ("sys001", "PXE Request (commissioning): Commissioning under way")]
    m = later(machines["sys001"], now=boot_at + TIMING.of("commission") + 0.01)
    assert (m.status, m.power_request) == (Status.READY, "shutdown")
    m = power_result(m, "shutdown", None, now=1004.0, timing=TIMING)
    m = act(m, "deploy", now=2000.0)
    assert later(m, now=2010.0).status == Status.DEPLOYING
    machines["sys001"] = m
    feed(net.path, (1500.0, MAC))  # a boot from before the deployment is not its boot
    net.step(machines, lambda mac: "sys001", now=2010.0, rng=random.Random(1))
    assert later(machines["sys001"], now=2010.0).status == Status.DEPLOYING
    feed(net.path, (2010.0, MAC))
    net.step(machines, lambda mac: "sys001", now=2010.0, rng=random.Random(1))
    m = later(machines["sys001"], now=2010.0 + TIMING.of("deploy") + 0.01)
    assert m.status == Status.DEPLOYED
    assert [e[3] for e in m.maas_events if e[1] == "PXE Request"][-1] == "installation"  # MAAS's words


def enlisted(tmp_path: Path) -> MachineState:
    net, machines = BootNetwork(tmp_path / "netboots.jsonl", enlist_s=0.0), {}
    feed(net.path, (0.0, MAC))
    net.step(machines, lambda mac: "sys001", now=0.0, rng=random.Random(1))
    return power_result(machines["sys001"], "shutdown", None, now=1.0, timing=TIMING)


@pytest.mark.parametrize(("action", "status", "failed", "minutes"), [
    ("commission", Status.COMMISSIONING, Status.FAILED_COMMISSIONING, 20),
    ("deploy", Status.DEPLOYING, Status.FAILED_DEPLOYMENT, 40),
])
def test_a_manual_machine_that_never_boots_fails_on_maas_deadline(
        tmp_path: Path, action: str, status: Status, failed: Status, minutes: int) -> None:
    m = enlisted(tmp_path)
    if action == "deploy":
        m = replace(m, status=Status.READY, status_message="Ready")
    m = act(m, action, now=100.0)
    deadline = 100.0 + minutes * 60 * TIMING.time_factor
    assert due(m, deadline - 0.01) is False and later(m, deadline - 0.01).status == status
    assert due(m, deadline) is True
    m = later(m, deadline + 5.0)
    message = f"Node operation '{status.name.title()}' timed out after {minutes} minutes."
    assert (m.status, m.status_message, m.pending) == (failed, message, None)
    assert m.maas_events[-1][1:] == ("Marking node failed", "ERROR", message)


def test_a_boot_before_the_deadline_starts_the_operation_on_its_own_clock(tmp_path: Path) -> None:
    m = act(enlisted(tmp_path), "commission", now=100.0)
    booted_at = 100.0 + TIMING.timeout(Status.COMMISSIONING) - 1.0
    m = network_booted(m, booted_at)
    m = later(m, booted_at + 2.0)  # past the deadline the boot beat: still commissioning, not failed
    assert m.status == Status.COMMISSIONING
    assert later(m, booted_at + TIMING.of("commission") + 0.01).status == Status.READY


def test_boots_of_a_node_whose_pxe_network_maas_does_not_serve_never_reach_maas(tmp_path: Path) -> None:
    net, machines = BootNetwork(tmp_path / "netboots.jsonl", enlist_s=0.0), {}
    feed(net.path, (0.0, MAC))
    assert net.step(machines, lambda mac: "sys001", now=1.0, rng=random.Random(1),
                    unserved=lambda node: node == "gpu-001-01") == []
    assert machines == {}


def test_a_half_written_feed_line_waits_for_the_next_read(tmp_path: Path) -> None:
    net = BootNetwork(tmp_path / "netboots.jsonl", enlist_s=0.0)
    net.path.write_text('{"ts": 1.0, "mac": "02:00:00:00:00:01"}\n{"ts": 2.0, "ma', encoding="utf-8")
    assert net.boots() == [(1.0, MAC, "")]
    with net.path.open("a", encoding="utf-8") as out:
        out.write('c": "02:00:00:00:00:02"}\n')
    assert net.boots() == [(2.0, "02:00:00:00:00:02", "")]


def machines(*names: str) -> dict[str, MachineState]:
    return {f"sys{i}": MachineState(system_id=f"sys{i}", hostname=name, macs=(f"02:00:00:00:00:0{i}",))
            for i, name in enumerate(names)}


@pytest.mark.parametrize(("hostname", "message"), [
    ("gpu_001", "Host label cannot contain underscore: 'gpu_001'."),
    ("gpu-001-", "Label cannot start or end with hyphen: 'gpu-001-'."),
    ("gpu 001", "Label contains disallowed characters: 'gpu 001'."),
    ("gpu..maas", "DNS name contains an empty label."),
    ("x" * 64, f"Label is too long: '{'x' * 64}'.  Maximum allowed is 63 characters."),
    ("gpu-001-01.example.com", "Nonexistant domain."),
    ("gpu-001-02", "Node with this Hostname already exists."),
])
def test_an_update_to_a_hostname_maas_refuses_gives_its_form_error(hostname: str, message: str) -> None:
    known = machines("ample-hawk", "gpu-001-02")
    with pytest.raises(FormError) as err:
        update({"hostname": [hostname]}, known["sys0"], known, domain="maas")
    assert err.value.errors == {"hostname": [message]}


def test_an_update_renames_keeps_other_fields_and_strips_maas_own_domain() -> None:
    known = machines("ample-hawk", "gpu-001-02")
    assert update({"hostname": ["gpu-001-01.maas"]}, known["sys0"], known, domain="maas") == replace(
        known["sys0"], hostname="gpu-001-01")
    assert update({"hostname": ["ample-hawk"]}, known["sys0"], known, domain="maas") == known["sys0"]  # itself
    assert update({"description": ["x"]}, known["sys0"], known, domain="maas") == known["sys0"]
