"""Roles, playbooks and the playbooks' molecule scenarios pass ansible-lint's production profile, and the
playbooks Ansible's own syntax check.

Both linters run for real (no mocks, nothing skipped): a role that lint rejects or a playbook
Ansible cannot parse would fail the configure stage on 512 nodes at once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.molecule.runner import molecule_env

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
ROLES = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/tasks/main.yml"))
PLAYBOOKS = ["site.yml", "rack.yml", "kraken.yml"]
COMMAND_MODULES = {"ansible.builtin.command", "ansible.builtin.shell", "command", "shell"}


def test_roles_and_playbooks_pass_ansible_lint_production_profile(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--nocolor", "roles", "playbooks", "molecule"],
        cwd=REPO, env=molecule_env(tmp_path), capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_syntax_check(playbook: str, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "role_gpu": {"hosts": {"gpu-012-01": None}},
        "rack_012": {"hosts": {"gpu-012-01": None}},
    }}}))
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory),
         "-e", "fleet_rack_id=12", str(REPO / "playbooks" / playbook)],
        cwd=REPO, env=molecule_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _task_files(role: str) -> list[Path]:
    base = REPO / "roles" / role
    return sorted([*(base / "tasks").glob("*.yml"), *(base / "handlers").glob("*.yml")])


def _tasks(items: list | None):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


@pytest.mark.parametrize("role", ROLES)
def test_every_command_task_declares_when_it_changes(role: str) -> None:
    offenders = []
    for path in _task_files(role):
        for task in _tasks(yaml.safe_load(path.read_text())):
            module = next((key for key in task if key in COMMAND_MODULES), None)
            if module is None:
                continue
            args = task[module] if isinstance(task[module], dict) else {}
            if "changed_when" not in task and not {"creates", "removes"} & set(args):
                offenders.append(f"{path.relative_to(REPO)}: {task.get('name')}")
    assert offenders == []


@pytest.mark.parametrize("role", ROLES)
def test_role_has_the_house_layout(role: str) -> None:
    base = REPO / "roles" / role
    for name in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml",
                 "handlers/main.yml", "README.md"):
        assert (base / name).is_file(), f"roles/{role}/{name} is missing"
    main = yaml.safe_load((base / "tasks/main.yml").read_text())
    # Static imports: resolved once when the play is parsed, where include_tasks costs a task per host
    # per file on every run (34 of them over site.yml).
    assert all("ansible.builtin.import_tasks" in task for task in main), "tasks/main.yml only imports files"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_prefixed_and_described_in_the_argument_specs(role: str) -> None:
    base = REPO / "roles" / role
    defaults = yaml.safe_load((base / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((base / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    options = specs.get("options", {})
    assert [name for name in defaults if not name.startswith(role + "_")] == []
    assert sorted(set(defaults) - set(options)) == []
    assert [name for name, spec in options.items() if "type" not in spec or "description" not in spec] == []


@pytest.mark.parametrize("role", ROLES)
def test_templates_start_with_the_ansible_managed_header(role: str) -> None:
    for template in sorted((REPO / "roles" / role / "templates").glob("*.j2")):
        assert template.read_text().startswith("{{ ansible_managed | comment }}"), template.name


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_default_molecule_scenario_with_verify(role: str) -> None:
    scenario = REPO / "roles" / role / "molecule" / "default"
    if role in ("hardware_facts", "cuda_repo"):
        # Helper roles run (and are verified) inside every scenario of the roles that depend on them.
        return
    for name in ("molecule.yml", "converge.yml", "verify.yml"):
        assert (scenario / name).is_file(), f"roles/{role}/molecule/default/{name} is missing"
