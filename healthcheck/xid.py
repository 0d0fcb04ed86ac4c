"""Xid and SXid lines from the kernel log, classified by NVIDIA's published resolution.

The table below follows NVIDIA's Xid catalogue for Ampere and newer GPUs
(https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html), column "Resolution
Bucket (Immediate Action)", reduced to the codes that occur on H100/H200. What we do with a
bucket is our decision: anything that needs a GPU reset or a reboot takes the node out of
service (CRITICAL); application-level faults are WARNING because the GPU itself is healthy.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from healthcheck.config import Config
from healthcheck.kernlog import kernel_log_unreadable, strip_prefix
from healthcheck.model import Finding, Result, Verdict, conclude
from healthcheck.probe import Missing
from healthcheck.readings import Readings

RESTART_APP = "restart the application"
RESET_GPU = "reset the GPU"
REBOOT = "reboot the node"
REPLACE = "replace hardware"
INFO = "informational"

# code: (meaning, NVIDIA's immediate action, our action)
CATALOGUE: dict[int, tuple[str, str, str]] = {
    8: ("GPU stopped processing", "RESTART_APP", RESTART_APP),
    13: ("Graphics engine exception", "RESTART_APP", RESTART_APP),
    31: ("GPU memory page fault", "RESTART_APP", RESTART_APP),
    32: ("Invalid or corrupted push buffer stream", "RESTART_APP", RESTART_APP),
    38: ("Driver firmware error", "IGNORE", INFO),
    43: ("GPU stopped processing (channel reset)", "IGNORE", RESTART_APP),
    45: ("Preemptive cleanup after earlier errors", "WORKFLOW_XID_45", RESTART_APP),
    46: ("GPU stopped processing (timeout)", "RESET_GPU", RESET_GPU),
    48: ("Double bit ECC error", "WORKFLOW_XID_48", RESET_GPU),
    54: ("Auxiliary power is not connected to the GPU board", "CHECK_MECHANICALS", REPLACE),
    61: ("Internal micro-controller breakpoint/warning", "RESET_GPU", RESET_GPU),
    62: ("Internal micro-controller halt", "RESET_GPU", RESET_GPU),
    63: ("GPU memory remapping event", "IGNORE", INFO),
    64: ("GPU memory remapping failure", "RESET_GPU", REPLACE),
    69: ("Graphics engine class error", "RESTART_APP", RESTART_APP),
    74: ("NVLink error", "WORKFLOW_NVLINK_ERR", RESET_GPU),
    79: ("GPU has fallen off the bus", "RESTART_BM", REBOOT),
    92: ("High single-bit ECC error rate", "IGNORE", INFO),
    94: ("Contained memory error", "RESTART_APP", RESTART_APP),
    95: ("Uncontained memory error", "RESET_GPU", RESET_GPU),
    109: ("Context switch timeout", "RESET_GPU", RESET_GPU),
    110: ("Security fault", "RESET_GPU", RESET_GPU),
    119: ("GSP RPC timeout", "RESET_GPU", RESET_GPU),
    120: ("GSP error", "RESET_GPU", RESET_GPU),
    121: ("C2C link error", "IGNORE", INFO),
    136: ("NVLink training failed", "RESET_GPU", RESET_GPU),
    137: ("NVLink privilege error", "IGNORE", INFO),
    140: ("Unrecovered ECC error", "RESET_GPU", RESET_GPU),
    143: ("GPU initialization error", "RESET_GPU", RESET_GPU),
    154: ("GPU recovery action changed", "XID_154", RESET_GPU),
    155: ("NVLink software-defined error", "RESET_GPU", RESET_GPU),
    156: ("Resource retirement event", "RESET_GPU", RESET_GPU),
    158: ("GPU fatal timeout", "RESET_GPU", RESET_GPU),
}

_VERDICT = {
    INFO: Verdict.WARNING,
    RESTART_APP: Verdict.WARNING,
    RESET_GPU: Verdict.CRITICAL,
    REBOOT: Verdict.CRITICAL,
    REPLACE: Verdict.CRITICAL,
}

_XID = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+),\s*(.*)")
_SXID = re.compile(r"(nvidia-nvswitch\d+): SXid \(PCI:([0-9a-fA-F:.]+)\): (\d+),\s*(Fatal|Non-fatal)?[, ]*(.*)")
# Xid 154 names the recovery the driver now requires, e.g. "... to 0x2 (Node Reboot Required)".
_RECOVERY = re.compile(r"\((Node Reboot Required|Drain P2P|Drain and Reset|GPU Reset Required|Reset)\)", re.I)


@dataclass(frozen=True)
class XidEvent:
    line_no: int
    pci: str
    code: int
    message: str
    action: str
    verdict: Verdict


def classify_xid(code: int, message: str) -> tuple[str, Verdict]:
    """Our action and verdict for one Xid; codes not in the catalogue are WARNING (ask NVIDIA)."""
    if code == 154:
        match = _RECOVERY.search(message)
        action = REBOOT if match and "reboot" in match.group(1).lower() else RESET_GPU
        return action, Verdict.CRITICAL
    entry = CATALOGUE.get(code)
    if entry is None:
        return "not in NVIDIA's catalogue: contact NVIDIA support", Verdict.WARNING
    return entry[2], _VERDICT[entry[2]]


def find_xids(lines: tuple[str, ...]) -> list[XidEvent]:
    events = []
    for number, line in enumerate(lines, 1):
        if "Xid" not in line:
            continue
        match = _XID.search(line)
        if match:
            code = int(match.group(2))
            action, verdict = classify_xid(code, match.group(3))
            events.append(XidEvent(number, match.group(1), code, strip_prefix(line), action, verdict))
    return events


def _fix(action: str, pci: str, config: Config) -> str:
    vendor = config.node.vendor
    return {
        RESTART_APP: "workload owner: the job faulted the GPU; restart it (node stays in service)",
        INFO: "node owner: note it; act if it repeats (see NVIDIA's Xid catalogue)",
        RESET_GPU: f"node owner: drain the node and reset GPU {pci} (nvidia-smi -r); "
        f"if it recurs, open an RMA with {vendor}",
        REBOOT: f"node owner: drain and reboot the node; if GPU {pci} falls off again, datacenter tech: reseat it, "
        f"then open an RMA with {vendor}",
        REPLACE: f"open an RMA with {vendor} for the GPU at {pci}",
    }.get(action, "node owner: contact NVIDIA support with the Xid line")


class XidCheck:
    name = "gpu_xid"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.kernel_log, Missing):
            return kernel_log_unreadable(self.name, readings.kernel_log)
        events = find_xids(readings.kernel_log)
        counts = Counter(e.code for e in events)
        evidence: dict[str, int] = {"xid_events": len(events)}
        evidence.update({f"xid_{code}": n for code, n in sorted(counts.items())})
        findings, seen = [], set()
        for event in events:
            if (event.code, event.pci) in seen:
                continue
            seen.add((event.code, event.pci))
            findings.append(
                Finding(
                    event.verdict,
                    f"Xid {event.code} on {event.pci} x{counts[event.code]}: {event.action} ({event.message[:120]})",
                    _fix(event.action, event.pci, config),
                )
            )
        return conclude(self.name, findings, evidence, "no Xid errors in the kernel log")


class SxidCheck:
    name = "nvswitch_sxid"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.kernel_log, Missing):
            return kernel_log_unreadable(self.name, readings.kernel_log)
        findings, fatal, nonfatal = [], 0, 0
        for line in readings.kernel_log:
            if "SXid" not in line or not (match := _SXID.search(line)):
                continue
            is_fatal = (match.group(4) or "").lower() == "fatal"
            fatal += is_fatal
            nonfatal += not is_fatal
            findings.append(
                Finding(
                    Verdict.CRITICAL if is_fatal else Verdict.WARNING,
                    f"SXid {match.group(3)} ({match.group(4) or 'severity not stated'}) on {match.group(1)}",
                    "node owner: drain, reboot the node (resets the NVSwitches) and restart nvidia-fabricmanager; "
                    f"if it recurs, open an RMA with {config.node.vendor} for the HGX baseboard"
                    if is_fatal
                    else "node owner: watch for repeats; a rising count points at a bad NVLink/NVSwitch port",
                )
            )
        return conclude(
            self.name,
            findings,
            {"sxid_fatal": fatal, "sxid_nonfatal": nonfatal},
            "no NVSwitch SXid errors in the kernel log",
        )
