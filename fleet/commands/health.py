"""`provision.py health`: sweep the checks over the selected nodes; relearn the dmesg baseline.

    provision.py health --rack 12 [--quarantine] [--json]
    provision.py health --all
    provision.py health baseline [--rack 12 | --nodes a,b] [--dry-run] [--json]

`--quarantine` tags CRITICAL nodes in MAAS and marks them quarantined in the state DB, journaled
first; it never powers anything off (draining and repair are for people, with the reason in hand).
It takes each node's lock as bring-up and reimage do (a node another run holds is left to it and
named), and one failed MAAS call never stops the others: every node's outcome is reported.

Every sweep judges each node's kernel log against the site's dmesg baseline in the state dir
(fleet/baseline.py). `baseline` relearns it from the validated nodes (of the selection; default all)
that pass every other check now, with the same rule as day one (templates seen on at least
`health.baseline_min_nodes` of them), shows the templates added and removed, and saves it (the
learning set with it) unless `--dry-run`. `--json`: `{file, saved, dry_run, learned_from, need,
templates, added, removed, skipped: [{node, reason}]}`; exit 1 when too few nodes qualify.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from fleet import ssh
from fleet.commands import options
from fleet.errors import FleetError, LockError, UsageError
from fleet.health import NodeHealth, decide_fleet, fetch_templates, to_json, to_rows
from fleet.site import Node, Site, resolve_credentials
from fleet.state import StateDB
from fleet.validate import sweep_site

HELP = "sweep the health checks; relearn the dmesg baseline"
QUARANTINE_TAG = "fleet-quarantined"
FAILING = ("CRITICAL", "UNKNOWN", "UNREACHABLE")
VALIDATED = ("validate", "burnin")  # stages a node has passed validate by


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    options.add_dry_run(parser)
    parser.add_argument("action", nargs="?", choices=("check", "baseline"), default="check",
                        help="check (default), or relearn the dmesg baseline from the validated nodes")
    parser.add_argument("--all", action="store_true", help="every node of the site")
    parser.add_argument("--quarantine", action="store_true",
                        help="tag CRITICAL nodes in MAAS and the state DB (never powers anything off)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per-node timeout (seconds)")
    parser.add_argument("--parallel", type=int, default=32, metavar="N", help="nodes checked at once")


def run(args: argparse.Namespace, console: Console) -> int:
    site = options.load(args)
    if args.action == "baseline":
        return _baseline(args, site, console)
    if not (args.rack or args.nodes or args.all):
        raise UsageError("no nodes selected", hint="pass --rack 12, --nodes a,b or --all")
    if args.dry_run and args.quarantine:
        raise UsageError("--dry-run applies to health baseline; a sweep without --quarantine changes nothing",
                         hint="drop --quarantine to see the verdicts only")
    nodes = options.select(args, site)
    results = sweep_site(site, nodes, timeout_s=args.timeout, parallel=args.parallel)
    decision = decide_fleet(results)
    problems: dict[str, str] = {}
    if args.quarantine and decision.quarantine:
        problems = _quarantine(site, options.open_state(args, site), dict(decision.quarantine), console)
    if args.json:
        print(json.dumps(to_json(results, decision), indent=2))
    else:
        console.print(_table(results, site))
        counts = ", ".join(f"{n} {verdict}" for verdict, n in decision.counts.items())
        console.print(f"fleet verdict {decision.verdict}: {counts}")
    return options.EXIT_FAILED if problems or any(r.verdict in FAILING for r in results) else options.EXIT_OK


def _table(results: list[NodeHealth], site: Site) -> Table:
    table = Table(title=f"{site.name}: health of {len(results)} node(s)", title_justify="left")
    for column in ("node", "verdict", "reason", "who fixes it", "time"):
        table.add_column(column, overflow="fold")
    style = {"OK": "green", "WARNING": "yellow"}
    for row in to_rows(results):
        colour = style.get(row["verdict"], "red")
        table.add_row(row["node"], f"[{colour}]{row['verdict']}[/]", row["reason"], row["fix"],
                      f"{row['duration_s']}s")
    return table


def quarantine_nodes(db: StateDB, reasons: dict[str, str], tag: Callable[[str], None],
                     command: str) -> dict[str, str]:
    """Quarantine each node under its own lock: state first (journaled), then `tag(name)` in MAAS.

    Returns what went wrong per node (locked by another run, a MAAS call that failed); the others
    are quarantined regardless. Each lock is released as soon as its node is done.
    """
    problems: dict[str, str] = {}
    for name, reason in reasons.items():
        try:
            db.acquire([name], command)
        except LockError as err:
            problems[name] = f"not quarantined: {err}"
            continue
        try:
            db.journal(name, "health", "quarantine", reason=reason)
            db.update(name, status="quarantined", current="health", last_error=f"health: {reason}")
            tag(name)
        except FleetError as err:
            problems[name] = f"quarantined in the state DB, but the MAAS tag failed: {err}"
        finally:
            db.release([name])
    return problems


def _quarantine(site: Site, db: StateDB, reasons: dict[str, str], console: Console) -> dict[str, str]:
    """The quarantine of a sweep, reported node by node."""
    from fleet.maas import MaasClient  # python-libmaas loads in ~0.5 s: only when a sweep quarantines

    with MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls) as maas:
        def tag(name: str) -> None:
            maas.tag(name, maas.find_machine(site.nodes[name]), (QUARANTINE_TAG,))

        problems = quarantine_nodes(db, reasons, tag, "provision.py health --quarantine")
    done = [name for name in reasons if name not in problems or "MAAS tag failed" in problems[name]]
    console.print(f"quarantined {len(done)} node(s): {', '.join(done) or '-'} (MAAS tag {QUARANTINE_TAG})")
    for name, why in problems.items():
        console.print(f"{name}: {why}", markup=False, highlight=False)
    return problems


def validated_nodes(db: StateDB | None, nodes: list[Node]) -> list[Node]:
    """The nodes whose bring-up passed validate and that are in service (done, not quarantined since)."""
    if db is None:
        return []
    return [node for node in nodes if (state := db.node(node.hostname)).status == "done"
            and state.stage in VALIDATED]


def _baseline(args: argparse.Namespace, site: Site, console: Console) -> int:
    """Relearn the site's dmesg baseline from its validated nodes that pass every other check now."""
    from fleet import baseline

    db = options.existing_state(args, site)
    try:
        nodes = validated_nodes(db, options.select(args, site))
    finally:
        if db is not None:
            db.close()
    state_dir = baseline.site_state_dir(site)
    if not nodes:
        raise UsageError(f"health baseline: no validated nodes to learn from among the selected ones (state in "
                         f"{state_dir})", hint="bring nodes up to validate first (provision.py --rack N), or "
                         "select validated ones with --rack/--nodes")
    results = sweep_site(site, nodes, timeout_s=args.timeout, parallel=args.parallel)
    skipped = {r.node: f"{r.verdict}: {r.reason}" for r in results
               if not baseline.qualifies({c.name: c.verdict for c in r.checks})}
    good = [r.node for r in results if r.node not in skipped]
    addresses = {name: site.nodes[name].address for name in good}
    found, errors = fetch_templates(good, addresses.__getitem__, timeout_s=args.timeout, parallel=args.parallel,
                                    ssh_options=ssh.options(site))
    skipped.update(errors)
    learned = baseline.learn(found, site.health.baseline_min_nodes)
    old = baseline.current(state_dir)
    old_templates = old if isinstance(old, frozenset) else frozenset()
    added, removed = baseline.diff(old_templates, learned.baseline.templates) if learned.baseline else ([], [])
    saved = learned.baseline is not None and not args.dry_run
    if saved:
        baseline.replace(state_dir, found, learned.baseline)
    summary = {
        "file": str(baseline.baseline_file(state_dir)), "saved": saved, "dry_run": bool(args.dry_run),
        "learned_from": sorted(found), "need": learned.need,
        "templates": len(learned.baseline.templates) if learned.baseline else None,
        "added": added, "removed": removed,
        "skipped": [{"node": name, "reason": why} for name, why in sorted(skipped.items())],
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_relearn(summary, console)
    return options.EXIT_OK if learned.baseline is not None else options.EXIT_FAILED


def _print_relearn(summary: dict, console: Console) -> None:
    for row in summary["skipped"]:
        console.print(f"{row['node']}: not learned from ({row['reason']})", markup=False, highlight=False)
    if summary["templates"] is None:
        console.print(f"not enough nodes pass every other check to learn from: {len(summary['learned_from'])} of "
                      f"{summary['need']} needed; nothing saved", markup=False, highlight=False)
        return
    for template in summary["added"]:
        console.print(f"+ {template}", markup=False, highlight=False)
    for template in summary["removed"]:
        console.print(f"- {template}", markup=False, highlight=False)
    where = (f"dry run, not saved ({summary['file']})" if summary["dry_run"] else
             f"saved to {summary['file']}: sweeps judge against it now, the nodes' own timers once the "
             "healthcheck_agent role installs it (their next configure)")
    console.print(f"dmesg baseline from {len(summary['learned_from'])} node(s) ({', '.join(summary['learned_from'])}):"
                  f" {summary['templates']} templates, {len(summary['added'])} added, {len(summary['removed'])} "
                  f"removed; {where}", markup=False, highlight=False)
