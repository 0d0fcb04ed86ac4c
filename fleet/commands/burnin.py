"""`provision.py burnin`: burn in the selected nodes over SSH, all at once; quarantine failures with the evidence.

    provision.py burnin --rack 12 [--duration 600] [--json] [--no-quarantine]
    provision.py burnin nccl --rack 12 [--rail 3] [--min-busbw 40]   # all-reduce across the nodes; finds a straggler
    provision.py burnin links --rack 12 [--lat]  # ib_write_bw (or ib_write_lat) between HCAs of each rail
    provision.py burnin plan [--json]          # the fabric's link burn plan: ib_write_bw stages

Each node runs `python3 -m healthcheck.burnin run` (verified bf16 stress on every GPU, PCIe under
load, HBM bandwidth and pattern test, NCCL all-reduce; healthcheck/README.md) and answers with the
health checks' JSON report; it writes its own burnin.prom for node exporter. Every outcome is
journaled in the state DB and each node's report kept under the state directory (burnin/NODE.json).
A CRITICAL node is quarantined (state DB, journaled first, then the MAAS tag) with every finding:
which GPU, which element, which check. `nccl` runs one all-reduce across the selected nodes (per rail
with --rail: GPU r and HCA mlx5_r only); below --min-busbw it searches for the slow node by halving
the group (about log2(N) rounds) and quarantines what it finds. `links` pairs HCAs of each rail
(every HCA tested with two peers); an HCA slow with both is quarantined with its leaf port.
Unreachable and UNKNOWN nodes are reported, never quarantined. The site's `burnin:` section sets
the duration, the node's Python and the floors.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from fleet.commands import options
from fleet.commands.health import QUARANTINE_TAG
from fleet.errors import UsageError
from fleet.health import decide_fleet, to_json, to_rows
from fleet.site import Site, resolve_credentials
from fleet.state import StateDB
from healthcheck.burnin.platform import Platform

HELP = "burn in nodes (verified GPU stress, memory, PCIe, NCCL), NCCL and IB across nodes, the link plan"
FAILING = ("CRITICAL", "UNKNOWN", "UNREACHABLE")
# NDR 400 Gb/s is 50 GB/s per port: a per-rail all-reduce reaches ~45; eight rails ~8x that.
PER_RAIL_MIN_GBPS = 40.0
ALL_RAILS_MIN_GBPS = 320.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("action", nargs="?", choices=("run", "nccl", "links", "plan"), default="run",
                        help="run (default) the node burn-in; nccl across nodes; links: IB pair tests; "
                             "plan: the fabric's link burn plan")
    parser.add_argument("--rail", type=int, metavar="R", help="nccl: one rail (GPU R, HCA mlx5_R) instead of all")
    parser.add_argument("--min-busbw", type=float, metavar="GBPS",
                        help=f"nccl: minimum bus bandwidth (default {PER_RAIL_MIN_GBPS:g} per rail, "
                             f"{ALL_RAILS_MIN_GBPS:g} all rails)")
    parser.add_argument("--lat", action="store_true", help="links: ib_write_lat (p99) instead of ib_write_bw")
    parser.add_argument("--min-gbps", type=float, default=Platform.ib_bw_min_gbps, metavar="GBPS",
                        help="links: minimum ib_write_bw average per port (default %(default)s, NDR with GPUDirect)")
    parser.add_argument("--max-p99-us", type=float, default=Platform.ib_lat_p99_max_us, metavar="US",
                        help="links: maximum ib_write_lat p99 (default %(default)s)")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="GPU stress seconds (default: the site's burnin.duration_s, 600)")
    parser.add_argument("--parallel", type=int, default=64, metavar="N", help="nodes burned in at once")
    parser.add_argument("--no-quarantine", dest="quarantine", action="store_false",
                        help="report CRITICAL nodes without quarantining them")


def run(args: argparse.Namespace, console: Console) -> int:
    site = options.load(args)
    if args.action == "plan":
        return _plan(args, site)
    if not (args.rack or args.nodes):
        raise UsageError("no nodes selected", hint="pass --rack 12 or --nodes a,b")
    if args.action in ("nccl", "links"):
        nodes = options.select(args, site)
        if len(nodes) < 2:
            raise UsageError(f"{args.action} needs at least 2 nodes, {len(nodes)} selected", hint="pass --rack 12")
        db = options.open_state(args, site)
        return (_nccl if args.action == "nccl" else _links)(args, site, nodes, db, console)
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be positive, got {args.duration:g}", hint="pass --duration 600")
    options.at_least_one(args, "parallel")
    nodes = options.select(args, site)
    db = options.open_state(args, site)  # before any node is touched: a state problem stops everything

    from fleet.burnin import burnin_sweep, record

    results = burnin_sweep(site, nodes, duration_s=args.duration, parallel=args.parallel)
    quarantined = record(db, results, options.state_dir(args, site) / "burnin", quarantine=args.quarantine)
    if quarantined:
        _tag(site, quarantined)
    decision = decide_fleet(results)
    if args.json:
        print(json.dumps(to_json(results, decision), indent=2))
    else:
        for row in to_rows(results):
            console.print(f"{row['node']}: {row['verdict']} {row['reason']}".rstrip(), markup=False, highlight=False)
            if row["fix"]:
                console.print(f"  -> {row['fix']}", markup=False, highlight=False)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in decision.counts.items())
        console.print(f"burn-in verdict {decision.verdict}: {counts}"
                      + (f"; quarantined {', '.join(quarantined)} (MAAS tag {QUARANTINE_TAG})" if quarantined else ""))
    return options.EXIT_FAILED if any(r.verdict in FAILING for r in results) else options.EXIT_OK


def _tag(site: Site, names: list[str]) -> None:
    from fleet.maas import MaasClient  # python-libmaas loads in ~0.5 s: only when a burn-in quarantines

    with MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls) as maas:
        for name in names:
            maas.tag(name, maas.find_machine(site.nodes[name]), (QUARANTINE_TAG,))


def _plan(args: argparse.Namespace, site: Site) -> int:
    if site.fabric is None:
        raise UsageError(f"site '{site.name}' has no fabric: section", hint="add fabric: {topology: fabric.yml}")
    from fleet.fabric import burn_plan
    from fleet.fabric.topology import node_cables

    nodes = list(site.nodes.values())
    graph = burn_plan.fabric_graph(site.fabric.topology, node_cables(nodes), {n.hostname: n.address for n in nodes})
    result = burn_plan.plan(graph)
    print(json.dumps(burn_plan.to_json(result, graph)) if args.json else burn_plan.render(result, graph))
    return options.EXIT_FAILED if result.unreachable else options.EXIT_OK


def _nccl(args: argparse.Namespace, site: Site, nodes: list, db: StateDB, console: Console) -> int:
    from fleet.burnin import quarantine_node
    from fleet.burnin_net import nccl_group, search_slow, ssh_runner

    minimum = args.min_busbw or (PER_RAIL_MIN_GBPS if args.rail is not None else ALL_RAILS_MIN_GBPS)
    runner = ssh_runner(site)
    what = f"rail {args.rail}" if args.rail is not None else "all rails"
    whole = nccl_group(site, nodes, rail=args.rail, port=29600, runner=runner)
    report: dict = {"nodes": list(whole.nodes), "rail": args.rail, "busbw_gbps": whole.busbw_gbps,
                    "minimum_gbps": minimum, "error": whole.error, "slow_nodes": [], "between": [], "rounds": 0}
    console.print(f"all-reduce over {len(nodes)} nodes ({what}): {whole.busbw_gbps:.1f} GB/s bus bandwidth "
                  f"(minimum {minimum:g}){' ' + whole.error if whole.error else ''}", markup=False, highlight=False)
    ok = whole.busbw_gbps >= minimum
    if not ok:
        search = search_slow(site, nodes, minimum, rail=args.rail, runner=runner)
        report.update(slow_nodes=search.slow_nodes, rounds=search.rounds,
                      between=[[list(a), list(b)] for a, b in search.between],
                      tests=[{"round": t.round, "group": list(t.group), "busbw_gbps": t.value, "slow": t.slow}
                             for t in search.tests])
        console.print(f"straggler search: {search.rounds} round(s), slow: {', '.join(search.slow_nodes) or 'none'}"
                      + (f"; slow only between {search.between}" if search.between else ""),
                      markup=False, highlight=False)
        for name in search.slow_nodes:
            values = [t.value for t in search.tests if name in t.group]
            reason = (f"slow in NCCL all-reduce ({what}): every group with it below {minimum:g} GB/s "
                      f"({', '.join(f'{v:.1f}' for v in values)})")
            db.journal(name, "burnin", "nccl", reason=reason)
            if args.quarantine:
                quarantine_node(db, name, reason, {"nccl_tests": [t for t in report["tests"] if name in t["group"]]})
        if args.quarantine and search.slow_nodes:
            _tag(site, search.slow_nodes)
    if args.json:
        print(json.dumps(report, indent=2))
    return options.EXIT_OK if ok else options.EXIT_FAILED


def _links(args: argparse.Namespace, site: Site, nodes: list, db: StateDB, console: Console) -> int:
    from fleet.burnin import quarantine_node
    from fleet.burnin_net import gdr_capable, link_evidence, pair_tests, ssh_runner

    tool = "ib_write_lat" if args.lat else "ib_write_bw"
    runner = ssh_runner(site)
    gdr = gdr_capable(nodes, runner)
    without = sorted(name for name, ok in gdr.items() if not ok)
    if without:
        console.print(f"no GPUDirect (nvidia_peermem + perftest with CUDA) on {', '.join(without)}: host memory there",
                      markup=False, highlight=False)
    verdicts = pair_tests(nodes, tool=tool, runner=runner, min_gbps=args.min_gbps, max_p99_us=args.max_p99_us,
                          gdr=gdr)
    suspects = link_evidence(nodes, verdicts)
    for v in verdicts:
        console.print(f"{'ok  ' if v.ok else 'FAIL'} {v.message}", markup=False, highlight=False)
    for name, links in suspects.items():
        reason = f"{tool}: {'; '.join(links)}"
        db.journal(name, "burnin", "links", reason=reason)
        if args.quarantine:
            quarantine_node(db, name, reason, {"links": links})
    if args.quarantine and suspects:
        _tag(site, list(suspects))
    if args.json:
        print(json.dumps({"tool": tool, "pairs": [{"round": v.test.round, "rail": v.test.rail, "ok": v.ok,
                                                    "message": v.message} for v in verdicts],
                          "suspects": suspects}, indent=2))
    console.print(f"{sum(v.ok for v in verdicts)}/{len(verdicts)} pair tests passed; suspect HCAs: "
                  f"{sum(len(v) for v in suspects.values())}", markup=False, highlight=False)
    return options.EXIT_OK if all(v.ok for v in verdicts) else options.EXIT_FAILED
