"""NCCL all-reduce arithmetic, nccl-tests output, and multi-node test commands (pure, no GPU needed).

Bus bandwidth follows nccl-tests (doc/PERFORMANCE.md): for all-reduce
``busbw = algbw · 2(n-1)/n`` with ``n`` ranks, so the figure is comparable across rank counts and
with the link speed (with one rank there is no bus: 0). Tests across nodes are started by the
fleet over SSH, one command per node: per rail (one GPU and its own HCA per node, so every byte
crosses that rail's fabric) or all rails (every GPU, every HCA).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass


def bus_bandwidth(algbw_gbps: float, ranks: int) -> float:
    """nccl-tests' all-reduce bus bandwidth from the algorithm bandwidth."""
    if ranks < 1:
        raise ValueError(f"ranks must be at least 1, got {ranks}")
    return algbw_gbps * 2 * (ranks - 1) / ranks


def message_sizes(min_bytes: int = 8, max_bytes: int = 4 << 30, factor: int = 2) -> list[int]:
    """Message sizes from ``min_bytes`` to ``max_bytes`` by ``factor`` (nccl-tests' -b/-e/-f)."""
    if min_bytes < 4 or max_bytes < min_bytes or factor < 2:
        raise ValueError(f"need 4 <= min_bytes <= max_bytes and factor >= 2, got {min_bytes}, {max_bytes}, {factor}")
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= factor
    return sizes


@dataclass(frozen=True)
class NcclRow:
    bytes: int
    algbw_gbps: float
    busbw_gbps: float
    time_us: float
    wrong: int


_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\w+)\s+(\w+)\s+(-?\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+|N/A)")
_AVG = re.compile(r"#\s*Avg bus bandwidth\s*:\s*([\d.eE+-]+)")


def parse_nccl_tests(text: str) -> tuple[list[NcclRow], float | None]:
    """Rows (out-of-place columns) and the average bus bandwidth of an ``all_reduce_perf`` log.

    Lines may carry an mpirun prefix such as ``[1,0]<stdout>:``; NCCL INFO lines are ignored.
    """
    rows, avg = [], None
    for raw in text.splitlines():
        line = re.sub(r"^\[\d+,\d+\]<std(?:out|err)>:", "", raw)
        match = _ROW.match(line)
        if match:
            wrong = match.group(9)
            rows.append(NcclRow(int(match.group(1)), float(match.group(7)), float(match.group(8)),
                                float(match.group(6)), 0 if wrong == "N/A" else int(wrong)))
            continue
        found = _AVG.search(line)
        if found:
            avg = float(found.group(1))
    return rows, avg


@dataclass(frozen=True)
class NodeCommand:
    node: str
    argv: tuple[str, ...]

    @property
    def shell(self) -> str:
        return shlex.join(self.argv)


def multinode_commands(nodes: list[str], master_addr: str, *, rail: int | None, gpus_per_node: int = 8,
                       master_port: int = 29517, max_bytes: int = 4 << 30, python: str = "python3",
                       hca_prefix: str = "mlx5_") -> list[NodeCommand]:
    """One ``python3 -m healthcheck.burnin nccl`` per node; node 0 hosts the rendezvous.

    ``rail=r``: GPU ``r`` only, NCCL limited to HCA ``mlx5_r`` (``NCCL_IB_HCA`` with ``=`` is an exact
    match), so every byte of the test crosses rail ``r``. ``rail=None``: every GPU and HCA.
    """
    if len(nodes) < 2:
        raise ValueError(f"a multi-node test needs at least 2 nodes, got {len(nodes)}")
    gpus = [rail] if rail is not None else list(range(gpus_per_node))
    out = []
    for rank, node in enumerate(nodes):
        argv = [python, "-m", "healthcheck.burnin", "nccl", "--json",
                "--nnodes", str(len(nodes)), "--node-rank", str(rank),
                "--master-addr", master_addr, "--master-port", str(master_port),
                "--gpus", ",".join(str(g) for g in gpus), "--max-bytes", str(max_bytes)]
        if rail is not None:
            argv += ["--env", f"NCCL_IB_HCA=={hca_prefix}{rail}"]
        out.append(NodeCommand(node, tuple(argv)))
    return out
