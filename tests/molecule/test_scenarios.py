"""Every role's molecule scenario: converge on a lab host, converge again with zero changes, verify.

Runs `molecule test` for real on nspawn lab hosts (and the `vm` scenario in a QEMU VM) through the
shared create/destroy playbooks in tests/molecule/, with ANSIBLE_HOME in a temporary directory (each
scenario's molecule.yml narrows it to its own ephemeral directory) so runs never share SSH control
sockets or ~/.ansible.
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

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = sorted(path.parent.parent.name for path in (REPO / "roles").glob("*/tasks/main.yml"))
SCENARIOS = sorted(
    (path.parent.parent.parent.name, path.parent.name)
    for path in (REPO / "roles").glob("*/molecule/*/molecule.yml")
)


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


@pytest.mark.slow
@pytest.mark.parametrize(("role", "scenario"), SCENARIOS, ids=[f"{r}-{s}" for r, s in SCENARIOS])
def test_molecule_scenario_converges_idempotently_and_verifies(role: str, scenario: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_ROLES_PATH"] = str(REPO / "roles")
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [str(BIN / "molecule"), "test", "-s", scenario],
        cwd=REPO / "roles" / role, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-20000:]
