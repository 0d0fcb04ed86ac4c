"""Every molecule scenario: converge on a lab host, converge again with zero changes, verify.

Runs `molecule test` for real through the shared create/destroy playbooks in tests/molecule/: each role's
scenarios on nspawn lab hosts, and the repository's own `site` scenario (molecule/site: playbooks/site.yml,
every role in order) in one QEMU VM. ANSIBLE_HOME and molecule's ephemeral directory are temporary
directories of each run, so runs never share SSH control sockets, ~/.ansible or ~/.cache/molecule.
Needs root, systemd-nspawn, QEMU and the lab's apt repository machinery, as CI has (scripts/install.sh).
Not a unit test: these boot hosts and install packages, so they live beside the scenarios' shared
playbooks and carry the `slow` marker (`-m "not slow"` leaves them out). Every scenario runs in the
background from the end of collection on (conftest.py, runner.py: the site on its own, the role scenarios in
two lanes); their tests come last and wait for them.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lab.hosts import lifecycle, vm
from lab.hosts.nspawn import DEFAULT_GATEWAY
from tests.molecule.runner import LANE_APT_PORTS, REPO, ROLE_TIMEOUT_S, MoleculeRun, RoleRuns

ROLES = sorted(path.parent.parent.name for path in (REPO / "roles").glob("*/tasks/main.yml"))
# (project directory relative to the repository, scenario) of every role scenario; the repository's own
# scenario (molecule/site, the project is the repository) has a test of its own below.
SCENARIOS = sorted(
    (f"roles/{path.parent.parent.parent.name}", path.parent.name)
    for path in (REPO / "roles").glob("*/molecule/*/molecule.yml")
)
CASES = [pytest.param(project, scenario, id=f"{Path(project).name}-{scenario}") for project, scenario in SCENARIOS]


def test_every_role_has_a_default_scenario_with_converge_and_verify() -> None:
    """Issue 4: a role without its `default` scenario is a role CI never converges."""
    missing = [
        f"roles/{role}/molecule/default/{name}"
        for role in ROLES
        for name in ("molecule.yml", "converge.yml", "verify.yml")
        if not (REPO / "roles" / role / "molecule" / "default" / name).is_file()
    ]
    assert ROLES, "no roles found under roles/"
    assert missing == []


def test_the_site_scenario_applies_site_yml_to_one_vm() -> None:
    """Issue 9: the whole node stack in one QEMU VM (one VM keeps CI bounded), converged by the playbook
    the configure stage runs, not by a copy of its role list."""
    config = yaml.safe_load((REPO / "molecule" / "site" / "molecule.yml").read_text())
    converge = (REPO / "molecule" / "site" / config["provisioner"]["playbooks"]["converge"]).resolve()
    assert converge == REPO / "playbooks" / "site.yml"
    assert [p.get("fleet_kind") for p in config["platforms"]] == ["vm"]
    assert {"converge", "idempotence", "verify"} <= set(config["scenario"]["test_sequence"])
    vms = [p for p in (REPO / "roles").glob("*/molecule/*/molecule.yml")
           if any(h.get("fleet_kind") == "vm" for h in yaml.safe_load(p.read_text())["platforms"])]
    assert vms == [], "a role scenario boots a VM of its own; fold its checks into molecule/site"


def test_the_repository_has_only_the_site_scenario() -> None:
    """The site test below runs `molecule test -s site`: another scenario under molecule/ would never run."""
    assert sorted(path.parent.name for path in (REPO / "molecule").glob("*/molecule.yml")) == ["site"]


@pytest.mark.slow
@pytest.mark.parametrize(("project", "scenario"), CASES)
def test_molecule_scenario_converges_idempotently_and_verifies(project: str, scenario: str, role_runs: RoleRuns,
                                                              record_property: Callable[[str, object], None]) -> None:
    """`molecule test` of the scenario (create, converge, idempotence, verify, destroy), run in a background
    lane from the end of collection on (conftest.py, runner.py): the test waits for it and asserts its exit."""
    outcome = role_runs.outcome(REPO / project, scenario, timeout_s=len(CASES) * ROLE_TIMEOUT_S)
    record_property("molecule_seconds", round(outcome.seconds, 1))
    record_property("molecule_cpu_seconds", outcome.cpu_s)
    assert outcome.code == 0, outcome.tail


@pytest.mark.slow
@pytest.mark.vm
def test_the_site_scenario_converges_idempotently_and_verifies(site_run: MoleculeRun,
                                                             record_property: Callable[[str, object], None]) -> None:
    """Issue 9: site.yml on one VM converges, changes nothing the second time, verifies; destroy leaves nothing
    (the VM's folder, its tap device and its address lease are gone)."""
    code = site_run.wait()
    record_property("molecule_seconds", round(site_run.seconds or 0.0, 1))
    record_property("molecule_cpu_seconds", site_run.cpu_s)
    assert code == 0, site_run.tail()
    lab_dir = site_run.ephemeral / "lab"
    assert lifecycle.list_hosts(lab_dir) == []
    tap = vm.tap_name(lab_dir, "gpu-012-01")
    assert subprocess.run(["ip", "link", "show", tap], capture_output=True, check=False).returncode != 0
    # Every scenario's destroy stopped its lab apt server: each role lane's, the site's and the shared 8081
    # (by hand). The role tests ran before this one, so their lanes are done; tests/lab labs serve apt on free
    # ports of their own, so none of these is legitimately held at this point of the session.
    config = yaml.safe_load((REPO / "molecule" / "site" / "molecule.yml").read_text())
    ports = (8081, int(config["provisioner"]["env"]["FLEET_LAB_APT_PORT"]), *LANE_APT_PORTS)
    listening = [port for port in ports if _listens(DEFAULT_GATEWAY, port)]
    assert listening == [], f"a molecule lab apt server outlived its scenario: {DEFAULT_GATEWAY} ports {listening}"


def _listens(address: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((address, port)) == 0
