"""Command line: `provision.py [up] --rack 12 | status | reimage NODE... | health | lab ...`.

Exit codes are a contract scripts rely on: 0 every selected node reached the target, 1 some did not,
2 bad input (and then nothing was touched). Parsing and validation happen before any state is
opened or any service contacted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from fleet import render
from fleet.errors import FleetError, InventoryError, LockError, UsageError
from fleet.inventory import Node, Site, load_site, select_nodes
from fleet.state import StateDB
from fleet.workflow import Workflow, plan

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SITE = REPO / "inventory" / "lab" / "site.yml"
VERBS = ("up", "status", "reimage", "health", "lab")
log = logging.getLogger("fleet")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE, help="site inventory (default: the built-in lab)")
    parser.add_argument("--rack", action="append", default=[], metavar="N|A-B", help="rack(s), repeatable: 12, 12-15")
    parser.add_argument("--nodes", action="append", default=[], metavar="A,B", help="node names, comma-separated")
    parser.add_argument("--state-dir", type=Path, help="state DB directory (default: the lab dir for the lab site, "
                        "else .state/<site> in the repo; env FLEET_STATE_DIR)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every library event")


def _run_options(parser: argparse.ArgumentParser) -> None:
    from fleet.stages import STAGE_NAMES

    parser.add_argument("--until", choices=STAGE_NAMES, default=STAGE_NAMES[-1], help="last stage to run")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")
    parser.add_argument("--json-report", type=Path, metavar="PATH", help="write the run report as JSON")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--insecure-bmc", action="store_true", help="do not verify BMC TLS certificates (explicit)")
    parser.add_argument("--bmc-requests", type=int, default=64, metavar="N", help="BMC requests in flight, fleet-wide")
    parser.add_argument("--maas-deploys", type=int, default=128, metavar="N", help="MAAS deployments at once")
    parser.add_argument("--retry-quarantined", action="store_true", help="retry quarantined nodes from their stage")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND:TARGET[:RATE]",
                        help="lab only: inject a fault when starting the lab (see `provision.py lab up -h`)")


def build_parser(verb: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"provision.py {verb}" if verb != "up" else "provision.py",
                                     description=__doc__.splitlines()[0])
    _common(parser)
    if verb in ("up", "reimage"):
        _run_options(parser)
    if verb == "reimage":
        parser.add_argument("names", nargs="*", metavar="NODE", help="nodes to reimage (required)")
        parser.add_argument("--force", action="store_true", help="reimage even nodes that look in use")
        parser.add_argument("--erase", action="store_true", help="erase disks when releasing")
    if verb == "status":
        parser.add_argument("--status", dest="only", action="append", default=[], help="only nodes in this state")
    if verb == "health":
        from fleet.healthcmd import add_arguments

        add_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    if argv and argv[0] == "lab":
        return subprocess.call([sys.executable, "-m", "lab", *argv[1:]], cwd=REPO)
    verb = argv[0] if argv and argv[0] in VERBS else "up"
    rest = argv[1:] if argv and argv[0] in VERBS else argv
    args = build_parser(verb).parse_args(rest)
    handler = logging.StreamHandler()
    handler.setFormatter(NodeFormatter("%(asctime)s %(levelname)s %(name)s %(node)s%(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    console = Console(stderr=True, soft_wrap=True)
    try:
        site, nodes = _load(args, verb)
        return COMMANDS[verb](args, site, nodes, console)
    except (InventoryError, UsageError) as err:
        console.print(str(err), markup=False, highlight=False)
        return 2
    except LockError as err:
        console.print(f"refused: {err}", markup=False, highlight=False)
        return 2
    except FleetError as err:
        console.print(f"error: {err}", markup=False, highlight=False)
        return 1


class NodeFormatter(logging.Formatter):
    """Library records carry the node name (LoggerAdapter extra); records without one print none."""

    def format(self, record: logging.LogRecord) -> str:
        node = getattr(record, "node", "")
        record.node = f"{node} " if node and not str(node).endswith(" ") else node
        return super().format(record)


def _load(args: argparse.Namespace, verb: str) -> tuple[Site, list[Node]]:
    site = load_site(args.site)
    names = [name.strip() for text in args.nodes for name in text.split(",") if name.strip()]
    names += getattr(args, "names", [])
    if verb == "reimage" and not names:
        raise UsageError("reimage needs the nodes named explicitly", hint="provision.py reimage gpu-012-03 [...]")
    if verb == "up" and not (args.rack or names):
        raise UsageError("no nodes selected", hint="pass --rack 12 (or 12-15) and/or --nodes gpu-012-01,gpu-012-02")
    if verb == "health" and args.action == "baseline":
        names += [name.strip() for text in args.good for name in text.split(",") if name.strip()]
    elif verb == "health" and not (args.rack or names or args.all):
        raise UsageError("no nodes selected", hint="pass --rack 12, --nodes a,b or --all")
    if verb == "reimage" and args.rack:
        raise UsageError("reimage takes node names, not racks", hint="name each node: reimage gpu-012-01 gpu-012-02")
    if verb == "up" and site.lab is None and args.fault:
        raise UsageError("--fault only applies to the lab site", hint="drop --fault or use the lab site")
    try:
        nodes = select_nodes(site, args.rack, names) if (args.rack or names) else list(site.nodes.values())
    except ValueError as err:
        raise UsageError(str(err), hint="check --rack/--nodes against the site inventory") from None
    for flag in ("bmc_requests", "maas_deploys"):
        if getattr(args, flag, 1) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1", hint="pass a positive number")
    return site, nodes


def state_dir(args: argparse.Namespace, site: Site) -> Path:
    if args.state_dir:
        return args.state_dir
    if os.environ.get("FLEET_STATE_DIR"):
        return Path(os.environ["FLEET_STATE_DIR"])
    if site.lab is not None:
        return site.lab.state_dir / "state"
    return REPO / ".state" / site.name


def open_state(args: argparse.Namespace, site: Site) -> StateDB:
    return StateDB(state_dir(args, site) / "state.db")


def ensure_lab(site: Site, faults: list[str]) -> None:
    """The lab site starts its own lab when it is not up (idempotent, ~0.3 s when it is)."""
    if site.lab is None:
        return
    argv = [sys.executable, "-m", "lab", "--site", str(site.path), "up"]
    for spec in faults:
        argv += ["--fault", spec]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FleetError("the lab did not start", service_message=result.stderr.strip()[-1500:],
                         hint="run `python provision.py lab up` to see why")


def cmd_up(args: argparse.Namespace, site: Site, nodes: list[Node], console: Console, *,
           reimage: bool = False) -> int:
    from fleet import stages

    order = stages.order(reimage=reimage)
    if args.dry_run:
        return _print_plan(args, site, nodes, order)
    ensure_lab(site, args.fault)
    db = open_state(args, site)
    command = " ".join(["provision.py", *sys.argv[1:]])
    db.acquire([n.hostname for n in nodes], command)
    try:
        if args.retry_quarantined:
            _requeue(db, nodes, order)
        progress = render.StageProgress(order, len(nodes), console, verbose=args.verbose)
        with progress, stages.build(site, args, reimage=reimage, progress=progress) as pipeline:
            return _run(args, site, nodes, db, pipeline, progress, console)
    finally:
        db.release([n.hostname for n in nodes])


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
    flow = Workflow(pipeline, db, args.until, progress)
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
    return 0 if all(row["status"] == "done" for row in rows) else 1


def _summary(rows: list[dict]) -> dict[str, int]:
    summary: dict[str, int] = {}
    for row in rows:
        summary[row["status"]] = summary.get(row["status"], 0) + 1
    return summary


def _print_plan(args: argparse.Namespace, site: Site, nodes: list[Node], order: list[str]) -> int:
    """Dry run: read the recorded state (never create it) and say what each node would do."""
    path = state_dir(args, site) / "state.db"
    db = StateDB(path) if path.exists() else None
    rows = []
    for node in nodes:
        state = db.node(node.hostname) if db else None
        todo: list[str] = []
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
    return 0


def cmd_reimage(args: argparse.Namespace, site: Site, nodes: list[Node], console: Console) -> int:
    from fleet.usage import in_use

    if args.dry_run:
        return cmd_up(args, site, nodes, console, reimage=True)
    busy = {} if args.force else {node.hostname: why for node in nodes if (why := in_use(site, node))}
    if busy:
        listed = "; ".join(f"{name}: {why}" for name, why in busy.items())
        raise UsageError(f"refusing to reimage node(s) that look in use ({listed})",
                         hint="drain them first, or pass --force if you are sure")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("reimage needs confirmation", hint="pass --yes when running non-interactively")
        answer = input(f"Reimage {', '.join(n.hostname for n in nodes)}? This releases and reinstalls them. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console.print("nothing done")
            return 2
    db = open_state(args, site)
    for node in nodes:
        db.journal(node.hostname, "", "reimage_requested", erase=args.erase, force=args.force)
        db.new_generation(node.hostname)
    db.close()
    return cmd_up(args, site, nodes, console, reimage=True)


def cmd_status(args: argparse.Namespace, site: Site, nodes: list[Node], console: Console) -> int:
    path = state_dir(args, site) / "state.db"
    db = StateDB(path) if path.exists() else None
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
    return 0


def cmd_health(args: argparse.Namespace, site: Site, nodes: list[Node], console: Console) -> int:
    from fleet.healthcmd import run

    return run(args, site, nodes, console, open_state)


COMMANDS = {"up": cmd_up, "status": cmd_status, "reimage": cmd_reimage, "health": cmd_health}
