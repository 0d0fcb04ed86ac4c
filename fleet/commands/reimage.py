"""`provision.py reimage NODE...`: release, redeploy, configure and validate named nodes.

    provision.py reimage gpu-012-03 [--yes] [--force] [--erase]

Destructive, so it needs the nodes named (never a rack), refuses nodes that look in use (GPU
processes, running containers) unless --force, asks unless --yes, and journals the request
before anything is released; the node's new generation then walks every stage again.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from fleet.commands import options, up
from fleet.errors import UsageError
from fleet.state import StateDB

HELP = "release and reinstall named nodes (asks first)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    up.add_run_options(parser)
    parser.add_argument("names", nargs="*", metavar="NODE", help="nodes to reimage (required)")
    parser.add_argument("--force", action="store_true", help="reimage even nodes that look in use")
    parser.add_argument("--erase", action="store_true", help="erase disks when releasing")


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet.usage import in_use

    site = options.load(args)
    if not (args.nodes or args.names):
        raise UsageError("reimage needs the nodes named explicitly", hint="provision.py reimage gpu-012-03 [...]")
    if args.rack:
        raise UsageError("reimage takes node names, not racks", hint="name each node: reimage gpu-012-01 gpu-012-02")
    nodes = options.select(args, site, args.names)
    options.at_least_one(args, "bmc_requests", "maas_deploys")
    if args.dry_run:
        return up.bring_up(args, site, nodes, console, reimage=True)
    busy = {} if args.force else {node.hostname: why for node in nodes if (why := in_use(site, node))}
    if busy:
        listed = "; ".join(f"{name}: {why}" for name, why in busy.items())
        raise UsageError(f"refusing to reimage node(s) that look in use ({listed})",
                         hint="drain them first, or pass --force if you are sure")
    question = f"Reimage {', '.join(n.hostname for n in nodes)}? This releases and reinstalls them."
    if not args.yes and not options.confirm("reimage", question, console):
        return options.EXIT_USAGE

    def new_generation(db: StateDB) -> None:
        """Under the run's locks (taken by bring_up): journaled first, then one transaction per node."""
        for node in nodes:
            db.journal(node.hostname, "", "reimage_requested", erase=args.erase, force=args.force)
            db.new_generation(node.hostname)

    return up.bring_up(args, site, nodes, console, reimage=True, prepare=new_generation)
