"""`provision.py status --rack 12`: the selected nodes by state and last error, from the state DB.

A node out of service (quarantined) also shows since when: the time of its last quarantine in the
journal (by a stage, `health --quarantine`, the watch loop or by hand), as `since` in the JSON.

Read-only: a site that has never run shows every node as `new`, and no state DB is created.
"""

from __future__ import annotations

import argparse
import json
import time

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
        since = _out_since(db, node.hostname) if db and status == "quarantined" else None
        detail = state.last_error if state else ""
        rows.append({"hostname": node.hostname, "status": status, "stage": state.stage if state else "",
                     "detail": detail, "updated": state.updated if state else 0, "since": since})
        if since and not args.json:
            rows[-1]["detail"] = f"out since {time.strftime('%Y-%m-%d %H:%M', time.localtime(since))}: {detail}"
    if args.json:
        print(json.dumps({"site": site.name, "nodes": rows}, indent=2))
    else:
        console.print(render.node_table(rows, f"{site.name}: {len(rows)} node(s)"))
        console.print(render.counts_line(rows) or "no nodes match")
    return options.EXIT_OK


def _out_since(db, hostname: str) -> float | None:
    """When the node was last taken out of service (its newest `quarantine` or `stage:quarantined` journal entry)."""
    times = [e.ts for e in db.entries(hostname) if e.event in ("quarantine", "stage:quarantined")]
    return times[-1] if times else None
