"""`provision.py health`: sweep the checks over the selected nodes; learn the dmesg baseline.

    provision.py health --rack 12 [--quarantine] [--json]
    provision.py health --all
    provision.py health baseline --from gpu-012-01,gpu-012-02 [--out PATH]

`--quarantine` tags CRITICAL nodes in MAAS and marks them quarantined in the state DB, journaled
first; it never powers anything off (draining and repair are for people, with the reason in hand).
It takes each node's lock as bring-up and reimage do (a node another run holds is left to it and
named), and one failed MAAS call never stops the others: every node's outcome is reported.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fleet.commands import options
from fleet.errors import FleetError, LockError, UsageError
from fleet.health import NodeHealth, decide_fleet, fetch_kernel_logs, learn_fleet_baseline, to_json, to_rows
from fleet.site import Site, resolve_credentials
from fleet.state import StateDB
from fleet.validate import sweep_site

HELP = "sweep the health checks; learn the dmesg baseline"
QUARANTINE_TAG = "fleet-quarantined"
FAILING = ("CRITICAL", "UNKNOWN", "UNREACHABLE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("action", nargs="?", choices=("check", "baseline"), default="check",
                        help="check (default) or learn the dmesg baseline")
    parser.add_argument("--all", action="store_true", help="every node of the site")
    parser.add_argument("--quarantine", action="store_true",
                        help="tag CRITICAL nodes in MAAS and the state DB (never powers anything off)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per-node timeout (seconds)")
    parser.add_argument("--parallel", type=int, default=32, metavar="N", help="nodes checked at once")
    parser.add_argument("--from", dest="good", action="extend", type=options.comma_list, default=[], metavar="A,B",
                        help="baseline: known-good nodes to learn from")
    parser.add_argument("--out", type=Path, help="baseline: file to write (default: dmesg-baseline.json "
                        "beside the site file)")


def run(args: argparse.Namespace, console: Console) -> int:
    site = options.load(args)
    if args.action == "baseline":
        options.select(args, site, args.good)  # unknown names are bad input before anything is contacted
        return _baseline(args, site, console)
    if not (args.rack or args.nodes or args.all):
        raise UsageError("no nodes selected", hint="pass --rack 12, --nodes a,b or --all")
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


def _baseline(args: argparse.Namespace, site: Site, console: Console) -> int:
    from fleet import ssh
    from healthcheck.kernlog import save_baseline

    good = args.good
    unknown = [name for name in good if name not in site.nodes]
    if not good or unknown:
        raise UsageError(f"baseline needs known-good nodes of the site (unknown: {', '.join(unknown) or '-'})",
                         hint="pass --from gpu-012-01,gpu-012-02")
    addresses = {name: site.nodes[name].address for name in good}
    logs, errors = fetch_kernel_logs(good, addresses.__getitem__, timeout_s=args.timeout, ssh_options=ssh.options(site))
    for name, why in errors.items():
        console.print(f"[red]{name}[/]: {why}")
    if not logs:
        return options.EXIT_FAILED
    baseline = learn_fleet_baseline(logs)
    out = args.out or site.path.parent / "dmesg-baseline.json"
    save_baseline(baseline, out)
    console.print(f"baseline from {len(logs)} node(s) written to {out}")
    return options.EXIT_OK if not errors else options.EXIT_FAILED
