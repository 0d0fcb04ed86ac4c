"""`provision.py quarantine NODE --reason TEXT`: take a node out of service by hand.

Journals first, then marks it quarantined in the state DB, tags it fleet-quarantined in MAAS and
drains it in the site's scheduler with `fleet: <reason>`. The watch loop never fixes or returns a
node quarantined by hand; `provision.py return NODE` does.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from fleet.commands import options
from fleet.errors import UsageError

HELP = "take named nodes out of service by hand (drain, MAAS tag)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    parser.add_argument("names", nargs="*", metavar="NODE", help="nodes to quarantine (required)")
    parser.add_argument("--reason", required=True, help="why (shown in status, MAAS, the scheduler)")


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet.commands.day2 import MaasTags, build_watch
    from fleet.watch import MANUAL

    site = options.load(args)
    if not (args.nodes or args.names) or args.rack:
        raise UsageError("quarantine needs the nodes named explicitly", hint="provision.py quarantine gpu-012-03 "
                         "--reason 'fan noise'")
    if not args.reason.strip():
        raise UsageError("--reason is empty", hint="say why, e.g. --reason 'fan noise, ticket 1234'")
    nodes = options.select(args, site, args.names)
    db = options.open_state(args, site)
    tags = MaasTags(site)
    try:
        loop = build_watch(args, site, db, tags, console)
        for node in nodes:
            console.print(f"{node.hostname}: {loop.quarantine(node.hostname, args.reason, 'manual', source=MANUAL)}")
    finally:
        tags.close()
        db.close()
    return options.EXIT_OK
