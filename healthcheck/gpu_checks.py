"""GPU checks: pure decisions over ``GpuSnapshot`` readings and the site's expectations."""

from __future__ import annotations

from collections.abc import Callable

from healthcheck.config import Config
from healthcheck.gpu import (
    CLOCK_HW_POWER_BRAKE,
    CLOCK_HW_SLOWDOWN,
    CLOCK_HW_THERMAL,
    CLOCK_IDLE,
    GpuReading,
    GpuSnapshot,
)
from healthcheck.model import Finding, Result, Verdict, conclude, skipped, unknown
from healthcheck.probe import Missing
from healthcheck.readings import Readings

NVIDIA_STACK_FIX = "node owner: check the NVIDIA driver is loaded (nvidia-smi), then rerun the configure stage"


def _label(gpu: GpuReading) -> str:
    return f"GPU {gpu.index} ({gpu.bus_id}, serial {gpu.serial or '?'})"


def rma(config: Config, gpu: GpuReading) -> str:
    tag = f" (service tag {config.node.service_tag})" if config.node.service_tag else ""
    return f"open an RMA with {config.node.vendor} for GPU serial {gpu.serial or '?'}{tag}"


def _unreadable(check: str, gpus: tuple[GpuReading, ...],
                fields: tuple[str, ...]) -> tuple[Result | None, list[Finding]]:
    """GPUs that report none of ``fields``: one UNKNOWN finding each, with the driver's reason.

    One GPU the check could not look at leaves the node unverified, whatever the others say (a
    wedged GPU is typically the one that stops answering). When no GPU reports the fields, the
    whole check is UNKNOWN (first value); otherwise the findings join the check's own.
    """
    findings = []
    for gpu in gpus:
        if all(getattr(gpu, f) is None for f in fields):
            why = "; ".join(gpu.notes.get(f, f"{f} unavailable") for f in fields)
            findings.append(Finding(Verdict.UNKNOWN, f"{_label(gpu)}: not readable: {why}", NVIDIA_STACK_FIX))
    if gpus and len(findings) == len(gpus):
        first = findings[0].message
        return unknown(check, first + (f" (and {len(findings) - 1} more GPUs)" if len(findings) > 1 else ""),
                       NVIDIA_STACK_FIX), []
    return None, findings


class GpuCheck:
    """Base for GPU checks: handles the no-readings case once."""

    name = "gpu"
    severity = Verdict.CRITICAL

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.gpus, Missing):
            return unknown(self.name, f"no GPU readings: {readings.gpus.reason}", NVIDIA_STACK_FIX)
        return self.decide(readings.gpus, config)

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        raise NotImplementedError


class GpuCount(GpuCheck):
    name = "gpu_count"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        found, expected = len(snap.gpus), config.gpu.count
        evidence = {"gpus_found": found, "gpus_expected": expected}
        findings = []
        if found < expected:
            findings.append(
                Finding(
                    Verdict.CRITICAL,
                    f"{found} of {expected} GPUs visible ({snap.source})",
                    "datacenter tech: reseat the missing GPU / check the baseboard; if it stays missing after "
                    f"a power cycle, open an RMA with {config.node.vendor}"
                    + (f" for service tag {config.node.service_tag}" if config.node.service_tag else ""),
                )
            )
        elif found > expected:
            findings.append(
                Finding(
                    Verdict.WARNING,
                    f"{found} GPUs visible, inventory says {expected}",
                    "inventory owner: correct gpu_count for this node",
                )
            )
        return conclude(self.name, findings, evidence, f"{found} of {expected} GPUs visible ({snap.source})")


class GpuEccMode(GpuCheck):
    name = "gpu_ecc_mode"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        whole, unreadable = _unreadable(self.name, snap.gpus, ("ecc_current",))
        if whole:
            return whole
        findings = unreadable
        for gpu in snap.gpus:
            if gpu.ecc_current is False:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: ECC is off",
                        f"node owner: nvidia-smi -i {gpu.index} -e 1, then reset the GPU or reboot",
                    )
                )
            elif gpu.ecc_pending is False:
                findings.append(
                    Finding(
                        Verdict.WARNING,
                        f"{_label(gpu)}: ECC will be off after the next reset",
                        f"node owner: nvidia-smi -i {gpu.index} -e 1 before the next reboot",
                    )
                )
        on = sum(1 for g in snap.gpus if g.ecc_current)
        return conclude(self.name, findings, {"gpus_ecc_on": on}, f"ECC on (current and pending) on {on} GPUs")


