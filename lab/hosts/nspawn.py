"""Lab hosts as systemd-nspawn containers: boot from an overlay on the cached image, stop, list.

Each host's state is one directory, `lab_dir/hosts/<name>/` (overlay upper/work/merged, the pid of
systemd-nspawn, its address, the console log). Every call looks at what is really there (pid alive?
overlay mounted? cgroup left over?) rather than trusting a record, so start and stop are idempotent
and safe after a crash, a SIGKILL or a half-finished start.

Each container runs in a cgroup of its own (`fleetlab-<lab hash>-<name>`): on a machine whose PID 1 is
not systemd, containers sharing one cgroup have their systemds fight over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.hosts import bridge, image, keys, leases
from lab.hosts.image import HostError
from lab.hosts.plan import (
    LAB_NETWORK,
    Accounts,
    HostFile,
    HostIdentity,
    check_address,
    check_name,
    host_files,
    machine_name,
    nspawn_argv,
)
from lab.hosts.proc import RunClock, log_tail, pid_alive

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "fleetlab0"
DEFAULT_GATEWAY = "198.18.0.1"
# A container boots to a login in seconds here; at the test suite's start on 2 cores, twice a host whose
# console had reached its login prompt took no SSH login within a 60 s budget (fresh-clone CI, sessions 11
# and 12; each login attempt may take its 30 s). A host that is really stuck is still caught.
SSH_TIMEOUT_S = 180.0
STOP_GRACE_S = 5.0
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


@dataclass(frozen=True)
class HostInfo:
    """A lab host as found on the machine."""

    name: str
    address: str
    pid: int | None
    running: bool
    kind: str = "nspawn"


def hosts_dir(lab_dir: Path) -> Path:
    return lab_dir / "hosts"


def _host_dir(lab_dir: Path, name: str) -> Path:
    return hosts_dir(lab_dir) / name


def _cgroup_name(lab_dir: Path, name: str) -> str:
    digest = hashlib.sha256(str(lab_dir.resolve()).encode()).hexdigest()[:8]
    return f"fleetlab-{digest}-{name}"


def cgroup_dirs(lab_dir: Path, name: str) -> list[Path]:
    roots = [r for r in CGROUP_ROOTS if r.is_dir()] or [Path("/sys/fs/cgroup")]
    return [root / _cgroup_name(lab_dir, name) for root in roots]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return any(line.split()[1] == target for line in mounts if len(line.split()) > 1)


def list_hosts(lab_dir: Path) -> list[HostInfo]:
    """Every host with a state directory in this lab, running or left over."""
    found: list[HostInfo] = []
    root = hosts_dir(lab_dir)
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        pid_text = _read(folder / "pid")
        pid = int(pid_text) if pid_text and pid_text.isdigit() else None
        found.append(HostInfo(folder.name, _read(folder / "address") or "", pid, pid_alive(pid),
                              _read(folder / "kind") or "nspawn"))
    return found


def running_hosts(lab_dir: Path) -> dict[str, str]:
    """name -> address of the hosts that run now."""
    return {h.name: h.address for h in list_hosts(lab_dir) if h.running}


def start(name: str, address: str, lab_dir: Path, *, bridge_name: str = DEFAULT_BRIDGE,
          gateway: str = DEFAULT_GATEWAY, timeout_s: float = SSH_TIMEOUT_S, login_user: str = "ubuntu",
          extra_files: Sequence[HostFile] = ()) -> HostInfo:
    """Boot host `name` at `address` and wait until `login_user` can log in with the lab key.

    Every start is a fresh install: a new host key (recorded in the lab's known_hosts for that
    address), the login user with passwordless sudo, root logins refused as cloud-init refuses them.

    `extra_files` are written into the host's root after its own (the light-host carrier's units and sshd
    settings, lab/hosts/light.py).

    Already running at that address: nothing to do. Running elsewhere, or left half there by a crash:
    thrown away and started fresh.
    """
    check_name(name)
    check_address(address, gateway)
    lab_dir = lab_dir.resolve()
    current = {h.name: h for h in list_hosts(lab_dir)}
    here = current.get(name)
    if here is not None and here.running and here.address == address:
        return here
    if here is not None:
        stop(name, lab_dir)
    leases.claim(address, lab_dir, name)

    rootfs = image.ensure_base()
    lab_keys = keys.ensure_keys(lab_dir)
    bridge.ensure_bridge(bridge_name, gateway)
    folder = _host_dir(lab_dir, name)
    upper, work, merged = folder / "upper", folder / "work", folder / "merged"
    for sub in (upper, work, merged):
        sub.mkdir(parents=True, exist_ok=True)
    (folder / "address").write_text(address, encoding="utf-8")
    (folder / "kind").write_text("nspawn", encoding="utf-8")
    host_key, host_pub = keys.new_host_key(folder / "ssh_host_ed25519_key")
    identity = HostIdentity(name, address, LAB_NETWORK.prefixlen, lab_keys.client_pub, host_key, host_pub,
                            login_user)
    write_files(upper, identity, "host0", image_accounts(rootfs))
    write_host_files(upper, extra_files)
    keys.record_host_key(lab_dir, address, host_pub)
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={rootfs},upperdir={upper},workdir={work}",
         str(merged)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        raise HostError("could not mount the host's overlay", node=name, service_message=mounted.stderr,
                        hint="lab hosts need root and overlayfs")

    cgroups = cgroup_dirs(lab_dir, name)
    for cgroup in cgroups:
        cgroup.mkdir(exist_ok=True)

    def enter_cgroup() -> None:  # runs in the child between fork and exec
        for cgroup in cgroups:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    started = time.monotonic()
    with open(folder / "console.log", "ab") as console:
        argv = nspawn_argv(name, machine_name(name, lab_dir), merged, bridge_name)
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   preexec_fn=enter_cgroup)
    (folder / "pid").write_text(str(process.pid), encoding="utf-8")
    keys.write_ssh_config(lab_dir, running_hosts(lab_dir))
    try:
        wait_for_ssh(name, address, lab_dir, timeout_s, process)
    except HostError as error:
        error.service_message = "\n".join(filter(None, [sshd_view(process.pid), error.service_message]))
        stop(name, lab_dir)
        raise
    log.info("%s: lab host up at %s in %.1f s", name, address, time.monotonic() - started)
    return HostInfo(name, address, process.pid, True)


def image_accounts(rootfs: Path) -> Accounts:
    """The image's /etc/passwd, group and shadow, which each host's login user is added to."""
    etc = rootfs / "etc"
    return Accounts((etc / "passwd").read_text(encoding="utf-8"), (etc / "group").read_text(encoding="utf-8"),
                    (etc / "shadow").read_text(encoding="utf-8"), (etc / "shadow").stat().st_gid)


def write_files(root: Path, identity: HostIdentity, interface: str, accounts: Accounts) -> None:
    """Write the per-host files (hostname, address, accounts, keys) under `root` with their modes and
    owners; a home directory and its .ssh belong to the file's owner (sshd refuses keys otherwise)."""
    write_host_files(root, host_files(identity, interface, accounts))


