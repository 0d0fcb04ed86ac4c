"""Checks that could not read their data say UNKNOWN (or CRITICAL) with the reason, GPU by GPU, link by link."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from healthcheck.gpu import NvLink, _Nvml, _nvml_nvlinks
from healthcheck.gpu_checks import GpuClockEvents, GpuEccErrors, GpuEccMode, GpuNvlink, GpuThermalPower
from healthcheck.ib import IbPortsCheck, gather_ib
from healthcheck.model import Verdict
from tests.unit.healthcheck.helpers import LAB, device_config_with, device_nvml, readings
from tests.unit.healthcheck.nvml_replay import NVMLError


def two_gpus(**broken):
    """The real H200 reading twice: GPU 1 with `broken` fields unreadable (None plus NVML's reason)."""
    (gpu,) = device_nvml().gpus
    notes = {name: f"NVML {name}: Unknown" for name in broken}
    sick = replace(gpu, index=1, bus_id="00000000:00:07.0", serial="1652826063862", notes=notes,
                   **dict.fromkeys(broken))
    snap = device_nvml()
    return replace(snap, gpus=(gpu, sick))


CONFIG = device_config_with("gpu", count=2, nvlink=False)


@pytest.mark.parametrize(("check", "fields"), [
    (GpuEccErrors, {"ecc_volatile_uncorrected": None, "ecc_volatile_corrected": None}),
    (GpuEccMode, {"ecc_current": None, "ecc_pending": None}),
    (GpuThermalPower, {"temp_c": None}),
    (GpuClockEvents, {"clock_events": None}),
])
def test_one_gpu_with_unreadable_data_makes_the_check_unknown_naming_that_gpu(check, fields):
    result = check().evaluate(readings(gpus=two_gpus(**fields)), CONFIG)
    assert result.verdict is Verdict.UNKNOWN
    assert "GPU 1" in result.summary and "Unknown" in result.summary
    assert "GPU 0" not in result.summary


def test_a_critical_gpu_still_outranks_another_gpus_unreadable_data():
    snap = two_gpus(ecc_volatile_uncorrected=None)
    hot = replace(snap.gpus[0], ecc_volatile_uncorrected=3)
    result = GpuEccErrors().evaluate(readings(gpus=replace(snap, gpus=(hot, snap.gpus[1]))), CONFIG)
    assert result.verdict is Verdict.CRITICAL
    assert any(f.verdict is Verdict.UNKNOWN and "GPU 1" in f.message for f in result.findings)


class LinkNvml:
    """NVML's NvLink calls for one GPU: `states` per link; an int is the NVML error code raised."""

    NVMLError = NVMLError

    def __init__(self, states: list) -> None:
        self.states = states

    def nvmlDeviceGetNvLinkState(self, handle, link):
        if link >= len(self.states):
            raise NVMLError(2)  # NVML_ERROR_INVALID_ARGUMENT: no such link on this GPU
        if isinstance(self.states[link], int) and not isinstance(self.states[link], bool):
            raise NVMLError(self.states[link])
        return self.states[link]

    def nvmlDeviceGetNvLinkErrorCounter(self, handle, link, counter):
        return 0


def test_nvlink_enumeration_goes_on_past_an_nvml_error_and_marks_that_link():
    nvml = LinkNvml([True] * 5 + [999] + [True] * 12)  # 999: NVML_ERROR_UNKNOWN on link 5 of 18
    notes: dict[str, str] = {}
    links = _nvml_nvlinks(_Nvml(nvml, object(), notes), nvml)
    assert len(links) == 18
    assert links[5].error and not links[5].active
    assert all(link.active and not link.error for n, link in enumerate(links) if n != 5)


def nvlink_config(links: int = 18):
    return device_config_with("gpu", count=1, nvlink=True, nvlink_links=links)


def with_links(links):
    snap = device_nvml()
    return replace(snap, gpus=(replace(snap.gpus[0], nvlinks=tuple(links)),))


def test_an_unreadable_nvlink_is_unknown_with_the_reason():
    links = [NvLink(n, True) for n in range(18)]
    links[5] = NvLink(5, False, error="NVML nvmlDeviceGetNvLinkState: NVMLError (code 999)")
    result = GpuNvlink().evaluate(readings(gpus=with_links(links)), nvlink_config())
    assert result.verdict is Verdict.UNKNOWN and "NVLink 5" in result.summary and "999" in result.summary


def test_fewer_nvlinks_than_expected_is_critical():
    result = GpuNvlink().evaluate(readings(gpus=with_links([NvLink(n, True) for n in range(12)])), nvlink_config())
    assert result.verdict is Verdict.CRITICAL and "12 of 18 NVLinks" in result.summary


def test_the_expected_nvlink_count_passes_when_all_are_there():
    result = GpuNvlink().evaluate(readings(gpus=with_links([NvLink(n, True) for n in range(18)])), nvlink_config())
    assert result.verdict is Verdict.OK


def test_an_active_ib_port_whose_rate_cannot_be_read_is_unknown_not_ok(tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(LAB / "healthy" / "sysfs", root)
    (root / "class/infiniband/mlx5_2/ports/1/rate").unlink()
    config = device_config_with("ib", hca_count=8, rate_gbps=400)
    result = IbPortsCheck().evaluate(readings(ib=gather_ib(str(root))), config)
    assert result.verdict is Verdict.UNKNOWN
    assert "mlx5_2 port 1" in result.summary and "rate" in result.summary
