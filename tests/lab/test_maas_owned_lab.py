"""Issue 9's MAAS behaviours, driven through `provision.py` against one lab, judged from the lab's side.

One lab of four racks, no lab hosts (`--until os`). Before the run the lab MAAS is brought into what a
datacenter hands the tool: most machines unknown (a new rack), one registered with a wrong BMC password
(its commissioning failed on MAAS's power query), machines in use under our own MAAS user but not by
this tool (Deployed with another kernel, Allocated, in Rescue mode, Broken, under hardware tests), and
machines other MAAS users own, set up through the lab MAAS with their own API keys as their tooling
would: alice's Deployed with the site's very image, alice's Failed deployment, alice's still Deploying,
bob's Allocated. The site spells its image in MAAS's aliases (`ubuntu/jammy`, `hwe-j`), and one node's
inventory names another server model.

Then one bring-up runs on all of them, and every verdict is read from the lab MAAS's own state and the
BMC front's request log (which client asked each BMC what), not only from our journal:
- unknown machines are registered (Redfish power through their BMC) and commissioned by MAAS itself,
  and reach Deployed with MAAS doing every power action;
- failed commissioning quarantines with MAAS's status message and the failing script;
- wrong power parameters quarantine with MAAS's power failure message;
- a BMC that lists no NICs yet is UNKNOWN, read again, and passes;
- no owned machine gets a single power request at its BMC, from us or from MAAS;
- another MAAS user's machine, in any status, is quarantined naming its owner, and the lab MAAS's op
  log shows no action of ours on it (no release, deploy, power, tag), so it is never configured;
- a model mismatch stops the node at discover, naming both models, before MAAS hears of it;
- MAAS's names for the site's aliases are the site's image: a second run redeploys nothing.
(MAAS's Reserved has no API that puts a machine there; its row is in the unit tests' status tables.)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from maas.client.viscera import Origin

from fleet.maas import MaasClient
from fleet.site import Node, resolve_credentials
from lab.maas.service import lab_files
from lab.maas.states import FAILING_SCRIPT
from lab.maas.store import Config
from lab.maas.users import key_of, lab_users
from lab.redfish.front import LAB_MODEL
from lab.redfish.service import bmc_password, system_uuid
from tests.lab.conftest import LabSite, _teardown, bmc_log, lab_environ, make_site

pytestmark = pytest.mark.lab

NEW, FAILS_COMMISSIONING, WRONG_POWER, NO_NICS = "gpu-001-01", "gpu-001-02", "gpu-001-03", "gpu-001-04"
OWNED = {"gpu-002-01": "Deployed", "gpu-002-02": "Allocated", "gpu-002-03": "Rescue mode",
         "gpu-002-04": "Broken", "gpu-003-01": "Testing"}
OTHER_IMAGE = "gpu-002-01"
WRONG_MODEL, NEW_TOO = "gpu-003-02", "gpu-003-03"
# Other MAAS users' machines: hostname -> (owner, how its owner left it, the statuses MAAS may show during the run).
THEIRS = {"gpu-003-04": ("alice", "deployed with the site's image", {"Deployed"}),
          "gpu-004-01": ("alice", "failed deployment", {"Failed deployment"}),
          "gpu-004-02": ("alice", "deploying", {"Deploying", "Failed deployment"}),  # MAAS's own timeout may fire
          "gpu-004-03": ("bob", "allocated", {"Allocated"})}
SELECTED = [NEW, FAILS_COMMISSIONING, WRONG_POWER, NO_NICS, *OWNED, WRONG_MODEL, NEW_TOO, *THEIRS]
OTHER_MODEL = "PowerEdge XE8640"


def maas_call(lab: LabSite, call: Callable[[Any], Awaitable[Any]], user: str = "") -> Any:
    """One python-libmaas (bones) call against the lab MAAS, as an operator's own tooling would make it
    (with the site's key, or as another lab MAAS `user` with that user's key)."""
    site = lab.site
    key = resolve_credentials(site, site.maas.credentials).secret
    if user:
        key = key_of(lab_users(Config.load(lab_files(lab.lab_dir)["config"]).api_key), user)

    async def go() -> Any:
        origin = (await Origin.connect(site.maas.url, apikey=key))[1]
        return await call(origin.session)

    return asyncio.run(go())


def wait_status(maas: MaasClient, node: Node, names: set[str], timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    hostname = node.hostname
    while True:
        status = maas.find_machine(node).status_name
        if status in names or time.monotonic() > deadline:
            assert status in names, f"{hostname}: MAAS says {status}, not {names}"
            return status
        time.sleep(0.05)


def power_requests(entries: list[dict]) -> list[dict]:
    """Requests that change power or boot: a reset, or a PATCH of the system (the one-time boot override)."""
    return [e for e in entries if e.get("reset") or (e["method"] == "PATCH" and e["path"].count("/") == 4)]


def seed(lab: LabSite) -> None:
    """What the datacenter hands the tool: most machines unknown, some registered and owned by others."""
    site = lab.site
    password = bmc_password(lab.lab_dir)
    maas = lab.maas()

    def create(hostname: str, secret: str) -> str:
        node = site.nodes[hostname]
        power = {"power_address": node.bmc.address, "power_user": "root", "power_pass": secret,
                 "node_id": system_uuid(site, hostname)}
        made = maas_call(lab, lambda s: s.Machines.create(
            architecture="amd64/generic", mac_addresses=[node.pxe_mac], hostname=hostname,
            power_type="redfish", power_parameters=power))
        return str(made["system_id"])

    ids = {host: create(host, password) for host in [*OWNED, *THEIRS]}
    create(WRONG_POWER, "not-the-bmc-password")
    for host in [*OWNED, *THEIRS]:
        wait_status(maas, site.nodes[host], {"Ready"})
    for host, (user, how, _statuses) in THEIRS.items():
        if how == "allocated":
            maas_call(lab, lambda s, host=host: s.Machines.allocate(system_id=ids[host]), user=user)
        else:  # the site's own image: only the owner tells it apart from one of ours
            maas_call(lab, lambda s, host=host: s.Machine.deploy(system_id=ids[host], distro_series="jammy",
                                                                  hwe_kernel="hwe-22.04"), user=user)
    wait_status(maas, site.nodes[WRONG_POWER], {"Failed commissioning"})
    # MAAS's default kernel, while the site wants hwe: "another image".
    maas_call(lab, lambda s: s.Machine.deploy(system_id=ids[OTHER_IMAGE], distro_series="jammy"))
    maas_call(lab, lambda s: s.Machines.allocate(system_id=ids["gpu-002-02"]))
    maas_call(lab, lambda s: s.Machine.rescue_mode(system_id=ids["gpu-002-03"]))
    maas_call(lab, lambda s: s.Machine.mark_broken(system_id=ids["gpu-002-04"], comment="fan noise"))
    maas_call(lab, lambda s: s.Machine.test(system_id=ids["gpu-003-01"]))
    for host, status in OWNED.items():
        wait_status(maas, site.nodes[host], {status})
    for host, seeded in {"gpu-003-04": "Deployed", "gpu-004-01": "Failed deployment", "gpu-004-02": "Deploying",
                         "gpu-004-03": "Allocated"}.items():
        wait_status(maas, site.nodes[host], {seeded})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabSite, float, dict]]:
    """The seeded lab, when the bring-up started, and its report."""
    faults = [{"kind": "maas_failed_commissioning", "nodes": FAILS_COMMISSIONING},
              {"kind": "bmc_no_nics_yet", "nodes": NO_NICS},
              {"kind": "maas_failed_deployment", "nodes": "gpu-004-01"},
              {"kind": "maas_stuck_deploying", "nodes": "gpu-004-02"}]
    lab = make_site(tmp_path_factory.mktemp("maas-owned"), racks=4, max_hosts=0, faults=faults)
    site_doc = yaml.safe_load(lab.site_file.read_text(encoding="utf-8"))
    site_doc["os"] = {"distro_series": "ubuntu/jammy", "hwe_kernel": "hwe-j"}  # MAAS's aliases for jammy/hwe-22.04
    lab.site_file.write_text(yaml.safe_dump(site_doc, sort_keys=False), encoding="utf-8")
    rack_file = lab.site_file.parent / "racks" / "rack-003.yml"
    rack = yaml.safe_load(rack_file.read_text(encoding="utf-8"))
    next(n for n in rack["nodes"] if n["hostname"] == WRONG_MODEL)["model"] = OTHER_MODEL
    rack_file.write_text(yaml.safe_dump(rack, sort_keys=False), encoding="utf-8")
    with lab_environ(lab):
        try:
            started = lab.lab("up")
            assert started.returncode == 0, started.stderr
            seed(lab)
            t0 = time.time()
            done = lab.cli("--nodes", ",".join(SELECTED), "--until", "os", "--json", timeout_s=300)
            assert done.returncode == 1, done.stderr[-3000:]
            yield lab, t0, {row["hostname"]: row for row in json.loads(done.stdout)["nodes"]}
        finally:
            _teardown(lab)


def test_a_new_rack_is_registered_and_maas_powers_it_through_commissioning_and_deployment(run) -> None:
    lab, t0, rows = run
    for host in (NEW, NEW_TOO):
        assert (rows[host]["status"], rows[host]["stage"]) == ("done", "os"), rows[host]["detail"]
        machine = lab.machine(host)
        assert (machine.status_name, machine.distro_series, machine.hwe_kernel) == ("Deployed", "jammy", "hwe-22.04")
        events = lab.events(host)
        assert events.index("commission/register:done") < events.index("os/ensure_os:started")
        entries = bmc_log(lab, host, t0)
        # MAAS's Redfish driver (through the power parameters we registered) PXE-boots it twice:
        # commissioning and deployment; we never power it. Each power-on is the driver's sequence: the
        # one-time PXE override, then On, with a ForceOff first where its query read the system On. At
        # commissioning it is Off (a new box); at deployment it can still be On when the machine's own
        # shutdown after commissioning has not landed yet (the BMC lands a change 1-11 lab seconds after
        # its POST), and real MAAS sends that ForceOff too.
        maas = power_requests([e for e in entries if e["agent"] == "MAAS"])
        steps = " ".join(e.get("reset") or e["method"] for e in maas)
        assert re.fullmatch(r"PATCH On (ForceOff )?PATCH On", steps), maas
        if "ForceOff" in steps:  # then the machine's own shutdown was sent before MAAS read it still On
            own = [e["ts"] for e in entries if e["agent"] == "fleet-lab-machine-os" and e.get("reset") == "ForceOff"]
            assert own and min(own) < next(e["ts"] for e in maas if e.get("reset") == "ForceOff"), entries
        assert [e for e in maas if e["method"] == "PATCH"] and all(e["status"] < 300 for e in maas)
        assert not power_requests([e for e in entries if e["agent"] not in ("MAAS", "fleet-lab-machine-os")])


def test_failed_commissioning_quarantines_with_maas_message_and_the_failing_script(run) -> None:
    lab, _t0, _rows = run
    state = lab.states()[FAILS_COMMISSIONING]
    assert (state.status, state.current) == ("quarantined", "commission")
    assert lab.machine(FAILS_COMMISSIONING).status_name == "Failed commissioning"
    assert "MAAS: Failed commissioning" in state.last_error and FAILING_SCRIPT in state.last_error
    assert state.evidence["failed_scripts"] == [f"{FAILING_SCRIPT} failed"]
    assert "os/ensure_os:started" not in lab.events(FAILS_COMMISSIONING)


def test_wrong_power_parameters_quarantine_with_maas_power_message(run) -> None:
    lab, t0, _rows = run
    state = lab.states()[WRONG_POWER]
    assert (state.status, state.current) == ("quarantined", "commission")
    assert ("Power on for the node failed: Failed to complete power action: Redfish request failed with "
            "response status code: 401") in state.last_error
    assert lab.machine(WRONG_POWER).status_name == "Failed commissioning"
    assert not power_requests(bmc_log(lab, WRONG_POWER, t0))  # nobody powers it while it is quarantined


def test_a_bmc_without_nics_yet_is_unknown_read_again_then_passes(run) -> None:
    lab, t0, rows = run
    assert (rows[NO_NICS]["status"], rows[NO_NICS]["stage"]) == ("done", "os")
    events = lab.events(NO_NICS)
    assert events.index("discover/identity:unknown") < events.index("discover/stage:ok")
    nic_reads = [e for e in bmc_log(lab, NO_NICS, t0)
                 if e["agent"] != "MAAS" and e["method"] == "GET" and e["path"].endswith("/EthernetInterfaces")]
    assert len(nic_reads) >= 4  # three empty answers while "iDRAC's inventory" runs, then the NIC


@pytest.mark.parametrize("hostname", list(OWNED))
def test_an_owned_machine_is_quarantined_and_no_power_request_reaches_its_bmc(run, hostname: str) -> None:
    lab, t0, rows = run
    assert rows[hostname]["status"] == "quarantined", rows[hostname]
    assert lab.machine(hostname).status_name == OWNED[hostname]  # left as its owner had it
    assert power_requests(bmc_log(lab, hostname, t0)) == []
    events = lab.events(hostname)
    assert "os/claim:started" not in events and "commission/register:started" not in events


def test_another_kernel_is_named_on_both_sides(run) -> None:
    lab, _t0, _rows = run
    error = lab.states()[OTHER_IMAGE].last_error
    assert "MAAS says jammy/ga-22.04, the site wants ubuntu/jammy/hwe-j" in error and "reimage" in error


def test_another_model_stops_the_node_at_discover_naming_both(run) -> None:
    lab, t0, _rows = run
    state = lab.states()[WRONG_MODEL]
    assert (state.status, state.current, state.stage) == ("quarantined", "discover", "")
    assert f"reports model '{LAB_MODEL}', inventory says '{OTHER_MODEL}'" in state.last_error
    assert lab.maas().lookup(lab.site.nodes[WRONG_MODEL]) is None  # never registered
    assert power_requests(bmc_log(lab, WRONG_MODEL, t0)) == []


def test_maas_names_for_the_site_aliases_are_the_site_image_so_nothing_is_redeployed(run, tmp_path: Path) -> None:
    lab, t0, _rows = run
    # A run without our state (another ops host, or the state lost) must judge from MAAS alone: MAAS says
    # jammy/hwe-22.04 for the site's ubuntu/jammy/hwe-j, which is the same image, so nothing is done.
    fresh = replace(lab, state_dir=tmp_path / "state", env={**lab.env, "FLEET_STATE_DIR": str(tmp_path / "state")})
    again = fresh.cli("--nodes", f"{NEW},{NEW_TOO}", "--until", "os", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    for host in (NEW, NEW_TOO):
        events = fresh.events(host)
        assert "os/stage:ok" in events and "os/claim:started" not in events and "os/redeploy:started" not in events
        assert lab.machine(host).status_name == "Deployed"
    assert sum(e.get("reset") == "On" for e in bmc_log(lab, NEW, t0) if e["agent"] == "MAAS") == 2  # no third boot


def maas_ops(lab: LabSite, hostname: str) -> list[str]:
    """The lab MAAS's op log for one machine: '<op> accepted: <from> -> <to> (by <user>)', allocations, refusals."""
    lines = (lab.lab_dir / "logs" / "maas.log").read_text(encoding="utf-8").splitlines()
    return [line.split(f"{hostname}: ", 1)[1] for line in lines if f" {hostname}: " in line
            and (" accepted: " in line or ": allocated" in line or " refused: " in line)]


