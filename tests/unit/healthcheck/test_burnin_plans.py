"""Straggler search, perftest pairing/commands/parsing, NCCL arithmetic and commands: no GPU, no HCA."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from healthcheck.burnin import ncclplan, perftest
from healthcheck.burnin.straggler import find_slow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def group_speed(slow: set[str], fast: float = 400.0, slow_speed: float = 150.0):
    """A collective runs at its slowest member's speed; counts the rounds asked for."""
    calls: list[list[list[str]]] = []

    def measure(groups: list[list[str]]) -> list[float]:
        calls.append(groups)
        for g in groups:  # groups of one round never share a node (they run at once)
            assert len(g) >= 2
        members = [n for g in groups for n in g]
        assert len(members) == len(set(members))
        return [slow_speed if slow & set(g) else fast for g in groups]

    return measure, calls


@pytest.mark.parametrize(("count", "bad"), [(512, "n137"), (512, "n000"), (512, "n511"), (7, "n006"), (5, "n001")])
def test_one_slow_node_is_found_in_log2_rounds(count, bad):
    nodes = [f"n{i:03d}" for i in range(count)]
    measure, calls = group_speed({bad})
    result = find_slow(nodes, measure, threshold=300.0)
    assert result.slow_nodes == [bad]
    assert result.rounds == len(calls) <= math.ceil(math.log2(count)) + 1
    assert not result.between


def test_two_nodes_need_a_known_good_partner():
    measure, _ = group_speed({"b"})
    alone = find_slow(["a", "b"], measure, threshold=300.0)
    assert alone.slow_nodes == [] and alone.unresolved == [("a",), ("b",)] and not alone.between
    helped = find_slow(["a", "b"], measure, threshold=300.0, known_good=["g"])
    assert helped.slow_nodes == ["b"] and helped.rounds == 2  # one helper: one single per round
    assert find_slow(["a", "b"], measure, threshold=300.0, known_good=["g", "h"]).rounds == 1


def test_two_slow_nodes_are_both_found():
    nodes = [f"n{i:03d}" for i in range(64)]
    measure, _ = group_speed({"n005", "n040"})
    result = find_slow(nodes, measure, threshold=300.0)
    assert result.slow_nodes == ["n005", "n040"]
    assert result.rounds <= 7


def test_slow_only_together_points_at_the_links_between_halves():
    nodes = [f"n{i}" for i in range(8)]

    def measure(groups):  # every group passes: the whole was slow only across the halves
        return [400.0 for _ in groups]

    result = find_slow(nodes, measure, threshold=300.0)
    assert result.slow_nodes == []
    assert result.between == [(tuple(nodes[:4]), tuple(nodes[4:]))]


def hcas(nodes: int, rails: int = 8, gpu: bool = True) -> list[perftest.Hca]:
    return [perftest.Hca(f"gpu-012-{n:02d}", f"mlx5_{r}", r, f"10.0.12.{n + 10}", r if gpu else None)
            for n in range(nodes) for r in range(rails)]


@pytest.mark.parametrize("nodes", [2, 3, 4, 7, 32])
def test_every_hca_is_tested_in_few_rounds_with_different_peers_on_its_own_rail(nodes):
    tests = perftest.plan_pairs(hcas(nodes))
    assert {t.round for t in tests} == ({1} if nodes == 2 else {1, 2} if nodes % 2 == 0 else {1, 2, 3})
    seen: dict[tuple[str, str], list[str]] = {}
    for t in tests:
        assert t.server.rail == t.client.rail == t.rail and t.server.device == t.client.device
        for me, peer in ((t.server, t.client), (t.client, t.server)):
            seen.setdefault((me.node, me.device), []).append(peer.node)
    assert len(seen) == nodes * 8
    for peers in seen.values():
        assert peers
        if nodes > 2:
            assert len(set(peers)) == 2  # two different peers: a bad HCA is told from a bad peer
    for round_ in (1, 2, 3):  # within a round an HCA is in one test only
        busy = [(h.node, h.device) for t in tests if t.round == round_ for h in (t.server, t.client)]
        assert len(busy) == len(set(busy))


