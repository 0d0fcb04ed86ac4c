"""InfiniBand from sysfs: HCAs, port state and rate, error counters, firmware pins.

Read straight from ``<sysfs_root>/class/infiniband`` (like node_exporter's --path.sysfs) rather
than through ibstat, which needs OFED userland and is slow; the lab points sysfs_root at a
fixture tree. Counters are judged by how much they rose since the last run (state file),
because their absolute value carries every flap since the HCA last reset. Each reader keeps its own
state (``--state-name``): the node's timer and the fleet sweep both run the checks, and with one
shared file whichever ran second would see only the rise since the other's run, so a rise the timer
saw would never reach the sweep (and the reverse).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from healthcheck.config import Config
from healthcheck.kernlog import kernel_log_unreadable, strip_prefix
from healthcheck.model import Finding, Result, Verdict, conclude, skipped, unknown
from healthcheck.probe import Missing, read_text
from healthcheck.readings import IbHca, IbPort, Readings

STATE_FILE = "ib-counters.json"
_STATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_RATE = re.compile(r"([\d.]+)\s*Gb/sec")
# The kernel's pcie_print_link_status(): "... available PCIe bandwidth, limited by 8.0 GT/s PCIe x8 link at ..."
_PCIE_LIMITED = re.compile(r"mlx5_core (\S+): .*available PCIe bandwidth, limited by (.*?) link at")


def _value(path: Path) -> str:
    text = read_text(path)
    return "" if isinstance(text, Missing) else text.strip()


def _state_word(text: str) -> str:
    """sysfs writes "4: ACTIVE" / "5: LinkUp": keep the word."""
    return text.split(":", 1)[1].strip() if ":" in text else text


def gather_ib(sysfs_root: str) -> tuple[IbHca, ...] | Missing:
    base = Path(sysfs_root) / "class" / "infiniband"
    if not base.is_dir():
        # No RDMA core loaded or no HCA: an empty fabric, which the config decides about.
        return ()
    hcas = []
    for hca_dir in sorted(base.iterdir()):
        ports = []
        ports_dir = hca_dir / "ports"
        for port_dir in sorted(ports_dir.iterdir() if ports_dir.is_dir() else [], key=lambda p: int(p.name)):
            rate = _RATE.search(_value(port_dir / "rate"))
            counters = {}
            counters_dir = port_dir / "counters"
            for counter in sorted(counters_dir.iterdir() if counters_dir.is_dir() else []):
                text = _value(counter)
                if text.isdigit():
                    counters[counter.name] = int(text)
            ports.append(
                IbPort(
                    hca=hca_dir.name,
                    port=int(port_dir.name),
                    state=_state_word(_value(port_dir / "state")),
                    phys_state=_state_word(_value(port_dir / "phys_state")),
                    rate_gbps=float(rate.group(1)) if rate else None,
                    link_layer=_value(port_dir / "link_layer"),
                    counters=counters,
                )
            )
        device = hca_dir / "device"
        pci = os.path.basename(os.readlink(device)) if device.is_symlink() else ""
        hcas.append(IbHca(hca_dir.name, _value(hca_dir / "fw_ver"), _value(hca_dir / "node_guid"), pci, tuple(ports)))
    return tuple(hcas)


def counter_snapshot(hcas: tuple[IbHca, ...], names: tuple[str, ...]) -> dict[str, int]:
    return {
        f"{p.hca}/{p.port}/{name}": p.counters[name]
        for h in hcas
        for p in h.ports
        for name in names
        if name in p.counters
    }


def state_file(state_name: str = "") -> str:
    """The counter state file of one reader: ib-counters.json for the node's own timer, else ib-counters.NAME.json."""
    if state_name and not _STATE_NAME.fullmatch(state_name):
        raise ValueError(f"state name {state_name!r}: use 1-32 of a-z, 0-9, '-', '_'")
    return f"ib-counters.{state_name}.json" if state_name else STATE_FILE


def load_counter_state(state_dir: str, state_name: str = "") -> dict[str, int] | None:
    text = read_text(Path(state_dir) / state_file(state_name))
    if isinstance(text, Missing):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return {k: int(v) for k, v in data.items()} if isinstance(data, dict) else None


def save_counter_state(state_dir: str, counters: dict[str, int], state_name: str = "") -> None:
    """Atomically replace this reader's counter state; its next run compares against it."""
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ib-")
    with os.fdopen(fd, "w") as out:
        json.dump(counters, out, sort_keys=True)
    os.replace(tmp, directory / state_file(state_name))


def _cable(config: Config, hca: str) -> str:
    where = config.ib.cabling.get(hca)
    return f" (cabled to {where})" if where else ""


