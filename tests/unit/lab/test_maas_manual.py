"""The lab MAAS's manual power and enlistment by network boot, without a server."""

from __future__ import annotations

import json
import random
from pathlib import Path

from lab.maas.enlist import BootNetwork
from lab.maas.states import MachineState, Status, Timing, advance, apply_action, power_result

TIMING = Timing(time_factor=0.01)
MAC = "02:00:00:00:00:01"


def act(m: MachineState, action: str, now: float) -> MachineState:
    return apply_action(m, action, {}, now=now, timing=TIMING, rates={}, rng=random.Random(1))


def later(m: MachineState, now: float) -> MachineState:
    return advance(m, now=now, timing=TIMING, rates={}, rng=random.Random(1))[0]


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
    m = later(m, now=1000.0)
    assert m.status == Status.COMMISSIONING  # nobody booted it: it waits
    machines["sys001"] = m
    feed(net.path, (1000.0, MAC))
    assert net.step(machines, lambda mac: "sys001", now=1000.0, rng=random.Random(1)) == [
        ("sys001", "PXE boot (commissioning): Commissioning under way")]
    m = later(machines["sys001"], now=1000.0 + TIMING.of("commission") + 0.01)
    assert (m.status, m.power_request) == (Status.READY, "shutdown")
    m = power_result(m, "shutdown", None, now=1004.0, timing=TIMING)
    m = act(m, "deploy", now=2000.0)
    assert later(m, now=3000.0).status == Status.DEPLOYING
    machines["sys001"] = m
    feed(net.path, (1500.0, MAC))  # a boot from before the deployment is not its boot
    net.step(machines, lambda mac: "sys001", now=3000.0, rng=random.Random(1))
    assert later(machines["sys001"], now=3000.0).status == Status.DEPLOYING
    feed(net.path, (3000.0, MAC))
    net.step(machines, lambda mac: "sys001", now=3000.0, rng=random.Random(1))
    m = later(machines["sys001"], now=3000.0 + TIMING.of("deploy") + 0.01)
    assert m.status == Status.DEPLOYED
    assert [e[3] for e in m.maas_events if e[1] == "PXE Request"][-1] == "PXE boot (xinstall)"


def test_a_half_written_feed_line_waits_for_the_next_read(tmp_path: Path) -> None:
    net = BootNetwork(tmp_path / "netboots.jsonl", enlist_s=0.0)
    net.path.write_text('{"ts": 1.0, "mac": "02:00:00:00:00:01"}\n{"ts": 2.0, "ma', encoding="utf-8")
    assert net.boots() == [(1.0, MAC)]
    with net.path.open("a", encoding="utf-8") as out:
        out.write('c": "02:00:00:00:00:02"}\n')
    assert net.boots() == [(2.0, "02:00:00:00:00:02")]
