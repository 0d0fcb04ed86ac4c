"""`provision.py [up] --rack 12`: bring the selected nodes from power-off to the target stage (the default verb).

    provision.py --rack 12                  # also: --rack 12-15, --nodes a,b, --until os
    provision.py --rack 12 --dry-run        # the plan, touching nothing

Every stage checks the real world first and is recorded in the state DB, so running the same
command again resumes (also after kill -9) and never repeats a completed destructive step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from fleet import preflight, render, stages
from fleet.commands import options
from fleet.errors import FleetError, UsageError
from fleet.site import Node, Site
from fleet.state import StateDB
from fleet.workflow import Workflow, plan

HELP = "bring nodes up to a stage (the default verb)"
# More requests in flight than this from one ops host answered no sooner in a 1,280-node bring-up: the node
# threads only contended for the GIL and the kernel (bench/README "Scale, tenth pass").
BMC_REQUESTS = 64
MAAS_DEPLOYS = 128


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_selection(parser)
    options.add_json(parser)
    add_run_options(parser)
    parser.add_argument("--fault", action="append", default=[], metavar="KIND:TARGET[:RATE]",
                        help="passed to the site's before_run command: the lab site injects it when starting "
                        "the lab (see `provision.py lab up -h`)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """What a run through the stages takes (up and reimage)."""
    parser.add_argument("--until", choices=stages.NAMES, default=stages.DEFAULT_UNTIL,
                        help="last stage to run (default %(default)s; burnin is optional and runs only when named)")
    options.add_dry_run(parser)
    parser.add_argument("--json-report", type=Path, metavar="PATH", help="write the run report as JSON")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--insecure-bmc", action="store_true", help="do not verify BMC TLS certificates (explicit)")
    parser.add_argument("--bmc-requests", type=int, default=BMC_REQUESTS, metavar="N",
                        help="BMC requests in flight, fleet-wide")
    parser.add_argument("--maas-deploys", type=int, default=MAAS_DEPLOYS, metavar="N", help="MAAS deployments at once")
    parser.add_argument("--retry-quarantined", action="store_true", help="retry quarantined nodes from their stage")


def run(args: argparse.Namespace, console: Console) -> int:
    site = options.load(args)
    if not (args.rack or args.nodes):
        raise UsageError("no nodes selected", hint="pass --rack 12 (or 12-15) and/or --nodes gpu-012-01,gpu-012-02")
    if args.fault and not site.before_run:
        raise UsageError("--fault only applies to the lab site", hint="drop --fault or use the lab site")
    nodes = options.select(args, site)
    options.at_least_one(args, "bmc_requests", "maas_deploys")
    return bring_up(args, site, nodes, console)


def bring_up(args: argparse.Namespace, site: Site, nodes: list[Node], console: Console, *,
             reimage: bool = False, prepare: Callable[[StateDB], None] | None = None) -> int:
    """Walk the nodes through the stages (with `release` first for a reimage); the dry run only prints the plan.

    `prepare` runs once every node's lock is held and before any stage (reimage starts the new
    generation there: never under another run's feet).
    """
    order = stages.order(reimage=reimage, until=args.until)
    if args.dry_run:
        return _print_plan(args, site, nodes, order, reimage=reimage)
    before_run(site, getattr(args, "fault", []))
    db = options.open_state(args, site)
    command = " ".join(["provision.py", *sys.argv[1:]])
    db.acquire([n.hostname for n in nodes], command)
    try:
        maas_user = preflight.check(site, nodes)  # secrets and MAAS (and who we are in it), before anything is touched
        if prepare is not None:
            prepare(db)
        if args.retry_quarantined:
            _requeue(db, nodes, order)
        progress = render.StageProgress(order, len(nodes), console, verbose=args.verbose)
        with progress, stages.build(site, stages.RunLimits.of(args), reimage=reimage, progress=progress,
                                        maas_user=maas_user) as pipeline:
            return _run(args, site, nodes, db, pipeline, progress, console)
    finally:
        db.release([n.hostname for n in nodes])


def before_run(site: Site, faults: list[str]) -> None:
    """The site's `before_run` command, with each --fault passed on (the lab site starts its lab: ~0.3 s when up)."""
    if not site.before_run:
        return
    words = {"{python}": sys.executable, "{site}": str(site.path)}
    argv = [words.get(word, word) for word in site.before_run]
    for spec in faults:
        argv += ["--fault", spec]
    result = subprocess.run(argv, cwd=options.REPO, capture_output=True, text=True, check=False)
    if result.returncode == options.EXIT_USAGE:  # it refused its input (the lab: its own section): nothing touched
        raise UsageError(result.stderr.strip()[-1500:] or f"the site's before_run command refused ({argv[1:]})")
    if result.returncode != 0:
        raise FleetError(f"the site's before_run command failed ({' '.join(argv[1:])})",
                         service_message=result.stderr.strip()[-1500:], hint="run it by hand to see why")


