"""`ansible-inventory` itself, run as an operator would, over the lab site through the fleet plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_CONFIG = REPO / "inventory" / "lab" / "fleet.yml"
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run from the repository root so its ansible.cfg applies; without one, name the plugin dir ourselves."""
    full_env = {**os.environ, **(env or {})}
    if not (REPO / "ansible.cfg").is_file():
        full_env |= {"ANSIBLE_INVENTORY_PLUGINS": str(REPO / "plugins" / "inventory"),
                     "ANSIBLE_HOME": str(REPO / ".ansible")}
    return subprocess.run([str(ANSIBLE_INVENTORY), *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def listed() -> dict:
    result = _run("-i", str(LAB_CONFIG), "--list")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_graph_shows_rack_and_role_groups() -> None:
    result = _run("-i", str(LAB_CONFIG), "--graph", "rack_012")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["@rack_012:", *(f"|--gpu-012-0{slot}" for slot in range(1, 5))]
    graph = _run("-i", str(LAB_CONFIG), "--graph")
    assert "@role_gpu:" in graph.stdout
    assert "Failed to parse" not in graph.stderr


def test_host_shows_the_nodes_vars() -> None:
    result = _run("-i", str(LAB_CONFIG), "--host", "gpu-012-03")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["ansible_host"] == "198.18.12.13"
    assert (got["fleet_rack"], got["fleet_slot"], got["fleet_gpu_count"]) == (12, 3, 8)
    assert got["fleet_pxe_mac"] == "02:4c:00:0c:03:00"
    assert got["fleet_bmc_address"] == "127.0.0.1:20123"
    assert got["fleet_service_tag"] == "L01203X"
    assert [h["name"] for h in got["fleet_hcas"]] == [f"mlx5_{rail}" for rail in range(8)]
    assert got["fleet_hcas"][0] == {"name": "mlx5_0", "guid": "0xb83fd203000c0300", "leaf": "leaf-g01-r0",
                                    "port": 15, "rate_gbps": 400}
    assert got["fleet_pins"]["nvidia_driver"] == "550.127.05"


def test_list_has_all_512_nodes_in_128_racks(listed: dict) -> None:
    racks = [g for g in listed if g.startswith("rack_")]
    assert len(racks) == 128
    assert all(len(listed[g]["hosts"]) == 4 for g in racks)
    assert len(listed["_meta"]["hostvars"]) == 512
    assert sorted(listed["role_gpu"]["hosts"]) == sorted(listed["_meta"]["hostvars"])


def test_no_secret_reaches_ansible(listed: dict) -> None:
    text = json.dumps(listed)
    assert "secrets.yml" not in text
    assert "password" not in text


def test_a_broken_site_fails_the_command_with_its_problems(tmp_path: Path) -> None:
    site = REPO / "tests" / "fixtures" / "inventories" / "broken" / "duplicate_guid.yml"
    config = tmp_path / "broken.fleet.yml"
    config.write_text(f"plugin: fleet\nsite: {site}\n")
    # Ansible only warns about a source that fails to parse unless told otherwise: ansible.cfg's
    # [inventory] any_unparsed_is_failed, given here through its environment variable.
    result = _run("-i", str(config), "--graph", env={"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true"})
    assert result.returncode != 0
    assert (f"{site}: racks[0].nodes[1].hcas[1].guid: duplicate GUID '0xb83fd20300010100'"
            in result.stderr.replace("\n", " ").replace("  ", " "))
    assert f"Completely failed to parse inventory source {config}" in result.stderr
