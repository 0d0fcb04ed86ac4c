"""Pure decisions of lab hosts: image cache keys, the address plan, per-host files, the MAAS hook."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab.hosts.plan import (
    LAB_NETWORK,
    MOLECULE_NSPAWN_RANGE,
    MOLECULE_VM_RANGE,
    Accounts,
    HostIdentity,
    ImageSpec,
    PlanError,
    add_login_user,
    base_image_spec,
    cache_key,
    check_address,
    check_name,
    decide_hook,
    host_files,
    machine_name,
    molecule_address,
    nspawn_argv,
    vm_image_spec,
)
from lab.settings import load_lab_site

REPO = Path(__file__).resolve().parents[3]
GATEWAY = "198.18.0.1"
BASE = ImageSpec("bookworm", "minbase", ("openssh-server", "python3", "sudo"), ("set -e\n",))


def test_cache_key_ignores_package_order_and_duplicates() -> None:
    shuffled = ImageSpec(BASE.suite, BASE.variant, ("sudo", "python3", "openssh-server", "sudo"), BASE.setup)
    assert cache_key(shuffled) == cache_key(BASE)


@pytest.mark.parametrize(
    "changed",
    [
        ImageSpec("bookworm", "minbase", ("openssh-server", "python3", "sudo", "chrony"), ("set -e\n",)),
        ImageSpec("bookworm", "minbase", ("openssh-server", "python3"), ("set -e\n",)),
        ImageSpec("trixie", "minbase", ("openssh-server", "python3", "sudo"), ("set -e\n",)),
        ImageSpec("bookworm", "buildd", ("openssh-server", "python3", "sudo"), ("set -e\n",)),
        ImageSpec("bookworm", "minbase", ("openssh-server", "python3", "sudo"), ("set -e\nrm -f /x\n",)),
    ],
    ids=["package added", "package removed", "suite", "variant", "setup script"],
)
def test_cache_key_changes_with_anything_that_changes_the_image(changed: ImageSpec) -> None:
    assert cache_key(changed) != cache_key(BASE)


def test_vm_image_is_the_base_image_plus_a_kernel_under_its_own_key() -> None:
    base, vm = base_image_spec(), vm_image_spec()
    assert set(base.packages) < set(vm.packages)
    assert "linux-image-amd64" in vm.packages
    assert vm.setup[: len(base.setup)] == base.setup
    assert vm.key != base.key


def test_base_image_carries_what_ansible_and_the_roles_need_offline() -> None:
    packages = set(base_image_spec().packages)
    assert {"systemd-sysv", "openssh-server", "python3", "python3-apt", "sudo", "chrony"} <= packages


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("10.0.0.5", "outside the lab block"),
        ("192.0.2.2", "outside the lab block"),
        ("198.20.0.1", "outside the lab block"),
        ("198.18.0.0", "network or broadcast"),
        ("198.19.255.255", "network or broadcast"),
        ("198.18.0.1", "bridge's own address"),
        ("gpu-012-03", "not an IPv4 address"),
        ("198.18.12", "not an IPv4 address"),
    ],
)
def test_addresses_outside_the_lab_plan_are_refused(address: str, problem: str) -> None:
    with pytest.raises(PlanError, match=problem):
        check_address(address, GATEWAY)


@pytest.mark.parametrize("address", ["198.18.12.13", "198.19.100.10", "198.18.0.2", "198.19.255.254"])
def test_addresses_inside_the_lab_block_are_accepted(address: str) -> None:
    assert str(check_address(address, GATEWAY)) == address


def test_molecule_addresses_count_up_from_the_tenth_of_their_range() -> None:
    assert molecule_address(0) == "198.19.100.10"
    assert molecule_address(3) == "198.19.100.13"
    assert molecule_address(0, vm=True) == "198.19.101.10"
    assert molecule_address(244) == "198.19.100.254"
    with pytest.raises(PlanError):
        molecule_address(245)
    with pytest.raises(PlanError):
        molecule_address(-1)


def test_no_lab_node_address_falls_in_a_molecule_range_and_all_are_valid_lab_addresses() -> None:
    site = load_lab_site(REPO / "inventory" / "lab" / "site.yml")
    addresses = [ipaddress.IPv4Address(node.address) for node in site.nodes.values()]
    assert len(addresses) == len(set(addresses)) == 512
    for address in addresses:
        check_address(str(address), site.lab.hosts.gateway if site.lab else GATEWAY)
        assert address not in MOLECULE_NSPAWN_RANGE
        assert address not in MOLECULE_VM_RANGE
    assert MOLECULE_NSPAWN_RANGE.subnet_of(LAB_NETWORK) and MOLECULE_VM_RANGE.subnet_of(LAB_NETWORK)


@pytest.mark.parametrize("name", ["", "-lead", "a" * 64, "gpu_012", "gpu 012", "../etc"])
def test_host_names_that_are_not_dns_labels_are_refused(name: str) -> None:
    with pytest.raises(PlanError):
        check_name(name)


ACCOUNTS = Accounts("root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\nadm:x:4:\nsudo:x:27:\n",
                    "root:*:19000:0:99999:7:::\n", 42)


def test_host_files_make_the_image_into_one_host() -> None:
    identity = HostIdentity("gpu-012-03", "198.18.12.13", 15, "ssh-ed25519 AAAAclient lab", "PRIVATE\n",
                            "ssh-ed25519 AAAAhost lab")
    files = {f.path: f for f in host_files(identity, "host0", ACCOUNTS)}
    assert files["etc/hostname"].content == "gpu-012-03\n"
    assert "127.0.1.1\tgpu-012-03" in files["etc/hosts"].content
    network = files["etc/systemd/network/10-fleet-lab.network"].content
    assert "Name=host0" in network and "Address=198.18.12.13/15" in network
    login = files["home/ubuntu/.ssh/authorized_keys"]
    assert (login.content, login.mode, login.uid) == ("ssh-ed25519 AAAAclient lab\n", 0o600, 1000)
    assert files["etc/ssh/ssh_host_ed25519_key"].mode == 0o600
    assert files["etc/ssh/ssh_host_ed25519_key.pub"].mode == 0o644


def test_the_login_is_ubuntu_with_passwordless_sudo_and_root_is_told_to_use_it() -> None:
    identity = HostIdentity("h", "198.18.12.13", 15, "ssh-ed25519 AAAAclient lab", "K\n", "ssh-ed25519 AAAAhost")
    files = {f.path: f for f in host_files(identity, "host0", ACCOUNTS)}
    assert "ubuntu:x:1000:1000:ubuntu:/home/ubuntu:/bin/bash" in files["etc/passwd"].content.splitlines()
    assert "sudo:x:27:ubuntu" in files["etc/group"].content.splitlines()
    assert (files["etc/shadow"].mode, files["etc/shadow"].gid) == (0o640, 42)
    assert files["etc/sudoers.d/90-cloud-init-users"].content.endswith("ubuntu ALL=(ALL) NOPASSWD:ALL\n")
    assert files["etc/sudoers.d/90-cloud-init-users"].mode == 0o440
    root = files["root/.ssh/authorized_keys"].content
    assert root.startswith("no-port-forwarding") and "exit 142" in root and 'user \\"ubuntu\\"' in root


def test_adding_the_login_user_twice_changes_nothing() -> None:
    once = add_login_user(ACCOUNTS, "ubuntu")
    assert add_login_user(once, "ubuntu") == once


def test_nspawn_runs_without_machined_on_the_lab_bridge() -> None:
    machine = machine_name("gpu-012-03", Path("/lab/a"))
    argv = nspawn_argv("gpu-012-03", machine, Path("/x/merged"), "fleetlab0")
    assert argv[0] == "systemd-nspawn"
    assert {"--boot", "--register=no", "--keep-unit", "--network-bridge=fleetlab0", "--directory=/x/merged",
            f"--machine={machine}", "--hostname=gpu-012-03"} <= set(argv)


def test_the_same_host_name_in_two_labs_gets_two_machine_names() -> None:
    one, two = machine_name("gpu-001-01", Path("/lab/a")), machine_name("gpu-001-01", Path("/lab/b"))
    assert one != two and one.startswith("gpu-001-01-") and two.startswith("gpu-001-01-")
    assert machine_name("gpu-001-01", Path("/lab/a")) == one
    assert len(machine_name("x" * 63, Path("/lab/a"))) <= 64


RUNNING = frozenset({"gpu-001-01", "gpu-001-02"})


@pytest.mark.parametrize(
    ("event", "hostname", "running", "cap", "action", "reason"),
    [
        ("deployed", "gpu-012-03", RUNNING, 8, "start", "booting"),
        ("deployed", "gpu-012-03", RUNNING, 2, "skip", "NO lab host: 2 of 2"),
        ("deployed", "gpu-001-01", RUNNING, 2, "start", "redeployed"),
        ("released", "gpu-001-01", RUNNING, 2, "stop", "thrown away"),
        ("released", "gpu-012-03", RUNNING, 8, "skip", "no lab host"),
        ("deployed", "gpu-012-03", frozenset(), 1, "start", "booting"),
    ],
    ids=["room left", "cap reached", "redeploy at the cap", "release", "release without host", "first"],
)
def test_hook_decides_by_event_and_cap(event: str, hostname: str, running: frozenset[str], cap: int,
                                       action: str, reason: str) -> None:
    decided = decide_hook(event, hostname, running, cap)
    assert decided.action == action
    assert reason in decided.reason


def test_hook_refuses_unknown_events() -> None:
    with pytest.raises(PlanError, match="unknown hook event"):
        decide_hook("commissioned", "gpu-012-03", frozenset(), 8)
