"""The fleet inventory plugin, loaded through Ansible's own plugin loader and inventory manager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleParserError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.plugins.loader import inventory_loader

from fleet.site import load_site

REPO = Path(__file__).resolve().parents[3]
PLUGINS = REPO / "plugins" / "inventory"
MINIMAL = REPO / "tests" / "fixtures" / "inventories" / "good" / "minimal.yml"
BROKEN = REPO / "tests" / "fixtures" / "inventories" / "broken"


@pytest.fixture(scope="module")
def plugin() -> BaseInventoryPlugin:
    inventory_loader.add_directory(str(PLUGINS))
    loaded = inventory_loader.get("fleet")
    assert loaded is not None, f"fleet plugin not found in {PLUGINS}"
    return loaded


def _config(tmp_path: Path, site: Path, name: str = "fleet.yml") -> Path:
    config = tmp_path / name
    config.write_text(f"plugin: fleet\nsite: {site}\n")
    return config


def _inventory(plugin, config: Path) -> InventoryManager:
    manager = InventoryManager(loader=DataLoader(), sources=[])
    plugin.parse(manager._inventory, DataLoader(), str(config), cache=False)
    manager._inventory.reconcile_inventory()
    return manager


@pytest.mark.parametrize(
    ("name", "claimed"),
    [
        ("fleet.yml", True),
        ("fleet.yaml", True),
        ("lab.fleet.yml", True),
        ("prod.fleet.yaml", True),
        ("site.yml", False),
        ("rack-012.yml", False),
        ("fleet.yml.bak", False),
        ("myfleet.yml", False),
    ],
)
def test_verify_file_claims_only_fleet_config_files(
    plugin: BaseInventoryPlugin, tmp_path: Path, name: str, claimed: bool
) -> None:
    path = _config(tmp_path, MINIMAL, name)
    assert plugin.verify_file(str(path)) is claimed


def test_hosts_are_grouped_by_rack_and_role(plugin: BaseInventoryPlugin, tmp_path: Path) -> None:
    manager = _inventory(plugin, _config(tmp_path, MINIMAL))
    assert sorted(h.name for h in manager.get_hosts("rack_001")) == ["gpu-001-01", "gpu-001-02"]
    assert sorted(h.name for h in manager.get_hosts("role_gpu")) == ["gpu-001-01", "gpu-001-02"]


def test_host_vars_are_the_models_fields(plugin: BaseInventoryPlugin, tmp_path: Path) -> None:
    manager = _inventory(plugin, _config(tmp_path, MINIMAL))
    node = load_site(MINIMAL).nodes["gpu-001-02"]
    got = manager.get_host("gpu-001-02").get_vars()
    assert got["ansible_host"] == node.address == "10.2.1.12"
    assert (got["fleet_rack"], got["fleet_slot"], got["fleet_role"]) == (1, 2, "gpu")
    assert got["fleet_service_tag"] == node.service_tag
    assert got["fleet_gpu_count"] == 8
    assert got["fleet_pxe_mac"] == node.pxe_mac
    assert got["fleet_bmc_address"] == node.bmc.address
    assert got["fleet_hcas"] == [
        {"name": h.name, "guid": h.guid, "leaf": h.leaf, "port": h.port, "rate_gbps": h.rate_gbps} for h in node.hcas
    ]


def test_group_all_carries_the_site_name_and_pins(plugin: BaseInventoryPlugin, tmp_path: Path) -> None:
    site_file = tmp_path / "site.yml"
    site_file.write_text(MINIMAL.read_text() + "pins: {nvidia_driver: '550.127.05', nccl: 2.21.5}\n")
    manager = _inventory(plugin, _config(tmp_path, site_file))
    all_vars = manager.groups["all"].get_vars()
    assert all_vars == {"fleet_site": "fixture", "fleet_pins": {"nvidia_driver": "550.127.05", "nccl": "2.21.5"},
                        "ansible_user": "ubuntu"}


def test_the_site_login_user_and_bastion_reach_ansible(plugin: BaseInventoryPlugin, tmp_path: Path) -> None:
    site_file = tmp_path / "site.yml"
    site_file.write_text(MINIMAL.read_text() + "ssh: {user: ops, proxy_jump: 'jump@bastion.example:2222'}\n")
    all_vars = _inventory(plugin, _config(tmp_path, site_file)).groups["all"].get_vars()
    assert all_vars["ansible_user"] == "ops"
    assert all_vars["ansible_ssh_common_args"] == "-o ProxyJump=jump@bastion.example:2222"


def test_group_all_carries_the_fabric_partitions_for_the_doca_ofed_role(
        plugin: BaseInventoryPlugin, tmp_path: Path) -> None:
    manager = _inventory(plugin, _config(tmp_path, REPO / "inventory" / "lab" / "site.yml"))
    assert manager.groups["all"].get_vars()["fleet_fabric"] == {
        "partitions": [{"pkey": "0x0a12", "name": "compute", "membership": "full", "index0": True,
                        "ip_over_ib": True}],
        "ipoib_mode": "datagram",
    }


def test_a_relative_site_path_is_relative_to_the_config_file(plugin: BaseInventoryPlugin, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "site.yml").write_text(MINIMAL.read_text())
    manager = _inventory(plugin, _config(tmp_path, Path("site/site.yml")))
    assert len(manager.hosts) == 2


def test_no_secret_or_secret_reference_reaches_ansible(
    plugin: BaseInventoryPlugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_BMC_PASSWORD", "s3cret-bmc")
    monkeypatch.setenv("FLEET_MAAS_API_KEY", "c:t:s3cret")
    manager = _inventory(plugin, _config(tmp_path, MINIMAL))
    dumped = json.dumps(
        {h.name: h.get_vars() for h in manager.get_hosts()} | {g: manager.groups[g].get_vars() for g in manager.groups}
    )
    for text in ("s3cret", "FLEET_BMC_PASSWORD", "FLEET_MAAS_API_KEY", "credentials"):
        assert text not in dumped


def test_an_invalid_site_fails_with_every_problem(plugin: BaseInventoryPlugin, tmp_path: Path) -> None:
    site_file = BROKEN / "several_problems.yml"
    with pytest.raises(AnsibleParserError) as err:
        _inventory(plugin, _config(tmp_path, site_file))
    text = str(err.value)
    # production's loader: the lab's own section (two more problems) is the lab's to check
    assert f"fleet site {site_file} is invalid: 4 problem(s)" in text
    assert f"{site_file}: racks[0].nodes[1].pxe_mac: '7c-c2-55-01-02-00' is not a MAC address" in text
    assert "did you mean 'switches'?" in text
