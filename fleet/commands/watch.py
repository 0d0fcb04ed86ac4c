"""`provision.py watch`: sweep every health.interval_s; drain, fix, re-validate and return nodes.

    provision.py watch [--rack 12 | --nodes a,b] [--once] [--json] [--targets DIR] [--textfile DIR]

Each cycle sweeps the selected nodes (all by default). A CRITICAL node is quarantined (state DB,
MAAS tag fleet-quarantined) and drained in the site's scheduler (`workload:`); once its jobs are
gone the loop applies the least disruptive fix for the cause (fleet/remediate.py), re-validates,
and returns a passing node to service. The same cause again climbs to the next fix; after the last,
the node is left for hands with the RMA/ticket text. Guards (`watch:` in the site): at most
max_nodes in remediation, at most max_rack_percent of a rack, a cool-down between fixes, flapping
nodes held. Everything is journaled (stage `watch`). `--once` runs one cycle (for a systemd timer).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fleet.commands import options

HELP = "the day-2 loop: sweep, drain, fix, re-validate, return (foreground; --once for a timer)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("--once", action="store_true", help="one cycle, then exit (for a systemd timer)")
    parser.add_argument("--cycles", type=int, default=0, metavar="N", help="stop after N cycles (0: run on)")
    parser.add_argument("--targets", type=Path, metavar="DIR", help="write Prometheus file_sd targets here")
    parser.add_argument("--textfile", type=Path, metavar="DIR",
                        help="write fleet.prom (nodes out of service) here for node exporter's textfile collector")


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet import prometheus
    from fleet.commands.day2 import MaasTags, build_watch
    from fleet.watch import remember

    site = options.load(args)
    nodes = [n.hostname for n in options.select(args, site)]
    if args.cycles < 0:
        from fleet.errors import UsageError

        raise UsageError(f"--cycles {args.cycles}: must be 0 (run on) or more", hint="pass --cycles 3, or leave it out")
    cycles = 1 if args.once else args.cycles
    db = options.open_state(args, site)
    tags = MaasTags(site)
    try:
        loop = build_watch(args, site, db, tags, console)
        done = 0
        while True:
            started = time.monotonic()
            report = loop.cycle(nodes)
            done += 1
            if args.targets:
                prometheus.write_targets(site.nodes.values(), args.targets, site.name)
            if args.textfile:
                out = [prometheus.OutOfService(n, m.out_since, m.out_reason)
                       for n in nodes if (m := remember(db.entries(n))).out_since is not None]
                prometheus.write_fleet_metrics(args.textfile, prometheus.fleet_metrics(len(site.nodes), out, {}))
            _show(args, report, console)
            if cycles and done >= cycles:
                return options.EXIT_OK
            time.sleep(max(0.0, site.health.interval_s - (time.monotonic() - started)))
    finally:
        tags.close()
        db.close()


def _show(args: argparse.Namespace, report, console: Console) -> None:
    data = report.as_json()
    if args.json:
        print(json.dumps(data), flush=True)
        return
    acted = [row for row in data["nodes"] if row["action"] != "none" or row["outcome"]]
    table = Table(title=f"watch {time.strftime('%H:%M:%S', time.localtime(report.started))}: "
                  f"{len(data['nodes'])} node(s), {len(acted)} acted on", title_justify="left")
    for column in ("node", "action", "why", "outcome"):
        table.add_column(column, overflow="fold")
    for row in acted:
        table.add_row(row["node"], row["action"], row["reason"], row["deferred"] or row["outcome"])
    console.print(table)
    for node, ticket in report.tickets.items():
        console.print(f"[red]{node} needs hands:[/]\n{ticket}", highlight=False)