@pytest.mark.parametrize("hostname", list(THEIRS))
def test_another_users_machine_is_never_released_deployed_powered_or_configured_and_the_run_says_why(
        run, hostname: str) -> None:
    lab, t0, rows = run
    owner, _how, statuses = THEIRS[hostname]
    row = rows[hostname]
    assert (row["status"], row["current"]) == ("quarantined", "os"), row
    assert f"owned by MAAS user '{owner}', not by this tool's user 'admin'" in row["detail"]
    assert f"ask {owner} to release it in MAAS" in row["detail"]
    machine = lab.machine(hostname)
    assert machine.owner == owner and machine.status_name in statuses
    # The lab MAAS's own op log: every action on the machine is its owner's, none ours (admin's key may act on
    # anyone's machine: MAAS would not have stopped us). No tags either: tagging comes after a deployment.
    assert [op for op in maas_ops(lab, hostname) if not op.endswith(f"(by {owner})")] == []
    assert not machine.tags
    assert power_requests([e for e in bmc_log(lab, hostname, t0) if e["agent"] != "MAAS"]) == []
    if hostname != "gpu-004-02":  # MAAS's own timeout may end alice's stuck deployment (no power request)
        assert power_requests(bmc_log(lab, hostname, t0)) == []
    assert "os/claim:started" not in lab.events(hostname)  # never claimed as ours
    decided = [e.detail for e in lab.journal(hostname) if e.event == "ensure_os:started"]
    assert [d["action"] for d in decided] == ["quarantine"]
    assert not [e for e in lab.events(hostname) if e.startswith(("hostkey/", "configure/"))]  # never configured
