"""Every molecule scenario: converge on a lab host, converge again with zero changes, verify.

Runs `molecule test` for real through the shared create/destroy playbooks in tests/molecule/: each role's
scenarios on nspawn lab hosts, and the repository's own `site` scenario (molecule/site: playbooks/site.yml,
every role in order) in one QEMU VM. ANSIBLE_HOME is a temporary directory (each scenario's molecule.yml
narrows it to its own ephemeral directory) so runs never share SSH control sockets or ~/.ansible.
Needs root, systemd-nspawn and the lab's apt repository machinery, as CI has (scripts/install.sh).
Not a unit test: these boot hosts and install packages, so they live beside the scenarios' shared
playbooks and carry the `slow` marker (`-m "not slow"` leaves them out).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = sorted(path.parent.parent.name for path in (REPO / "roles").glob("*/tasks/main.yml"))
# (project directory relative to the repository, scenario): the roles' scenarios, then the playbooks' (the
# repository itself is their molecule project).
SCENARIOS = sorted(
    (f"roles/{path.parent.parent.parent.name}", path.parent.name)
    for path in (REPO / "roles").glob("*/molecule/*/molecule.yml")
) + sorted((".", path.parent.name) for path in (REPO / "molecule").glob("*/molecule.yml"))
# The repository's scenarios boot a QEMU VM: marker `vm`, which the default run leaves out (pyproject's
# addopts: the site scenario takes ~27 min under software emulation); `pytest -m vm` runs it.
CASES = [
    pytest.param(project, scenario, id=f"{Path(project).name}-{scenario}" if project != "." else scenario,
                 marks=[pytest.mark.vm] if project == "." else [])
    for project, scenario in SCENARIOS
]


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


@pytest.mark.slow
@pytest.mark.parametrize(("project", "scenario"), CASES)
def test_molecule_scenario_converges_idempotently_and_verifies(project: str, scenario: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_ROLES_PATH"] = str(REPO / "roles")
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [str(BIN / "molecule"), "test", "-s", scenario],
        cwd=REPO / project, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-20000:]