class GpuEccErrors(GpuCheck):
    name = "gpu_ecc_errors"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        whole, unreadable = _unreadable(self.name, snap.gpus, ("ecc_volatile_uncorrected",))
        if whole:
            return whole
        findings, evidence = unreadable, {}
        for gpu in snap.gpus:
            if gpu.ecc_volatile_uncorrected is None:
                continue
            evidence[f"gpu{gpu.index}_volatile_uncorrected"] = gpu.ecc_volatile_uncorrected or 0
            evidence[f"gpu{gpu.index}_volatile_corrected"] = gpu.ecc_volatile_corrected or 0
            if gpu.ecc_volatile_uncorrected:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: {gpu.ecc_volatile_uncorrected} volatile uncorrectable ECC errors",
                        f"node owner: drain and reset GPU {gpu.index} (nvidia-smi -r); "
                        f"if errors return, {rma(config, gpu)}",
                    )
                )
        return conclude(self.name, findings, evidence, "no volatile uncorrectable ECC errors")


class GpuRowRemap(GpuCheck):
    name = "gpu_row_remap"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        whole, unreadable = _unreadable(self.name, snap.gpus, ("remap_pending", "remap_failed"))
        if whole:
            return whole
        findings, evidence = unreadable, {}
        for gpu in snap.gpus:
            evidence[f"gpu{gpu.index}_remapped_uncorrectable_rows"] = gpu.remap_uncorrectable_rows or 0
            if gpu.remap_failed:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: row remapping failed",
                        f"{rma(config, gpu)} (no spare rows left)",
                    )
                )
            elif gpu.remap_pending:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: row remap pending",
                        f"node owner: drain and reset GPU {gpu.index} (nvidia-smi -r) to apply the remap",
                    )
                )
        return conclude(self.name, findings, evidence, "no row remap pending or failed")


class GpuRetiredPages(GpuCheck):
    name = "gpu_retired_pages"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        supported = [g for g in snap.gpus if g.retired_pending is not None]
        if not supported:
            remaps = all(g.remap_pending is not None for g in snap.gpus) and snap.gpus
            if remaps:
                note = snap.gpus[0].notes.get("retired_pending", "page retirement not reported")
                return skipped(self.name, f"{note}; these GPUs use row remapping (see gpu_row_remap)")
            return unknown(self.name, "neither page retirement nor row remapping is readable", NVIDIA_STACK_FIX)
        findings = [
            Finding(
                Verdict.CRITICAL,
                f"{_label(g)}: retired pages pending",
                f"node owner: drain and reset GPU {g.index} to retire the pages",
            )
            for g in supported
            if g.retired_pending
        ]
        return conclude(self.name, findings, {"gpus_pending": len(findings)}, "no retired pages pending")


_HW_REASONS = (
    (
        CLOCK_HW_POWER_BRAKE,
        "HW power brake",
        "datacenter tech: check the node's PSUs and power feed (power brake is asserted externally)",
    ),
    (CLOCK_HW_THERMAL, "HW thermal slowdown", "datacenter tech: check fans, airflow and inlet temperature"),
    (
        CLOCK_HW_SLOWDOWN,
        "HW slowdown",
        "datacenter tech: check PSUs and cooling; if it persists on an idle GPU, open an RMA",
    ),
)


class GpuClockEvents(GpuCheck):
    name = "gpu_clock_events"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        whole, unreadable = _unreadable(self.name, snap.gpus, ("clock_events",))
        if whole:
            return whole
        findings, evidence = unreadable, {}
        for gpu in snap.gpus:
            if gpu.clock_events is None:
                continue
            mask = gpu.clock_events
            evidence[f"gpu{gpu.index}_clock_event_mask"] = mask
            for bit, what, fix in _HW_REASONS:
                if mask & bit:
                    findings.append(Finding(Verdict.CRITICAL, f"{_label(gpu)}: {what} active", fix))
                    break  # HW slowdown is also set with the thermal/brake bits: report the specific one
        return conclude(self.name, findings, evidence, "no HW slowdown, HW thermal or power brake active")


