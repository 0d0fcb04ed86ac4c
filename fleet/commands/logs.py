"""`provision.py logs NODE [--since 6h]`: the node's System Event Log and Lifecycle log, newest first.

    provision.py logs gpu-012-03 --since 6h [--log sel|lclog] [--severe] [--json]

Read through the node's iDRAC (LogServices/Sel/Entries and LogServices/Lclog/Entries, paged), never
changed. `--since` takes an age (90m, 6h, 2d) or a time with its offset.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from fleet.commands import options
from fleet.errors import UsageError

HELP = "a node's SEL and Lifecycle log entries (read through its iDRAC)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", metavar="NODE", help="the node whose BMC logs to read")
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("--since", metavar="AGE|TIME", help="only entries newer than this: 90m, 6h, 2d or an ISO time")
    parser.add_argument("--log", choices=("sel", "lclog", "all"), default="all", help="which log (default both)")
    parser.add_argument("--severe", action="store_true", help="only Critical and Warning entries")
    parser.add_argument("--insecure-bmc", action="store_true", help="do not verify BMC TLS certificates (explicit)")


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet.dell import logs

    site = options.load(args)
    if args.node not in site.nodes:
        raise UsageError(f"node '{args.node}' is not in site '{site.name}'", hint="name a node of the site")
    try:
        since = logs.parse_since(args.since) if args.since else None
    except ValueError as err:
        raise UsageError(str(err), hint="e.g. --since 6h") from None
    from fleet.commands.up import before_run
    from fleet.redfish import BmcPool

    before_run(site, [])
    bmc = BmcPool(site, max_requests=2, insecure=args.insecure_bmc).client(args.node)
    entries = []
    for log in ("sel", "lclog") if args.log == "all" else (args.log,):
        entries += logs.read(bmc, log, since_s=since)
    entries = logs.newest_first(entries)
    if args.severe:
        entries = [entry for entry in entries if entry.severity in logs.SEVERE]
    if args.json:
        print(json.dumps({"site": site.name, "node": args.node, "since": since,
                          "entries": [entry.as_dict() for entry in entries]}, indent=2))
        return options.EXIT_OK
    table = Table(title=f"{args.node}: {len(entries)} BMC log entries")
    for column in ("created", "log", "severity", "id", "message"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.created, entry.log, entry.severity, entry.message_id, entry.message)
    console.print(table)
    return options.EXIT_OK
