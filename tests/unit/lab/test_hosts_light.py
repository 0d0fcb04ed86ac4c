"""Light lab hosts' pure parts: each node's sshd answers only at its address with its own key, the carrier's
health agent config is one healthcheck accepts and reads the node's mounted hardware set, the hook's plan
round-trips without the site."""

from __future__ import annotations

import json
from pathlib import Path

from healthcheck.config import parse_config
from lab.hosts import light


def test_a_nodes_sshd_listens_only_on_its_address_with_its_own_key_and_no_passwords() -> None:
    config = light.sshd_config("gpu-003-02", "198.18.3.12").splitlines()
    assert [line for line in config if line.startswith(("ListenAddress", "HostKey"))] == [
        "ListenAddress 198.18.3.12:22", "HostKey /srv/fleet-nodes/gpu-003-02/ssh_host_ed25519_key"]
    assert "PasswordAuthentication no" in config
    assert not any(line.startswith("Include") for line in config)  # the carrier's own ListenAddress stays out


def test_node_files_name_the_node_and_its_hardware_set() -> None:
    files = light.node_files("gpu-003-02", "198.18.3.12", "sick-gpu")
    assert files["hostname"] == "gpu-003-02\n"
    assert "127.0.1.1\tgpu-003-02" in files["hosts"]  # sudo resolves its own host name
    assert files["hardware"] == "sick-gpu\n"


def test_the_carriers_healthcheck_config_is_valid_and_reads_the_mounted_set_at_the_sites_driver() -> None:
    raw = json.loads(light.healthcheck_config("550.127.05"))
    config = parse_config(raw)
    assert config.gpu.driver_versions == ("550.127.05",)
    assert raw["sources"]["sysfs_root"] == "/opt/fleet-lab/hardware/current/sysfs"
    assert raw["sources"]["nvidia_smi"] == ["/opt/fleet-lab/hardware/bin/nvidia-smi",
                                            "/opt/fleet-lab/hardware/current/"]


def test_the_carrier_carries_the_healthcheck_package_and_listens_only_on_its_own_address() -> None:
    files = {item.path: item for item in light.carrier_files("198.19.102.10", None)}
    assert "opt/fleet/healthcheck/__main__.py" in files
    assert files["usr/lib/python3/dist-packages/fleet-healthcheck.pth"].content == "/opt/fleet\n"
    assert files["etc/ssh/sshd_config.d/20-fleet-light-carrier.conf"].content == "ListenAddress 198.19.102.10:22\n"
    assert files["usr/local/sbin/fleet-node-sshd"].mode == 0o755
    # its sshd starts once that address is on host0 (bound before, it exits 255 and is never restarted)
    assert ("ExecStartPre=/usr/local/sbin/fleet-wait-address host0 198.19.102.10\n"
            in files["etc/systemd/system/ssh.service.d/10-fleet-light-carrier.conf"].content)
    assert files["usr/local/sbin/fleet-wait-address"].mode == 0o755


def test_the_hooks_plan_round_trips(tmp_path: Path) -> None:
    plan = light.LightPlan({"gpu-001-01": "198.18.1.11"}, "ubuntu", "550.127.05", "fleetlab0", "198.18.0.1")
    plan.write(tmp_path)
    assert light.LightPlan.read(tmp_path) == plan


def test_the_address_batch_adds_or_deletes_every_node_on_the_bridge_link() -> None:
    assert light.address_batch("add", ["198.18.1.2", "198.18.1.3"]) == (
        "addr add 198.18.1.2/15 dev host0\naddr add 198.18.1.3/15 dev host0\n")
    assert light.address_batch("del", []) == ""


def test_a_new_host_key_is_a_fresh_openssh_ed25519_pair_sshd_accepts(tmp_path: Path) -> None:
    import subprocess

    from lab.hosts import keys

    path = tmp_path / "ssh_host_ed25519_key"
    private, public = keys.new_host_key(path)
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and public.startswith("ssh-ed25519 ")
    assert path.stat().st_mode & 0o077 == 0  # sshd refuses a host key others can read
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == public.split()[:2]
    assert keys.new_host_key(path)[1] != public  # every deploy a new one


def test_known_hosts_changes_replace_and_drop_several_addresses_in_one_rewrite() -> None:
    from lab.hosts.keys import known_hosts_changed

    text = "198.18.0.1 ssh-ed25519 AAAAold\n198.18.0.2 ssh-ed25519 AAAAkept\n198.18.0.3 ssh-ed25519 AAAAgone\n"
    changed = known_hosts_changed(text, {"198.18.0.1": "ssh-ed25519 AAAAnew fleet-lab-host", "198.18.0.3": None,
                                         "198.18.0.4": "ssh-ed25519 AAAAfour x"})
    assert changed.splitlines() == ["198.18.0.2 ssh-ed25519 AAAAkept", "198.18.0.1 ssh-ed25519 AAAAnew",
                                    "198.18.0.4 ssh-ed25519 AAAAfour"]