class GpuPcie(GpuCheck):
    name = "gpu_pcie_link"
    severity = Verdict.CRITICAL

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        whole, unreadable = _unreadable(self.name, snap.gpus, ("pcie_width",))
        if whole:
            return whole
        findings, evidence = unreadable, {}
        for gpu in snap.gpus:
            if gpu.pcie_width is None:
                continue
            evidence[f"gpu{gpu.index}_pcie_gen"] = gpu.pcie_gen or 0
            evidence[f"gpu{gpu.index}_pcie_width"] = gpu.pcie_width or 0
            if gpu.pcie_width and gpu.pcie_width_max and gpu.pcie_width < gpu.pcie_width_max:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: PCIe x{gpu.pcie_width}, capable of x{gpu.pcie_width_max}",
                        "datacenter tech: reseat the GPU / check the PCIe switch board and riser; "
                        f"if it stays narrow, {rma(config, gpu)}",
                    )
                )
            # An idle GPU legitimately drops its link generation to save power.
            idle = bool((gpu.clock_events or 0) & CLOCK_IDLE)
            if gpu.pcie_gen and gpu.pcie_gen_max and gpu.pcie_gen < gpu.pcie_gen_max and not idle:
                findings.append(
                    Finding(
                        Verdict.WARNING,
                        f"{_label(gpu)}: PCIe gen {gpu.pcie_gen} under load, capable of gen {gpu.pcie_gen_max}",
                        "datacenter tech: reseat the GPU; node owner: check BIOS PCIe speed settings",
                    )
                )
        return conclude(self.name, findings, evidence, "PCIe links at full width (and generation unless idle)")


class GpuNvlink(GpuCheck):
    name = "gpu_nvlink"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        expected = config.gpu.nvlink if config.gpu.nvlink is not None else config.gpu.count > 1
        without = [g for g in snap.gpus if g.nvlinks is None]
        if without and len(without) == len(snap.gpus):
            reason = without[0].notes.get("nvlinks", "no NVLink data")
            if not expected:
                return skipped(self.name, f"{reason}; config expects no NVLink on this node")
            return unknown(
                self.name,
                f"NVLink expected but not readable: {reason}",
                "node owner: check the driver and fabric manager; run nvidia-smi nvlink -s",
            )
        findings, evidence = [], {}
        threshold = config.gpu.nvlink_error_threshold
        want = config.gpu.nvlink_links
        for gpu in snap.gpus:
            if gpu.nvlinks is None:
                findings.append(
                    Finding(
                        Verdict.UNKNOWN,
                        f"{_label(gpu)}: NVLink not readable: {gpu.notes.get('nvlinks', 'no NVLink data')}",
                        "node owner: run nvidia-smi nvlink -s on the node",
                    )
                )
                continue
            for link in gpu.nvlinks:
                if link.error:
                    findings.append(Finding(Verdict.UNKNOWN, f"{_label(gpu)}: NVLink {link.link} not readable: "
                                            f"{link.error}", "node owner: run nvidia-smi nvlink -s on the node"))
            if want and len(gpu.nvlinks) < want:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: {len(gpu.nvlinks)} of {want} NVLinks present",
                        f"node owner: reset the GPUs and restart nvidia-fabricmanager; if links stay missing, "
                        f"{rma(config, gpu)} (baseboard)",
                    )
                )
            inactive = [link.link for link in gpu.nvlinks if not link.active and not link.error]
            evidence[f"gpu{gpu.index}_nvlinks_active"] = sum(1 for link in gpu.nvlinks if link.active)
            if inactive:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: NVLink {','.join(map(str, inactive))} inactive",
                        "node owner: reset the GPUs and restart nvidia-fabricmanager; "
                        f"if links stay down, {rma(config, gpu)} "
                        "(baseboard)",
                    )
                )
            for link in gpu.nvlinks:
                for counter, value in link.errors.items():
                    if value > threshold:
                        evidence[f"gpu{gpu.index}_link{link.link}_{counter}"] = value
                        findings.append(
                            Finding(
                                Verdict.WARNING,
                                f"{_label(gpu)}: NVLink {link.link} {counter} errors {value} > {threshold}",
                                "node owner: watch the counter; if it keeps rising, "
                                "reset the GPU and run NVLink diagnostics",
                            )
                        )
        return conclude(self.name, findings, evidence, "all NVLinks active, error counters under threshold")