def _requeue(db: StateDB, nodes: list[Node], order: list[str]) -> None:
    """Quarantined nodes resume at the stage that failed; one quarantined by a health sweep is validated again."""
    for node in nodes:
        state = db.node(node.hostname)
        if state.status != "quarantined":
            continue
        db.journal(node.hostname, "", "requeued", reason="--retry-quarantined", at=state.current)
        fields: dict[str, object] = {"status": "running", "attempts": 0}
        if state.current not in order and "validate" in order:
            fields["stage"] = order[order.index("validate") - 1]
        db.update(node.hostname, **fields)


def _run(args: argparse.Namespace, site: Site, nodes: list[Node], db: StateDB, pipeline: list,
         progress: render.StageProgress, console: Console) -> int:
    started = time.time()
    flow = Workflow(pipeline, db, args.until, progress, backoff_s=site.timeouts.stage_backoff_s,
                    on_quarantine=getattr(pipeline, "on_quarantine", None))
    try:
        outcomes = flow.run(nodes)
    except KeyboardInterrupt:
        flow.stop()
        raise
    progress.stop()  # the summary prints below the bars, not between them
    rows = [asdict(o) for o in outcomes]
    report = {"site": site.name, "run_id": db.run_id, "until": args.until, "started": started,
              "finished": time.time(), "nodes": rows, "summary": _summary(rows)}
    if args.json_report:
        args.json_report.parent.mkdir(parents=True, exist_ok=True)
        args.json_report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        console.print(render.node_table(rows, f"{site.name}: {len(rows)} node(s), target stage {args.until}"))
        if details := render.failures(rows):
            console.print(details, markup=False, highlight=False)
        console.print(f"{render.counts_line(rows)} in {time.time() - started:.1f}s")
    return options.EXIT_OK if all(row["status"] == "done" for row in rows) else options.EXIT_FAILED


def _summary(rows: list[dict]) -> dict[str, int]:
    summary: dict[str, int] = {}
    for row in rows:
        summary[row["status"]] = summary.get(row["status"], 0) + 1
    return summary


def _print_plan(args: argparse.Namespace, site: Site, nodes: list[Node], order: list[str], *,
                reimage: bool = False) -> int:
    """Dry run: read the recorded state (never create it) and say what each node would do.

    A reimage starts a new generation whatever the node's record says, so its plan is every stage.
    """
    db = options.existing_state(args, site)
    rows = []
    for node in nodes:
        state = db.node(node.hostname) if db else None
        todo: list[str] = []
        if reimage:
            todo = order[: order.index(args.until) + 1]
            was = f", now {state.status} at {state.stage or '-'}" if state is not None and state.stage else ""
            rows.append({"hostname": node.hostname, "stages": todo,
                         "note": f"(new generation {(state.generation if state else 1) + 1}{was})"})
            continue
        if state is not None and state.status != "quarantined":
            done_at = order.index(state.stage) if state.stage in order else -1
            todo = order[done_at + 1: order.index(args.until) + 1]
        elif state is None:
            todo = order[: order.index(args.until) + 1]
        why = plan(state, order, args.until).reason if state is not None and not todo else ""
        rows.append({"hostname": node.hostname, "stages": todo, "note": why})
    if args.json:
        print(json.dumps({"site": site.name, "until": args.until, "plan": rows}, indent=2))
    else:
        for row in rows:
            print(f"{row['hostname']}: {' -> '.join(row['stages']) or 'nothing to do'} {row['note']}".rstrip())
        print(f"dry run: {len(rows)} node(s), nothing was touched")
    return options.EXIT_OK
