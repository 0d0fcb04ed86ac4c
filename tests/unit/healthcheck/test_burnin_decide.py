"""Burn-in verdicts from the records of the real H200 run, and from multi-GPU records derived from them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from healthcheck.burnin import decide
from healthcheck.burnin.__main__ import main
from healthcheck.burnin.platform import platform_for
from healthcheck.model import Verdict

DEVICE = Path(__file__).resolve().parents[2] / "fixtures" / "device-h200-burnin"
H200 = platform_for("NVIDIA H200")


def record(name: str) -> dict:
    return json.loads((DEVICE / name / "record.json").read_text())


def verdicts(rec: dict, platform=H200, settings=None) -> dict[str, decide.Result]:
    return {r.check: r for r in decide.judge(rec, platform, settings)}


def test_the_clean_120s_run_passes_and_reports_rate_pcie_hbm():
    rec = record("clean")
    assert rec["stress"]["duration_s"] >= 120
    results = verdicts(rec)
    assert {r.verdict for r in results.values()} <= {Verdict.OK, Verdict.SKIPPED}
    rate = results["burnin_gpu_rate"].evidence
    assert rate["gpu0_checked_vs_plain"] >= 0.95
    pcie = results["burnin_pcie_loaded"].evidence
    assert (pcie["gpu0_pcie_gen_loaded_min"], pcie["gpu0_pcie_width_loaded_min"]) == (5, 16)
    assert pcie["gpu0_pcie_loaded_samples"] > 100
    assert results["burnin_hbm_bandwidth"].evidence["gpu0_copy_gbps"] > H200.hbm_copy_gbps
    assert results["burnin_memory_pattern"].evidence["gpu0_tested_fraction_of_free"] > 0.8
    assert results["burnin_gpu_agreement"].verdict is Verdict.SKIPPED  # one GPU
    assert results["burnin_nccl_allreduce"].verdict is Verdict.SKIPPED  # one rank: no bus


@pytest.mark.parametrize(("name", "check", "where"), [
    ("plant-corrupt-mantissa", "check repeat", "[5461,3276]"),
    ("plant-corrupt-exponent", "check freivalds", "[5461,3276]"),
])
def test_planted_corruption_is_critical_and_names_gpu_product_and_element(name, check, where):
    result = verdicts(record(name))["burnin_gpu_math"]
    assert result.verdict is Verdict.CRITICAL
    assert check in result.summary and where in result.summary and "GPU 0" in result.summary
    assert "serial 1653724032611" in result.summary


def test_planted_slowdown_is_a_persistent_straggler_below_the_floor():
    result = verdicts(record("plant-slow"))["burnin_gpu_rate"]
    assert result.verdict is Verdict.CRITICAL
    assert "below the NVIDIA H200 floor" in result.summary
    # Judged with no floor, one GPU has no median to fall below: the floor is what catches it.
    no_floor = verdicts(record("plant-slow"), H200.with_overrides(tflops_floor=0.0))["burnin_gpu_rate"]
    assert no_floor.verdict is Verdict.OK


def test_planted_memory_fault_names_the_offset():
    result = verdicts(record("plant-memory"))["burnin_memory_pattern"]
    assert result.verdict is Verdict.CRITICAL
    assert "byte offset 6442549704" in result.summary


def eight_gpus(rec: dict, slow: dict[int, float] | None = None) -> dict:
    """The clean record as if 8 GPUs had run it; ``slow`` stretches some GPUs' product times."""
    rec = copy.deepcopy(rec)
    base_gpu, base_info, base_samples = rec["stress"]["gpus"][0], rec["gpu_info"][0], rec["samples"][0]
    rec["stress"]["gpus"], rec["gpu_info"], rec["samples"] = [], [], []
    for i in range(8):
        gpu = copy.deepcopy(base_gpu)
        gpu["cuda_index"] = i
        factor = (slow or {}).get(i, 1.0)
        gpu["loop_end_s"] = [t * factor for t in gpu["loop_end_s"] if t * factor <= rec["stress"]["duration_s"]]
        gpu["loops"] = len(gpu["loop_end_s"])
        rec["stress"]["gpus"].append(gpu)
        rec["gpu_info"].append({**base_info, "cuda_index": i, "serial": f"SER{i}"})
        rec["samples"].append(copy.deepcopy(base_samples))
    rec["stress"]["agreement"]["gpus"] = 8
    return rec


def test_a_gpu_7_percent_below_the_node_median_is_critical_and_named():
    result = verdicts(eight_gpus(record("clean"), {5: 1.075}))["burnin_gpu_rate"]
    assert result.verdict is Verdict.CRITICAL
    assert "GPU 5" in result.summary and "below the node median" in result.summary
    assert result.evidence["slowest_gpu"] == 5
    assert result.evidence["slowest_vs_median_pct"] < -5


def test_a_gpu_slow_in_a_few_windows_only_is_a_warning():
    rec = eight_gpus(record("clean"))
    ends = rec["stress"]["gpus"][2]["loop_end_s"]
    # Drop 20% of GPU 2's products in the windows 30-40 s and 70-80 s: slow twice, not persistently.
    rec["stress"]["gpus"][2]["loop_end_s"] = [t for k, t in enumerate(ends)
                                             if not ((30 <= t < 40 or 70 <= t < 80) and k % 5 == 0)]
    rec["stress"]["gpus"][2]["loops"] = len(rec["stress"]["gpus"][2]["loop_end_s"])
    result = verdicts(rec)["burnin_gpu_rate"]
    assert result.verdict is Verdict.WARNING
    assert "slow in 2/12 windows" in result.summary


