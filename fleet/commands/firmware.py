"""`provision.py firmware plan|apply --rack N`: firmware against the site's pins, by component, through the iDRAC.

    provision.py firmware plan --rack 12 [--json]     what each node needs (reads FirmwareInventory only)
    provision.py firmware apply --rack 12 [--yes]     update: one component at a time per node, at most
                                                      firmware.max_parallel nodes at once

Images come from `firmware.repository` and are checked against their pinned sha256 first. Each job is
followed to its end within `timeouts.firmware_job_s` (30 minutes). A node without an OS, or one named
with --nodes, is reset when a job needs POST; others keep the job scheduled for their next reboot.
A failed update stops that node's other updates and quarantines it with the job's message and its
newest critical/warning SEL and Lifecycle log entries. HCA firmware the iDRAC cannot update is
listed with the node-side tool (mlxfwmanager) and the doca_ofed task that applies it.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from fleet.commands import options
from fleet.errors import FleetError, UsageError

HELP = "firmware plan|apply: update components to the site's pins through the iDRAC"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("plan", "apply"), help="plan: show what each node needs; apply: do it")
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("--yes", action="store_true", help="apply without asking")
    parser.add_argument("--insecure-bmc", action="store_true", help="do not verify BMC TLS certificates (explicit)")
    parser.add_argument("--bmc-requests", type=int, default=64, metavar="N", help="BMC requests in flight, fleet-wide")


def run(args: argparse.Namespace, console: Console) -> int:
    site = options.load(args)
    if not (args.rack or args.nodes):
        raise UsageError("no nodes selected", hint="pass --rack 12 and/or --nodes gpu-012-01")
    if not site.firmware.components:
        raise UsageError(f"{site.path}: firmware.components: the site pins no firmware",
                         hint="add firmware: {components: {bios: {version: ..., image: ..., sha256: ...}}}")
    options.at_least_one(args, "bmc_requests")
    nodes = options.select(args, site)
    from fleet.commands.up import before_run
    from fleet.dell import firmware
    from fleet.redfish import BmcPool

    before_run(site, [])
    pool = BmcPool(site, max_requests=args.bmc_requests, insecure=args.insecure_bmc)
    plans, errors = {}, {}
    with ThreadPoolExecutor(max_workers=min(32, len(nodes))) as workers:
        reads = {node.hostname: workers.submit(firmware.read_inventory, pool.client(node)) for node in nodes}
    for name, read in reads.items():
        try:
            statuses = firmware.compliance(site.firmware.components, read.result())
            plans[name] = firmware.plan_node(name, site.firmware.components, statuses)
        except FleetError as err:
            errors[name] = str(err)
    if args.action == "plan":
        return _show_plan(args, site.name, plans, errors, console)
    return _apply(args, site, nodes, pool, plans, errors, console)


def _plan_rows(plans: dict, errors: dict[str, str]) -> list[dict[str, Any]]:
    rows = [{"hostname": name, "steps": [asdict(step) | {"describe": step.describe()} for step in plan.steps],
             "problems": list(plan.problems)} for name, plan in plans.items()]
    rows += [{"hostname": name, "steps": [], "problems": [error]} for name, error in errors.items()]
    return sorted(rows, key=lambda row: row["hostname"])


def _show_plan(args: argparse.Namespace, site_name: str, plans: dict, errors: dict[str, str],
               console: Console) -> int:
    rows = _plan_rows(plans, errors)
    if args.json:
        print(json.dumps({"site": site_name, "nodes": rows}, indent=2))
    else:
        table = Table(title=f"{site_name}: firmware plan for {len(rows)} node(s)")
        for column in ("node", "updates", "problems"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["hostname"], "\n".join(step["describe"] for step in row["steps"]) or "at the pins",
                          "\n".join(row["problems"]))
        console.print(table)
    return options.EXIT_FAILED if errors else options.EXIT_OK


def _apply(args: argparse.Namespace, site: Any, nodes: list, pool: Any, plans: dict, errors: dict[str, str],
           console: Console) -> int:
    from fleet.dell import jobs
    from fleet.dell.hooks import quarantine_evidence
    from fleet.dell.update import ImageStore, NodeOutcome, apply_node
    from fleet.maas import MaasClient, NodeStatus
    from fleet.maas.decide import foreign_owner
    from fleet.site import resolve_credentials
    from fleet.usage import in_use
    from fleet.workflow import NodeContext

    todo = [node for node in nodes if node.hostname in plans and plans[node.hostname].bmc_steps]
    question = f"Update firmware on {len(todo)} node(s)? Nodes without an OS may be rebooted."
    if todo and not args.yes and not options.confirm("firmware apply", question, console):
        return options.EXIT_USAGE
    db = options.open_state(args, site)
    maas = MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls) if todo else None
    named = set(args.nodes)
    images = ImageStore(site.firmware)
    evidence = quarantine_evidence(pool)
    command = " ".join(["provision.py", *sys.argv[1:]])
    db.acquire([n.hostname for n in todo], command)

    def one(node: Any) -> NodeOutcome:
        state = db.node(node.hostname)
        ctx = NodeContext(node, db, state.generation, "firmware")
        ctx.journal("firmware:requested", steps=[step.describe() for step in plans[node.hostname].steps])

        def may_reboot() -> jobs.RebootDecision:
            assert maas is not None
            machine = maas.lookup(node)  # None: MAAS does not know it yet, a new rack's server with no OS
            has_os = machine is not None and machine.status in (NodeStatus.DEPLOYED, NodeStatus.DEPLOYING)
            selected = node.hostname in named
            return jobs.decide_reboot(has_os=has_os, selected=selected, owner=foreign_owner(machine, maas.whoami()),
                                      busy=in_use(site, node) if has_os and selected else "")
        try:
            outcome = apply_node(pool.client(node), plans[node.hostname], ctx, site.firmware, images,
                                 may_reboot=may_reboot, timeouts=site.timeouts)
        except FleetError as err:
            outcome = NodeOutcome(node.hostname, "failed", str(err))
        if outcome.status == "quarantined":
            outcome.evidence |= evidence(node)
            db.update(node.hostname, status="quarantined", current="firmware", last_error=outcome.detail)
        ctx.journal(f"firmware:{outcome.status}", detail=outcome.detail, evidence=outcome.evidence)
        return outcome

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(site.firmware.max_parallel, len(todo) or 1))) as workers:
            outcomes = list(workers.map(one, todo))
    finally:
        db.release([n.hostname for n in todo])
        if maas is not None:
            maas.close()
        db.close()
    done = {o.node: o for o in outcomes}
    rows = []
    for row in _plan_rows(plans, errors):
        outcome = done.get(row["hostname"])
        status = outcome.status if outcome else ("failed" if row["hostname"] in errors else "done")
        node_side = [step["describe"] for step in row["steps"] if step["how"] == "node"]
        rows.append({"hostname": row["hostname"], "status": status,
                     "detail": outcome.detail if outcome else "; ".join(row["problems"]) or "at the pins",
                     "node_side": node_side, "evidence": outcome.evidence if outcome else {}})
    if args.json:
        print(json.dumps({"site": site.name, "nodes": rows}, indent=2))
    else:
        table = Table(title=f"{site.name}: firmware apply on {len(rows)} node(s)")
        for column in ("node", "status", "detail", "on the node"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["hostname"], row["status"], row["detail"], "\n".join(row["node_side"]))
        console.print(table)
    return options.EXIT_OK if all(row["status"] == "done" for row in rows) else options.EXIT_FAILED
