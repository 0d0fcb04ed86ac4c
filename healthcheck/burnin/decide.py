"""Judge a burn-in record: pure functions from the recorded run to health-check results.

The record is what ``run.py`` writes (``summary.json``): the stress part from ``gpu``, NVML samples
per GPU, the memory, PCIe and NCCL parts. Judging is kept apart from running so recorded device
runs drive these decisions in tests, and the same record can be judged again with other settings.
Results use the health checks' model (``healthcheck.model``) and so land in the same JSON report,
table and Prometheus textfile shapes.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from healthcheck.burnin.platform import Platform
from healthcheck.gpu import CLOCK_HW_POWER_BRAKE, CLOCK_HW_SLOWDOWN, CLOCK_HW_THERMAL
from healthcheck.model import Finding, Result, Verdict, conclude, skipped, unknown

LOADED_PHASES = ("stress", "pcie")
RMA = "node owner: drain the node; datacenter tech: reseat, then open an RMA for GPU serial"


@dataclass(frozen=True)
class Settings:
    """How strict the judge is; each is a burn-in setting with a default."""

    straggler_pct: float = 5.0  # below the node median by this much is slow
    window_s: float = 10.0  # the rate is judged per window; a persistent straggler is CRITICAL
    persist_fraction: float = 0.5  # slow in at least this share of the windows: persistent
    warmup_windows: int = 0


def _gpu_label(gpu: Mapping[str, Any]) -> str:
    serial = gpu.get("serial") or "?"
    return f"GPU {gpu.get('cuda_index')} ({gpu.get('bus_id') or '?'}, serial {serial})"


def window_rates(loop_end_s: list[float], flops: float, duration_s: float, window_s: float) -> list[float]:
    """TFLOP/s per window of ``window_s`` from the times products finished (the last partial window is dropped)."""
    count = int(duration_s // window_s)
    if count <= 0:
        return []
    loops = [0] * count
    for t in loop_end_s:
        k = int(t // window_s)
        if 0 <= k < count:
            loops[k] += 1
    return [n * flops / window_s / 1e12 for n in loops]


def gpu_rates(stress: Mapping[str, Any], window_s: float) -> list[dict[str, Any]]:
    """Per GPU: whole-run TFLOP/s and per-window TFLOP/s."""
    flops, duration = float(stress["flops_per_product"]), float(stress["duration_s"])
    out = []
    for gpu in stress["gpus"]:
        ends = gpu.get("loop_end_s", [])
        span = ends[-1] if ends else duration
        out.append({
            "cuda_index": gpu["cuda_index"],
            "tflops": (gpu["loops"] * flops / span / 1e12) if span > 0 else 0.0,
            "windows": window_rates(ends, flops, duration, window_s),
        })
    return out


def judge_math(record: Mapping[str, Any]) -> Result:
    """Every product verified: any mismatch is CRITICAL, with GPU, product, check and element."""
    stress = record["stress"]
    findings, evidence = [], {}
    products = 0
    for gpu, info in zip(stress["gpus"], record["gpu_info"], strict=True):
        label = _gpu_label({**info, **gpu})
        idx = gpu["cuda_index"]
        products += gpu["loops"]
        evidence[f"gpu{idx}_products"] = gpu["loops"]
        evidence[f"gpu{idx}_mismatches"] = len(gpu["mismatches"]) + gpu.get("mismatches_not_listed", 0)
        evidence[f"gpu{idx}_worst_freivalds_ratio"] = gpu["worst_freivalds_ratio"]
        evidence[f"gpu{idx}_reference_worst_ratio"] = gpu["reference_worst_ratio"]
        if gpu.get("error"):
            findings.append(Finding(Verdict.CRITICAL, f"{label}: stress failed: {gpu['error']}",
                                    f"{RMA} {info.get('serial') or '?'} if it fails again after a reset"))
        for m in gpu["mismatches"]:
            where = ", ".join(f"[{e['row']},{e['col']}] got {e.get('got')} expected {e.get('expected')}"
                              for e in m.get("elements", [])[:3]) or f"rows {m.get('rows', [])[:5]}"
            findings.append(Finding(
                Verdict.CRITICAL,
                f"{label}: wrong product (check {m['check']}, product {m['loop']}, input pair {m['pair']}, "
                f"{m.get('count', '?')} element(s)): {where}",
                f"{RMA} {info.get('serial') or '?'} (seed {stress['seed']} reproduces the inputs)",
            ))
        if gpu.get("mismatches_not_listed"):
            findings.append(Finding(Verdict.CRITICAL, f"{label}: {gpu['mismatches_not_listed']} more wrong products "
                                                      "not listed (only the first ones are kept)",
                                    f"{RMA} {info.get('serial') or '?'}"))
    evidence["products"] = products
    evidence["seed"] = str(stress["seed"])
    gpus = len(stress["gpus"])
    return conclude("burnin_gpu_math", findings, evidence,
                    f"{products} products on {gpus} GPU(s) verified (Freivalds + bit-exact repeat + fp32 reference "
                    f"sample), seed {stress['seed']}")


def judge_agreement(record: Mapping[str, Any]) -> Result:
    """Same seeded product on every GPU, bit for bit; peer copies bit for bit."""
    agreement = record["stress"]["agreement"]
    if agreement["gpus"] < 2:
        return skipped("burnin_gpu_agreement", "one GPU: no other GPU to compare products and peer copies with")
    findings = []
    for m in agreement["product_mismatches"]:
        findings.append(Finding(Verdict.CRITICAL,
                                f"GPU {m['gpu']} and GPU {m['reference_gpu']} disagree on input pair {m['pair']}: "
                                f"{m['count']} element(s), first {m['elements'][:3]}",
                                "node owner: check both GPUs' VBIOS/driver; the GPU that disagrees with the others "
                                "is the suspect: RMA"))
    for m in agreement.get("fingerprint_mismatches", []):
        findings.append(Finding(Verdict.CRITICAL, f"input pair {m['pair']}: products differ between GPUs "
                                                  f"{sorted(m['fingerprints'])}",
                                "node owner: compare the GPUs' products; the odd one out is the suspect: RMA"))
    for m in agreement["peer_mismatches"]:
        findings.append(Finding(Verdict.CRITICAL, f"peer copy GPU {m['from_gpu']} -> GPU {m['to_gpu']} changed "
                                                  f"{m['count']} element(s)",
                                "datacenter tech: NVLink/NVSwitch or PCIe path between these GPUs; reseat, "
                                "then RMA the baseboard"))
    evidence = {"products_compared": agreement["products_compared"], "peer_copies": agreement["peer_copies"],
                "peer_bytes": agreement["peer_bytes"],
                "fingerprints_compared": agreement.get("fingerprints_compared", 0)}
    if not findings and not (agreement["products_compared"] and agreement["peer_copies"]):
        findings.append(Finding(Verdict.UNKNOWN, f"{agreement['gpus']} GPUs but no product or peer copy compared "
                                                 "(a GPU failed or made no inputs)",
                                "node owner: see the stress errors; burn in again"))
    return conclude("burnin_gpu_agreement", findings, evidence,
                    f"{agreement['products_compared']} products identical across {agreement['gpus']} GPUs, "
                    f"{agreement['peer_copies']} peer copies bit-exact")


def judge_rate(record: Mapping[str, Any], platform: Platform, settings: Settings) -> Result:
    """Stragglers: >= straggler_pct below the node median, or below the platform floor; persistent: CRITICAL."""
    rates = gpu_rates(record["stress"], settings.window_s)
    infos = {i["cuda_index"]: i for i in record["gpu_info"]}
    if not rates:
        return unknown("burnin_gpu_rate", "no GPU ran", "node owner: see the stress errors")
    median = statistics.median(r["tflops"] for r in rates)
    evidence: dict[str, float | int | str] = {"median_tflops": round(median, 1)}
    floor = platform.tflops_floor
    if floor is not None:
        evidence["floor_tflops"] = floor
    findings = []
    slowest = min(rates, key=lambda r: r["tflops"])
    evidence["slowest_gpu"] = slowest["cuda_index"]
    evidence["slowest_vs_median_pct"] = round(100.0 * (slowest["tflops"] / median - 1.0), 2) if median else 0.0
    windows = max((len(r["windows"]) for r in rates), default=0)
    window_medians = [statistics.median(r["windows"][k] for r in rates if k < len(r["windows"]))
                      for k in range(windows)]
    for r in rates:
        idx = r["cuda_index"]
        evidence[f"gpu{idx}_tflops"] = round(r["tflops"], 1)
        plain = next((g.get("plain_tflops") for g in record["stress"]["gpus"] if g["cuda_index"] == idx), None)
        if plain:
            evidence[f"gpu{idx}_plain_tflops"] = plain
            evidence[f"gpu{idx}_checked_vs_plain"] = round(r["tflops"] / plain, 4)
        slow_windows = 0
        judged = r["windows"][settings.warmup_windows :]
        for k, value in enumerate(judged, start=settings.warmup_windows):
            below_median = value < window_medians[k] * (1 - settings.straggler_pct / 100.0)
            below_floor = floor is not None and value < floor
            slow_windows += below_median or below_floor
        evidence[f"gpu{idx}_slow_windows"] = slow_windows
        whole_slow = r["tflops"] < median * (1 - settings.straggler_pct / 100.0) or (
            floor is not None and r["tflops"] < floor)
        if not slow_windows and not whole_slow:
            continue
        label = _gpu_label({**infos.get(idx, {}), "cuda_index": idx})
        share = slow_windows / len(judged) if judged else 1.0
        persistent = share >= settings.persist_fraction
        why = []
        if r["tflops"] < median * (1 - settings.straggler_pct / 100.0):
            why.append(f"{100 * (1 - r['tflops'] / median):.1f}% below the node median {median:.0f}")
        if floor is not None and r["tflops"] < floor:
            why.append(f"below the {platform.name} floor {floor:g}")
        message = (f"{label}: {r['tflops']:.0f} TFLOP/s, slow in {slow_windows}/{len(judged)} windows of "
                   f"{settings.window_s:g} s" + (f" ({'; '.join(why)})" if why else ""))
        findings.append(Finding(
            Verdict.CRITICAL if persistent else Verdict.WARNING, message,
            "node owner: look at this GPU's clocks, power and ECC counts in the samples (clock events, "
            "correctable ECC storm); reset the GPU and burn in again; datacenter tech if it stays slow "
            "(cooling, power) then RMA",
        ))
    return conclude("burnin_gpu_rate", findings, evidence,
                    f"{len(rates)} GPU(s), median {median:.0f} TFLOP/s, slowest GPU {slowest['cuda_index']} "
                    f"{evidence['slowest_vs_median_pct']:+.1f}% vs median"
                    + (f", floor {floor:g}" if floor is not None else ""))


def _loaded(samples: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [s for s in samples if s.get("phase") in LOADED_PHASES]


def judge_pcie(record: Mapping[str, Any], platform: Platform) -> Result:
    """PCIe generation and width while loaded against the maximum: below is CRITICAL."""
    findings, evidence = [], {}
    copies = {c["cuda_index"]: c for c in record.get("pcie", {}).get("copies", [])}
    for info, samples in zip(record["gpu_info"], record["samples"], strict=True):
        idx = info["cuda_index"]
        label = _gpu_label(info)
        loaded = [s for s in _loaded(samples) if "pcie_gen" in s and "pcie_width" in s]
        gen_max, width_max = info.get("pcie_gen_max"), info.get("pcie_width_max")
        if not loaded or gen_max is None or width_max is None:
            findings.append(Finding(Verdict.UNKNOWN, f"{label}: no PCIe link reading under load "
                                                     f"({info.get('notes', {}) or 'no samples'})",
                                    "node owner: NVML must answer link generation/width queries"))
            continue
        gen_min = min(s["pcie_gen"] for s in loaded)
        width_min = min(s["pcie_width"] for s in loaded)
        evidence.update({f"gpu{idx}_pcie_gen_loaded_min": gen_min, f"gpu{idx}_pcie_gen_max": gen_max,
                         f"gpu{idx}_pcie_width_loaded_min": width_min, f"gpu{idx}_pcie_width_max": width_max,
                         f"gpu{idx}_pcie_loaded_samples": len(loaded)})
        copy = copies.get(idx, {})
        for key in ("h2d_gbps", "d2h_gbps"):
            if key in copy:
                evidence[f"gpu{idx}_{key}"] = copy[key]
        if gen_min < gen_max or width_min < width_max:
            findings.append(Finding(
                Verdict.CRITICAL,
                f"{label}: PCIe Gen{gen_min} x{width_min} under load, maximum Gen{gen_max} x{width_max}",
                "datacenter tech: reseat the GPU/riser and check the slot's BIOS link setting; RMA the riser "
                "or baseboard if it trains low again",
            ))
        low = [k for k in ("h2d_gbps", "d2h_gbps") if platform.pcie_copy_gbps_min is not None
               and copy.get(k) is not None and copy[k] < platform.pcie_copy_gbps_min]
        if low:
            findings.append(Finding(
                Verdict.WARNING,
                f"{label}: PCIe copies {', '.join(f'{k[:3]} {copy[k]:.1f} GB/s' for k in low)} below "
                f"{platform.pcie_copy_gbps_min:g} GB/s",
                "node owner: check NUMA placement and the PCIe switch; datacenter tech if the link is degraded",
            ))
    return conclude("burnin_pcie_loaded", findings, evidence, "PCIe at maximum generation and width under load")


def judge_thermal(record: Mapping[str, Any]) -> Result:
    """Temperature, SM clock, power and clock-event reasons over the stress; HW slowdowns are CRITICAL."""
    findings, evidence = [], {}
    bad_bits = {CLOCK_HW_SLOWDOWN: "HW slowdown", CLOCK_HW_THERMAL: "HW thermal slowdown",
                CLOCK_HW_POWER_BRAKE: "HW power brake"}
    for info, samples in zip(record["gpu_info"], record["samples"], strict=True):
        idx = info["cuda_index"]
        loaded = [s for s in samples if s.get("phase") == "stress"]
        if not loaded:
            continue
        for key, fn, name in (("temp_c", max, "max_temp_c"), ("sm_mhz", min, "min_sm_mhz"),
                              ("power_w", max, "max_power_w")):
            values = [s[key] for s in loaded if key in s]
            if values:
                evidence[f"gpu{idx}_{name}"] = fn(values)
        mhz = [s["sm_mhz"] for s in loaded if "sm_mhz" in s]
        if mhz:
            evidence[f"gpu{idx}_median_sm_mhz"] = statistics.median(mhz)
        ecc = [s["ecc_corrected"] for s in loaded if "ecc_corrected" in s]
        if ecc:
            evidence[f"gpu{idx}_ecc_corrected_during"] = ecc[-1] - ecc[0]
        seen = 0
        for s in loaded:
            seen |= int(s.get("clock_events", 0))
        evidence[f"gpu{idx}_clock_events_seen"] = seen
        hit = [name for bit, name in bad_bits.items() if seen & bit]
        if hit:
            findings.append(Finding(Verdict.CRITICAL, f"{_gpu_label(info)}: {', '.join(hit)} during the stress",
                                    "datacenter tech: check PSUs and cooling of this node"))
        if ecc and ecc[-1] > ecc[0]:
            findings.append(Finding(Verdict.WARNING, f"{_gpu_label(info)}: {ecc[-1] - ecc[0]} correctable ECC "
                                                     "errors during the stress",
                                    "node owner: watch this GPU's row remapping; reset, burn in again"))
    return conclude("burnin_gpu_thermal", findings, evidence, "no hardware slowdown, no ECC errors under load")


def judge_hbm(record: Mapping[str, Any], platform: Platform) -> Result:
    memory = record.get("memory")
    if not memory:
        return skipped("burnin_hbm_bandwidth", "memory phase not run")
    findings, evidence = [], {}
    expected = platform.hbm_copy_gbps
    for entry in memory:
        idx = entry["cuda_index"]
        gbps = entry["hbm"]["copy_gbps"]
        evidence[f"gpu{idx}_copy_gbps"] = gbps
        if not entry["hbm"]["copy_verified"]:
            findings.append(Finding(Verdict.CRITICAL, f"GPU {idx}: the copied buffer differs from its source",
                                    f"{RMA} of GPU {idx}"))
        if expected is not None:
            evidence[f"gpu{idx}_copy_vs_expected"] = round(gbps / expected, 3)
            if gbps < expected * platform.hbm_floor_fraction:
                findings.append(Finding(Verdict.CRITICAL,
                                        f"GPU {idx}: HBM copy {gbps:.0f} GB/s, expected {expected:g} "
                                        f"(floor {platform.hbm_floor_fraction:.0%})",
                                        "node owner: reset the GPU and burn in again; RMA if it stays low"))
    if expected is None:
        findings.append(Finding(Verdict.UNKNOWN, f"no expected HBM bandwidth for {platform.name}",
                                "fleet owner: set the platform's hbm_copy_gbps"))
    else:
        evidence["expected_copy_gbps"] = expected
    return conclude("burnin_hbm_bandwidth", findings, evidence, "HBM copy bandwidth at the platform's expectation")


def judge_pattern(record: Mapping[str, Any]) -> Result:
    memory = record.get("memory")
    if not memory:
        return skipped("burnin_memory_pattern", "memory phase not run")
    findings, evidence = [], {}
    for entry in memory:
        idx = entry["cuda_index"]
        p = entry["pattern"]
        evidence[f"gpu{idx}_tested_gib"] = round(p["tested_bytes"] / 2**30, 1)
        evidence[f"gpu{idx}_tested_fraction_of_free"] = p["tested_fraction_of_free"]
        evidence[f"gpu{idx}_pattern_mismatches"] = p["mismatch_count"]
        if p["mismatch_count"]:
            first = p["mismatches"][0]
            findings.append(Finding(Verdict.CRITICAL,
                                    f"GPU {idx}: {p['mismatch_count']} word(s) wrong in the pattern test, first: "
                                    f"pattern {first['pattern']} at byte offset {first['byte_offset']} got "
                                    f"{first['got']} expected {first['expected']}",
                                    f"{RMA} of GPU {idx} (check row remapping after a reset first)"))
    return conclude("burnin_memory_pattern", findings, evidence,
                    f"{', '.join(str(e['pattern']['patterns'].__len__()) for e in memory[:1])} patterns over most of "
                    "the free memory, every word verified")


def judge_nccl(record: Mapping[str, Any], platform: Platform) -> Result:
    nccl = record.get("nccl")
    if not nccl:
        return skipped("burnin_nccl_allreduce", "NCCL phase not run")
    if nccl.get("error"):
        return unknown("burnin_nccl_allreduce", f"all-reduce did not run: {nccl['error']}",
                       "node owner: check the NCCL install and the GPUs")
    rows = nccl["rows"]
    if not rows:
        return unknown("burnin_nccl_allreduce", "all-reduce wrote no results", "node owner: see the NCCL log")
    findings = []
    wrong = [r for r in rows if r["wrong_elements"]]
    for r in wrong[:3]:
        findings.append(Finding(Verdict.CRITICAL, f"all-reduce of {r['bytes']} B: {r['wrong_elements']} wrong "
                                                  "element(s)",
                                "node owner: NVLink/NVSwitch path or a GPU computes wrong; run the stress per GPU"))
    largest = rows[-1]
    evidence = {"world_size": nccl["world_size"], "largest_bytes": largest["bytes"],
                "largest_busbw_gbps": largest["busbw_gbps"], "largest_algbw_gbps": largest["algbw_gbps"],
                "peak_busbw_gbps": max(r["busbw_gbps"] for r in rows)}
    if nccl["world_size"] < 2:
        if findings:
            return conclude("burnin_nccl_allreduce", findings, evidence, "")
        return Result("burnin_nccl_allreduce", Verdict.SKIPPED,
                      f"one rank: all-reduce ran and summed right ({len(rows)} sizes up to {largest['bytes']} B), "
                      "no bus to measure (busbw = 0 with one rank)", evidence, ())
    minimum = platform.nccl_busbw_min_gbps
    if minimum is None:
        findings.append(Finding(Verdict.UNKNOWN, f"no expected NCCL bus bandwidth for {platform.name}",
                                "fleet owner: set the platform's nccl_busbw_min_gbps"))
    elif evidence["peak_busbw_gbps"] < minimum:
        findings.append(Finding(Verdict.CRITICAL, f"all-reduce bus bandwidth {evidence['peak_busbw_gbps']:.1f} GB/s "
                                                  f"below {minimum:g}",
                                "node owner: nvidia-smi topo -m and NVLink state; fabric manager; reset GPUs"))
    return conclude("burnin_nccl_allreduce", findings, evidence,
                    f"all-reduce over {nccl['world_size']} GPUs: {evidence['peak_busbw_gbps']:.1f} GB/s bus bandwidth")


def judge(record: Mapping[str, Any], platform: Platform, settings: Settings | None = None) -> list[Result]:
    """Every burn-in verdict for one record, in report order."""
    settings = settings or Settings()
    return [
        judge_math(record),
        judge_agreement(record),
        judge_rate(record, platform, settings),
        judge_thermal(record),
        judge_pcie(record, platform),
        judge_hbm(record, platform),
        judge_pattern(record),
        judge_nccl(record, platform),
    ]


SEVERITIES = {
    "burnin_gpu_math": Verdict.CRITICAL, "burnin_gpu_agreement": Verdict.CRITICAL, "burnin_gpu_rate": Verdict.CRITICAL,
    "burnin_gpu_thermal": Verdict.CRITICAL, "burnin_pcie_loaded": Verdict.CRITICAL,
    "burnin_hbm_bandwidth": Verdict.CRITICAL, "burnin_memory_pattern": Verdict.CRITICAL,
    "burnin_nccl_allreduce": Verdict.CRITICAL,
}
