"""Burn-in between nodes: NCCL all-reduce across node groups (per rail, all rails), the straggler search,
and InfiniBand pair tests (ib_write_bw / ib_write_lat), all started over SSH.

The plans and the parsing are pure and live node-side (healthcheck/burnin/ncclplan.py, perftest.py,
straggler.py); this module starts the commands on the nodes and collects what they print:

- an NCCL group test runs one `python3 -m healthcheck.burnin nccl` per node at once (node 0 hosts
  the rendezvous); node 0's JSON table is the group's result, its peak bus bandwidth the figure;
- the straggler search tests halves of a slow group at once, disjoint groups in parallel, so one
  slow node among N is found in about log2(N) rounds;
- a pair test starts the ib_write_bw server, then the client on the peer node; the client's table
  is parsed; an HCA slow with both of its peers is the suspect, named with its leaf port.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fleet import ssh
from fleet.site import Node, Site
from healthcheck.burnin import ncclplan, perftest
from healthcheck.burnin.straggler import Search, find_slow

Runner = Callable[[Node, str, float], ssh.SshResult]
BASE_PORT = 29600
SERVER_HEAD_START_S = 2.0


def ssh_runner(site: Site) -> Runner:
    return lambda node, command, timeout_s: ssh.run(site, node, command, timeout_s)


@dataclass(frozen=True)
class GroupResult:
    nodes: tuple[str, ...]
    busbw_gbps: float  # peak bus bandwidth; 0.0 when the test failed
    rows: tuple[dict[str, Any], ...] = ()
    error: str = ""


def nccl_group(site: Site, nodes: Sequence[Node], *, rail: int | None, port: int, runner: Runner,
               timeout_s: float = 600.0, python: str | None = None) -> GroupResult:
    """One all-reduce across ``nodes`` (per rail when ``rail`` is set): every node's part at once."""
    names = tuple(n.hostname for n in nodes)
    commands = ncclplan.multinode_commands(list(names), nodes[0].address, rail=rail, master_port=port,
                                           gpus_per_node=nodes[0].gpu_count,
                                           python=python or site.burnin.python)
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="nccl") as pool:
        answers = list(pool.map(lambda pair: runner(pair[0], pair[1].shell, timeout_s),
                                zip(nodes, commands, strict=True)))
    failed = [f"{n}: rc {a.rc} {a.stderr.splitlines()[-1] if a.stderr else ''}".strip()
              for n, a in zip(names, answers, strict=True) if a.rc != 0]
    if failed:
        return GroupResult(names, 0.0, error="; ".join(failed))
    try:
        table = json.loads(answers[0].stdout)
        rows = tuple(table["rows"])
    except (ValueError, KeyError, TypeError) as err:
        return GroupResult(names, 0.0, error=f"{names[0]}: no all-reduce table ({err})")
    wrong = [r for r in rows if r.get("wrong_elements")]
    if wrong:
        return GroupResult(names, 0.0, rows, f"{len(wrong)} size(s) summed wrong")
    return GroupResult(names, max((r["busbw_gbps"] for r in rows), default=0.0), rows)


def nccl_groups(site: Site, groups: Sequence[Sequence[Node]], *, rail: int | None, runner: Runner,
                timeout_s: float = 600.0) -> list[GroupResult]:
    """Disjoint groups at once, each on its own rendezvous port."""
    with ThreadPoolExecutor(max_workers=max(1, len(groups)), thread_name_prefix="nccl-group") as pool:
        futures = [pool.submit(nccl_group, site, group, rail=rail, port=BASE_PORT + k, runner=runner,
                               timeout_s=timeout_s) for k, group in enumerate(groups)]
        return [f.result() for f in futures]


def search_slow(site: Site, nodes: Sequence[Node], threshold_gbps: float, *, rail: int | None, runner: Runner,
                timeout_s: float = 600.0) -> Search:
    """The straggler search over SSH: which nodes make a slow group slow."""
    by_name = {n.hostname: n for n in nodes}

    def measure(groups: list[list[str]]) -> list[float]:
        results = nccl_groups(site, [[by_name[name] for name in g] for g in groups], rail=rail, runner=runner,
                              timeout_s=timeout_s)
        return [r.busbw_gbps for r in results]

    return find_slow([n.hostname for n in nodes], measure, threshold_gbps)


