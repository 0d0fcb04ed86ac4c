"""The site's `kraken:` section: every mistake reported with file, key and fix; what the roles receive."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from fleet.errors import InventoryError
from fleet.site import load_site

REPO = Path(__file__).resolve().parents[3]
MINIMAL = REPO / "tests" / "fixtures" / "inventories" / "good" / "minimal.yml"
PIN = "@sha256:" + "ab" * 32
GOOD: dict[str, Any] = {
    "environment": "dc1",
    "control_hosts": [{"name": "kraken-01", "address": "10.40.0.11"}, {"name": "kraken-02", "address": "10.40.0.12"}],
    "artifacts": {
        "agent": {"image": "reg.example/kraken-agent" + PIN},
        "tracker": {"image": "reg.example/kraken-tracker" + PIN},
        "origin": {"url": "https://artifacts.example/kraken-origin", "sha256": "cd" * 32},
        "build-index": {"image": "reg.example/kraken-build-index" + PIN},
        "proxy": {"image": "reg.example/kraken-proxy" + PIN},
    },
    "backend": {"registry": {"address": "reg.example:5000"}},
    "agent": {"ingress_gbps": 100, "egress_gbps": 50, "cache_limit_gb": 500},
}


def _site(tmp_path: Path, kraken: dict[str, Any]) -> Path:
    raw = yaml.safe_load(MINIMAL.read_text(encoding="utf-8"))
    raw["kraken"] = kraken
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _problems(tmp_path: Path, kraken: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InventoryError) as caught:
        load_site(_site(tmp_path, kraken))
    return {p.key: f"{p.message} | {p.fix}" for p in caught.value.problems}


def test_a_good_section_gives_the_roles_endpoints_ports_and_limits(tmp_path: Path) -> None:
    site = load_site(_site(tmp_path, GOOD))
    assert site.kraken is not None
    fleet_kraken = site.kraken.ansible_vars()
    assert fleet_kraken["endpoints"]["tracker"] == ["10.40.0.11:15003", "10.40.0.12:15003"]
    assert fleet_kraken["endpoints"]["origin"] == ["10.40.0.11:15002", "10.40.0.12:15002"]
    assert fleet_kraken["endpoints"]["redis"] == ["10.40.0.11:14001"]  # the first control host by default
    assert fleet_kraken["ports"]["agent_registry"] == 16000
    origin = {"url": "https://artifacts.example/kraken-origin", "sha256": "cd" * 32}
    assert fleet_kraken["artifacts"]["origin"] == origin
    assert fleet_kraken["agent"]["ingress_bits_per_sec"] == 100_000_000_000
    assert fleet_kraken["agent"]["egress_bits_per_sec"] == 50_000_000_000
    assert site.kraken.cache_limit_bytes == 500 * 10**9
    assert site.kraken.reference_registry == "https://reg.example:5000"  # the backend registry, TLS on
    assert site.kraken.reference_tls.verify is True


def test_a_site_without_kraken_has_none(tmp_path: Path) -> None:
    assert load_site(MINIMAL).kraken is None


def test_without_kraken_the_agent_group_is_empty_so_site_yml_skips_the_agent(tmp_path: Path) -> None:
    manager = _plugin_inventory(tmp_path, MINIMAL)
    assert manager.get_hosts("kraken_agent") == []
    assert "fleet_kraken" not in manager.groups["all"].vars


def _plugin_inventory(tmp_path: Path, site: Path) -> InventoryManager:
    inventory_loader.add_directory(str(REPO / "plugins" / "inventory"))
    config = tmp_path / "fleet.yml"
    config.write_text(f"plugin: fleet\nsite: {site}\n")
    manager = InventoryManager(loader=DataLoader(), sources=[])
    inventory_loader.get("fleet").parse(manager._inventory, DataLoader(), str(config), cache=False)
    manager._inventory.reconcile_inventory()
    return manager


def _with(**changes: Any) -> dict[str, Any]:
    kraken = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = kraken
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return kraken


@pytest.mark.parametrize(("kraken", "key", "words"), [
    (_with(artifacts__agent={"image": "reg.example/kraken-agent:v0.1.4"}), "kraken.artifacts.agent.image",
     "is not pinned by digest | write REPOSITORY@sha256"),
    (_with(artifacts__origin={"url": "https://a.example/kraken-origin"}), "kraken.artifacts.origin.sha256",
     "needs its sha256"),
    (_with(artifacts__proxy=None), "kraken.artifacts.proxy", "missing required field"),
    (_with(backend={"registry": {"address": "r:5000"}, "s3": {"bucket": "b", "region": "r"}}), "kraken.backend",
     "exactly one of registry or s3"),
    (_with(backend={"s3": {"bucket": "b"}}), "kraken.backend.s3.region", "missing required field"),
    (_with(control_hosts=[{"name": "gpu-001-01", "address": "10.40.0.11"}]), "kraken.control_hosts[0].name",
     "is also a GPU node of the site"),
    (_with(control_hosts=[{"name": "k", "address": "10.40.0.300"}]), "kraken.control_hosts[0].address",
     "is not an IP address"),
    (_with(control_hosts=[]), "kraken.control_hosts", "expected a list"),
    (_with(ports={"tracker": 15000}), "kraken.ports.tracker", "port 15000 is also kraken.ports.proxy"),
    (_with(ports={"agent_peer": 16000}), "kraken.ports.agent_peer", "port 16000 is also kraken.ports.agent_registry"),
    (_with(ports={"trackr": 15010}), "kraken.ports.trackr", "unknown key | did you mean 'tracker'?"),
    (_with(redis=["kraken-09"]), "kraken.redis[0]", "neither a control host nor host:port"),
    (_with(agent={"ingress_gbps": 0}), "kraken.agent.ingress_gbps", "positive number of Gb/s"),
    (_with(agent={"cache_aggressive_threshold_pct": 120}), "kraken.agent.cache_aggressive_threshold_pct",
     "percentage 1-100"),
    (_with(agent={"cache_ttl": "1 day"}), "kraken.agent.cache_ttl", "is not a Go duration"),
    (_with(agent={"bandwidth_gbps": 10}), "kraken.agent.bandwidth_gbps", "unknown key"),
    (_with(pull_concurrency=0), "kraken.pull_concurrency", "integer >= 1"),
    (_with(reference_registry="registry:5000"), "kraken.reference_registry", "is not an http(s) URL"),
])  # fmt: skip
def test_each_mistake_is_one_problem_naming_its_key(
    tmp_path: Path, kraken: dict[str, Any], key: str, words: str
) -> None:
    problems = _problems(tmp_path, kraken)
    assert list(problems) == [key], problems
    for part in words.split(" | "):
        assert part in problems[key]


def test_the_inventory_plugin_exposes_the_control_group_and_fleet_kraken(tmp_path: Path) -> None:
    manager = _plugin_inventory(tmp_path, _site(tmp_path, GOOD))
    control = sorted(h.name for h in manager.get_hosts("kraken_control"))
    assert control == ["kraken-01", "kraken-02"]
    assert manager.get_host("kraken-02").vars["ansible_host"] == "10.40.0.12"
    assert sorted(h.name for h in manager.get_hosts("kraken_agent")) == sorted(load_site(MINIMAL).nodes)
    fleet_kraken = manager.groups["all"].vars["fleet_kraken"]
    assert fleet_kraken["endpoints"]["build-index"] == ["10.40.0.11:15004", "10.40.0.12:15004"]
    assert fleet_kraken["environment"] == "dc1"
