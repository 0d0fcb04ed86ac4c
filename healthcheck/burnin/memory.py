"""Memory burn-in (PyTorch): HBM copy bandwidth, a verified pattern test, and PCIe copies under load.

- HBM bandwidth: device-to-device copies of a large buffer; each copy reads and writes every byte,
  so GB/s counts both (the convention of CUDA's bandwidthTest and nvbandwidth).
- Pattern test: most of the free memory (``fraction``) is filled with patterns (all zeros, all
  ones, 0x55.., 0xAA.. checkerboards, each word's own index and its complement), every chunk is
  written before any is read back (a cell that loses its value while its neighbours are written
  shows), and every word is compared; mismatches are reported with chunk, word offset, got and
  expected.
- PCIe: host-to-device and device-to-host copies of pinned memory on every GPU at once (the node's
  PCIe switches loaded together), GB/s per direction; the link generation and width are sampled by
  the NVML sampler while these copies run.
"""

from __future__ import annotations

import time
from typing import Any

GIB = 1 << 30
PATTERNS = ("zeros", "ones", "checker55", "checkerAA", "index", "not_index")
_CONSTANT = {"zeros": 0, "ones": -1, "checker55": 0x5555555555555555, "checkerAA": -0x5555555555555556}
MAX_LISTED = 16


def hbm_bandwidth(torch: Any, device: Any, size_bytes: int = 4 * GIB, iterations: int = 20) -> dict[str, Any]:
    """GB/s of ``dst.copy_(src)`` (read + write bytes), best of three timed batches."""
    src = torch.empty(size_bytes, dtype=torch.uint8, device=device).fill_(0x5A)
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize(device)
    best = 0.0
    for _ in range(3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            dst.copy_(src)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000.0
        best = max(best, 2 * size_bytes * iterations / seconds / 1e9)
    ok = bool(torch.equal(src, dst))
    del src, dst
    return {"copy_gbps": round(best, 1), "size_bytes": size_bytes, "iterations": iterations, "copy_verified": ok}


def _expected(torch: Any, pattern: str, start: int, words: int, device: Any) -> Any:
    if pattern in _CONSTANT:
        return None
    index = torch.arange(start, start + words, dtype=torch.int64, device=device)
    return index if pattern == "index" else torch.bitwise_not(index)


def _fill(torch: Any, chunk: Any, pattern: str, start: int) -> None:
    if pattern in _CONSTANT:
        chunk.fill_(_CONSTANT[pattern])
    else:
        chunk.copy_(_expected(torch, pattern, start, chunk.numel(), chunk.device))


def pattern_test(torch: Any, device: Any, fraction: float = 0.9, chunk_bytes: int = 2 * GIB,
                 plant: tuple[str, int, int] | None = None) -> dict[str, Any]:
    """Fill ``fraction`` of the free memory with each pattern, then verify every word.

    ``plant`` = (pattern, chunk, word): flip that word after writing (a test that the check catches it).
    """
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(device)
    # Leave room for the comparison's temporaries (an index chunk and a bool mask of one chunk).
    budget = int(free * fraction) - chunk_bytes - chunk_bytes // 8
    words_per_chunk = chunk_bytes // 8
    chunks = []
    while budget >= chunk_bytes:
        chunks.append(torch.empty(words_per_chunk, dtype=torch.int64, device=device))
        budget -= chunk_bytes
    tested = len(chunks) * chunk_bytes
    started = time.monotonic()
    mismatches: list[dict[str, Any]] = []
    mismatch_count = 0
    for pattern in PATTERNS:
        for k, chunk in enumerate(chunks):
            _fill(torch, chunk, pattern, k * words_per_chunk)
        if plant and plant[0] == pattern:
            chunks[plant[1]][plant[2] : plant[2] + 1].bitwise_xor_(1 << 17)
        for k, chunk in enumerate(chunks):
            expected = _expected(torch, pattern, k * words_per_chunk, words_per_chunk, device)
            differs = chunk != (expected if expected is not None else _CONSTANT[pattern])
            count = int(differs.sum())
            if count:
                mismatch_count += count
                for (word,) in differs.nonzero()[:MAX_LISTED].tolist():
                    if len(mismatches) < MAX_LISTED:
                        want = int(expected[word]) if expected is not None else _CONSTANT[pattern]
                        mismatches.append({"pattern": pattern, "chunk": k, "word": word,
                                           "byte_offset": (k * words_per_chunk + word) * 8,
                                           "got": hex(int(chunk[word]) & (2**64 - 1)),
                                           "expected": hex(want & (2**64 - 1))})
            del expected, differs
    torch.cuda.synchronize(device)
    seconds = time.monotonic() - started
    del chunks
    torch.cuda.empty_cache()
    return {"free_bytes": free, "total_bytes": total, "tested_bytes": tested,
            "tested_fraction_of_free": round(tested / free, 4) if free else 0.0, "patterns": list(PATTERNS),
            "seconds": round(seconds, 2), "mismatch_count": mismatch_count, "mismatches": mismatches,
            "plant": list(plant) if plant else None}


def pcie_copies(torch: Any, indices: list[int], size_bytes: int = GIB, iterations: int = 24,
                during: Any = None) -> list[dict[str, Any]]:
    """Host<->device GB/s per GPU, every GPU copying at once (each direction in turn).

    ``during`` is called every 50 ms while the copies run (the caller samples the PCIe link then).
    """
    import threading

    results: list[dict[str, Any]] = [{"cuda_index": i} for i in indices]
    hosts = [torch.empty(size_bytes, dtype=torch.uint8).pin_memory() for _ in indices]
    devs = [torch.empty(size_bytes, dtype=torch.uint8, device=torch.device("cuda", i)) for i in indices]
    for direction in ("h2d", "d2h"):
        barrier = threading.Barrier(len(indices))

        def copy(pos: int, direction: str = direction, barrier: threading.Barrier = barrier) -> None:
            device = torch.device("cuda", indices[pos])
            torch.cuda.set_device(device)
            stream = torch.cuda.Stream(device)
            with torch.cuda.stream(stream):
                src, dst = (hosts[pos], devs[pos]) if direction == "h2d" else (devs[pos], hosts[pos])
                dst.copy_(src, non_blocking=True)
                stream.synchronize()
                barrier.wait()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(stream)
                for _ in range(iterations):
                    dst.copy_(src, non_blocking=True)
                end.record(stream)
                end.synchronize()
                results[pos][f"{direction}_gbps"] = round(size_bytes * iterations / (start.elapsed_time(end) / 1000.0)
                                                          / 1e9, 2)

        threads = [threading.Thread(target=copy, args=(p,)) for p in range(len(indices))]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            if during is not None:
                during()
            time.sleep(0.05)
        for thread in threads:
            thread.join()
    hosts.clear()
    devs.clear()
    return results
