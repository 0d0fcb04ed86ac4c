"""Pure decisions for lab hosts: addresses, image cache keys, the files that make a host itself, argv.

Nothing here touches the machine, so every rule (which addresses a host may take, when an image must
be rebuilt, what the MAAS hook does at the cap) has a table-driven unit test.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

# The benchmarking block (RFC 2544): no real network uses it, so lab traffic can never leave the lab.
LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
# Lab nodes sit at 198.18.<rack>.<10 + slot> (inventory); molecule instances get ranges no rack reaches.
MOLECULE_NSPAWN_RANGE = ipaddress.ip_network("198.19.100.0/24")
MOLECULE_VM_RANGE = ipaddress.ip_network("198.19.101.0/24")
# The light-host carrier's own address (lab/hosts/light.py): one per lab, beside the molecule ranges.
LIGHT_CARRIER_RANGE = ipaddress.ip_network("198.19.102.0/24")
FIRST_HOST_OFFSET = 10  # .1-.9 of a range stay free for gateways and servers

DEBIAN_SUITE = "bookworm"
DEBIAN_VARIANT = "minbase"
# The base image: what every lab host needs to be managed (systemd, sshd, Python with apt bindings)
# plus the Debian packages the roles install from Debian itself, baked in because lab hosts reach
# no Debian mirror. python3-debian: ansible.builtin.deb822_repository needs it on the node.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "python3-debian", "sudo",
    "iproute2", "iputils-ping", "ca-certificates", "gnupg", "kmod", "procps", "udev", "chrony",
    "pciutils", "rdma-core", "ibverbs-utils", "numactl", "prometheus-node-exporter", "less",
)
# A VM boots its own kernel: the image's kernel and an initramfs that finds a virtio disk; grub's tools
# (see VM_SETUP).
VM_PACKAGES: tuple[str, ...] = ("linux-image-amd64", "initramfs-tools", "grub2-common")

# Shell run in the image root (chroot) once after debootstrap. Part of the cache key: editing it rebuilds.
# - no Debian source: lab hosts reach no mirror, and a dead source fails every `apt update` of a role;
# - no host keys or machine id in the image: each lab writes its own key, systemd makes each host an id;
# - networkd configures the bridge address from the per-host .network file; timers that wake apt off;
# - an empty resolv.conf: no DNS in the lab, and a resolver that times out slows every fact gathering.
IMAGE_SETUP = r"""
set -e
: > /etc/apt/sources.list
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
: > /etc/resolv.conf
systemctl enable systemd-networkd.service ssh.service
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer systemd-networkd-wait-online.service getty-static.service
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nUseDNS no\n' > /etc/ssh/sshd_config.d/10-fleet-lab.conf
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
"""
# Python on a lab host keeps the bytecode of what it imports from zips (Ansible's module payloads), keyed
# by the source's hash: a lab speed measure for the emulated VM, see lab/hosts/zipcache.py. The hook's
# source is part of the script, so editing it rebuilds the image. The check at the end proves it loads.
ZIPCACHE_SETUP = r"""
set -e
dir=$(python3 -c 'import site; print(site.getsitepackages()[0])')
mkdir -p "$dir"
cat > "$dir/fleet_lab_zipcache.py" <<'PY'
""" + Path(__file__).with_name("zipcache.py").read_text(encoding="utf-8") + r"""PY
echo 'import fleet_lab_zipcache; fleet_lab_zipcache.install()' > "$dir/fleet_lab_zipcache.pth"
python3 -c 'import zipimport; assert zipimport._compile_source.fleet_lab_cached'
"""
# After the kernel is installed: the initramfs must carry virtio drivers to find its root disk; the
# seed unit applies the per-VM files (hostname, address, keys) from the second disk before sshd starts.
# QEMU boots the kernel directly, but grub's tools and /boot/grub are there as on an installed server,
# so a role that changes the kernel command line runs update-grub for real.
VM_SETUP = r"""
set -e
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >> /etc/initramfs-tools/modules
update-initramfs -u -k all
cat > /usr/local/sbin/fleet-seed <<'SEED'
#!/bin/sh
# Copy the per-VM files from the seed disk (/dev/vdb, made by lab.hosts.vm) onto the root.
set -e
for _ in $(seq 50); do [ -b /dev/vdb ] && break; sleep 0.1; done
mkdir -p /run/fleet-seed
mount -o ro /dev/vdb /run/fleet-seed
cp -a /run/fleet-seed/root/. /
umount /run/fleet-seed
hostname "$(cat /etc/hostname)"
SEED
chmod 755 /usr/local/sbin/fleet-seed
cat > /etc/systemd/system/fleet-seed.service <<'UNIT'
[Unit]
Description=Apply the lab VM's seed disk (hostname, address, SSH keys)
DefaultDependencies=no
After=local-fs.target
Before=systemd-networkd.service ssh.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleet-seed
RemainAfterExit=yes