def write_host_files(root: Path, files: Iterable[HostFile]) -> None:
    """Write `files` under `root` with their modes and owners (see write_files)."""
    for item in files:
        target = root / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.path.startswith(("root/", "home/")):
            target.parent.chmod(0o700)
            for folder in (target.parent, target.parent.parent):
                os.chown(folder, item.uid, item.gid)
            if item.path.startswith("home/"):
                target.parent.parent.chmod(0o755)
        target.write_text(item.content, encoding="utf-8")
        target.chmod(item.mode)
        os.chown(target, item.uid, item.gid)


def wait_for_ssh(name: str, address: str, lab_dir: Path, timeout_s: float,
                 process: subprocess.Popen[bytes] | None = None, clock: RunClock | None = None) -> None:
    """Wait until sshd answers and a login with the lab key runs a command (that also warms ControlMaster).

    `clock` says when `timeout_s` is over (default: wall time since the call); a VM passes one that
    counts only the time its qemu could run (proc.RunClock). A login that hangs past its own 30 s is
    one more try, not an error: a starved guest's sshd can be that slow. The error says what the last
    try saw (no listener, no banner, or what ssh said), which tells a dead sshd from a slow one.
    """
    clock = clock or RunClock()
    seen = "no try finished"
    while not clock.overdue(timeout_s):
        if process is not None and process.poll() is not None:
            raise HostError(f"the host exited with code {process.returncode} while booting", node=name,
                            service_message=log_tail(_host_dir(lab_dir, name) / "console.log"))
        seen = _banner(address) or _login(address, lab_dir)
        if not seen:
            return
        time.sleep(0.2)
    raise HostError(f"the host did not accept SSH at {address} within {timeout_s:.0f} s{clock.describe()}; "
                    f"the last try: {seen}",
                    node=name, service_message=log_tail(_host_dir(lab_dir, name) / "console.log"),
                    hint=f"read {_host_dir(lab_dir, name) / 'console.log'}")


