"""What the day-2 verbs (watch, return, quarantine) share: the scheduler, MAAS tags, the loop itself."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rich.console import Console

from fleet.commands import options
from fleet.remediate import NodeFacts
from fleet.site import Site
from fleet.state import StateDB
from fleet.watch import QUARANTINE_TAG, Watch
from fleet.workload.site import for_site


class MaasTags:
    """The fleet-quarantined tag on a node's MAAS machine, through one client for the whole run."""

    def __init__(self, site: Site) -> None:
        from fleet.maas import MaasClient  # python-libmaas loads in ~0.5 s: only when a verb needs MAAS
        from fleet.site import resolve_credentials

        self.site = site
        self.client = MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls)

    def tag(self, node: str) -> None:
        self.client.tag(node, self.client.find_machine(self.site.nodes[node]), (QUARANTINE_TAG,))

    def untag(self, node: str) -> None:
        self.client.untag(node, self.client.find_machine(self.site.nodes[node]), (QUARANTINE_TAG,))

    def close(self) -> None:
        self.client.close()


def facts(site: Site) -> dict[str, NodeFacts]:
    return {n.hostname: NodeFacts(n.hostname, n.service_tag, n.rack, n.slot) for n in site.nodes.values()}


def sel_reader(site: Site) -> Callable[[str], list[str]]:
    """The newest critical/warning SEL and Lifecycle entries of a node's iDRAC, for its ticket."""
    from fleet.dell import logs
    from fleet.redfish import BmcPool

    pool = BmcPool(site, max_requests=4)

    def read(node: str) -> list[str]:
        entries = logs.read_evidence(pool.client(site.nodes[node]))
        return [f"{e.created} [{e.severity}] {e.log}: {e.message}" for e in entries]

    return read


def reimager(args: argparse.Namespace, site: Site, console: Console) -> Callable[[str], tuple[bool, str]]:
    """`provision.py reimage NODE --yes --force` in this process (see fleet.fixers)."""

    def reimage(node: str) -> tuple[bool, str]:
        from fleet.commands import parse_args

        argv = ["reimage", node, "--yes", "--force", "--site", str(site.path)]
        if args.state_dir:
            argv += ["--state-dir", str(args.state_dir)]
        inner = parse_args(argv)
        code = inner.run(inner, console)
        return code == options.EXIT_OK, "reimaged, configured and validated" if code == 0 else f"reimage exit {code}"

    return reimage


def build_watch(args: argparse.Namespace, site: Site, db: StateDB, tags: MaasTags, console: Console) -> Watch:
    from fleet.fixers import SshFixer
    from fleet.validate import sweep_site

    def sweep(names):
        return sweep_site(site, [site.nodes[n] for n in names], timeout_s=site.health.timeout_s)

    fixer = SshFixer(site, reimage=reimager(args, site, console), reboot_timeout_s=site.watch.reboot_timeout_s)
    return Watch(db=db, guards=site.watch.guards, manager=for_site(site), tagger=tags, fixer=fixer,
                 sweep=sweep, facts=facts(site), drain_timeout_s=site.watch.drain_timeout_s, sel=sel_reader(site),
                 burnin=burn_in(site) if site.watch.burnin else None)


def burn_in(site: Site) -> Callable[[str], tuple[bool, str, list]]:
    """The site's burn-in of one node (fleet/burnin.py), as the burnin stage runs it."""

    def run(node: str) -> tuple[bool, str, list]:
        from fleet.burnin import burnin_sweep, stage_result
        from fleet.remediate import findings_of

        [health] = burnin_sweep(site, [site.nodes[node]], parallel=1)
        result = stage_result(health)
        return result.ok, result.detail, findings_of(health.report, health.checks,
                                                     verdicts=("CRITICAL", "UNKNOWN", "WARNING"))

    return run
