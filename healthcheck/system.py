"""Host checks: Ethernet, disks, swap, docker, fabric manager, kernel modules, OS pins, hung processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from healthcheck.config import Config
from healthcheck.model import Finding, Result, Verdict, conclude, skipped, unknown
from healthcheck.probe import Missing, read_text, run
from healthcheck.readings import DiskUsage, DockerState, NetLink, OsInfo, Process, Readings

# ---------------------------------------------------------------- gathering


def gather_net(sysfs_root: str, names: list[str]) -> dict[str, NetLink] | Missing:
    base = Path(sysfs_root) / "class" / "net"
    if not base.is_dir():
        return Missing(f"{base} does not exist")
    links = {}
    for name in names:
        if not (base / name).exists():
            continue
        operstate = read_text(base / name / "operstate")
        speed = read_text(base / name / "speed")  # EINVAL when the link is down or virtual
        speed_value = int(speed) if isinstance(speed, str) and speed.strip().lstrip("-").isdigit() else None
        links[name] = NetLink(
            name,
            operstate.strip() if isinstance(operstate, str) else "unknown",
            speed_value if speed_value is not None and speed_value >= 0 else None,
        )
    return links


def _mountpoints(proc_root: str) -> set[str] | Missing:
    text = read_text(Path(proc_root) / "mounts")
    if isinstance(text, Missing):
        return text
    return {line.split()[1].replace("\\040", " ") for line in text.splitlines() if len(line.split()) > 1}


def gather_disks(proc_root: str, mounts: tuple[str, ...]) -> tuple[DiskUsage, ...] | Missing:
    mounted = _mountpoints(proc_root)
    if isinstance(mounted, Missing):
        return mounted
    usages = []
    for mount in mounts:
        if mount not in mounted:
            usages.append(DiskUsage(mount, False, None, None))
            continue
        try:
            st = os.statvfs(mount)
        except OSError:
            usages.append(DiskUsage(mount, True, None, None))
            continue
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        avail = st.f_bavail * st.f_frsize
        # df's "Use%": used over what non-root users could have, so reserved blocks count as full.
        pct = 100.0 * used / (used + avail) if used + avail else 0.0
        usages.append(DiskUsage(mount, True, round(pct, 1), st.f_blocks * st.f_frsize))
    return tuple(usages)


def gather_swaps(proc_root: str) -> tuple[str, ...] | Missing:
    text = read_text(Path(proc_root) / "swaps")
    if isinstance(text, Missing):
        return text
    return tuple(line.split()[0] for line in text.splitlines()[1:] if line.strip())


def gather_modules(proc_root: str, modules_file: str = "") -> frozenset[str] | Missing:
    text = read_text(Path(modules_file) if modules_file else Path(proc_root) / "modules")
    if isinstance(text, Missing):
        return text
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())


def gather_docker(config: Config) -> DockerState | Missing:
    docker, timeout = config.sources.docker, config.sources.command_timeout_s
    text = run((*docker, "info", "--format", "{{json .}}"), timeout)
    if isinstance(text, Missing):
        return text
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return Missing("docker info printed no JSON")
    if info.get("ServerErrors") or not info.get("ServerVersion"):
        return Missing(f"docker daemon not answering: {'; '.join(info.get('ServerErrors') or ['no server'])}")
    gpu: str | Missing | None = None
    if config.docker.gpu_container_image:
        gpu = run(
            (*docker, "run", "--rm", "--gpus", "all", config.docker.gpu_container_image, "nvidia-smi", "-L"),
            max(timeout, 30.0),
        )
    return DockerState(
        str(info.get("ServerVersion")),
        tuple(sorted(info.get("Runtimes") or {})),
        str(info.get("DefaultRuntime", "")),
        gpu,
    )


def nvswitch_present(config: Config) -> bool:
    if config.gpu.nvswitch is not None:
        return config.gpu.nvswitch
    dev = Path(config.sources.dev_root)
    return any(dev.glob("nvidia-nvswitch*"))


def gather_fabric_manager(config: Config) -> str | Missing:
    text = run((*config.sources.systemctl, "is-active", "nvidia-fabricmanager"), config.sources.command_timeout_s)
    if isinstance(text, Missing) and "exited" in text.reason:
        # is-active exits 3 for inactive/failed units and prints the state: that is an answer.
        return text.reason.rsplit(": ", 1)[-1]
    return text.strip() if isinstance(text, str) else text


def gather_os(config: Config) -> OsInfo | Missing:
    release = read_text(Path(config.sources.proc_root) / "sys" / "kernel" / "osrelease")
    os_release = read_text(Path(config.sources.os_release))
    if isinstance(release, Missing):
        return release
    fields: dict[str, str] = {}
    if isinstance(os_release, str):
        for line in os_release.splitlines():
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip().strip('"')
    return OsInfo(release.strip(), fields.get("VERSION_ID", ""), fields.get("PRETTY_NAME", ""))


def gather_processes(proc_root: str, patterns: tuple[str, ...]) -> tuple[Process, ...] | Missing:
    """Processes whose command line matches a pattern, with their age from /proc/<pid>/stat."""
    root = Path(proc_root)
    uptime = read_text(root / "uptime")
    if isinstance(uptime, Missing):
        return uptime
    now_s = float(uptime.split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        cmdline = read_text(entry / "cmdline")
        if isinstance(cmdline, Missing):
            continue  # the process ended while we looked
        args = cmdline.replace("\0", " ").strip()
        if not any(p in args for p in patterns):
            continue
        stat = read_text(entry / "stat")
        if isinstance(stat, Missing):
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        rest = stat[stat.rfind(")") + 2 :].split()
        age = now_s - int(rest[19]) / ticks
        found.append(Process(int(entry.name), name, rest[0], round(age, 1), args[:200]))
    return tuple(found)


# ---------------------------------------------------------------- checks


class EthernetCheck:
    name = "ethernet"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if not config.ethernet:
            return skipped(self.name, "config names no Ethernet interfaces to check")
        if isinstance(readings.net, Missing):
            return unknown(self.name, f"cannot read links: {readings.net.reason}", "node owner: check sysfs_root")
        findings, evidence = [], {}
        for name, expected in config.ethernet.items():
            link = readings.net.get(name)
            if link is None:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{name} does not exist",
                        "node owner: check NIC naming (netplan) and the NIC driver",
                    )
                )
                continue
            evidence[f"{name}_speed_mbps"] = link.speed_mbps if link.speed_mbps is not None else -1
            if link.operstate != "up":
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{name} is {link.operstate}",
                        "datacenter tech: check the cable and the switch port",
                    )
                )
            elif expected is not None and (link.speed_mbps or 0) < expected:
                findings.append(
                    Finding(
                        Verdict.WARNING,
                        f"{name} at {link.speed_mbps} Mb/s, expected {expected} Mb/s",
                        "datacenter tech: replace the cable/transceiver; network owner: check port speed",
                    )
                )
        return conclude(self.name, findings, evidence, f"{len(config.ethernet)} Ethernet links up at expected speed")


class DiskCheck:
    name = "disk_space"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.disks, Missing):
            return unknown(self.name, f"cannot read mounts: {readings.disks.reason}", "node owner: check /proc")
        findings, evidence = [], {}
        warn, crit = config.disk.warn_pct, config.disk.crit_pct
        for disk in readings.disks:
            if not disk.mounted:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{disk.mount} is not mounted",
                        "node owner: check /etc/fstab and the disk (datacenter tech if the disk is gone)",
                    )
                )
                continue
            if disk.used_pct is None:
                findings.append(
                    Finding(Verdict.UNKNOWN, f"{disk.mount}: statvfs failed", "node owner: check the mount")
                )
                continue
            evidence[f"used_pct{disk.mount.replace('/', '_') or '_root'}"] = disk.used_pct
            if disk.used_pct >= crit or disk.used_pct >= warn:
                findings.append(
                    Finding(
                        Verdict.CRITICAL if disk.used_pct >= crit else Verdict.WARNING,
                        f"{disk.mount} {disk.used_pct:.0f}% used (warn {warn:.0f}%, critical {crit:.0f}%)",
                        "node owner: prune docker images (docker system prune) and old logs/checkpoints",
                    )
                )
        return conclude(self.name, findings, evidence, f"{len(readings.disks)} mounts under {warn:.0f}% used")


class SwapCheck:
    name = "swap"
    severity = Verdict.WARNING

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.swaps, Missing):
            return unknown(self.name, f"cannot read swaps: {readings.swaps.reason}", "node owner: check /proc")
        findings = (
            [
                Finding(
                    Verdict.WARNING,
                    f"swap on: {', '.join(readings.swaps)}",
                    "node owner: swapoff -a and remove swap from /etc/fstab (base role)",
                )
            ]
            if readings.swaps
            else []
        )
        return conclude(self.name, findings, {"swap_devices": len(readings.swaps)}, "swap off")


class DockerCheck:
    name = "docker"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if not config.docker.required:
            return skipped(self.name, "config: docker not required on this node")
        fix = "node owner: systemctl restart docker; rerun the configure stage (docker + nvidia container toolkit)"
        if isinstance(readings.docker, Missing):
            return Result(
                self.name,
                Verdict.CRITICAL,
                f"docker daemon not usable: {readings.docker.reason}",
                {},
                (Finding(Verdict.CRITICAL, f"docker daemon not usable: {readings.docker.reason}", fix),),
            )
        state, findings = readings.docker, []
        if "nvidia" not in state.runtimes:
            findings.append(
                Finding(
                    Verdict.CRITICAL,
                    f"nvidia runtime not registered (runtimes: {', '.join(state.runtimes)})",
                    "node owner: nvidia-ctk runtime configure --runtime=docker; restart docker",
                )
            )
        gpus_seen = -1
        if isinstance(state.gpu_container, Missing):
            findings.append(Finding(Verdict.CRITICAL, f"GPU container failed: {state.gpu_container.reason}", fix))
        elif isinstance(state.gpu_container, str):
            gpus_seen = sum(1 for line in state.gpu_container.splitlines() if line.startswith("GPU "))
            if gpus_seen < config.gpu.count:
                findings.append(
                    Finding(Verdict.CRITICAL, f"GPU container sees {gpus_seen} of {config.gpu.count} GPUs", fix)
                )
        ran = "" if state.gpu_container is None else ", GPU container ran"
        return conclude(
            self.name,
            findings,
            {"container_gpus": gpus_seen},
            f"docker {state.server_version} up, nvidia runtime registered{ran}",
        )


class FabricManagerCheck:
    name = "fabric_manager"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if not readings.nvswitch_present:
            return skipped(self.name, "no NVSwitch on this node: fabric manager not needed")
        if isinstance(readings.fabric_manager, Missing):
            return unknown(
                self.name,
                f"cannot ask systemd: {readings.fabric_manager.reason}",
                "node owner: check systemctl works for the healthcheck user",
            )
        state = readings.fabric_manager
        findings = (
            []
            if state == "active"
            else [
                Finding(
                    Verdict.CRITICAL,
                    f"nvidia-fabricmanager is {state}",
                    "node owner: systemctl restart nvidia-fabricmanager; read /var/log/fabricmanager.log "
                    "(its version must match the driver's)",
                )
            ]
        )
        return conclude(self.name, findings, {"active": int(state == "active")}, "nvidia-fabricmanager active")


class ModulesCheck:
    name = "kernel_modules"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.modules, Missing):
            return unknown(self.name, f"cannot read modules: {readings.modules.reason}", "node owner: check /proc")
        missing = [m for m in config.modules if m not in readings.modules]
        fixes = {"nvidia_peermem": "node owner: modprobe nvidia_peermem and persist it (doca_ofed role)"}
        findings = [
            Finding(
                Verdict.CRITICAL,
                f"{m} not loaded",
                fixes.get(m, f"node owner: modprobe {m}; rerun the configure stage"),
            )
            for m in missing
        ]
        return conclude(self.name, findings, {"modules_missing": len(missing)}, f"{', '.join(config.modules)} loaded")


class OsPinsCheck:
    name = "os_pins"
    severity = Verdict.WARNING

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.os, Missing):
            return unknown(self.name, f"cannot read the OS version: {readings.os.reason}", "node owner: check /proc")
        info, pins, findings = readings.os, config.os, []
        fix = "node owner: reimage with the pinned image (provision.py reimage <node>)"
        if pins.kernel_releases and info.kernel_release not in pins.kernel_releases:
            findings.append(
                Finding(
                    Verdict.WARNING, f"kernel {info.kernel_release} not in pins {', '.join(pins.kernel_releases)}", fix
                )
            )
        if pins.version_ids and info.version_id not in pins.version_ids:
            findings.append(
                Finding(Verdict.WARNING, f"OS {info.version_id} not in pins {', '.join(pins.version_ids)}", fix)
            )
        pinned = "" if pins.kernel_releases or pins.version_ids else " (no pins configured)"
        return conclude(
            self.name,
            findings,
            {"kernel_release": info.kernel_release, "os_version": info.version_id},
            f"kernel {info.kernel_release}, {info.pretty_name or info.version_id}{pinned}",
        )


class HungProcessCheck:
    name = "hung_processes"
    severity = Verdict.WARNING

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.processes, Missing):
            return unknown(self.name, f"cannot list processes: {readings.processes.reason}", "node owner: check /proc")
        limit = config.processes.hung_after_s
        findings = []
        for proc in readings.processes:
            if proc.age_s < limit:
                continue
            stuck_io = proc.state == "D"
            findings.append(
                Finding(
                    Verdict.WARNING,
                    f"pid {proc.pid} {proc.name} running {proc.age_s:.0f} s (state {proc.state}): {proc.cmdline[:80]}",
                    "datacenter tech: a process stuck in D state on sg_inq points at a hung disk/HBA; "
                    "node owner: reboot when drained"
                    if stuck_io
                    else f"node owner: kill {proc.pid}; if it hangs again, look for the device it queries",
                )
            )
        return conclude(
            self.name, findings, {"hung": len(findings)}, f"no sg_inq/ansible fact process older than {limit:.0f} s"
        )
