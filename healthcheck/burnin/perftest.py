"""InfiniBand pairwise tests with perftest's ib_write_bw / ib_write_lat: plans, commands, parsing (pure).

Pairs are HCAs of the same rail (rail ``r`` = ``mlx5_r`` on every node in a rail-optimised fabric),
one server and one client each. The HCAs of a rail form a ring (each tested with the next), split
into two rounds (three for an odd count) in which an HCA is in one test only, so every HCA is tested
twice with two different peers; an HCA slow in both of its tests is the suspect, one slow only with
a suspect peer is cleared. With
GPUDirect (``--use_cuda=<gpu>``, perftest built with CUDA and nvidia_peermem loaded) the buffers
live in the GPU that sits by the HCA, which is the path NCCL uses.

Output formats are perftest's own (src/perftest_parameters.h, linux-rdma/perftest): with
``--report_gbits`` the bandwidth table header is ``#bytes #iterations BW peak[Gb/sec] BW
average[Gb/sec] MsgRate[Mpps]`` and the latency header adds ``t_avg[usec] t_stdev[usec] 99%
percentile[usec] 99.9% percentile[usec]`` after ``t_min t_max t_typical``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Hca:
    node: str
    device: str  # mlx5_3
    rail: int
    address: str  # where the client connects (the server node's management or IPoIB address)
    gpu: int | None = None  # the GPU next to this HCA, for --use_cuda; None: host memory


@dataclass(frozen=True)
class PairTest:
    round: int
    rail: int
    server: Hca
    client: Hca
    port: int

    def commands(self, tool: str = "ib_write_bw", duration_s: int = 10, size: int = 1 << 20,
                 gdr: bool = True) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(server argv, client argv). The server starts first; the client names the server's address."""
        common = [tool, "-d", self.server.device, "-p", str(self.port), "-F"]
        if tool.endswith("_bw"):
            common += ["--report_gbits", "-s", str(size), "-D", str(duration_s), "-q", "4"]
        else:
            common += ["-s", "2", "-n", "10000"]
        server = list(common)
        client = [*common[:2], self.client.device, *common[3:]]
        if gdr and self.server.gpu is not None:
            server.append(f"--use_cuda={self.server.gpu}")
        if gdr and self.client.gpu is not None:
            client.append(f"--use_cuda={self.client.gpu}")
        client.append(self.server.address)
        return tuple(server), tuple(client)


def plan_pairs(hcas: list[Hca], base_port: int = 18515) -> list[PairTest]:
    """Per rail, the ring of its HCAs (each with the next), split into rounds where an HCA is in one test.

    Even count: two rounds (even ring edges, then odd ones); odd count: three (the closing edge
    alone in the third). Two HCAs: one test.
    """
    by_rail: dict[int, list[Hca]] = {}
    for hca in sorted(hcas, key=lambda h: (h.rail, h.node)):
        by_rail.setdefault(hca.rail, []).append(hca)
    tests: list[PairTest] = []
    for rail, members in sorted(by_rail.items()):
        count = len(members)
        if count < 2:
            continue
        port = base_port + rail
        edges = [(i, i + 1) for i in range(count - 1)] + ([(count - 1, 0)] if count > 2 else [])
        for i, j in edges:
            closing = (i, j) == (count - 1, 0)
            round_ = 3 if closing and count % 2 else (1 if i % 2 == 0 else 2)
            tests.append(PairTest(round_, rail, members[i], members[j], port))
    return sorted(tests, key=lambda t: (t.round, t.rail))


@dataclass(frozen=True)
class BwResult:
    bytes: int
    iterations: int
    peak_gbps: float
    average_gbps: float
    msg_rate_mpps: float


@dataclass(frozen=True)
class LatResult:
    bytes: int
    iterations: int
    t_min_us: float
    t_max_us: float
    t_typical_us: float
    t_avg_us: float | None
    t_stdev_us: float | None
    p99_us: float | None
    p999_us: float | None




class PerftestParseError(ValueError):
    pass


def _table_lines(text: str, header_word: str) -> list[list[str]]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "#bytes" in line and header_word in line:
            rows = []
            for row in lines[i + 1 :]:
                if row.strip().startswith("---"):
                    break
                fields = row.split()
                if fields and fields[0].isdigit():
                    rows.append(fields)
            return rows
    raise PerftestParseError(f"no result table with {header_word!r} in perftest output")


def parse_write_bw(text: str) -> list[BwResult]:
    """Rows of an ``ib_write_bw --report_gbits`` run (MB/sec tables are refused: the unit matters)."""
    if "BW average[MB/sec]" in text:
        raise PerftestParseError("bandwidth reported in MB/sec: run ib_write_bw with --report_gbits")
    return [BwResult(int(f[0]), int(f[1]), float(f[2]), float(f[3]), float(f[4]))
            for f in _table_lines(text, "BW average[Gb/sec]")]


def parse_write_lat(text: str) -> list[LatResult]:
    """Rows of an ``ib_write_lat`` run; older perftest prints only t_min/t_max/t_typical (None for the rest)."""
    out = []
    for f in _table_lines(text, "t_typical[usec]"):
        values = [float(v) for v in f[2:]]
        extra = values[3:] + [None] * (7 - len(values))  # type: ignore[list-item]
        out.append(LatResult(int(f[0]), int(f[1]), values[0], values[1], values[2], *extra[:4]))
    return out


@dataclass(frozen=True)
class PairVerdict:
    test: PairTest
    ok: bool
    message: str


def judge_bw(test: PairTest, rows: list[BwResult], min_gbps: float) -> PairVerdict:
    if not rows:
        return PairVerdict(test, False, "no bandwidth row in ib_write_bw output")
    best = max(r.average_gbps for r in rows)
    ok = best >= min_gbps
    return PairVerdict(test, ok, f"{test.server.node}:{test.server.device} <- {test.client.node}:"
                                 f"{test.client.device} rail {test.rail}: {best:.1f} Gb/s average "
                                 f"({'>=' if ok else 'below'} {min_gbps:g})")


def judge_lat(test: PairTest, rows: list[LatResult], max_p99_us: float) -> PairVerdict:
    p99 = [r.p99_us for r in rows if r.p99_us is not None]
    if not p99:
        return PairVerdict(test, False, "no 99th percentile in ib_write_lat output (perftest too old?)")
    worst = max(p99)
    ok = worst <= max_p99_us
    return PairVerdict(test, ok, f"{test.server.node}:{test.server.device} <-> {test.client.node}:"
                                 f"{test.client.device} rail {test.rail}: p99 {worst:.2f} us "
                                 f"({'<=' if ok else 'over'} {max_p99_us:g})")


def suspects(verdicts: list[PairVerdict]) -> list[tuple[str, str]]:
    """HCAs (node, device) that failed every test they were in: the peers of a bad HCA pass elsewhere."""
    seen: dict[tuple[str, str], list[bool]] = {}
    for v in verdicts:
        for hca in (v.test.server, v.test.client):
            seen.setdefault((hca.node, hca.device), []).append(v.ok)
    return sorted(key for key, oks in seen.items() if not any(oks))


def shell(argv: tuple[str, ...]) -> str:
    return shlex.join(argv)


__all__ = ["BwResult", "Hca", "LatResult", "PairTest", "PairVerdict", "PerftestParseError", "judge_bw",
           "judge_lat", "parse_write_bw", "parse_write_lat", "plan_pairs", "shell", "suspects"]