class IbPortsCheck:
    name = "ib_ports"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        expected = config.ib.hca_count
        if isinstance(readings.ib, Missing):
            return unknown(
                self.name,
                f"InfiniBand sysfs unreadable: {readings.ib.reason}",
                "node owner: check the sysfs root in the healthcheck config",
            )
        hcas = [h for h in readings.ib if any(p.link_layer in ("InfiniBand", "") for p in h.ports)]
        if expected == 0 and not hcas:
            return skipped(self.name, "config expects no InfiniBand HCAs and none are present")
        findings = []
        evidence: dict[str, float | int | str] = {"hcas_found": len(hcas), "hcas_expected": expected}
        if len(hcas) < expected:
            findings.append(
                Finding(
                    Verdict.CRITICAL,
                    f"{len(hcas)} of {expected} InfiniBand HCAs present",
                    "node owner: check the mlx5_core driver (DOCA-OFED role); datacenter tech: reseat the missing "
                    f"ConnectX card; if it stays missing, open an RMA with {config.node.vendor}",
                )
            )
        active = 0
        for hca in hcas:
            if config.ib.firmware_versions and hca.firmware not in config.ib.firmware_versions:
                findings.append(
                    Finding(
                        Verdict.WARNING,
                        f"{hca.name} firmware {hca.firmware} not in pins",
                        "node owner: flash the pinned ConnectX firmware (mlxfwreset after)",
                    )
                )
            for port in hca.ports:
                label = f"{hca.name} port {port.port}{_cable(config, hca.name)}"
                if port.state != "ACTIVE" or port.phys_state != "LinkUp":
                    findings.append(
                        Finding(
                            Verdict.CRITICAL,
                            f"{label}: {port.state}/{port.phys_state}",
                            "datacenter tech: reseat or replace the cable/transceiver"
                            if port.phys_state != "LinkUp"
                            else "fabric owner: port is physically up but not ACTIVE: check the subnet manager (UFM)",
                        )
                    )
                    continue
                active += 1
                evidence[f"{hca.name}_{port.port}_rate_gbps"] = port.rate_gbps or 0
                if port.rate_gbps is None:  # an unread rate is not a pass: the link may have trained slow
                    findings.append(
                        Finding(
                            Verdict.UNKNOWN,
                            f"{label}: rate not readable (sysfs ports/{port.port}/rate missing or unparsable)",
                            "node owner: check the mlx5_core driver (DOCA-OFED role); run ibstat on the node",
                        )
                    )
                elif port.rate_gbps < config.ib.rate_gbps:
                    findings.append(
                        Finding(
                            Verdict.CRITICAL,
                            f"{label}: {port.rate_gbps:g} Gb/s, expected {config.ib.rate_gbps} Gb/s",
                            "datacenter tech: replace the cable/transceiver (link trained at a lower rate)",
                        )
                    )
        evidence["ports_active"] = active
        return conclude(
            self.name,
            findings,
            evidence,
            f"{len(hcas)} HCAs, {active} ports ACTIVE/LinkUp at {config.ib.rate_gbps} Gb/s",
        )


class IbCountersCheck:
    name = "ib_counters"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.ib, Missing):
            return unknown(
                self.name,
                f"InfiniBand sysfs unreadable: {readings.ib.reason}",
                "node owner: check the sysfs root in the healthcheck config",
            )
        if not readings.ib:
            if config.ib.hca_count == 0:
                return skipped(self.name, "config expects no InfiniBand HCAs")
            return unknown(self.name, "no InfiniBand HCAs to read counters from (see ib_ports)", "see ib_ports")
        now = counter_snapshot(readings.ib, config.ib.counters)
        if readings.ib_previous is None:
            return Result(
                self.name,
                Verdict.OK,
                f"first run: recorded {len(now)} counters for the next comparison",
                {"counters": len(now)},
            )
        findings, evidence = [], {}
        for key, value in now.items():
            before = readings.ib_previous.get(key)
            if before is None or value < before:  # new port, or counters reset (reboot): a new start
                continue
            rise = value - before
            if rise:
                evidence[key.replace("/", "_") + "_rise"] = rise
                hca, port, counter = key.split("/")
                verdict = Verdict.CRITICAL if counter == "link_downed" else Verdict.WARNING
                findings.append(
                    Finding(
                        verdict,
                        f"{hca} port {port} {counter} rose by {rise} since the last run{_cable(config, hca)}",
                        "datacenter tech: reseat/clean or replace the cable; fabric owner: check the leaf port in UFM",
                    )
                )
        return conclude(self.name, findings, evidence, f"no rise in {len(now)} error counters since the last run")


class IbPcieBandwidthCheck:
    name = "ib_pcie_bandwidth"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.kernel_log, Missing):
            return kernel_log_unreadable(self.name, readings.kernel_log)
        findings = []
        for line in readings.kernel_log:
            if "PCIe bandwidth" in line and (match := _PCIE_LIMITED.search(line)):
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"ConnectX {match.group(1)} limited by {match.group(2)}: {strip_prefix(line)[:100]}",
                        "datacenter tech: reseat the ConnectX card / check its riser; "
                        "node owner: check BIOS PCIe settings",
                    )
                )
        return conclude(
            self.name, findings, {"limited_hcas": len(findings)}, "no mlx5 'limited PCIe bandwidth' messages"
        )
