"""GPU readings: NVML first, ``nvidia-smi -q -x`` when NVML is absent or fails.

Both paths produce the same ``GpuReading``, so every GPU check is written once. A value the GPU
does not support is ``None`` with a note saying why, because "not supported" (page retirement on
Hopper, NVLink on a PCIe card) is evidence a check must report, not an error to swallow.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from healthcheck.probe import Missing, run

log = logging.getLogger("healthcheck")

# NVML clock event reason bits (nvmlClocksEventReason*); the XML path maps onto the same bits.
CLOCK_IDLE = 0x1
CLOCK_SW_POWER_CAP = 0x4
CLOCK_HW_SLOWDOWN = 0x8
CLOCK_SW_THERMAL = 0x20
CLOCK_HW_THERMAL = 0x40
CLOCK_HW_POWER_BRAKE = 0x80

NVLINK_MAX_LINKS = 18  # NVLink 4 on H100/H200
NVLINK_COUNTERS = {"replay": 0, "recovery": 1, "crc_flit": 2, "crc_data": 3}
_NVML_NOT_SUPPORTED = 3
_NVML_INVALID_ARGUMENT = 2


@dataclass(frozen=True)
class NvLink:
    """One NVLink of a GPU; `error` says why its state could not be read ('' when it could)."""

    link: int
    active: bool
    errors: dict[str, int] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class GpuReading:
    """One GPU as observed; ``None`` means unavailable, with the reason in ``notes``."""

    index: int
    bus_id: str
    name: str = ""
    serial: str = ""
    uuid: str = ""
    vbios: str = ""
    persistence_on: bool | None = None
    ecc_current: bool | None = None
    ecc_pending: bool | None = None
    ecc_volatile_uncorrected: int | None = None
    ecc_volatile_corrected: int | None = None
    remap_pending: bool | None = None
    remap_failed: bool | None = None
    remap_uncorrectable_rows: int | None = None
    retired_pending: bool | None = None
    clock_events: int | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    temp_c: float | None = None
    temp_slowdown_c: float | None = None
    temp_shutdown_c: float | None = None
    temp_max_operating_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    nvlinks: tuple[NvLink, ...] | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuSnapshot:
    source: str  # "nvml" or "nvidia-smi"
    driver_version: str
    gpus: tuple[GpuReading, ...]
    fallback_reason: str = ""  # why NVML was not used, when it was not


# ---------------------------------------------------------------- NVML


class _Nvml:
    """Calls into a pynvml-like module, turning NotSupported into None plus a note."""

    def __init__(self, nvml: ModuleType | Any, handle: Any, notes: dict[str, str]) -> None:
        self.nvml, self.handle, self.notes = nvml, handle, notes

    def ask(self, field_name: str, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, fn)(self.handle, *args)
        except self.nvml.NVMLError as err:
            code = getattr(err, "value", None)
            what = "NotSupported" if code == _NVML_NOT_SUPPORTED else type(err).__name__
            self.notes[field_name] = f"NVML {fn}: {what}"
            return None
        except AttributeError:
            self.notes[field_name] = f"NVML binding has no {fn}"
            return None


def _nvml_nvlinks(q: _Nvml, nvml: Any) -> tuple[NvLink, ...] | None:
    """Every NVLink of the GPU. NVML answers InvalidArgument past the GPU's last link (the end of the
    list) and NotSupported on link 0 of a GPU without NVLink; any other error is that link's
    state unread, recorded on the link, and the enumeration goes on (a wedged link must not hide
    the rest, nor look like a GPU with fewer links)."""
    links: list[NvLink] = []
    for link in range(NVLINK_MAX_LINKS):
        try:
            state = nvml.nvmlDeviceGetNvLinkState(q.handle, link)
        except nvml.NVMLError as err:
            code = getattr(err, "value", None)
            if code == _NVML_INVALID_ARGUMENT and links:
                break
            if not links and code in (_NVML_NOT_SUPPORTED, _NVML_INVALID_ARGUMENT):
                what = "NotSupported" if code == _NVML_NOT_SUPPORTED else "InvalidArgument"
                q.notes["nvlinks"] = f"NVML nvmlDeviceGetNvLinkState: {what} (no NVLink on this GPU)"
                return None
            links.append(NvLink(link, False, error=f"NVML nvmlDeviceGetNvLinkState: {type(err).__name__} "
                                                   f"(code {code})"))
            continue
        errors: dict[str, int] = {}
        for name, counter in NVLINK_COUNTERS.items():
            try:
                errors[name] = int(nvml.nvmlDeviceGetNvLinkErrorCounter(q.handle, link, counter))
            except nvml.NVMLError:
                continue
        links.append(NvLink(link, bool(state), errors))
    return tuple(links)


def read_nvml(nvml: ModuleType | Any) -> GpuSnapshot:
    """Read every GPU through NVML (``nvml`` is pynvml, or a replay of recorded answers)."""
    nvml.nvmlInit()
    try:
        driver = nvml.nvmlSystemGetDriverVersion()
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            notes: dict[str, str] = {}
            q = _Nvml(nvml, handle, notes)
            pci = q.ask("bus_id", "nvmlDeviceGetPciInfo")
            ecc = q.ask("ecc_current", "nvmlDeviceGetEccMode")
            remap = q.ask("remap_pending", "nvmlDeviceGetRemappedRows")
            retired = q.ask("retired_pending", "nvmlDeviceGetRetiredPagesPendingStatus")
            power = q.ask("power_w", "nvmlDeviceGetPowerUsage")
            limit = q.ask("power_limit_w", "nvmlDeviceGetEnforcedPowerLimit")
            gpus.append(
                GpuReading(
                    index=index,
                    bus_id=_text(getattr(pci, "busId", "")) if pci is not None else "",
                    name=_text(q.ask("name", "nvmlDeviceGetName") or ""),
                    serial=_text(q.ask("serial", "nvmlDeviceGetSerial") or ""),
                    uuid=_text(q.ask("uuid", "nvmlDeviceGetUUID") or ""),
                    vbios=_text(q.ask("vbios", "nvmlDeviceGetVbiosVersion") or ""),
                    persistence_on=_flag(q.ask("persistence_on", "nvmlDeviceGetPersistenceMode")),
                    ecc_current=_flag(ecc[0]) if ecc else None,
                    ecc_pending=_flag(ecc[1]) if ecc else None,
                    ecc_volatile_uncorrected=q.ask("ecc_volatile_uncorrected", "nvmlDeviceGetTotalEccErrors", 1, 0),
                    ecc_volatile_corrected=q.ask("ecc_volatile_corrected", "nvmlDeviceGetTotalEccErrors", 0, 0),
                    remap_pending=_flag(remap[2]) if remap else None,
                    remap_failed=_flag(remap[3]) if remap else None,
                    remap_uncorrectable_rows=int(remap[1]) if remap else None,
                    retired_pending=_flag(retired),
                    clock_events=q.ask("clock_events", "nvmlDeviceGetCurrentClocksEventReasons"),
                    pcie_gen=q.ask("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration"),
                    pcie_gen_max=q.ask("pcie_gen_max", "nvmlDeviceGetMaxPcieLinkGeneration"),
                    pcie_width=q.ask("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth"),
                    pcie_width_max=q.ask("pcie_width_max", "nvmlDeviceGetMaxPcieLinkWidth"),
                    temp_c=q.ask("temp_c", "nvmlDeviceGetTemperature", 0),
                    temp_shutdown_c=q.ask("temp_shutdown_c", "nvmlDeviceGetTemperatureThreshold", 0),
                    temp_slowdown_c=q.ask("temp_slowdown_c", "nvmlDeviceGetTemperatureThreshold", 1),
                    temp_max_operating_c=q.ask("temp_max_operating_c", "nvmlDeviceGetTemperatureThreshold", 3),
                    power_w=power / 1000.0 if power is not None else None,
                    power_limit_w=limit / 1000.0 if limit is not None else None,
                    nvlinks=_nvml_nvlinks(q, nvml),
                    notes=notes,
                )
            )
        return GpuSnapshot("nvml", _text(driver), tuple(gpus))
    finally:
        nvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


# ---------------------------------------------------------------- nvidia-smi -q -x

_XML_CLOCK_BITS = {
    "gpu_idle": CLOCK_IDLE,
    "sw_power_cap": CLOCK_SW_POWER_CAP,
    "hw_slowdown": CLOCK_HW_SLOWDOWN,
    "sw_thermal_slowdown": CLOCK_SW_THERMAL,
    "hw_thermal_slowdown": CLOCK_HW_THERMAL,
    "hw_power_brake_slowdown": CLOCK_HW_POWER_BRAKE,
}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _x(gpu: ET.Element, path: str) -> str | None:
    """Text at ``path`` or None when absent or "N/A" (nvidia-smi's word for unsupported)."""
    node = gpu.find(path)
    if node is None or node.text is None:
        return None
    text = node.text.strip()
    return None if text in ("N/A", "", "Not Supported", "[N/A]") else text


def _xnum(gpu: ET.Element, path: str) -> float | None:
    text = _x(gpu, path)
    match = _NUMBER.search(text) if text else None
    return float(match.group()) if match else None


def _xint(gpu: ET.Element, path: str) -> int | None:
    value = _xnum(gpu, path)
    return int(value) if value is not None else None


def _xflag(gpu: ET.Element, path: str, yes: tuple[str, ...] = ("Yes", "Enabled", "Active")) -> bool | None:
    text = _x(gpu, path)
    return None if text is None else text in yes


def _xml_clock_events(gpu: ET.Element) -> int | None:
    # Drivers before 535 call the block clocks_throttle_reasons; newer ones clocks_event_reasons.
    block = gpu.find("clocks_event_reasons")
    prefix = "clocks_event_reason_"
    if block is None:
        block, prefix = gpu.find("clocks_throttle_reasons"), "clocks_throttle_reason_"
    if block is None:
        return None
    mask = 0
    for child in block:
        bit = _XML_CLOCK_BITS.get(child.tag.removeprefix(prefix))
        if bit and (child.text or "").strip() == "Active":
            mask |= bit
    return mask


def _xml_temperatures(gpu: ET.Element, notes: dict[str, str]) -> dict[str, float | None]:
    temp = _xnum(gpu, "temperature/gpu_temp")
    absolute = {
        "temp_shutdown_c": _xnum(gpu, "temperature/gpu_temp_max_threshold"),
        "temp_slowdown_c": _xnum(gpu, "temperature/gpu_temp_slow_threshold"),
        "temp_max_operating_c": _xnum(gpu, "temperature/gpu_temp_max_gpu_threshold"),
    }
    margin = _xnum(gpu, "temperature/gpu_temp_tlimit")
    if temp is not None and margin is not None and absolute["temp_max_operating_c"] is None:
        # Drivers 570+ report T.Limit: the margin to the max operating temperature, and the
        # shutdown/slowdown thresholds relative to it (negative = degrees beyond it).
        max_op = temp + margin
        shutdown = _xnum(gpu, "temperature/gpu_temp_max_tlimit_threshold")
        slowdown = _xnum(gpu, "temperature/gpu_temp_slow_tlimit_threshold")
        absolute = {
            "temp_shutdown_c": max_op - shutdown if shutdown is not None else None,
            "temp_slowdown_c": max_op - slowdown if slowdown is not None else None,
            "temp_max_operating_c": max_op,
        }
        notes["temp_max_operating_c"] = "derived from nvidia-smi T.Limit margins"
    return {"temp_c": temp, **absolute}


def _xml_ecc(gpu: ET.Element, counted: Callable[[str], bool], pre_hopper: str) -> int | None:
    """The volatile ECC counts whose tags `counted` picks, summed; the pre-Hopper schema has one total
    (volatile/double_bit/total, volatile/single_bit/total) at `pre_hopper` instead."""
    volatile = gpu.find("ecc_errors/volatile")
    if volatile is None:
        return None
    values = [
        int(child.text)
        for child in volatile
        if counted(child.tag) and child.text and child.text.strip().isdigit()
    ]
    return sum(values) if values else _xint(gpu, pre_hopper)


def _xml_ecc_uncorrected(gpu: ET.Element) -> int | None:
    return _xml_ecc(gpu, lambda tag: "uncorrectable" in tag, "ecc_errors/volatile/double_bit/total")


def _xml_ecc_corrected(gpu: ET.Element) -> int | None:
    return _xml_ecc(gpu, lambda tag: tag.endswith("_correctable"), "ecc_errors/volatile/single_bit/total")


def parse_nvidia_smi_xml(text: str, nvlink_text: str | Missing | None = None) -> GpuSnapshot:
    """Parse ``nvidia-smi -q -x`` (and optionally ``nvidia-smi nvlink -s``) into readings."""
    # The XML comes from the local nvidia-smi (or the lab's stand-in), not from the network.
    root = ET.fromstring(text)  # noqa: S314
    nvlinks = parse_nvlink_status(nvlink_text) if isinstance(nvlink_text, str) else {}
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        notes: dict[str, str] = {}
        temps = _xml_temperatures(gpu, notes)
        links = nvlinks.get(index)
        if links is None:
            notes["nvlinks"] = (
                f"nvidia-smi nvlink -s: {nvlink_text.reason}"
                if isinstance(nvlink_text, Missing)
                else "nvidia-smi lists no NVLink for this GPU"
            )
        retired = _x(gpu, "retired_pages/pending_retirement")
        if retired is None:
            notes["retired_pending"] = "nvidia-smi: retired pages N/A (row remapping replaces them)"
        power = _xnum(gpu, "gpu_power_readings/instant_power_draw") or _xnum(gpu, "gpu_power_readings/power_draw")
        limit = _xnum(gpu, "gpu_power_readings/current_power_limit") or _xnum(
            gpu, "gpu_power_readings/enforced_power_limit"
        )
        gpus.append(
            GpuReading(
                index=index,
                bus_id=gpu.get("id", ""),
                name=_x(gpu, "product_name") or "",
                serial=_x(gpu, "serial") or "",
                uuid=_x(gpu, "uuid") or "",
                vbios=_x(gpu, "vbios_version") or "",
                persistence_on=_xflag(gpu, "persistence_mode"),
                ecc_current=_xflag(gpu, "ecc_mode/current_ecc"),
                ecc_pending=_xflag(gpu, "ecc_mode/pending_ecc"),
                ecc_volatile_uncorrected=_xml_ecc_uncorrected(gpu),
                ecc_volatile_corrected=_xml_ecc_corrected(gpu),
                remap_pending=_xflag(gpu, "remapped_rows/remapped_row_pending"),
                remap_failed=_xflag(gpu, "remapped_rows/remapped_row_failure"),
                remap_uncorrectable_rows=_xint(gpu, "remapped_rows/remapped_row_unc"),
                retired_pending=None if retired is None else retired == "Yes",
                clock_events=_xml_clock_events(gpu),
                pcie_gen=_xint(gpu, "pci/pci_gpu_link_info/pcie_gen/current_link_gen"),
                pcie_gen_max=_xint(gpu, "pci/pci_gpu_link_info/pcie_gen/max_link_gen"),
                pcie_width=_xint(gpu, "pci/pci_gpu_link_info/link_widths/current_link_width"),
                pcie_width_max=_xint(gpu, "pci/pci_gpu_link_info/link_widths/max_link_width"),
                power_w=power,
                power_limit_w=limit,
                nvlinks=links,
                notes=notes,
                **temps,
            )
        )
    driver = root.findtext("driver_version") or ""
    return GpuSnapshot("nvidia-smi", driver.strip(), tuple(gpus))


_NVLINK_GPU = re.compile(r"^GPU (\d+):")
_NVLINK_LINK = re.compile(r"^\s+Link (\d+): (.*)$")


def parse_nvlink_status(text: str) -> dict[int, tuple[NvLink, ...]]:
    """Parse ``nvidia-smi nvlink -s``: per GPU, each link's speed or ``<inactive>``."""
    result: dict[int, list[NvLink]] = {}
    current: int | None = None
    for line in text.splitlines():
        if match := _NVLINK_GPU.match(line):
            current = int(match.group(1))
            result[current] = []
        elif (match := _NVLINK_LINK.match(line)) and current is not None:
            result[current].append(NvLink(int(match.group(1)), "inactive" not in match.group(2).lower()))
    return {gpu: tuple(links) for gpu, links in result.items() if links}


# ---------------------------------------------------------------- gathering


def gather_gpus(use_nvml: bool, nvidia_smi: tuple[str, ...], timeout_s: float) -> GpuSnapshot | Missing:
    """NVML when importable and working, else nvidia-smi XML; Missing when both fail."""
    fallback = "NVML disabled by config (sources.use_nvml)"
    if use_nvml:
        try:
            import pynvml  # type: ignore[import-not-found]
        except ImportError:
            fallback = "nvidia-ml-py is not installed"
        else:
            try:
                return read_nvml(pynvml)
            except pynvml.NVMLError as err:
                fallback = f"NVML failed: {err}"
                log.warning("NVML failed, falling back to nvidia-smi: %s", err)
    xml = run((*nvidia_smi, "-q", "-x"), timeout_s)
    if isinstance(xml, Missing):
        return Missing(f"{fallback}; {xml.reason}")
    nvlink = run((*nvidia_smi, "nvlink", "-s"), timeout_s)
    try:
        snapshot = parse_nvidia_smi_xml(xml, nvlink)
    except ET.ParseError as err:
        return Missing(f"{fallback}; nvidia-smi -q -x printed unparseable XML: {err}")
    return GpuSnapshot(snapshot.source, snapshot.driver_version, snapshot.gpus, fallback)
