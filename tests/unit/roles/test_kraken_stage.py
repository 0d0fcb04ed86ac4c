"""Site -> inventory plugin -> roles -> validator: the example production site's Kraken cluster renders valid.

Runs the roles' own stage tasks (tests/fixtures/kraken/render.yml; every task is delegated to the
controller, nothing is contacted) over the fleet inventory plugin's view of a copy of
inventory/example-production whose agent registry port is moved to 17000, so a site section, the
plugin's `fleet_kraken`, the roles' templates and docker's mirror (container_runtime, from the same
variable in playbooks/group_vars/all.yml) cannot drift apart without this failing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_the_example_site_renders_a_cluster_the_validator_accepts(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    site_dir = tmp_path / "site"
    shutil.copytree(REPO / "inventory" / "example-production", site_dir)
    raw = yaml.safe_load((site_dir / "site.yml").read_text())
    raw["kraken"]["ports"] = {"agent_registry": 17000}
    (site_dir / "site.yml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles")}
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(site_dir / "fleet.yml"),
         str(REPO / "tests" / "fixtures" / "kraken" / "render.yml"), "-e", "ansible_connection=local",
         "-e", f"kraken_control_stage_dir={stage}", "-e", f"kraken_agent_stage_dir={stage}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert json.loads((stage / "cluster.json").read_text())["endpoints"]["tracker"] == [
        "10.40.0.11:15003", "10.40.0.12:15003"]
    agent = yaml.safe_load((stage / "gpu-001-01" / "etc/kraken/agent/dc1.yaml").read_text())
    assert agent["tracker"]["hosts"]["static"] == ["10.40.0.11:15003", "10.40.0.12:15003"]
    assert agent["scheduler"]["conn"]["bandwidth"]["ingress_bits_per_sec"] == 100_000_000_000
    assert (stage / "kraken-01" / "etc/kraken/redis/redis.conf").is_file()
    assert not (stage / "kraken-02" / "etc/kraken/redis/redis.conf").exists()  # kraken.redis: [kraken-01]
    unit = (stage / "kraken-02" / "etc/systemd/system/kraken-origin.service").read_text()
    assert "--peer-ip=10.40.0.12" in unit and "kraken-origin@sha256:" in unit
    agent_unit = (stage / "gpu-001-01" / "etc/systemd/system/kraken-agent.service").read_text()
    assert "--agent-registry-port=17000" in agent_unit

    mirror = subprocess.run(
        [str(BIN / "ansible"), "gpu-001-01", "-i", str(site_dir / "fleet.yml"),
         "--playbook-dir", str(REPO / "playbooks"), "-e", "ansible_connection=local",
         "-m", "ansible.builtin.debug", "-a", "var=container_runtime_registry_mirrors"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert mirror.returncode == 0, mirror.stdout + mirror.stderr
    assert "http://127.0.0.1:17000" in mirror.stdout
