"""`provision.py status --rack 12`: the selected nodes by state and last error, from the state DB.

Read-only: a site that has never run shows every node as `new`, and no state DB is created.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from fleet import render
from fleet.commands import options

HELP = "nodes by state and last error"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("--status", dest="only", action="append", default=[], help="only nodes in this state")


def run(args: argparse.Namespace, console: Console) -> int:
    site = options.load(args)
    nodes = options.select(args, site)
    db = options.existing_state(args, site)
    rows = []
    for node in nodes:
        state = db.node(node.hostname) if db else None
        status = state.status if state else "new"
        if args.only and status not in args.only:
            continue
        rows.append({"hostname": node.hostname, "status": status, "stage": state.stage if state else "",
                     "detail": state.last_error if state else "", "updated": state.updated if state else 0})
    if args.json:
        print(json.dumps({"site": site.name, "nodes": rows}, indent=2))
    else:
        console.print(render.node_table(rows, f"{site.name}: {len(rows)} node(s)"))
        console.print(render.counts_line(rows) or "no nodes match")
    return options.EXIT_OK