def container_init(nspawn_pid: int) -> int | None:
    """The container's PID 1 (systemd-nspawn's child), whose namespaces `nsenter` enters; None before it exists."""
    try:
        children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text(encoding="utf-8").split()
    except OSError:
        return None
    return int(children[0]) if children else None


def run_inside(init_pid: int, *argv: str, stdin: str | None = None,
               timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `argv` in the container's namespaces and root (systemctl must see the container's systemd)."""
    return subprocess.run(["nsenter", f"--target={init_pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
                           "--root", "--wd", *argv], input=stdin, capture_output=True, text=True, check=False,
                          timeout=timeout_s)


def sshd_view(nspawn_pid: int) -> str:
    """What the container itself says of its sshd and address (for a host that took no login): the console
    shows a login prompt whether or not sshd runs; `systemctl status` says whether it failed and why."""
    init = container_init(nspawn_pid)
    if init is None:
        return ""
    try:
        done = run_inside(init, "sh", "-c", "systemctl status ssh.service --no-pager --lines=5; ip -4 -brief addr",
                          timeout_s=15)
    except subprocess.TimeoutExpired:
        return "in the container: systemctl status ssh.service did not answer within 15 s"
    return f"in the container:\n{done.stdout.strip()}{done.stderr.strip()}"


def _login(address: str, lab_dir: Path) -> str:
    """'' when a login with the lab key runs `true` within 30 s, else what ssh said."""
    try:
        done = subprocess.run(["ssh", "-F", str(lab_dir / "ssh_config"), "-o", "BatchMode=yes", address, "true"],
                              capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "the login took more than 30 s"
    if done.returncode != 0:
        return f"ssh exited {done.returncode}: {done.stderr.strip()[-300:] or 'nothing on stderr'}"
    return ""


def _banner(address: str) -> str:
    """'' when something on port 22 sends an SSH banner within 2 s, else what happened."""
    try:
        with socket.create_connection((address, 22), timeout=1) as conn:
            conn.settimeout(2)
            start = conn.recv(8)
    except OSError as error:
        return f"port 22: {error.strerror or error}"
    return "" if start.startswith(b"SSH-") else f"port 22 sent {start!r}, not an SSH banner"


def _cgroup_pids(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    if not cgroup.is_dir():
        return pids
    for procs in cgroup.rglob("cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def _remove_cgroup(cgroup: Path) -> None:
    if not cgroup.is_dir():
        return
    for sub in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            log.debug("cgroup %s not removed yet", sub)
    try:
        cgroup.rmdir()
    except OSError as err:
        log.warning("could not remove cgroup %s: %s", cgroup, err)


def stop(name: str, lab_dir: Path, *, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop host `name` and throw its overlay away; True if anything was there. Safe on any leftover."""
    check_name(name)
    lab_dir = lab_dir.resolve()
    folder = _host_dir(lab_dir, name)
    cgroups = cgroup_dirs(lab_dir, name)
    if not folder.exists() and not any(c.exists() for c in cgroups):
        return False
    pid_text = _read(folder / "pid")
    pid = int(pid_text) if pid_text and pid_text.isdigit() else None
    address = _read(folder / "address")
    if pid_alive(pid):
        # SIGTERM asks nspawn to power the container off cleanly; the overlay is thrown away anyway, so
        # a short grace is enough and the rest is killed.
        os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + grace_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    for _ in range(50):
        left = set().union(*(_cgroup_pids(c) for c in cgroups))
        if pid and pid_alive(pid):
            left.add(pid)
        if not left:
            break
        for each in left:
            try:
                os.kill(each, signal.SIGKILL)
            except ProcessLookupError:
                continue
        time.sleep(0.1)
    if pid:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
    merged = folder / "merged"
    if merged.exists() and _is_mounted(merged):
        unmounted = subprocess.run(["umount", str(merged)], capture_output=True, text=True, check=False)
        if unmounted.returncode != 0:
            subprocess.run(["umount", "--lazy", str(merged)], capture_output=True, check=False)
    for cgroup in cgroups:
        _remove_cgroup(cgroup)
    shutil.rmtree(folder, ignore_errors=True)
    if address:
        leases.release(address, lab_dir, name)
        keys.forget_host_key(lab_dir, address)
    if hosts_dir(lab_dir).is_dir():
        keys.write_ssh_config(lab_dir, running_hosts(lab_dir))
    log.info("%s: lab host stopped and its overlay removed", name)
    return True

