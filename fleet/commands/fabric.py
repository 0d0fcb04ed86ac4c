"""`provision.py fabric check|export|triage|restore`: the InfiniBand fabric against the plan, through UFM.

    provision.py fabric check --rack 12 [--apply] [--json]   HCA ports, cables, switch links, pkeys
    provision.py fabric export [--out DIR]                   the plan as an ibdiagnet topology and UFM NDT CSV
    provision.py fabric triage [--apply] [--json]            ports to isolate, from events and counter deltas
    provision.py fabric restore PORT [PORT ...]              mark ports healthy (UFM name or switch/port)
    provision.py fabric switches [--switch A,B] [--apply]    switch configs (netmiko): diff, apply, save, verify

Nothing changes without `--apply`: `check --apply` adds the selected nodes' missing GUIDs to the
plan's pkeys, `triage --apply` isolates the proposed ports through UFM's unhealthy-ports API, at most
`fabric.max_isolated` in all (past it, triage refuses and says why: exit 2), `switches --apply` sends
each switch what its template adds to the running config, saves and reads it back. Every change is
journaled in the state DB before it is sent. `check` exits 1 when it found anything, `switches` when a
switch differs (without --apply) or failed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from fleet.commands import options
from fleet.errors import UsageError
from fleet.site import Node, Site

if TYPE_CHECKING:
    from fleet.fabric.run import Journal
    from fleet.fabric.ufm import UfmClient

HELP = "the InfiniBand fabric: check against the plan, export it, triage bad ports, restore ports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("check", "export", "triage", "restore", "switches"))
    parser.add_argument("ports", nargs="*", metavar="PORT", help="restore: UFM port names or switch/port")
    options.add_selection(parser)
    options.add_json(parser)
    parser.add_argument("--apply", action="store_true",
                        help="check: add missing pkey GUIDs; triage: isolate the proposed ports")
    parser.add_argument("--out", type=Path, help="export: directory to write to (default: beside the site file)")
    parser.add_argument("--switch", action="extend", type=options.comma_list, default=[], metavar="A,B",
                        help="switches: only these (default: every switch with a device_type)")
    parser.add_argument("--sample", type=float, metavar="S", help="triage: seconds between the counter snapshots "
                        "(default: the site's fabric.sample_s)")


def run(args: argparse.Namespace, console: Console) -> int:
    site = options.load(args)
    if site.fabric is None:
        raise UsageError(f"site '{site.name}' has no fabric: section", hint="add fabric: {topology: fabric.yml}")
    if args.ports and args.action != "restore":
        raise UsageError(f"fabric {args.action} takes no PORT arguments", hint="ports go with fabric restore")
    if args.action == "export":
        return _export(args, site, console)
    if args.action == "restore":
        return _restore(args, site, console)
    if args.action == "switches":
        return _switches(args, site, console)
    if args.sample is not None and args.sample < 0:
        raise UsageError("--sample must be 0 or more seconds", hint="pass e.g. --sample 720")
    nodes = options.select(args, site)  # bad selections are exit 2 before UFM is contacted
    from fleet.fabric.run import client_for

    client = client_for(site)
    if args.action == "check":
        return _check(args, site, nodes, client, console)
    return _triage(args, site, client, console)


def _journal(args: argparse.Namespace, site: Site) -> Journal:
    db = options.open_state(args, site)
    return lambda subject, event, detail: db.journal(subject, "fabric", event, **detail)


def _check(args: argparse.Namespace, site: Site, nodes: list[Node], client: UfmClient, console: Console) -> int:
    from fleet.fabric.run import check

    assert site.fabric is not None
    report = check(site.fabric.topology, nodes, client, apply=args.apply,
                   journal=_journal(args, site) if args.apply else None)
    findings = report.findings + report.link_findings
    if args.json:
        print(json.dumps({"site": site.name, "nodes": len(nodes), "findings": [asdict(f) for f in report.findings],
                          "link_findings": [asdict(f) for f in report.link_findings], "added": report.added,
                          "ufm_requests": report.ufm_requests}, indent=2))
    else:
        table = Table(title=f"{site.name}: fabric check of {len(nodes)} node(s)", title_justify="left")
        for column in ("where", "what", "finding", "who acts"):
            table.add_column(column, overflow="fold")
        for finding in findings:
            table.add_row(finding.subject, finding.kind, finding.message, finding.who)
        console.print(table)
        for pkey, guids in report.added.items():
            console.print(f"added {len(guids)} GUID(s) to pkey {pkey}")
        console.print(f"{len(findings)} finding(s), {report.ufm_requests} UFM request(s)")
    return options.EXIT_FAILED if findings else options.EXIT_OK


def _triage(args: argparse.Namespace, site: Site, client: UfmClient, console: Console) -> int:
    from fleet.fabric.run import isolate, sample
    from fleet.fabric.topology import planned_ends
    from fleet.fabric.triage import TriageSettings

    fabric = site.fabric
    assert fabric is not None
    inputs = sample(client, sample_s=fabric.sample_s if args.sample is None else args.sample)
    plan = inputs.plan(TriageSettings(isolate_access_links=fabric.isolate_access_links,
                                      max_isolated=fabric.max_isolated),
                        planned_ends(fabric.topology, site.nodes.values()))
    isolated: list[str] = []
    if args.apply and not plan.refused:
        isolated = isolate(client, plan, _journal(args, site))
    if args.json:
        print(json.dumps({"site": site.name, "isolate": [asdict(p) for p in plan.isolate],
                          "report": [asdict(p) for p in plan.report], "causes": [asdict(c) for c in plan.causes],
                          "already_isolated": plan.already_isolated, "cap": plan.cap, "refused": plan.refused,
                          "notes": plan.notes, "isolated": isolated}, indent=2))
    else:
        for cause in plan.causes:
            console.print(f"one cause: {cause.count} '{cause.name}' events from {cause.system} at {cause.timestamp}")
        for proposal in plan.isolate:
            console.print(f"isolate {proposal.where}: {'; '.join(proposal.reasons)}")
        for proposal in plan.report:
            console.print(f"access link {proposal.where}: {'; '.join(proposal.reasons)} "
                          "(not isolated: drain the node, datacenter tech replaces the cable)")
        for note in plan.notes:
            console.print(note)
        if plan.refused:
            console.print(plan.refused, markup=False)
        elif isolated:
            console.print(f"isolated {len(isolated)} port(s) through UFM ({plan.already_isolated} were already)")
        elif plan.isolate:
            console.print(f"{len(plan.isolate)} port(s) proposed (cap {plan.cap}); nothing isolated without --apply")
    if plan.refused:
        return options.EXIT_USAGE
    return options.EXIT_FAILED if (plan.isolate or plan.report) and not isolated else options.EXIT_OK


def _restore(args: argparse.Namespace, site: Site, console: Console) -> int:
    from fleet.fabric.run import client_for, restore

    assert site.fabric is not None
    if not args.ports:
        raise UsageError("fabric restore needs the ports to mark healthy", hint="pass leaf-g01-r4/33 or a UFM name")
    switches = site.fabric.topology.switches
    names = []
    for port in args.ports:
        switch, sep, number = port.rpartition("/")
        if sep:
            if switch not in switches or not number.isdigit():
                raise UsageError(f"'{port}' is not a port of the fabric plan", hint="write switch/port: leaf-g01-r4/33")
            names.append(f"{switches[switch].guid.removeprefix('0x')}_{number}")
        else:
            names.append(port)
    restore(client_for(site), names, _journal(args, site))
    console.print(f"marked {len(names)} port(s) healthy: {', '.join(names)}")
    return options.EXIT_OK


def _switches(args: argparse.Namespace, site: Site, console: Console) -> int:
    from fleet.errors import SwitchError
    from fleet.fabric.switch import configure
    from fleet.site import resolve_credentials

    unknown = [name for name in args.switch if name not in site.switches]
    if unknown:
        raise UsageError(f"unknown switch(es): {', '.join(unknown)}", hint="name switches under switches: in the site")
    chosen = [site.switches[name] for name in args.switch] or [s for s in site.switches.values() if s.device_type]
    journal = _journal(args, site) if args.apply else None
    failed = differs = 0
    for switch in chosen:
        try:
            creds = resolve_credentials(site, switch.credentials)
            if journal:
                journal(switch.name, "switch_config:started", {"device_type": switch.device_type})
            outcome = configure(site, switch, creds.username, creds.secret, apply=args.apply)
        except SwitchError as err:
            failed += 1
            console.print(f"[red]{switch.name}[/]: {err}", highlight=False)
            continue
        if journal:
            journal(switch.name, "switch_config:done", {"sent": len(outcome.sent)})
        if outcome.diff:
            differs += 1
            console.print(outcome.diff, markup=False, highlight=False, end="")
        state = "applied, saved and verified" if outcome.applied else ("differs" if outcome.diff else "up to date")
        console.print(f"{switch.name} ({switch.device_type}): {state}", highlight=False)
    if failed or (differs and not args.apply):
        return options.EXIT_FAILED
    return options.EXIT_OK


def _export(args: argparse.Namespace, site: Site, console: Console) -> int:
    from fleet.fabric.export import ibdiagnet_topology, ndt_csv

    assert site.fabric is not None
    out = args.out or site.path.parent
    out.mkdir(parents=True, exist_ok=True)
    nodes = options.select(args, site)
    files = {out / f"{site.name}.topo": ibdiagnet_topology(site.fabric.topology, nodes),
             out / f"{site.name}-ndt.csv": ndt_csv(site.fabric.topology, nodes)}
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
        console.print(f"wrote {path}")
    return options.EXIT_OK
