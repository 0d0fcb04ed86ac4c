"""GPU stress with every product verified, on every GPU of the node at once (PyTorch).

Why not gpu-burn: it compares each result with the GPU's own first result from fixed inputs (a
GPU that is consistently wrong passes) and exits 0 on a faulty GPU. Here:

- inputs are random bf16 matrices from a fresh seed per run (recorded), regenerated every
  ``refresh_s``; pair ``m`` comes from ``seed`` and ``m`` alone, so every GPU multiplies the same
  matrices and their products must agree bit for bit (one SKU, one driver);
- every product ``C = A·B`` is checked twice, cheaply, before the next one is queued:
  a Freivalds check ``C·R`` (two random ±1 columns, fp32 output, one read of ``C``) against
  ``A·(B·R)`` computed once per pair in fp32 by a different path (matrix-vector products), within
  the tolerance of ``tolerance.py``; and ``C·R`` bit for bit against the pair's first product's,
  which catches any changed bit the tolerance would let through. A failed product is compared
  element by element with the pair's first product while it is still in memory: which element;
- the first product of each pair is compared element by element with an fp32 reference on a
  sample of rows (``reference_rows``), so a GPU that is wrong from the start is caught too;
- after the timed stress, each pair's product is compared across GPUs through peer copies, and
  the copies themselves are compared bit for bit with the receiving GPU's own copy of the input.

Throughput: one product of 16384^3 takes ~11 ms on an H200; the checks read ``C`` once (~0.13 ms)
plus a few kernels on 16384x2 vectors, and the host waits on product ``t-1`` while product ``t``
runs, so the GPU never idles on the check (``bench/burnin.py`` measures the ratio).

The result is a JSON-ready record (schema in ``decide``); judging it is ``decide``'s job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from healthcheck.burnin.tolerance import DEFAULT_KAPPA, element_tolerance, flops_per_product, freivalds_tolerance

MAX_LISTED_ELEMENTS = 16
MAX_LISTED_MISMATCHES = 64  # a GPU wrong on every product would otherwise fill the record; the rest are counted


@dataclass(frozen=True)
class PlantCorrupt:
    """Flip bit ``bit`` of one element of one product on GPU ``gpu`` (a test of the checks)."""

    gpu: int
    bit: int = 6  # bf16: 15 sign, 14-7 exponent, 6-0 mantissa; 6 is the mantissa's top bit
    after_fraction: float = 0.25  # the first product after this fraction of the duration


@dataclass(frozen=True)
class PlantSlow:
    """Make GPU ``gpu`` spend ``fraction`` of its time on extra, uncounted products: a planted straggler.

    Extra products (not a sleep kernel) keep the GPU as hot and busy as a real straggler that
    works as hard for less: the counted rate drops by ``fraction``.
    """

    gpu: int
    fraction: float = 0.25


@dataclass(frozen=True)
class StressConfig:
    duration_s: float = 120.0
    n: int = 16384
    dtype: str = "bfloat16"
    pairs: int = 2
    refresh_s: float = 15.0
    reference_rows: int = 128
    kappa: float = DEFAULT_KAPPA
    seed: int | None = None
    warmup_s: float = 3.0
    plain_s: float = 0.0  # also time plain unchecked products for this long first (same shapes)
    plant_corrupt: PlantCorrupt | None = None
    plant_slow: PlantSlow | None = None
    gpus: tuple[int, ...] | None = None  # CUDA indices; None: all


def fresh_seed() -> int:
    """A new seed per run, from the OS; recorded so any mismatch can be reproduced."""
    return int.from_bytes(os.urandom(8), "little") >> 1


def pair_seed(seed: int, pair: int) -> int:
    """The seed of input pair ``pair``: the same on every GPU, different for every pair."""
    digest = hashlib.sha256(f"{seed}:{pair}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class _Pair:
    index: int
    a: Any
    b: Any
    c0: Any
    z: Any  # A·(B·R), fp32, nx2
    y0: Any  # C0·R, fp32: every repeat must give exactly this
    tol: Any  # per-row Freivalds tolerance, nx1
    fingerprint: str


@dataclass
class _GpuState:
    index: int
    loops: int = 0
    loop_end_s: list[float] = field(default_factory=list)  # host time (from the common start) each product ended
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    mismatches_not_listed: int = 0
    worst_freivalds_ratio: float = 0.0
    reference_checks: int = 0
    reference_worst_ratio: float = 0.0
    fingerprints: dict[int, str] = field(default_factory=dict)
    plain_tflops: float | None = None
    error: str = ""


class Stress:
    """One stress run over the chosen GPUs; ``run()`` returns the record's ``gpus`` part."""

    def __init__(self, torch: Any, config: StressConfig, seed: int, barrier_parties: int) -> None:
        self.torch, self.config, self.seed = torch, config, seed
        self.dtype = getattr(torch, config.dtype)
        # The barrier's action runs once, when every GPU is ready and before any is released: the common start.
        self.barrier = threading.Barrier(barrier_parties, action=self._start_clock)
        self.start_at = 0.0
        self.pairs_left: dict[int, list[_Pair]] = {}  # per GPU, the inputs alive at the end (for compare_across)
        self.flops = flops_per_product(config.n, config.n, config.n)

    def _start_clock(self) -> None:
        self.start_at = time.monotonic()

    # ------------------------------------------------------------ inputs and their references

    def make_pair(self, device: Any, index: int, r: Any, state: _GpuState) -> _Pair:
        torch, n, cfg = self.torch, self.config.n, self.config
        gen = torch.Generator(device=device)
        gen.manual_seed(pair_seed(self.seed, index))
        a = torch.randn((n, n), generator=gen, device=device, dtype=self.dtype)
        b = torch.randn((n, n), generator=gen, device=device, dtype=self.dtype)
        c0 = torch.mm(a, b)
        af, bf = a.float(), b.float()
        z = torch.mm(af, torch.mm(bf, r.float()))
        y0 = self.project(c0, r)
        row_norm = torch.linalg.vector_norm(c0.float(), dim=1, keepdim=True)
        tol = freivalds_tolerance(row_norm, n, cfg.dtype, "float32", cfg.kappa)
        ratio = float(((y0 - z).abs() / tol).max())
        state.worst_freivalds_ratio = max(state.worst_freivalds_ratio, ratio)
        if ratio > 1.0:
            state.mismatches.append(self._freivalds_failure(z, tol, y0, index, loop=-1, ratio=ratio))
        # Full comparison against an fp32 reference on a sample of rows (the same rows on every GPU).
        rows = torch.randperm(n, generator=gen, device=device)[: cfg.reference_rows]
        ref = torch.mm(af[rows], bf)
        scale = torch.linalg.vector_norm(af[rows], dim=1, keepdim=True) * torch.linalg.vector_norm(bf, dim=0)
        etol = element_tolerance(ref, n, cfg.dtype, "float32", cfg.kappa, scale)
        diff = (c0[rows].float() - ref).abs()
        ref_ratio = float((diff / etol).max())
        state.reference_checks += 1
        state.reference_worst_ratio = max(state.reference_worst_ratio, ref_ratio)
        if ref_ratio > 1.0:
            bad = (diff > etol).nonzero()[:MAX_LISTED_ELEMENTS].tolist()
            state.mismatches.append({
                "check": "reference", "loop": -1, "pair": index, "count": int((diff > etol).sum()),
                "ratio": ref_ratio,
                "elements": [{"row": int(rows[i]), "col": j, "got": float(c0[rows[i], j]),
                              "expected": float(ref[i, j])} for i, j in bad],
            })
        del af, bf, ref, scale, diff, row_norm
        fingerprint = hashlib.sha256(bytes(y0.cpu().contiguous().view(torch.uint8).flatten().tolist())).hexdigest()[:32]
        state.fingerprints[index] = fingerprint
        return _Pair(index, a, b, c0, z, y0, tol, fingerprint)

    def project(self, c: Any, r: Any) -> Any:
        """``C·R`` with fp32 output: one read of ``C`` (torch.mm's out_dtype, torch >= 2.8)."""
        return self.torch.mm(c, r, out_dtype=self.torch.float32)

    def _freivalds_failure(self, z: Any, tol: Any, y: Any, pair: int, loop: int, ratio: float) -> dict:
        """A first product off its Freivalds reference: the rows (no earlier product to compare elements with)."""
        rows = ((y - z).abs() > tol).any(dim=1).nonzero().flatten()[:MAX_LISTED_ELEMENTS].tolist()
        return {"check": "freivalds", "loop": loop, "pair": pair, "ratio": ratio, "rows": rows,
                "count": int(((y - z).abs() > tol).any(dim=1).sum()), "elements": []}

    def locate(self, c: Any, pair: _Pair) -> tuple[int, list[dict[str, Any]]]:
        """Elements of ``c`` that differ from the pair's first product: how many, and the first few."""
        differs = c.view(self.torch.int16) != pair.c0.view(self.torch.int16)
        count = int(differs.sum())
        where = differs.nonzero()[:MAX_LISTED_ELEMENTS].tolist()
        return count, [{"row": i, "col": j, "got": float(c[i, j]), "expected": float(pair.c0[i, j])}
                       for i, j in where]

    # ------------------------------------------------------------ the loop

    def plain_rate(self, device: Any, pair: _Pair, bufs: list[Any], seconds: float) -> float:
        """TFLOP/s of the same products with no check at all: the yardstick of the checked rate."""
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        count, deadline = 0, time.monotonic() + seconds
        start.record()
        while time.monotonic() < deadline:
            for _ in range(8):
                torch.mm(pair.a, pair.b, out=bufs[count % 2])
                count += 1
            end.record()
            end.synchronize()
        return count * self.flops / (start.elapsed_time(end) / 1000.0) / 1e12

    def worker(self, cuda_index: int, state: _GpuState) -> None:
        try:
            self._worker(cuda_index, state)
        except Exception as err:  # noqa: BLE001 - a GPU that fails is a result for that GPU, not a crash
            state.error = f"{type(err).__name__}: {err}"
            self.barrier.abort()

    def _worker(self, cuda_index: int, state: _GpuState) -> None:
        torch, cfg = self.torch, self.config
        device = torch.device("cuda", cuda_index)
        torch.cuda.set_device(device)
        stream = torch.cuda.Stream(device)
        with torch.cuda.stream(stream):
            gen = torch.Generator(device=device)
            gen.manual_seed(pair_seed(self.seed, -1))
            r = (torch.randint(0, 2, (cfg.n, 2), generator=gen, device=device) * 2 - 1).to(self.dtype)
            pairs = [self.make_pair(device, m, r, state) for m in range(cfg.pairs)]
            next_pair = cfg.pairs
            bufs = [torch.empty((cfg.n, cfg.n), device=device, dtype=self.dtype) for _ in range(2)]
            stat = torch.zeros((2, 3), device=device, dtype=torch.float32)
            host = torch.zeros((2, 3), dtype=torch.float32).pin_memory()
            events = [torch.cuda.Event(), torch.cuda.Event()]
            # Warm up (clocks, cuBLAS heuristics), then optionally time the plain products.
            warm_until = time.monotonic() + cfg.warmup_s
            while time.monotonic() < warm_until:
                torch.mm(pairs[0].a, pairs[0].b, out=bufs[0])
                self.project(bufs[0], r)
                stream.synchronize()
            if cfg.plain_s > 0:
                state.plain_tflops = self.plain_rate(device, pairs[0], bufs, cfg.plain_s)
            slow = cfg.plant_slow if cfg.plant_slow and cfg.plant_slow.gpu == cuda_index else None
            scratch = torch.empty_like(bufs[0]) if slow else None
            extra_per_product = slow.fraction / (1.0 - slow.fraction) if slow else 0.0
            owed = 0.0
            corrupt = cfg.plant_corrupt if cfg.plant_corrupt and cfg.plant_corrupt.gpu == cuda_index else None
            corrupt_at = cfg.duration_s * corrupt.after_fraction if corrupt else None
            self.barrier.wait()
            deadline = self.start_at + cfg.duration_s
            last_refresh = time.monotonic()
            pending: tuple[int, _Pair, int] | None = None  # (slot, pair, loop) queued but not yet read
            loop = 0
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if now - last_refresh >= cfg.refresh_s:
                    if pending:
                        self._finish(pending, bufs, events, host, state)
                        pending = None
                    slot_pair = next_pair % cfg.pairs
                    pairs[slot_pair] = None  # type: ignore[call-overload]  # free before the new one is made
                    pairs[slot_pair] = self.make_pair(device, next_pair, r, state)
                    next_pair += 1
                    last_refresh = time.monotonic()
                pair = pairs[loop % cfg.pairs]
                slot = loop % 2
                c = bufs[slot]
                torch.mm(pair.a, pair.b, out=c)
                owed += extra_per_product
                while owed >= 1.0:
                    torch.mm(pair.a, pair.b, out=scratch)
                    owed -= 1.0
                if corrupt_at is not None and now - self.start_at >= corrupt_at:
                    flat = c.view(torch.int16).view(-1)
                    element = (cfg.n // 3) * cfg.n + cfg.n // 5
                    flat[element : element + 1].bitwise_xor_(1 << corrupt.bit)  # type: ignore[union-attr]
                    corrupt_at = None
                y = self.project(c, r)
                stat[slot, 0] = ((y - pair.z).abs() / pair.tol).max()
                stat[slot, 1] = (y != pair.y0).sum()
                host[slot].copy_(stat[slot], non_blocking=True)
                events[slot].record(stream)
                if pending:
                    self._finish(pending, bufs, events, host, state)
                pending = (slot, pair, loop)
                loop += 1
            if pending:
                self._finish(pending, bufs, events, host, state)
            stream.synchronize()
            self.pairs_left[cuda_index] = pairs  # one key per thread: no lock needed

    def _finish(self, pending: tuple[int, _Pair, int], bufs: list[Any], events: list[Any], host: Any,
                state: _GpuState) -> None:
        """Read product ``loop``'s check; on failure, find the element while the product is still in memory."""
        slot, pair, loop = pending
        events[slot].synchronize()
        state.loop_end_s.append(round(time.monotonic() - self.start_at, 4))
        state.loops += 1
        ratio, differing = float(host[slot, 0]), int(host[slot, 1])
        state.worst_freivalds_ratio = max(state.worst_freivalds_ratio, ratio)
        if (ratio > 1.0 or differing) and len(state.mismatches) >= MAX_LISTED_MISMATCHES:
            state.mismatches_not_listed += 1
        elif ratio > 1.0 or differing:
            count, elements = self.locate(bufs[slot], pair)
            state.mismatches.append({
                "check": "freivalds" if ratio > 1.0 else "repeat", "loop": loop, "pair": pair.index,
                "t": state.loop_end_s[-1], "ratio": round(ratio, 6), "differing_projections": differing,
                "count": count, "elements": elements,
            })

    def run(self, indices: list[int]) -> list[_GpuState]:
        states = [_GpuState(i) for i in indices]
        threads = [threading.Thread(target=self.worker, args=(i, s), name=f"burnin-gpu{i}", daemon=True)
                   for i, s in zip(indices, states, strict=True)]
        for thread in threads:
            thread.start()
        # The main thread is a party too: it returns once the clock has started. A broken barrier
        # means a GPU failed before the start; its error is in its state.
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()
        for thread in threads:
            thread.join()
        return states


# ------------------------------------------------------------ across GPUs


def compare_across(torch: Any, stress: Stress, indices: list[int]) -> dict[str, Any]:
    """Each pair's product and inputs, copied GPU to GPU and compared bit for bit.

    Products: GPU ``g``'s first product of each live pair is copied to the first GPU and compared
    with that GPU's. Peer copies: GPU ``g``'s ``A`` is copied to the next GPU (ring) and compared with
    the next GPU's own ``A`` (same seed, so same bits): a copy that changes a bit, or a GPU whose
    generator differs, shows here. With one GPU there is nothing to compare: ``gpus: 1``.
    """
    out: dict[str, Any] = {"gpus": len(indices), "products_compared": 0, "product_mismatches": [],
                           "peer_copies": 0, "peer_bytes": 0, "peer_mismatches": []}
    pairs_left = stress.pairs_left
    if len(indices) < 2 or not all(i in pairs_left for i in indices):
        return out
    live = {g: {p.index: p for p in pairs_left[g] if p is not None} for g in indices}
    first = indices[0]
    for g in indices[1:]:
        for index in sorted(live[first].keys() & live[g].keys()):
            mine, theirs = live[first][index], live[g][index]
            copy = theirs.c0.to(torch.device("cuda", first))
            differs = copy.view(torch.int16) != mine.c0.view(torch.int16)
            out["products_compared"] += 1
            if bool(differs.any()):
                where = differs.nonzero()[:MAX_LISTED_ELEMENTS].tolist()
                out["product_mismatches"].append({"pair": index, "gpu": g, "reference_gpu": first,
                                                  "count": int(differs.sum()),
                                                  "elements": [{"row": i, "col": j} for i, j in where]})
    for pos, g in enumerate(indices):
        h = indices[(pos + 1) % len(indices)]
        for index in sorted(live[g].keys() & live[h].keys()):
            mine, theirs = live[g][index], live[h][index]
            copy = mine.a.to(torch.device("cuda", h))
            differs = copy.view(torch.int16) != theirs.a.view(torch.int16)
            out["peer_copies"] += 1
            out["peer_bytes"] += copy.numel() * copy.element_size()
            if bool(differs.any()):
                out["peer_mismatches"].append({"from_gpu": g, "to_gpu": h, "pair": index,
                                               "count": int(differs.sum())})
    return out


def fingerprint_agreement(states: list[_GpuState]) -> tuple[int, list[dict[str, Any]]]:
    """(pairs seen by two GPUs or more, those whose product fingerprint differs between GPUs)."""
    by_pair: dict[int, dict[int, str]] = {}
    for state in states:
        for pair, fp in state.fingerprints.items():
            by_pair.setdefault(pair, {})[state.index] = fp
    out, compared = [], 0
    for pair, prints in sorted(by_pair.items()):
        compared += len(prints) > 1
        if len(set(prints.values())) > 1:
            out.append({"pair": pair, "fingerprints": {str(g): fp for g, fp in sorted(prints.items())}})
    return compared, out


def run_gpu_stress(torch: Any, config: StressConfig) -> dict[str, Any]:
    """The stress part of the record: per-GPU loops, times, mismatches, and the cross-GPU comparison."""
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 references must be fp32
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    indices = list(config.gpus) if config.gpus is not None else list(range(torch.cuda.device_count()))
    seed = config.seed if config.seed is not None else fresh_seed()
    stress = Stress(torch, config, seed, barrier_parties=len(indices) + 1)
    started = time.time()
    states = stress.run(indices)
    agreement = compare_across(torch, stress, indices)
    agreement["fingerprints_compared"], agreement["fingerprint_mismatches"] = fingerprint_agreement(states)
    return {
        "seed": seed,
        "started_at": started,
        "duration_s": config.duration_s,
        "shape": [config.n, config.n, config.n],
        "dtype": config.dtype,
        "flops_per_product": stress.flops,
        "pairs": config.pairs,
        "refresh_s": config.refresh_s,
        "kappa": config.kappa,
        "reference_rows": config.reference_rows,
        "plants": {
            "corrupt": vars(config.plant_corrupt) if config.plant_corrupt else None,
            "slow": vars(config.plant_slow) if config.plant_slow else None,
        },
        "gpus": [
            {
                "cuda_index": s.index, "loops": s.loops, "loop_end_s": s.loop_end_s,
                "mismatches": s.mismatches, "mismatches_not_listed": s.mismatches_not_listed,
                "worst_freivalds_ratio": round(s.worst_freivalds_ratio, 6),
                "reference_checks": s.reference_checks, "reference_worst_ratio": round(s.reference_worst_ratio, 6),
                "plain_tflops": round(s.plain_tflops, 2) if s.plain_tflops else None,
                "pairs_made": len(s.fingerprints), "error": s.error,
            }
            for s in states
        ],
        "agreement": agreement,
    }