def test_commands_use_gpudirect_where_present_and_name_the_server():
    test = perftest.plan_pairs(hcas(2))[3]
    server, client = test.commands()
    assert server[:3] == ("ib_write_bw", "-d", "mlx5_3") and "--use_cuda=3" in server and "--report_gbits" in server
    assert client[-1] == "10.0.12.10" and "--use_cuda=3" in client
    server, client = perftest.plan_pairs(hcas(2, gpu=False))[3].commands(tool="ib_write_lat")
    assert not any(a.startswith("--use_cuda") for a in server + client)
    assert perftest.shell(client).startswith("ib_write_lat -d mlx5_3")


def test_parse_and_judge_write_bw_and_lat():
    test = perftest.plan_pairs(hcas(2))[0]
    good = perftest.parse_write_bw((FIXTURES / "perftest" / "ib_write_bw-gdr-ndr.txt").read_text())
    assert good == [perftest.BwResult(1048576, 35620, 0.0, 371.42, 0.044275)]
    assert perftest.judge_bw(test, good, 360.0).ok
    half = perftest.parse_write_bw((FIXTURES / "perftest" / "ib_write_bw-half-speed.txt").read_text())
    verdict = perftest.judge_bw(test, half, 360.0)
    assert not verdict.ok and "185.8 Gb/s" in verdict.message and "below 360" in verdict.message
    with pytest.raises(perftest.PerftestParseError, match="--report_gbits"):
        perftest.parse_write_bw((FIXTURES / "perftest" / "ib_write_bw-mbytes.txt").read_text())
    lat = perftest.parse_write_lat((FIXTURES / "perftest" / "ib_write_lat-ndr.txt").read_text())
    assert lat[0].p99_us == 2.21 and lat[0].p999_us == 5.48 and lat[0].t_typical_us == 1.84
    assert perftest.judge_lat(test, lat, 4.2).ok
    slow = perftest.parse_write_lat((FIXTURES / "perftest" / "ib_write_lat-slow.txt").read_text())
    assert not perftest.judge_lat(test, slow, 4.2).ok
    with pytest.raises(perftest.PerftestParseError):
        perftest.parse_write_bw("ib_write_bw: Couldn't connect to 10.0.0.1:18515")


def test_suspect_is_the_hca_failing_with_both_peers():
    tests = [t for t in perftest.plan_pairs(hcas(6, rails=1))]
    bad = ("gpu-012-03", "mlx5_0")
    verdicts = [perftest.PairVerdict(t, bad not in {(t.server.node, t.server.device), (t.client.node, t.client.device)},
                                     "") for t in tests]
    assert perftest.suspects(verdicts) == [bad]


def test_nccl_tests_output_and_bus_bandwidth():
    rows, avg = ncclplan.parse_nccl_tests((FIXTURES / "nccl-tests" / "all_reduce_perf-8xh100.txt").read_text())
    assert avg == 448.212 and len(rows) == 4
    assert rows[-1] == ncclplan.NcclRow(2147483648, 268.99, 470.73, 7983.5, 0)
    assert ncclplan.bus_bandwidth(268.99, 8) == pytest.approx(470.73, rel=1e-3)  # nccl-tests' own figure
    assert ncclplan.bus_bandwidth(100.0, 1) == 0.0
    prefixed = "[1,0]<stdout>:    67108864      16777216     float     sum      -1    21934    3.06    3.06      0"
    assert ncclplan.parse_nccl_tests(prefixed)[0][0].busbw_gbps == 3.06
    sizes = ncclplan.message_sizes(8, 4 << 30)
    assert sizes[0] == 8 and sizes[-1] == 4 << 30 and len(sizes) == 30


def test_multinode_commands_per_rail_and_all_rails():
    per_rail = ncclplan.multinode_commands(["a", "b", "c"], "10.0.0.1", rail=3)
    assert [c.node for c in per_rail] == ["a", "b", "c"]
    assert "--node-rank 2" in per_rail[2].shell and "--gpus 3" in per_rail[0].shell
    assert "NCCL_IB_HCA==mlx5_3" in per_rail[1].shell and "--master-addr 10.0.0.1" in per_rail[1].shell
    all_rails = ncclplan.multinode_commands(["a", "b"], "10.0.0.1", rail=None)
    assert "--gpus 0,1,2,3,4,5,6,7" in all_rails[0].shell and "NCCL_IB_HCA" not in all_rails[0].shell
    with pytest.raises(ValueError, match="at least 2 nodes"):
        ncclplan.multinode_commands(["a"], "10.0.0.1", rail=0)
