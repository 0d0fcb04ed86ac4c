"""Lab hosts as QEMU VMs: a real kernel of their own, for roles that load kernel modules or reboot.

The VM disk is the same debootstrap tree as the containers' (plus a kernel), turned into an ext4
image once (`mkfs.ext4 -d`, no loop mounts) and cached; each VM boots a qcow2 overlay of it, so
stopping one throws its writes away like a container's overlay. What makes a VM itself (hostname,
address, the lab's SSH keys) travels on a small second disk that a unit in the image copies into
place before networkd and sshd start. The VM sits on the lab bridge through a tap device.

Acceleration: KVM when /dev/kvm really boots a kernel, software emulation (TCG) otherwise. Some
machines have a /dev/kvm that opens but hangs a stock kernel in its decompressor (a software
hypervisor); the probe boots the image's kernel with a deadline and falls back to TCG.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lab.hosts import bridge, image, keys, leases, nspawn
from lab.hosts.image import HostError
from lab.hosts.nspawn import DEFAULT_BRIDGE, DEFAULT_GATEWAY, HostInfo
from lab.hosts.plan import LAB_NETWORK, HostIdentity, check_address, check_name, vm_image_spec
from lab.hosts.proc import RunClock, pid_alive

log = logging.getLogger(__name__)

DISK_SIZE = "4G"
SEED_SIZE = "16M"
PROBE_TIMEOUT_S = 20.0
BOOT_TIMEOUT_S = 300.0  # seconds qemu could run (proc.RunClock): TCG boots to SSH in ~20-60 s of that
GUEST_START_TIMEOUT_S = 900  # systemd's start-job timeout in the guest (default 90 s): see start()


def _run(argv: list[str], what: str, node: str | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HostError(f"{what} failed", node=node, service_message=done.stderr or done.stdout)


def vm_files() -> tuple[Path, Path, Path]:
    """(kernel, initrd, ext4 disk) of the VM image, building the disk on first use."""
    root = image.ensure_vm()
    folder = root.parent
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise HostError(f"the VM image at {root} has no kernel or initrd", hint=f"delete {folder} to rebuild it")
    disk = folder / "disk.raw"
    if not (folder / ".disk-complete").exists():
        partial = folder / "disk.raw.partial"
        partial.unlink(missing_ok=True)
        _run(["truncate", "-s", DISK_SIZE, str(partial)], "creating the VM disk")
        _run(["mkfs.ext4", "-q", "-F", "-L", "fleetroot", "-d", str(root), str(partial)],
             "writing the VM image into an ext4 disk")
        partial.replace(disk)
        (folder / ".disk-complete").write_text("ok\n", encoding="utf-8")
    return kernels[-1], initrds[-1], disk


def _accel_cache() -> Path:
    return image.cache_dir() / f"accel-{os.uname().release}-{vm_image_spec().key}"


def choose_accel(kernel: Path) -> str:
    """'kvm' when /dev/kvm boots this kernel within the deadline, else 'tcg'. FLEET_LAB_ACCEL overrides.

    The probe boots without a root disk: a working KVM reaches the kernel's "unable to mount root"
    panic in a second or two, and `-no-reboot` turns that into QEMU exiting.
    """
    forced = os.environ.get("FLEET_LAB_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    cached = _accel_cache()
    if cached.exists():
        return cached.read_text(encoding="utf-8").strip()
    accel = "tcg"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        with tempfile.TemporaryDirectory() as tmp:
            console = Path(tmp) / "console.log"
            argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-display", "none",
                    "-monitor", "none", "-no-reboot", "-serial", f"file:{console}", "-kernel", str(kernel),
                    "-append", "console=ttyS0 panic=-1 root=/dev/null"]
            try:
                subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
                text = console.read_text(encoding="utf-8", errors="replace") if console.exists() else ""
                accel = "kvm" if "Kernel panic" in text or "VFS:" in text else "tcg"
            except subprocess.TimeoutExpired:
                log.info("KVM did not boot a kernel within %.0f s: using software emulation", PROBE_TIMEOUT_S)
    cached.write_text(accel + "\n", encoding="utf-8")
    return accel


def tap_name(lab_dir: Path, name: str) -> str:
    """The tap device of VM `name` of `lab_dir` (a hash: device names are at most 15 characters)."""
    return "fvm" + hashlib.sha256(f"{lab_dir.resolve()}/{name}".encode()).hexdigest()[:10]


def _mac(lab_dir: Path, name: str) -> str:
    digest = hashlib.sha256(f"{lab_dir.resolve()}/{name}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def start(name: str, address: str, lab_dir: Path, *, memory_mb: int = 1024, cpus: int = 2,
          bridge_name: str = DEFAULT_BRIDGE, gateway: str = DEFAULT_GATEWAY,
          timeout_s: float = BOOT_TIMEOUT_S, login_user: str = "ubuntu") -> HostInfo:
    """Boot VM `name` at `address` and wait for SSH; idempotent like `nspawn.start`.

    Two vCPUs by default, each a host thread under TCG (multi-threaded TCG): on the 2-core machine an
    Ansible module run over SSH took ~40 % less wall time than with one (sshd, sudo and the module's
    Python overlap instead of taking turns on one emulated CPU; tests/molecule/README.md has the figures).

    Starved guests: the boot deadline counts only the time qemu could run (a CI run beside the whole suite
    once left the VM short of SSH after 300 wall seconds), and the guest's systemd waits up to
    GUEST_START_TIMEOUT_S for a unit to start instead of its default 90 s, which a starved guest can
    overrun with nothing wrong (a real server's boot has its own CPU; this one shares the test machine's).
    """
    check_name(name)
    check_address(address, gateway)
    lab_dir = lab_dir.resolve()
    current = {h.name: h for h in nspawn.list_hosts(lab_dir)}
    here = current.get(name)
    if here is not None and here.running and here.address == address and here.kind == "vm":
        return here
    if here is not None:
        (stop if here.kind == "vm" else nspawn.stop)(name, lab_dir)
    leases.claim(address, lab_dir, name)
    kernel, initrd, disk = vm_files()
    accel = choose_accel(kernel)
    lab_keys = keys.ensure_keys(lab_dir)
    bridge.ensure_bridge(bridge_name, gateway)
    folder = nspawn.hosts_dir(lab_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kind").write_text("vm", encoding="utf-8")
    (folder / "address").write_text(address, encoding="utf-8")
    overlay = folder / "disk.qcow2"
    _run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", "raw", str(overlay)],
         "creating the VM's disk overlay", name)
    seed_tree = folder / "seed"
    host_key, host_pub = keys.new_host_key(folder / "ssh_host_ed25519_key")
    identity = HostIdentity(name, address, LAB_NETWORK.prefixlen, lab_keys.client_pub, host_key, host_pub,
                            login_user)
    nspawn.write_files(seed_tree / "root", identity, "eth0", nspawn.image_accounts(image.ensure_vm()))
    keys.record_host_key(lab_dir, address, host_pub)
    seed = folder / "seed.raw"
    _run(["truncate", "-s", SEED_SIZE, str(seed)], "creating the seed disk", name)
    _run(["mkfs.ext4", "-q", "-F", "-L", "fleetseed", "-d", str(seed_tree), str(seed)], "writing the seed disk", name)
    tap = tap_name(lab_dir, name)
    (folder / "tap").write_text(tap, encoding="utf-8")
    if subprocess.run(["ip", "link", "show", tap], capture_output=True, check=False).returncode != 0:
        _run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], "creating the VM's tap device", name)
    _run(["ip", "link", "set", tap, "master", bridge_name, "up"], "attaching the tap device to the bridge", name)
    argv = [
        "qemu-system-x86_64", "-name", name, "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
        "-cpu", "host" if accel == "kvm" else "max",
        "-m", str(memory_mb), "-smp", str(cpus), "-display", "none", "-monitor", "none",
        "-serial", f"file:{folder / 'console.log'}",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", f"root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname={name} quiet "
                   f"systemd.default_timeout_start_sec={GUEST_START_TIMEOUT_S}",
        "-drive", f"file={overlay},if=virtio,format=qcow2",
        "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
        "-netdev", f"tap,id=lab,ifname={tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=lab,mac={_mac(lab_dir, name)}",
    ]
    with open(folder / "qemu.log", "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    clock = RunClock(process.pid)
    (folder / "pid").write_text(str(process.pid), encoding="utf-8")
    keys.write_ssh_config(lab_dir, nspawn.running_hosts(lab_dir))
    try:
        nspawn.wait_for_ssh(name, address, lab_dir, timeout_s, process, clock)
    except HostError:
        stop(name, lab_dir)
        raise
    boot_s, starved_s = clock.wall_s(), clock.starved_s()
    (folder / "boot_s").write_text(f"{boot_s:.1f}\n", encoding="utf-8")
    log.info("%s: lab VM (%s) up at %s, boot to SSH %.1f s (%.1f s of it waiting for a host CPU)",
             name, accel, address, boot_s, starved_s)
    return HostInfo(name, address, process.pid, True, "vm")


def stop(name: str, lab_dir: Path) -> bool:
    """Stop VM `name`, remove its tap device and throw its disk overlay away; False if there was none."""
    check_name(name)
    lab_dir = lab_dir.resolve()
    folder = nspawn.hosts_dir(lab_dir) / name
    if not folder.exists():
        return False
    found = {h.name: h for h in nspawn.list_hosts(lab_dir)}.get(name)
    if found is not None and found.running and found.pid:
        os.kill(found.pid, signal.SIGTERM)  # the disk is thrown away: no guest shutdown to wait for
        deadline = time.monotonic() + 10
        while pid_alive(found.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(found.pid):
            os.kill(found.pid, signal.SIGKILL)
    tap = (folder / "tap").read_text(encoding="utf-8").strip() if (folder / "tap").exists() else ""
    if tap:
        subprocess.run(["ip", "link", "delete", tap], capture_output=True, check=False)
    address = (folder / "address").read_text(encoding="utf-8").strip() if (folder / "address").exists() else ""
    shutil.rmtree(folder, ignore_errors=True)
    if address:
        leases.release(address, lab_dir, name)
        keys.forget_host_key(lab_dir, address)
    keys.write_ssh_config(lab_dir, nspawn.running_hosts(lab_dir))
    log.info("%s: lab VM stopped and its disk overlay removed", name)
    return True
