"""GPU readings from the real H200 capture (NVML replay and nvidia-smi XML) and the derived faults."""

from __future__ import annotations

from dataclasses import replace

import pytest

from healthcheck.gpu import CLOCK_HW_SLOWDOWN, CLOCK_IDLE, parse_nvlink_status
from healthcheck.gpu_checks import GPU_CHECKS
from healthcheck.model import Verdict
from healthcheck.runner import evaluate
from tests.unit.healthcheck.helpers import device_config, device_config_with, device_nvml, device_xml, readings

READERS = {"nvml": device_nvml, "xml": device_xml}


@pytest.mark.parametrize("source", sorted(READERS))
def test_real_h200_capture_reads_the_values_the_machine_reported(source):
    snap = READERS[source]()
    assert snap.driver_version == "580.159.04"
    (gpu,) = snap.gpus
    assert gpu.bus_id.endswith("00:06.0")
    assert gpu.serial == "1652826063861"
    assert (gpu.ecc_current, gpu.ecc_pending) == (True, True)
    assert gpu.ecc_volatile_uncorrected == 0
    assert (gpu.remap_pending, gpu.remap_failed) == (False, False)
    assert gpu.retired_pending is None
    assert gpu.clock_events == CLOCK_IDLE
    assert (gpu.pcie_gen, gpu.pcie_gen_max, gpu.pcie_width, gpu.pcie_width_max) == (5, 5, 16, 16)
    assert gpu.temp_c == 36
    assert gpu.temp_max_operating_c == 87 and gpu.temp_slowdown_c == 89 and gpu.temp_shutdown_c == 95
    assert gpu.power_limit_w == 700
    assert gpu.nvlinks is None and "nvlinks" in gpu.notes
    assert gpu.persistence_on is True


def test_nvml_reports_nvlink_not_supported_as_the_reason():
    (gpu,) = device_nvml().gpus
    assert "NotSupported" in gpu.notes["nvlinks"]


@pytest.mark.parametrize("source", sorted(READERS))
def test_real_h200_gives_ok_or_skipped_with_reason_on_every_gpu_check(source):
    results = evaluate(readings(gpus=READERS[source]()), device_config(), [make() for make in GPU_CHECKS])
    verdicts = {r.check: r.verdict for r in results}
    assert verdicts.pop("gpu_nvlink") is Verdict.SKIPPED
    assert verdicts.pop("gpu_retired_pages") is Verdict.SKIPPED
    assert set(verdicts.values()) == {Verdict.OK}, verdicts
    nvlink = next(r for r in results if r.check == "gpu_nvlink")
    assert "NVLink" in nvlink.summary.split(";")[0] and "expects no NVLink" in nvlink.summary


def test_nvlink_not_supported_where_nvlink_is_expected_is_unknown_not_ok_or_critical():
    config = device_config_with("gpu", nvlink=True)
    results = evaluate(readings(), config, [make() for make in GPU_CHECKS])
    nvlink = next(r for r in results if r.check == "gpu_nvlink")
    assert nvlink.verdict is Verdict.UNKNOWN
    assert "NotSupported" in nvlink.summary


FAULTS = [
    # (fault fixture, check that must catch it, verdict)
    ("ecc-errors", "gpu_ecc_errors", Verdict.CRITICAL),
    ("remap-pending", "gpu_row_remap", Verdict.CRITICAL),
    ("pcie-x8", "gpu_pcie_link", Verdict.CRITICAL),
    ("hw-slowdown", "gpu_clock_events", Verdict.CRITICAL),
]


@pytest.mark.parametrize("source", sorted(READERS))
@pytest.mark.parametrize(("fault", "check", "verdict"), FAULTS)
def test_each_derived_gpu_fault_is_detected_with_its_severity(source, fault, check, verdict):
    results = evaluate(readings(gpus=READERS[source](fault)), device_config(), [make() for make in GPU_CHECKS])
    by_name = {r.check: r for r in results}
    assert by_name[check].verdict is verdict
    assert "serial 1652826063861" in by_name[check].summary
    assert by_name[check].fix
    others = {name: r.verdict for name, r in by_name.items() if name != check}
    assert all(v in (Verdict.OK, Verdict.SKIPPED) for v in others.values()), others


def test_hw_slowdown_is_reported_from_the_bit_mask():
    snap = device_nvml("hw-slowdown")
    assert snap.gpus[0].clock_events == CLOCK_HW_SLOWDOWN


def test_idle_gpu_with_lower_pcie_generation_is_not_flagged_but_busy_one_is():
    idle = device_xml()
    gpu = idle.gpus[0]
    lowered = replace(idle, gpus=(replace(gpu, pcie_gen=1),))
    result = evaluate(readings(gpus=lowered), device_config(), [GPU_CHECKS[6]()])[0]
    assert result.verdict is Verdict.OK
    busy = replace(idle, gpus=(replace(gpu, pcie_gen=1, clock_events=0),))
    result = evaluate(readings(gpus=busy), device_config(), [GPU_CHECKS[6]()])[0]
    assert result.verdict is Verdict.WARNING


def test_missing_gpu_is_critical_and_names_the_rma_vendor():
    config = device_config_with("gpu", count=8)
    result = evaluate(readings(), config, [GPU_CHECKS[0]()])[0]
    assert result.verdict is Verdict.CRITICAL
    assert "1 of 8" in result.summary and "RMA with NVIDIA" in result.fix


def test_driver_off_pin_is_a_warning():
    config = device_config_with("gpu", driver_versions=("570.1",))
    result = evaluate(readings(), config, [GPU_CHECKS[-1]()])[0]
    assert result.verdict is Verdict.WARNING and "580.159.04" in result.summary


def test_no_gpu_readings_make_every_gpu_check_unknown_with_the_reason():
    from healthcheck.probe import Missing

    results = evaluate(readings(gpus=Missing("nvidia-smi not found")), device_config(), [make() for make in GPU_CHECKS])
    assert {r.verdict for r in results} == {Verdict.UNKNOWN}
    assert all("nvidia-smi not found" in r.summary for r in results)


def test_nvlink_status_text_marks_inactive_links():
    text = "GPU 0: NVIDIA H100 (UUID: x)\n\t Link 0: 26.562 GB/s\n\t Link 1: <inactive>\nGPU 1: NVIDIA H100\n"
    links = parse_nvlink_status(text)
    assert [(link.link, link.active) for link in links[0]] == [(0, True), (1, False)]
    assert 1 not in links