# GPUDirect RDMA is there when nvidia_peermem is loaded and perftest was built with CUDA (--use_cuda in its help).
GDR_PROBE = "grep -q '^nvidia_peermem ' /proc/modules && ib_write_bw --help 2>&1 | grep -q use_cuda"


def gdr_capable(nodes: Sequence[Node], runner: Runner, timeout_s: float = 30.0) -> dict[str, bool]:
    """Which nodes can run the pair tests with GPU memory (exit 0 of the probe); the others use host memory."""
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(nodes))), thread_name_prefix="gdr") as pool:
        answers = list(pool.map(lambda n: runner(n, GDR_PROBE, timeout_s), nodes))
    return {n.hostname: a.rc == 0 for n, a in zip(nodes, answers, strict=True)}


def hcas_of(nodes: Sequence[Node], gdr: dict[str, bool] | None = None) -> list[perftest.Hca]:
    """Every HCA of the nodes; HCA position i is rail i (and sits by GPU i, used with GPUDirect where present)."""
    return [perftest.Hca(n.hostname, hca.name, rail, n.address,
                         rail if rail < n.gpu_count and (gdr or {}).get(n.hostname, True) else None)
            for n in nodes for rail, hca in enumerate(n.hcas)]


def pair_tests(nodes: Sequence[Node], *, tool: str, runner: Runner, min_gbps: float, max_p99_us: float,
               duration_s: int = 10, gdr: dict[str, bool] | None = None) -> list[perftest.PairVerdict]:
    """Every planned pair, round by round (pairs of a round at once): server first, then the client.

    ``gdr``: per node, whether GPUDirect is there (``gdr_capable``); GPU memory where it is, host memory
    elsewhere (the verdict message says which side used what through the command)."""
    by_name = {n.hostname: n for n in nodes}
    tests = perftest.plan_pairs(hcas_of(nodes, gdr))
    verdicts: list[perftest.PairVerdict] = []
    timeout = duration_s + 60.0

    def one(test: perftest.PairTest) -> perftest.PairVerdict:
        server_argv, client_argv = test.commands(tool=tool, duration_s=duration_s)
        with ThreadPoolExecutor(max_workers=1) as server_pool:
            server = server_pool.submit(runner, by_name[test.server.node], perftest.shell(server_argv), timeout)
            time.sleep(SERVER_HEAD_START_S)
            client = runner(by_name[test.client.node], perftest.shell(client_argv), timeout)
            server.result()
        if client.rc != 0:
            return perftest.PairVerdict(test, False, f"{test.client.node}:{test.client.device} -> "
                                                     f"{test.server.node}:{test.server.device}: {tool} exited "
                                                     f"{client.rc}: {client.stderr[-200:]}")
        try:
            if tool == "ib_write_lat":
                return perftest.judge_lat(test, perftest.parse_write_lat(client.stdout), max_p99_us)
            return perftest.judge_bw(test, perftest.parse_write_bw(client.stdout), min_gbps)
        except perftest.PerftestParseError as err:
            return perftest.PairVerdict(test, False, f"{test.client.node}:{test.client.device}: {err}")

    for round_ in sorted({t.round for t in tests}):
        batch = [t for t in tests if t.round == round_]
        with ThreadPoolExecutor(max_workers=max(1, len(batch)), thread_name_prefix="perftest") as pool:
            verdicts.extend(pool.map(one, batch))
    return verdicts


def link_evidence(nodes: Sequence[Node], verdicts: Sequence[perftest.PairVerdict]) -> dict[str, list[str]]:
    """Per node, its suspect HCAs with the cable they sit on: which link to look at."""
    by_name = {n.hostname: n for n in nodes}
    out: dict[str, list[str]] = {}
    for node, device in perftest.suspects(list(verdicts)):
        hca = next(h for h in by_name[node].hcas if h.name == device)
        tests = [v.message for v in verdicts if node in (v.test.server.node, v.test.client.node)
                 and device in (v.test.server.device, v.test.client.device)]
        out.setdefault(node, []).append(f"{device} (leaf {hca.leaf} port {hca.port}): {'; '.join(tests)}")
    return out
