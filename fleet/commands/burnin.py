"""`provision.py burnin`: burn in the selected nodes over SSH, all at once; quarantine failures with the evidence.

    provision.py burnin --rack 12 [--duration 600] [--json] [--no-quarantine]
    provision.py burnin plan [--json]          # the fabric's link burn plan: ib_write_bw stages

Each node runs `python3 -m healthcheck.burnin run` (verified bf16 stress on every GPU, PCIe under
load, HBM bandwidth and pattern test, NCCL all-reduce; healthcheck/README.md) and answers with the
health checks' JSON report; it writes its own burnin.prom for node exporter. Every outcome is
journaled in the state DB and each node's report kept under the state directory (burnin/NODE.json).
A CRITICAL node is quarantined (state DB, journaled first, then the MAAS tag) with every finding:
which GPU, which element, which check. Unreachable and UNKNOWN nodes are reported, never
quarantined. The site's `burnin:` section sets the duration, the node's Python and the floors.
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

HELP = "burn in nodes (verified GPU stress, memory, PCIe, NCCL); plan the link burn-in"
FAILING = ("CRITICAL", "UNKNOWN", "UNREACHABLE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("action", nargs="?", choices=("run", "plan"), default="run",
                        help="run (default) the burn-in, or print the link burn plan of the site's fabric")
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
    return options.EXIT_OK
