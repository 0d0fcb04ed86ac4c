"""`provision.py kraken check --rack 12 [--image team/trainer:2024.11]`: is Kraken serving on the selected nodes.

On each node, over SSH (the agent serves only loopback and docker's bridge): the agent's registry answers
`/v2/`; with `--image`, the tag resolves through the agent to the digest the site's reference registry
gives for it; the agent's disk cache is under `kraken.agent.cache_limit_gb` and its filesystem below the
agent's aggressive-cleanup threshold. The tracker's Redis (`kraken.redis`) must answer PING. Prints the
nodes that fail and why; exit 1 when any node or the Redis fails. Reads only: nothing on a node changes.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from fleet.commands import options
from fleet.errors import UsageError
from fleet.site import Site
from fleet.site.kraken import KrakenSettings

HELP = "check the Kraken agents on the selected nodes (registry API, image digest, cache limit)"
CACHE_DIR = "/var/cache/kraken/kraken-agent"  # Kraken's config/agent/base.yaml store + nginx dirs live under it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("action", choices=("check",), help="check (the only action)")
    parser.add_argument("--all", action="store_true", help="every node of the site")
    parser.add_argument("--image", metavar="REPO:TAG",
                        help="an image tag every agent must resolve to the reference registry's digest")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per-node timeout (seconds)")
    parser.add_argument("--parallel", type=int, default=32, metavar="N", help="nodes checked at once")


def kraken_settings(site: Site) -> KrakenSettings:
    if site.kraken is None:
        raise UsageError(f"site {site.path} has no kraken: section",
                         hint="add one (see inventory/example-production/site.yml and fleet/site/kraken.py)")
    return site.kraken


def reference_verify(site: Site) -> bool | str:
    tls = kraken_settings(site).reference_tls
    return str(tls.ca_file) if tls.verify and tls.ca_file else tls.verify


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet import ssh
    from fleet.kraken.check import Limits, check_nodes, redis_answers
    from fleet.kraken.reference import resolve_digest

    site = options.load(args)
    kraken = kraken_settings(site)
    options.at_least_one(args, "parallel")
    if not (args.rack or args.nodes or args.all):
        raise UsageError("no nodes selected", hint="pass --rack 12, --nodes a,b or --all")
    nodes = options.select(args, site)
    expected = None
    if args.image:
        expected = resolve_digest(kraken.reference_registry, args.image, verify=reference_verify(site))
    redis = [(address, redis_answers(address)) for address in kraken.redis]
    addresses = {node.hostname: node.address for node in nodes}
    results = check_nodes(
        list(addresses), addresses.__getitem__, port=kraken.ports["agent_registry"], image=args.image,
        expected_digest=expected, limits=Limits(kraken.cache_limit_bytes, kraken.cache_aggressive_threshold_pct),
        cache_dir=CACHE_DIR, parallel=args.parallel, timeout_s=args.timeout, ssh_options=ssh.options(site),
    )  # fmt: skip
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps({
            "site": site.name, "image": args.image, "digest": expected,
            "redis": [{"address": a, "ok": why is None, "error": why or ""} for a, why in redis],
            "summary": {"ok": len(results) - len(failed), "failed": len(failed)},
            "nodes": [{"node": r.node, "ok": r.ok, "reasons": list(r.reasons), "digest": r.digest,
                       "cache_bytes": r.cache_bytes, "seconds": r.seconds} for r in results],
        }, indent=2))  # fmt: skip
    else:
        for address, why in redis:
            console.print(f"tracker Redis {address}: " + ("[green]PONG[/]" if why is None else f"[red]{why}[/]"))
        if expected:
            console.print(f"{args.image} is {expected} at {kraken.reference_registry}")
        title = f"{site.name}: Kraken on {len(results)} node(s), {len(failed)} failing"
        table = Table(title=title, title_justify="left")
        for column in ("node", "verdict", "why", "cache"):
            table.add_column(column, overflow="fold")
        for r in sorted(results, key=lambda r: (r.ok, r.node)):
            cache = f"{r.cache_bytes / 1e9:.2f} GB" if r.cache_bytes is not None else "-"
            table.add_row(r.node, "[green]ok[/]" if r.ok else "[red]FAILED[/]", "; ".join(r.reasons), cache)
        console.print(table)
    return options.EXIT_FAILED if failed or any(why for _a, why in redis) else options.EXIT_OK
