"""One burn-in run on this node: stress, PCIe copies, memory, NCCL; the record, then the verdicts.

Phases run in this order so each one's load is known when the sampler reads the GPUs: ``stress``
(every GPU at once, the timed part), ``pcie`` (host<->device copies on every GPU at once), ``memory``
(HBM copy bandwidth, then the pattern test, GPU by GPU), ``nccl`` (all-reduce over every GPU).
The record is plain JSON; ``decide.judge`` turns it into results.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthcheck.burnin import decide, gpu, memory, nvsample
from healthcheck.burnin.platform import Platform, platform_for
from healthcheck.model import Result, Verdict, node_verdict
from healthcheck.runner import Report

RECORD_SCHEMA = 1


@dataclass(frozen=True)
class RunOptions:
    stress: gpu.StressConfig = field(default_factory=gpu.StressConfig)
    sample_s: float = 1.0
    pcie: bool = True
    memory: bool = True
    memory_fraction: float = 0.9
    plant_memory: bool = False
    nccl: bool = True
    nccl_max_bytes: int = 4 << 30
    node: str = ""


def _handles(nvml: Any, torch: Any, indices: list[int]) -> list[Any]:
    """NVML handles in CUDA order: matched by UUID (CUDA and NVML may number GPUs differently)."""
    handles = []
    for i in indices:
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        handle = None
        if uuid is not None:
            try:
                handle = nvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            except Exception:  # noqa: BLE001 - fall back to the index below
                handle = None
        handles.append(handle if handle is not None else nvml.nvmlDeviceGetHandleByIndex(i))
    return handles


def run_burnin(torch: Any, options: RunOptions) -> dict[str, Any]:
    """Every phase; the record (JSON-ready)."""
    started = time.time()
    cfg = options.stress
    indices = list(cfg.gpus) if cfg.gpus is not None else list(range(torch.cuda.device_count()))
    cfg = gpu.StressConfig(**{**vars(cfg), "gpus": tuple(indices)})
    nvml = nvsample.load_nvml()
    handles = _handles(nvml, torch, indices) if nvml else []
    info = []
    for pos, i in enumerate(indices):
        entry = nvsample.static_info(nvml, handles[pos]) if nvml else {"name": torch.cuda.get_device_name(i),
                                                                      "notes": {"nvml": "not available"}}
        info.append({"cuda_index": i, **entry})
    record: dict[str, Any] = {
        "schema": RECORD_SCHEMA, "kind": "burnin", "node": options.node or socket.gethostname(),
        "started_at": started, "torch": torch.__version__, "cuda": torch.version.cuda,
        "driver": _driver(nvml), "gpu_info": info,
    }
    sampler = nvsample.Sampler(nvml, handles, options.sample_s) if nvml else None
    if sampler:
        sampler.__enter__()
    try:
        if sampler:
            sampler.phase = "stress"
        record["stress"] = gpu.run_gpu_stress(torch, cfg)
        if options.pcie:
            if sampler:
                sampler.phase = "pcie"
            record["pcie"] = {"copies": memory.pcie_copies(torch, indices,
                                                           during=sampler.sample_now if sampler else None)}
        if sampler:
            sampler.phase = "memory"
        if options.memory:
            entries = []
            for i in indices:
                device = torch.device("cuda", i)
                plant = ("checker55", 3, 12345) if options.plant_memory and i == indices[0] else None
                entries.append({"cuda_index": i, "hbm": memory.hbm_bandwidth(torch, device),
                                "pattern": memory.pattern_test(torch, device, options.memory_fraction, plant=plant)})
            record["memory"] = entries
        if options.nccl:
            if sampler:
                sampler.phase = "nccl"
            record["nccl"] = _nccl(torch, indices, options.nccl_max_bytes)
    finally:
        if sampler:
            sampler.phase = "idle"
            sampler.__exit__(None, None, None)
    record["samples"] = sampler.samples if sampler else [[] for _ in indices]
    record["sample_notes"] = sampler.notes if sampler else []
    record["finished_at"] = time.time()
    return record


def _driver(nvml: Any) -> str:
    if not nvml:
        return ""
    try:
        value = nvml.nvmlSystemGetDriverVersion()
    except Exception:  # noqa: BLE001
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _nccl(torch: Any, indices: list[int], max_bytes: int) -> dict[str, Any]:
    from healthcheck.burnin import nccl

    with tempfile.TemporaryDirectory(prefix="burnin-nccl-") as tmp:
        try:
            return nccl.run_allreduce(torch, indices, Path(tmp) / "nccl.json", max_bytes=max_bytes)
        except Exception as err:  # noqa: BLE001 - a failed collective is a verdict, not a crash
            return {"error": f"{type(err).__name__}: {err}", "rows": [], "world_size": len(indices)}


def platform_of(record: dict[str, Any], overrides: dict[str, float | None]) -> Platform:
    names = {i.get("name", "") for i in record["gpu_info"]}
    return platform_for(sorted(names)[0] if names else "").with_overrides(**overrides)


def make_report(record: dict[str, Any], results: list[Result]) -> Report:
    started = float(record["started_at"])
    finished = float(record.get("finished_at", started))
    return Report(record["node"], node_verdict(results), tuple(results), dict(decide.SEVERITIES), started,
                  round(finished - started, 3), "nvml" if record.get("samples") and record["samples"][0] else "none")


def figures(record: dict[str, Any], results: list[Result]) -> dict[str, Any]:
    """The headline numbers of a run, for people and for the bench."""
    rate = next(r for r in results if r.check == "burnin_gpu_rate").evidence
    out: dict[str, Any] = {"verdict": node_verdict(results).value, "seed": record["stress"]["seed"]}
    for g in record["stress"]["gpus"]:
        idx = g["cuda_index"]
        out[f"gpu{idx}"] = {k.removeprefix(f"gpu{idx}_"): v for k, v in rate.items() if k.startswith(f"gpu{idx}_")}
    for r in results:
        if r.check in ("burnin_hbm_bandwidth", "burnin_pcie_loaded", "burnin_nccl_allreduce"):
            out[r.check] = dict(r.evidence)
    return out


def save(record: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "record.json"
    path.write_text(json.dumps(record))
    return path


def exit_code(results: list[Result]) -> int:
    """The node verdict's exit code: non-zero on any failure (UNKNOWN too: not proven good)."""
    return node_verdict(results).exit_code if results else Verdict.UNKNOWN.exit_code
