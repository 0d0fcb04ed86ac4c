"""`provision.py image pull IMAGE --rack 12-15`: pre-pull an image on the selected nodes through their Kraken agents.

Each node pulls the manifest and every layer from its own agent (which fetches the pieces from its peers
and the origins and keeps them in its cache, so the training job's `docker pull` is local). At most
`--concurrency` nodes pull at once (default: the site's `kraken.pull_concurrency`); a node that fails is
reported with the reason and never stops the others. Prints each node's digest, seconds and bytes; exit 1
when any node failed. `--dry-run` prints the plan and contacts nothing.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fleet.commands import options
from fleet.commands.kraken import kraken_settings
from fleet.errors import UsageError

HELP = "pre-pull an image on the selected nodes through their Kraken agents"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    options.add_dry_run(parser)
    parser.add_argument("action", choices=("pull",), help="pull (the only action)")
    parser.add_argument("image", metavar="IMAGE", help="REPO:TAG or REPO@sha256:..., as the agents serve it")
    parser.add_argument("--all", action="store_true", help="every node of the site")
    parser.add_argument("--concurrency", type=int, metavar="N", help="nodes pulling at once (default: the site's)")
    parser.add_argument("--platform", default="linux/amd64", help="platform picked from a multi-platform image")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="per-node timeout (seconds)")


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet import ssh
    from fleet.kraken.pull import PullResult, pull_nodes, summarize

    site = options.load(args)
    kraken = kraken_settings(site)
    if not (args.rack or args.nodes or args.all):
        raise UsageError("no nodes selected", hint="pass --rack 12-15, --nodes a,b or --all")
    concurrency = args.concurrency if args.concurrency is not None else kraken.pull_concurrency
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1", hint="pass a positive number")
    nodes = options.select(args, site)
    if args.dry_run:
        console.print(f"would pull {args.image} on {len(nodes)} node(s), {concurrency} at a time, through the agent "
                      f"on port {kraken.ports['agent_registry']}: {', '.join(n.hostname for n in nodes)}")
        return options.EXIT_OK
    addresses = {node.hostname: node.address for node in nodes}
    with Progress(TextColumn("pull {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[failed]} failed"), console=console, disable=args.json) as progress:
        task = progress.add_task(args.image, total=len(nodes), failed=0)
        failures = 0

        def done(result: PullResult) -> None:
            nonlocal failures
            failures += 0 if result.ok else 1
            progress.update(task, advance=1, failed=failures)

        results = pull_nodes(list(addresses), addresses.__getitem__, image=args.image,
                             port=kraken.ports["agent_registry"], concurrency=concurrency, platform=args.platform,
                             timeout_s=args.timeout, ssh_options=ssh.options(site), on_done=done)
    summary = summarize(args.image, results)
    if args.json:
        print(json.dumps({"site": site.name, **summary}, indent=2))
    else:
        table = Table(title=f"{site.name}: {args.image} on {len(results)} node(s)", title_justify="left")
        for column in ("node", "result", "digest", "seconds", "bytes"):
            table.add_column(column, overflow="fold")
        for r in results:
            table.add_row(r.node, "[green]pulled[/]" if r.ok else f"[red]FAILED[/] {r.error}", r.digest or "-",
                          f"{r.seconds:.1f}", f"{r.bytes:,}" if r.ok else "-")
        console.print(table)
        if len(summary["digests"]) > 1:
            console.print(f"[yellow]nodes disagree on the digest: {', '.join(summary['digests'])}[/]")
    return options.EXIT_FAILED if summary["summary"]["failed"] else options.EXIT_OK
