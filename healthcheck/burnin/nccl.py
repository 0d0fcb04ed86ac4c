"""All-reduce bus bandwidth through torch.distributed (NCCL), single node or across nodes.

One process per GPU (NCCL's model). Every rank fills its buffer with ``rank + 1`` and checks that
the sum arrived exactly (small integers are exact in fp32), so a wrong answer is caught too, not
only a slow one. Timing and the bus-bandwidth formula follow nccl-tests (``ncclplan.bus_bandwidth``),
so figures compare with published all_reduce_perf results. Started per node by
``python3 -m healthcheck.burnin nccl``; across nodes the fleet starts one per node over SSH with
the same ``--master-addr``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from healthcheck.burnin.ncclplan import bus_bandwidth, message_sizes


def _iterations(size: int) -> int:
    """Enough iterations to time a size well without spending long on the large ones."""
    return max(5, min(200, int(4e9 // max(size, 1))))


def _worker(local_rank: int, spec: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    for key, value in spec.get("env", {}).items():
        os.environ[key] = value
    gpu = spec["gpus"][local_rank]
    rank = spec["node_rank"] * len(spec["gpus"]) + local_rank
    world = spec["nnodes"] * len(spec["gpus"])
    device = torch.device("cuda", gpu)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", init_method=f"tcp://{spec['master_addr']}:{spec['master_port']}",
                            rank=rank, world_size=world, device_id=device)
    rows = []
    expected = world * (world + 1) / 2
    buf = torch.empty(spec["max_bytes"] // 4, dtype=torch.float32, device=device)
    for size in message_sizes(spec["min_bytes"], spec["max_bytes"]):
        t = buf[: max(size // 4, 1)]
        iters = _iterations(size)
        for _ in range(3):
            t.fill_(rank + 1)
            dist.all_reduce(t)
        torch.cuda.synchronize(device)
        dist.barrier()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            dist.all_reduce(t)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000.0 / iters
        t.fill_(rank + 1)
        dist.all_reduce(t)
        wrong = int((t != expected).sum())
        algbw = t.numel() * 4 / seconds / 1e9
        rows.append({"bytes": t.numel() * 4, "iterations": iters, "time_us": round(seconds * 1e6, 2),
                     "algbw_gbps": round(algbw, 3), "busbw_gbps": round(bus_bandwidth(algbw, world), 3),
                     "wrong_elements": wrong})
    if rank == 0:
        Path(spec["out"]).write_text(json.dumps({"world_size": world, "rows": rows}))
    dist.destroy_process_group()


def run_allreduce(torch: Any, gpus: list[int], out: Path, *, nnodes: int = 1, node_rank: int = 0,
                  master_addr: str = "127.0.0.1", master_port: int = 29517, min_bytes: int = 8,
                  max_bytes: int = 4 << 30, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the all-reduce sweep on ``gpus`` of this node; rank 0's table is returned (and left in ``out``)."""
    import torch.multiprocessing as mp

    spec = {"gpus": gpus, "nnodes": nnodes, "node_rank": node_rank, "master_addr": master_addr,
            "master_port": master_port, "min_bytes": min_bytes, "max_bytes": max_bytes, "out": str(out),
            "env": env or {}}
    started = time.monotonic()
    mp.spawn(_worker, args=(spec,), nprocs=len(gpus), join=True)
    result = json.loads(out.read_text()) if out.exists() else {"world_size": 0, "rows": []}
    result["seconds"] = round(time.monotonic() - started, 2)
    result["nccl_version"] = ".".join(str(v) for v in torch.cuda.nccl.version())
    result["env"] = env or {}
    return result