def test_equal_gpus_pass_and_the_5_percent_rule_is_a_setting():
    rec = eight_gpus(record("clean"), {1: 1.03})
    assert verdicts(rec)["burnin_gpu_rate"].verdict is Verdict.OK
    strict = verdicts(rec, settings=decide.Settings(straggler_pct=2.0))["burnin_gpu_rate"]
    assert strict.verdict is Verdict.CRITICAL and "GPU 1" in strict.summary


def test_pcie_below_max_under_load_is_critical():
    rec = eight_gpus(record("clean"))
    for sample in rec["samples"][3]:
        if sample["phase"] == "pcie":
            sample["pcie_gen"] = 3
    result = verdicts(rec)["burnin_pcie_loaded"]
    assert result.verdict is Verdict.CRITICAL
    assert "Gen3 x16 under load, maximum Gen5 x16" in result.summary and "SER3" in result.summary


def test_cross_gpu_and_peer_copy_mismatches_are_critical():
    rec = eight_gpus(record("clean"))
    assert verdicts(rec)["burnin_gpu_agreement"].verdict is Verdict.UNKNOWN  # 8 GPUs, nothing compared
    rec["stress"]["agreement"].update(products_compared=14, peer_copies=16, peer_bytes=16 << 29)
    assert verdicts(rec)["burnin_gpu_agreement"].verdict is Verdict.OK
    rec["stress"]["agreement"]["product_mismatches"] = [
        {"pair": 4, "gpu": 6, "reference_gpu": 0, "count": 1, "elements": [{"row": 9, "col": 10}]}]
    rec["stress"]["agreement"]["peer_mismatches"] = [{"from_gpu": 2, "to_gpu": 3, "pair": 4, "count": 2}]
    result = verdicts(rec)["burnin_gpu_agreement"]
    assert result.verdict is Verdict.CRITICAL
    assert "GPU 6 and GPU 0 disagree on input pair 4" in result.summary
    assert any("GPU 2 -> GPU 3" in f.message for f in result.findings)


def test_nccl_busbw_against_the_platform_minimum():
    rec = eight_gpus(record("clean"))
    rec["nccl"] = {"world_size": 8, "rows": [
        {"bytes": 1 << 30, "algbw_gbps": 240.0, "busbw_gbps": 420.0, "time_us": 1.0, "wrong_elements": 0}]}
    assert verdicts(rec)["burnin_nccl_allreduce"].verdict is Verdict.OK
    rec["nccl"]["rows"][0]["busbw_gbps"] = 180.0
    assert verdicts(rec)["burnin_nccl_allreduce"].verdict is Verdict.CRITICAL
    rec["nccl"]["rows"][0].update(busbw_gbps=420.0, wrong_elements=3)
    assert "3 wrong" in verdicts(rec)["burnin_nccl_allreduce"].summary


def test_hw_slowdown_and_ecc_during_the_stress():
    rec = copy.deepcopy(record("clean"))
    stress = [s for s in rec["samples"][0] if s["phase"] == "stress"]
    stress[10]["clock_events"] = 0x8
    stress[-1]["ecc_corrected"] = stress[0].get("ecc_corrected", 0) + 40
    result = verdicts(rec)["burnin_gpu_thermal"]
    assert result.verdict is Verdict.CRITICAL
    assert "HW slowdown" in result.summary
    assert any("40 correctable ECC" in f.message for f in result.findings)


def test_judge_cli_exit_codes_json_and_textfile(tmp_path, capsys):
    assert main(["judge", str(DEVICE / "clean" / "record.json"), "--json", "--textfile", str(tmp_path)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["verdict"] == "OK" and body["schema"] == 1 and body["platform"] == "NVIDIA H200"
    prom = (tmp_path / "burnin.prom").read_text()
    assert 'burnin_check_verdict{node="vm",check="burnin_gpu_math"} 0' in prom
    assert "healthcheck_node_verdict" not in prom  # its own metric names: no clash with healthcheck.prom
    assert main(["judge", str(DEVICE / "plant-slow" / "record.json")]) == 2
    assert main(["judge", str(DEVICE / "plant-slow" / "record.json"), "--tflops-floor", "400"]) == 0
    assert main(["judge", str(tmp_path / "missing.json")]) == 4
    assert "cannot read record" in capsys.readouterr().err


def test_run_refuses_bad_plant_options_before_touching_a_gpu(capsys):
    assert main(["run", "--plant-corrupt", "0:15"]) == 4
    assert "BIT must be 0-14" in capsys.readouterr().err
    assert main(["run", "--plant-slow", "x"]) == 4


def test_a_gpu_wrong_on_many_products_keeps_the_first_listed_and_counts_the_rest():
    rec = record("plant-corrupt-mantissa")
    rec["stress"]["gpus"][0]["mismatches_not_listed"] = 500
    result = verdicts(rec)["burnin_gpu_math"]
    assert result.verdict is Verdict.CRITICAL
    assert "[5461,3276]" in result.summary and "(+1 more)" in result.summary
    assert result.evidence["gpu0_mismatches"] == 501