[Install]
WantedBy=sysinit.target
UNIT
systemctl enable fleet-seed.service
printf '/dev/vda / ext4 defaults 0 1\n' > /etc/fstab
mkdir -p /boot/grub
"""


class PlanError(ValueError):
    """A request the plan rejects (bad address, bad name); the CLI turns it into exit code 2."""


@dataclass(frozen=True)
class ImageSpec:
    """What goes into an image; its key names the cache entry, so any change builds a new one."""

    suite: str
    variant: str
    packages: tuple[str, ...]
    setup: tuple[str, ...]

    @property
    def key(self) -> str:
        return cache_key(self)


def base_image_spec() -> ImageSpec:
    return ImageSpec(DEBIAN_SUITE, DEBIAN_VARIANT, BASE_PACKAGES, (IMAGE_SETUP, ZIPCACHE_SETUP))


def vm_image_spec() -> ImageSpec:
    base = base_image_spec()
    return ImageSpec(base.suite, base.variant, base.packages + VM_PACKAGES, (*base.setup, VM_SETUP))


def cache_key(spec: ImageSpec) -> str:
    """Stable over package order and duplicates (a set), sensitive to everything else."""
    payload = json.dumps(
        {"suite": spec.suite, "variant": spec.variant, "packages": sorted(set(spec.packages)),
         "setup": list(spec.setup)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_address(address: str, gateway: str) -> ipaddress.IPv4Address:
    """A lab host address must be a usable address of the lab block and not the bridge's own."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise PlanError(f"{address!r} is not an IPv4 address") from None
    if ip not in LAB_NETWORK:
        raise PlanError(f"{address} is outside the lab block {LAB_NETWORK}; lab hosts never use real addresses")
    if ip in (LAB_NETWORK.network_address, LAB_NETWORK.broadcast_address):
        raise PlanError(f"{address} is the lab block's network or broadcast address")
    if str(ip) == gateway:
        raise PlanError(f"{address} is the bridge's own address (the lab host side)")
    return ip


def molecule_address(index: int, *, vm: bool = False) -> str:
    """The address of the `index`-th (0-based) molecule instance; never one a lab node can have."""
    network = MOLECULE_VM_RANGE if vm else MOLECULE_NSPAWN_RANGE
    usable = network.num_addresses - FIRST_HOST_OFFSET - 1
    if not 0 <= index < usable:
        raise PlanError(f"molecule instance index {index} is outside 0..{usable - 1}")
    return str(network.network_address + FIRST_HOST_OFFSET + index)


def check_name(name: str) -> str:
    """Host names become machine names, veth names and paths: a DNS label, nothing else."""
    if not name or len(name) > 63 or not all(c.isalnum() or c == "-" for c in name) or name[0] == "-":
        raise PlanError(f"{name!r} is not a valid host name (letters, digits and '-', at most 63)")
    return name


@dataclass(frozen=True)
class HostFile:
    """A file written into a host's root before it boots (owned by `uid`:`gid`)."""

    path: str
    content: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


# The login a MAAS-deployed Ubuntu has: cloud-init's default user, uid 1000, in sudo with no password
# (its /etc/sudoers.d/90-cloud-init-users line), and root's key wrapped so a root login is told to use
# that user and dropped (cloud-init's `disable_root_opts`, exit 142).
LOGIN_UID = 1000
LOGIN_GROUPS = ("adm", "sudo")
DISABLE_ROOT = ('no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo \'Please login as the '
                'user \\"{user}\\" rather than the user \\"root\\".\';echo;sleep 10;exit 142" ')


@dataclass(frozen=True)
class Accounts:
    """The image's account files, which a login user is added to (text of /etc/passwd, group, shadow)."""

    passwd: str
    group: str
    shadow: str
    shadow_gid: int = 42  # Debian's `shadow` group owns /etc/shadow


@dataclass(frozen=True)
class HostIdentity:
    """Who a host is: its name, address on the bridge, its login user, the lab's client key it trusts
    and the host key it presents (made fresh for every boot, as a reinstalled server's is)."""

    hostname: str
    address: str
    prefixlen: int
    authorized_key: str
    host_key: str
    host_key_pub: str
    login_user: str = "ubuntu"


