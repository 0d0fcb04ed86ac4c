"""NCCL across nodes, the straggler search and IB pair tests, driven through a stand-in for ssh."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fleet import burnin_net, commands, ssh
from fleet.site import load_site
from fleet.state import StateDB

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MINIMAL = FIXTURES / "inventories" / "good" / "minimal.yml"
BW_GOOD = (FIXTURES / "perftest" / "ib_write_bw-gdr-ndr.txt").read_text()
BW_HALF = (FIXTURES / "perftest" / "ib_write_bw-half-speed.txt").read_text()


def site_and_nodes(count: int):
    site = load_site(MINIMAL)
    base = site.nodes["gpu-001-01"]
    nodes = [dataclasses.replace(base, hostname=f"gpu-001-{i + 1:02d}", address=f"198.18.1.{11 + i}",
                                 hcas=tuple(dataclasses.replace(h, port=h.port + 8 * i) for h in base.hcas))
             for i in range(count)]
    return site, nodes


def test_a_group_all_reduce_takes_node_0s_table_and_runs_every_node_at_once():
    site, nodes = site_and_nodes(3)
    seen = []

    def runner(node, command, timeout_s):
        seen.append((node.hostname, command))
        table = {"world_size": 24, "rows": [{"bytes": 1 << 30, "busbw_gbps": 351.2, "wrong_elements": 0}]}
        return ssh.SshResult(0, json.dumps(table) if "--node-rank 0" in command else '{"rows": []}', "")

    result = burnin_net.nccl_group(site, nodes, rail=None, port=29600, runner=runner)
    assert result.busbw_gbps == 351.2 and not result.error
    assert sorted(n for n, _ in seen) == [n.hostname for n in nodes]
    assert all("--master-addr 198.18.1.11" in c and "--nnodes 3" in c for _, c in seen)
    per_rail = burnin_net.nccl_group(site, nodes, rail=5, port=29601, runner=runner)
    assert per_rail.busbw_gbps == 351.2 and any("NCCL_IB_HCA==mlx5_5" in c for _, c in seen)

    def one_fails(node, command, timeout_s):
        return ssh.SshResult(255 if node.hostname == "gpu-001-02" else 0, "", "ssh: no route to host")

    failed = burnin_net.nccl_group(site, nodes, rail=None, port=29602, runner=one_fails)
    assert failed.busbw_gbps == 0.0 and "gpu-001-02: rc 255" in failed.error


def fake_groups(slow: set[str]):
    calls = []

    def nccl_group(site, group, *, rail, port, runner, timeout_s=600.0):
        names = tuple(n.hostname for n in group)
        calls.append(names)
        return burnin_net.GroupResult(names, 150.0 if slow & set(names) else 400.0)

    return nccl_group, calls


def test_the_straggler_search_over_groups_finds_the_slow_node(monkeypatch):
    site, nodes = site_and_nodes(16)
    fake, calls = fake_groups({"gpu-001-11"})
    monkeypatch.setattr(burnin_net, "nccl_group", fake)
    search = burnin_net.search_slow(site, nodes, 300.0, rail=None, runner=None)
    assert search.slow_nodes == ["gpu-001-11"] and search.rounds == 4
    assert len(calls) == 8  # two halves per round, each half tested as its own all-reduce


def test_nccl_command_quarantines_the_straggler_with_its_group_figures(tmp_path, monkeypatch, capsys):
    _, nodes = site_and_nodes(8)
    fake, _ = fake_groups({"gpu-001-02"})
    monkeypatch.setattr(burnin_net, "nccl_group", fake)
    monkeypatch.setattr("fleet.commands.options.select", lambda args, site, names=None: nodes)
    monkeypatch.setattr("fleet.commands.burnin._tag", lambda site, names: None)
    code = commands.main(["burnin", "nccl", "--site", str(MINIMAL), "--state-dir", str(tmp_path), "--rack", "1",
                          "--json"])
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["slow_nodes"] == ["gpu-001-02"] and out["busbw_gbps"] == 150.0 and out["minimum_gbps"] == 320.0
    state = StateDB(tmp_path / "state.db").node("gpu-001-02")
    assert state.status == "quarantined" and "slow in NCCL all-reduce (all rails)" in state.last_error


def pair_runner(site_nodes, bad: tuple[str, str]):
    """ib_write_bw answers: half speed for any test touching the bad HCA (client side or server side)."""
    by_address = {n.address: n.hostname for n in site_nodes}

    def runner(node, command, timeout_s):
        argv = command.split()
        device = argv[argv.index("-d") + 1]
        if argv[-1] not in by_address:  # the server: waits for its client, prints its own table
            return ssh.SshResult(0, BW_GOOD, "")
        involved = {(node.hostname, device), (by_address[argv[-1]], device)}
        return ssh.SshResult(0, BW_HALF if bad in involved else BW_GOOD, "")

    return runner


def test_pair_tests_name_the_hca_slow_with_both_peers_and_its_leaf_port(monkeypatch):
    monkeypatch.setattr(burnin_net, "SERVER_HEAD_START_S", 0.0)
    _, nodes = site_and_nodes(4)
    verdicts = burnin_net.pair_tests(nodes, tool="ib_write_bw", runner=pair_runner(nodes, ("gpu-001-03", "mlx5_1")),
                                     min_gbps=360.0, max_p99_us=4.2)
    assert len(verdicts) == 4 * len(nodes[0].hcas)  # a ring of 4 per rail
    assert sum(not v.ok for v in verdicts) == 2
    evidence = burnin_net.link_evidence(nodes, verdicts)
    assert list(evidence) == ["gpu-001-03"]
    hca = nodes[2].hcas[1]
    assert evidence["gpu-001-03"][0].startswith(f"mlx5_1 (leaf {hca.leaf} port {hca.port}):")
    assert "185.8 Gb/s" in evidence["gpu-001-03"][0]


def test_links_and_nccl_need_two_nodes(tmp_path, capsys):
    code = commands.main(["burnin", "links", "--site", str(MINIMAL), "--state-dir", str(tmp_path),
                          "--nodes", "gpu-001-01"])
    assert code == 2 and "needs at least 2 nodes" in capsys.readouterr().err


@pytest.mark.parametrize("tool", ["ib_write_bw", "ib_write_lat"])
def test_a_pair_that_cannot_run_fails_with_the_tools_words(monkeypatch, tool):
    monkeypatch.setattr(burnin_net, "SERVER_HEAD_START_S", 0.0)
    _, nodes = site_and_nodes(2)
    verdicts = burnin_net.pair_tests(nodes, tool=tool, min_gbps=360.0, max_p99_us=4.2,
                                     runner=lambda n, c, t: ssh.SshResult(1, "", " Couldn't connect to 198.18.1.11"))
    assert verdicts and not any(v.ok for v in verdicts)
    assert f"{tool} exited 1" in verdicts[0].message


def test_gpudirect_where_the_node_has_it_host_memory_elsewhere(monkeypatch):
    monkeypatch.setattr(burnin_net, "SERVER_HEAD_START_S", 0.0)
    _, nodes = site_and_nodes(2)
    gdr = burnin_net.gdr_capable(nodes, lambda n, c, t: ssh.SshResult(0 if n.hostname == "gpu-001-01" else 1, "", ""))
    assert gdr == {"gpu-001-01": True, "gpu-001-02": False}
    seen = []

    def runner(node, command, timeout_s):
        seen.append((node.hostname, command))
        return ssh.SshResult(0, BW_GOOD, "")

    verdicts = burnin_net.pair_tests(nodes, tool="ib_write_bw", runner=runner, min_gbps=360.0, max_p99_us=4.2, gdr=gdr)
    assert verdicts and all(v.ok for v in verdicts)
    assert all("--use_cuda" in c for n, c in seen if n == "gpu-001-01")
    assert not any("--use_cuda" in c for n, c in seen if n == "gpu-001-02")
