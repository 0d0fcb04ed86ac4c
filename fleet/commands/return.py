"""`provision.py return NODE...`: put nodes back into service by hand, after their health checks pass.

Sweeps the named nodes first and refuses any that does not pass (OK or WARNING) unless --force;
then, journaled first: resumes it in the site's scheduler (only a drain the fleet set: someone
else's drain is theirs to lift), removes the fleet-quarantined MAAS tag, marks it done.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from fleet.commands import options
from fleet.errors import UsageError

HELP = "return named nodes to service (after their health checks pass)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    parser.add_argument("names", nargs="*", metavar="NODE", help="nodes to return (required)")
    parser.add_argument("--force", action="store_true", help="return even nodes whose health checks fail")


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet.commands.day2 import MaasTags, build_watch
    from fleet.watch import PASSING

    site = options.load(args)
    if not (args.nodes or args.names) or args.rack:
        raise UsageError("return needs the nodes named explicitly", hint="provision.py return gpu-012-03")
    nodes = options.select(args, site, args.names)
    db = options.open_state(args, site)
    tags = MaasTags(site)
    failed = 0
    try:
        loop = build_watch(args, site, db, tags, console)
        for health in loop.sweep([n.hostname for n in nodes]):
            if health.verdict not in PASSING and not args.force:
                console.print(f"{health.node}: not returned: {health.verdict}: {health.reason} (--force to override)")
                failed += 1
                continue
            console.print(f"{health.node}: {loop.give_back(health.node, f'by hand ({health.verdict})')}")
    finally:
        tags.close()
        db.close()
    return options.EXIT_FAILED if failed else options.EXIT_OK