def add_login_user(accounts: Accounts, user: str) -> Accounts:
    """The account files with `user` added as cloud-init adds the default user (idempotent)."""
    passwd = [line for line in accounts.passwd.splitlines() if line and not line.startswith(f"{user}:")]
    shadow = [line for line in accounts.shadow.splitlines() if line and not line.startswith(f"{user}:")]
    groups = []
    for line in accounts.group.splitlines():
        if not line or line.startswith(f"{user}:"):
            continue
        name, password, gid, members = (line.split(":") + [""] * 4)[:4]
        listed = [m for m in members.split(",") if m and m != user]
        if name in LOGIN_GROUPS:
            listed.append(user)
        groups.append(":".join((name, password, gid, ",".join(listed))))
    passwd.append(f"{user}:x:{LOGIN_UID}:{LOGIN_UID}:{user}:/home/{user}:/bin/bash")
    groups.append(f"{user}:x:{LOGIN_UID}:")
    shadow.append(f"{user}:*:19000:0:99999:7:::")  # no password: key logins only
    return Accounts("\n".join(passwd) + "\n", "\n".join(groups) + "\n", "\n".join(shadow) + "\n",
                    accounts.shadow_gid)


def host_files(identity: HostIdentity, interface: str, accounts: Accounts) -> tuple[HostFile, ...]:
    """The files that turn the shared image into one particular host.

    `interface` is the host's link to the bridge: `host0` in a container (nspawn's veth), the first
    Ethernet link in a VM. /etc/hosts carries the name because sudo resolves its own host name.
    `accounts` are the image's account files; the host's login user is added to them.
    """
    user = identity.login_user
    users = add_login_user(accounts, user)
    key = identity.authorized_key.strip()
    name, address = identity.hostname, identity.address
    network = (
        "[Match]\n"
        f"Name={interface}\n\n"
        "[Network]\n"
        f"Address={address}/{identity.prefixlen}\n"
        "LinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n"
    )
    return (
        HostFile("etc/hostname", f"{name}\n"),
        HostFile("etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n{address}\t{name}\n"),
        HostFile("etc/systemd/network/10-fleet-lab.network", network),
        HostFile("etc/passwd", users.passwd),
        HostFile("etc/group", users.group),
        HostFile("etc/shadow", users.shadow, 0o640, 0, users.shadow_gid),
        HostFile("etc/sudoers.d/90-cloud-init-users",
                 f"# Created by cloud-init (lab.hosts)\n{user} ALL=(ALL) NOPASSWD:ALL\n", 0o440),
        HostFile(f"home/{user}/.ssh/authorized_keys", key + "\n", 0o600, LOGIN_UID, LOGIN_UID),
        HostFile("root/.ssh/authorized_keys", DISABLE_ROOT.format(user=user) + key + "\n", 0o600),
        HostFile("etc/ssh/ssh_host_ed25519_key", identity.host_key, 0o600),
        HostFile("etc/ssh/ssh_host_ed25519_key.pub", identity.host_key_pub.strip() + "\n"),
    )


def machine_name(name: str, lab_dir: Path) -> str:
    """The container's machine name: the host name plus a hash of its lab dir.

    nspawn names the bridge-side veth after the machine (`vb-<machine>`, hashed when too long), and
    interface names are machine-wide: two labs each running `gpu-001-01` must not fight over one.
    The host name inside the container stays the node's own (`--hostname`).
    """
    digest = hashlib.sha256(str(lab_dir).encode()).hexdigest()[:8]
    return f"{name}-{digest}"[-64:]


def nspawn_argv(name: str, machine: str, root: Path, bridge: str) -> list[str]:
    """systemd-nspawn for one host.

    --register=no --keep-unit: PID 1 of a CI machine is often not systemd, so there is no machined to
    register with and no unit to create; the caller gives the container its own cgroup instead.
    --resolv-conf=off keeps the image's empty resolv.conf (no DNS in the lab).
    """
    return [
        "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
        f"--directory={root}", f"--machine={machine}", f"--hostname={name}",
        f"--network-bridge={bridge}", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        "--console=read-only",
    ]


@dataclass(frozen=True)
class HookAction:
    """What the MAAS hook does for one event: `start`, `stop` or `skip`, and why (logged)."""

    action: str
    reason: str


def decide_hook(event: str, hostname: str, running: frozenset[str], max_hosts: int) -> HookAction:
    """Deployed -> boot a host unless the cap is reached; released -> throw the host away.

    A node redeployed while its host runs gets a fresh host (a reimage), so `start` also covers
    `hostname in running`: the caller stops the old one first.
    """
    if event == "released":
        if hostname in running:
            return HookAction("stop", "released: its host and overlay are thrown away")
        return HookAction("skip", "released; it has no lab host")
    if event != "deployed":
        raise PlanError(f"unknown hook event {event!r}; expected 'deployed' or 'released'")
    if hostname in running:
        return HookAction("start", "redeployed: its host is replaced by a fresh one")
    if len(running) >= max_hosts:
        return HookAction(
            "skip",
            f"deployed but gets NO lab host: {len(running)} of {max_hosts} lab hosts already run "
            "(raise lab.hosts.max in the site, or release nodes)",
        )
    return HookAction("start", "deployed: booting its lab host")
