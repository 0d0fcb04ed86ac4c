"""NVML readings over time during burn-in: what the GPU did while it was loaded.

An idle GPU may lower its PCIe link generation and its clocks, so the health sweep cannot judge
them; here they are read every ``interval_s`` while the stress runs. Each reading is one flat dict
(JSON-ready); a value NVML cannot give is left out, with the reason once in ``notes``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

NVML_CLOCK_SM = 1  # nvmlClockType_t: NVML_CLOCK_GRAPHICS 0, NVML_CLOCK_SM 1, NVML_CLOCK_MEM 2
NVML_TEMPERATURE_GPU = 0
NVML_ECC_CORRECTED, NVML_ECC_UNCORRECTED, NVML_VOLATILE_ECC = 0, 1, 0


def load_nvml() -> Any | None:
    """pynvml (nvidia-ml-py), initialised; None where it is not installed or no driver answers."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - any failure here means "no NVML", reported by the caller
        return None
    return pynvml


def _ask(nvml: Any, notes: dict[str, str], key: str, fn: str, *args: Any) -> Any:
    try:
        return getattr(nvml, fn)(*args)
    except Exception as err:  # noqa: BLE001 - NVMLError_NotSupported and friends: recorded, not fatal
        notes.setdefault(key, f"{fn}: {type(err).__name__}")
        return None


def static_info(nvml: Any, handle: Any) -> dict[str, Any]:
    """Identity and link maxima of one GPU."""
    notes: dict[str, str] = {}

    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")

    pci = _ask(nvml, notes, "bus_id", "nvmlDeviceGetPciInfo", handle)
    return {
        "name": text(_ask(nvml, notes, "name", "nvmlDeviceGetName", handle)),
        "serial": text(_ask(nvml, notes, "serial", "nvmlDeviceGetSerial", handle)),
        "uuid": text(_ask(nvml, notes, "uuid", "nvmlDeviceGetUUID", handle)),
        "bus_id": text(getattr(pci, "busId", "")) if pci is not None else "",
        "pcie_gen_max": _ask(nvml, notes, "pcie_gen_max", "nvmlDeviceGetMaxPcieLinkGeneration", handle),
        "pcie_width_max": _ask(nvml, notes, "pcie_width_max", "nvmlDeviceGetMaxPcieLinkWidth", handle),
        "pcie_gen_gpu_max": _ask(nvml, notes, "pcie_gen_gpu_max", "nvmlDeviceGetGpuMaxPcieLinkGeneration", handle),
        "sm_clock_max_mhz": _ask(nvml, notes, "sm_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", handle, NVML_CLOCK_SM),
        "power_limit_w": _milli(_ask(nvml, notes, "power_limit_w", "nvmlDeviceGetEnforcedPowerLimit", handle)),
        "notes": notes,
    }


def _milli(value: Any) -> float | None:
    return None if value is None else value / 1000.0


def read_sample(nvml: Any, handle: Any, notes: dict[str, str], phase: str, t0: float) -> dict[str, Any]:
    """One reading of the values that change under load."""
    sample: dict[str, Any] = {"t": round(time.monotonic() - t0, 3), "phase": phase}
    for key, fn, args in (
        ("temp_c", "nvmlDeviceGetTemperature", (NVML_TEMPERATURE_GPU,)),
        ("sm_mhz", "nvmlDeviceGetClockInfo", (NVML_CLOCK_SM,)),
        ("power_mw", "nvmlDeviceGetPowerUsage", ()),
        ("clock_events", "nvmlDeviceGetCurrentClocksEventReasons", ()),
        ("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration", ()),
        ("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth", ()),
        ("ecc_corrected", "nvmlDeviceGetTotalEccErrors", (NVML_ECC_CORRECTED, NVML_VOLATILE_ECC)),
        ("ecc_uncorrected", "nvmlDeviceGetTotalEccErrors", (NVML_ECC_UNCORRECTED, NVML_VOLATILE_ECC)),
    ):
        value = _ask(nvml, notes, key, fn, handle, *args)
        if value is not None:
            sample[key] = int(value)
    if "power_mw" in sample:
        sample["power_w"] = round(sample.pop("power_mw") / 1000.0, 1)
    return sample


class Sampler:
    """A thread reading every GPU every ``interval_s``; ``phase`` labels what the GPUs are doing now."""

    def __init__(self, nvml: Any, handles: list[Any], interval_s: float = 1.0) -> None:
        self.nvml, self.handles, self.interval_s = nvml, handles, interval_s
        self.samples: list[list[dict[str, Any]]] = [[] for _ in handles]
        self.notes: list[dict[str, str]] = [{} for _ in handles]
        self.phase = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="burnin-nvml", daemon=True)
        self.t0 = time.monotonic()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sample_now(self) -> None:
        for index, handle in enumerate(self.handles):
            self.samples[index].append(read_sample(self.nvml, handle, self.notes[index], self.phase, self.t0))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample_now()
            self._stop.wait(self.interval_s)
