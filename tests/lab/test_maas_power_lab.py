"""The lab MAAS powers its machines through the lab BMCs, as MAAS's Redfish driver does.

One lab per module (BMC front + emulator + MAAS, no lab hosts), its machines unknown to MAAS as on a
new rack. Every assertion about power reads the BMC front's own request log (which client sent
what) and the emulator's power state, never the MAAS simulator's word for it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from maas.client.bones import CallError
from maas.client.viscera import Origin

from fleet.redfish import BmcPool, BmcSettings
from fleet.site import Site, resolve_credentials
from lab import control
from lab import faults as lab_faults
from lab.maas.states import FAILING_SCRIPT
from lab.redfish.service import bmc_password, system_uuid
from lab.settings import load_lab_site
from tests.lab.conftest import bmc_log, make_site, restored_environ

pytestmark = pytest.mark.lab
T = TypeVar("T")
TIME_FACTOR = 0.002  # commissioning 300 s -> 0.6 s, deploy 1.2 s, MAAS's 20-minute deadline 2.4 s


class PowerLab:
    def __init__(self, root: Path) -> None:
        self.lab_site = make_site(root, racks=1, time_factor=TIME_FACTOR, max_hosts=0)
        os.environ["FLEET_LAB_DIR"] = str(self.lab_site.lab_dir)
        self.site: Site = load_lab_site(self.lab_site.site_file)
        self.lab_dir = self.lab_site.lab_dir

    def up(self) -> None:
        control.up(self.site, prepare_options={"lab.maas.service": {"bmc_power": True, "enlisted": False}})

    def down(self) -> None:
        control.down(self.site)

    def faults(self, faults: dict[str, dict[str, float]]) -> None:
        lab_faults.write(self.lab_dir, faults)

    def requests(self, hostname: str, since: float = 0.0) -> list[dict[str, Any]]:
        return bmc_log(self.lab_dir, hostname, since)

    def origin(self) -> Origin:
        key = resolve_credentials(self.site, self.site.maas.credentials).secret

        async def connect() -> Origin:
            return (await Origin.connect(self.site.maas.url, apikey=key))[1]

        return asyncio.run(connect())

    def power_params(self, hostname: str, password: str | None = None) -> dict[str, str]:
        node = self.site.nodes[hostname]
        return {"power_address": node.bmc.address, "power_user": "root",
                "power_pass": password if password is not None else bmc_password(self.lab_dir),
                "node_id": system_uuid(self.site, hostname)}

    def emulator_power(self, hostname: str) -> str:
        pool = BmcPool(self.site, max_requests=2, settings=BmcSettings(poll_interval_s=0.02))
        return pool.client(self.site.nodes[hostname]).read_system().power_state


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerLab]:
    with restored_environ("FLEET_LAB_DIR"):  # PowerLab points it at its lab
        power_lab = PowerLab(tmp_path_factory.mktemp("maas-power"))
        power_lab.up()
        try:
            yield power_lab
        finally:
            power_lab.down()


@pytest.fixture(autouse=True)
def no_faults(lab: PowerLab) -> Iterator[None]:
    lab.faults({})
    yield
    lab.faults({})


def create(lab: PowerLab, origin: Origin, hostname: str, **params: Any) -> Any:
    node = lab.site.nodes[hostname]
    return run(lambda: origin.Machines.create(
        architecture="amd64/generic", mac_addresses=[node.pxe_mac], power_type="redfish",
        power_parameters=params.get("power_parameters") or lab.power_params(hostname), hostname=hostname))


def wait_status(origin: Origin, system_id: str, names: set[str], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        machine = run(lambda: origin.Machine.read(system_id))
        if machine.status_name in names:
            return machine
        time.sleep(0.05)
    raise AssertionError(f"machine {system_id} never reached {names}; last {machine.status_name}")


def test_a_new_rack_is_unknown_to_maas_until_created_then_commissioned_through_its_bmc(lab: PowerLab) -> None:
    origin = lab.origin()
    hostname = "gpu-001-01"
    assert list(run(lambda: origin.Machines.read(hostnames=[hostname]))) == []
    started = time.time()
    machine = create(lab, origin, hostname)
    assert machine.status_name == "Commissioning" and machine.power_type == "redfish"
    ready = wait_status(origin, machine.system_id, {"Ready", "Failed commissioning"})
    assert ready.status_name == "Ready", ready.status_message
    maas = [(e["method"], e["path"].rsplit("/", 1)[-1], e.get("reset")) for e in lab.requests(hostname, started)
            if e["agent"] == "MAAS"]
    uuid = system_uuid(lab.site, hostname)
    # MAAS's power_on: query, ETag read, one-time PXE PATCH, then On (the machine was off).
    assert maas == [("GET", uuid, None), ("GET", uuid, None), ("PATCH", uuid, None),
                    ("POST", "ComputerSystem.Reset", "On")]
    patch = [e for e in lab.requests(hostname, started) if e["method"] == "PATCH"]
    assert patch and all(e["status"] < 300 for e in patch)
    # The commissioning environment powers the machine off itself at the end.
    deadline = time.monotonic() + 5
    while lab.emulator_power(hostname) != "Off" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.emulator_power(hostname) == "Off"


def test_wrong_power_parameters_fail_commissioning_with_maas_message(lab: PowerLab) -> None:
    origin = lab.origin()
    hostname = "gpu-001-02"
    started = time.time()
    machine = create(lab, origin, hostname, power_parameters=lab.power_params(hostname, password="wrong"))
    failed = wait_status(origin, machine.system_id, {"Failed commissioning", "Ready"})
    assert failed.status_name == "Failed commissioning"
    assert failed.status_message == ("Power on for the node failed: Failed to complete power action: "
                                     "Redfish request failed with response status code: 401.")
    assert failed.power_state.value == "error"
    events = run(lambda: origin.Events.query(system_ids=[machine.system_id], level="WARNING"))
    assert any(e.event_type == "Failed to query node's BMC" for e in events)
    refused = lab.requests(hostname, started)
    assert refused and all(e["status"] == 401 and e["agent"] == "MAAS" for e in refused)
    assert not any(e.get("reset") for e in refused if e["status"] < 300)


def test_failed_commissioning_fault_names_the_failed_script(lab: PowerLab) -> None:
    origin = lab.origin()
    hostname = "gpu-001-03"
    lab.faults({hostname: {"maas_failed_commissioning": 1.0}})
    machine = create(lab, origin, hostname)
    failed = wait_status(origin, machine.system_id, {"Failed commissioning", "Ready"})
    assert failed.status_name == "Failed commissioning"
    events = run(lambda: origin.Events.query(system_ids=[machine.system_id]))
    assert [e.description for e in events if e.event_type == "Script"] == [f"{FAILING_SCRIPT} failed"]


def test_deploy_and_release_power_the_machine_through_its_bmc_and_names_come_back_in_maas_words(
        lab: PowerLab) -> None:
    origin = lab.origin()
    hostname = "gpu-001-04"
    machine = wait_status(origin, create(lab, origin, hostname).system_id, {"Ready"})
    with pytest.raises(CallError) as refused:
        run(lambda: machine.deploy(distro_series="focal"))
    assert refused.value.status == 400 and "not a valid distro_series" in refused.value.content.decode()
    started = time.time()
    run(lambda: machine.deploy(distro_series="ubuntu/jammy"))
    deployed = wait_status(origin, machine.system_id, {"Deployed", "Failed deployment"})
    assert (deployed.status_name, deployed.osystem, deployed.distro_series, deployed.hwe_kernel) == (
        "Deployed", "ubuntu", "jammy", "ga-22.04")
    resets = [e["reset"] for e in lab.requests(hostname, started) if e.get("reset") and e["agent"] == "MAAS"]
    assert resets == ["On"]
    assert lab.emulator_power(hostname) == "On"
    started = time.time()
    run(lambda: deployed.release())
    wait_status(origin, machine.system_id, {"Ready"})
    maas = [e for e in lab.requests(hostname, started) if e["agent"] == "MAAS"]
    assert [e.get("reset") for e in maas if e.get("reset")] == ["ForceOff"]
    assert any(e["method"] == "PATCH" for e in maas)  # the next power-on is a PXE boot again
    assert lab.emulator_power(hostname) == "Off"


def test_a_bmc_that_is_down_leaves_power_unchanged_and_maas_shows_error(lab: PowerLab) -> None:
    origin = lab.origin()
    [machine] = run(lambda: origin.Machines.read(hostnames=["gpu-001-01"]))
    lab.faults({"gpu-001-01": {"bmc_5xx": 1.0}})
    with pytest.raises(CallError) as down:
        run(lambda: machine.query_power_state())
    assert down.value.status == 503
    run(lambda: machine.deploy())
    failed = wait_status(origin, machine.system_id, {"Failed deployment", "Deployed"})
    assert failed.status_name == "Failed deployment"
    assert failed.status_message.startswith("Power on for the node failed: Failed to complete power action: "
                                            "Redfish request failed with response status code: 5")
    assert failed.power_state.value == "error"
    lab.faults({})
    assert lab.emulator_power("gpu-001-01") == "Off"


def test_bmc_lists_no_nics_until_its_inventory_has_run(lab: PowerLab) -> None:
    hostname = "gpu-001-02"
    lab.faults({hostname: {"bmc_no_nics_yet": 1.0}})
    bmc = BmcPool(lab.site, max_requests=2, settings=BmcSettings(poll_interval_s=0.02)).client(
        lab.site.nodes[hostname])
    reads = [bmc.read_system().macs for _ in range(4)]
    assert reads[:3] == [(), (), ()]
    assert reads[3] == (lab.site.nodes[hostname].pxe_mac,)