class GpuPersistence(GpuCheck):
    name = "gpu_persistence"
    severity = Verdict.WARNING

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        whole, unreadable = _unreadable(self.name, snap.gpus, ("persistence_on",))
        if whole:
            return whole
        off = [g for g in snap.gpus if g.persistence_on is False]
        findings = unreadable + (
            [
                Finding(
                    Verdict.WARNING,
                    f"persistence mode off on GPU {','.join(str(g.index) for g in off)}",
                    "node owner: enable nvidia-persistenced (nvidia_driver role)",
                )
            ]
            if off
            else []
        )
        return conclude(self.name, findings, {"gpus_persistence_off": len(off)}, "persistence mode on")


class GpuThermalPower(GpuCheck):
    name = "gpu_thermal_power"

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        whole, unreadable = _unreadable(self.name, snap.gpus, ("temp_c",))
        if whole:
            return whole
        findings, evidence = unreadable, {}
        cooling = "datacenter tech: check fans, airflow and inlet temperature of the node"
        for gpu in snap.gpus:
            if gpu.temp_c is None:
                continue
            evidence[f"gpu{gpu.index}_temp_c"] = gpu.temp_c
            limit = config.gpu.max_temp_c if config.gpu.max_temp_c is not None else gpu.temp_max_operating_c
            if gpu.temp_slowdown_c is not None and gpu.temp_c >= gpu.temp_slowdown_c:
                findings.append(
                    Finding(
                        Verdict.CRITICAL,
                        f"{_label(gpu)}: {gpu.temp_c:.0f} C at/over slowdown {gpu.temp_slowdown_c:.0f} C",
                        cooling,
                    )
                )
            elif limit is not None and gpu.temp_c >= limit:
                findings.append(
                    Finding(Verdict.WARNING, f"{_label(gpu)}: {gpu.temp_c:.0f} C over limit {limit:.0f} C", cooling)
                )
            if gpu.power_w is not None and gpu.power_limit_w:
                evidence[f"gpu{gpu.index}_power_w"] = round(gpu.power_w, 1)
                ceiling = gpu.power_limit_w * (1 + config.gpu.power_over_limit_pct / 100)
                if gpu.power_w > ceiling:
                    findings.append(
                        Finding(
                            Verdict.WARNING,
                            f"{_label(gpu)}: drawing {gpu.power_w:.0f} W over its {gpu.power_limit_w:.0f} W limit",
                            "datacenter tech: check the power sensors; node owner: check nvidia-smi -pl settings",
                        )
                    )
        return conclude(self.name, findings, evidence, "temperatures and power within limits")


class GpuVersions(GpuCheck):
    name = "gpu_versions"
    severity = Verdict.WARNING

    def decide(self, snap: GpuSnapshot, config: Config) -> Result:
        findings = []
        pins = config.gpu
        if pins.driver_versions and snap.driver_version not in pins.driver_versions:
            findings.append(
                Finding(
                    Verdict.WARNING,
                    f"driver {snap.driver_version} not in pins {', '.join(pins.driver_versions)}",
                    "node owner: rerun the configure stage (nvidia_driver role) or reimage",
                )
            )
        if pins.vbios_versions:
            off = sorted({g.vbios for g in snap.gpus if g.vbios not in pins.vbios_versions})
            if off:
                findings.append(
                    Finding(
                        Verdict.WARNING,
                        f"VBIOS {', '.join(off)} not in pins {', '.join(pins.vbios_versions)}",
                        "node owner: apply the GPU firmware bundle from the vendor (iDRAC update)",
                    )
                )
        vbios = ", ".join(sorted({g.vbios for g in snap.gpus})) or "?"
        summary = f"driver {snap.driver_version}, VBIOS {vbios}" + (
            "" if pins.driver_versions or pins.vbios_versions else " (no pins configured)"
        )
        return conclude(self.name, findings, {"driver_version": snap.driver_version, "vbios_version": vbios}, summary)


GPU_CHECKS: tuple[Callable[[], GpuCheck], ...] = (
    GpuCount,
    GpuEccMode,
    GpuEccErrors,
    GpuRowRemap,
    GpuRetiredPages,
    GpuClockEvents,
    GpuPcie,
    GpuNvlink,
    GpuPersistence,
    GpuThermalPower,
    GpuVersions,
)
