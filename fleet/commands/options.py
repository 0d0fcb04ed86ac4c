"""What every verb shares, defined once: the selection options, --json, --dry-run and the exit codes.

Exit codes are a contract scripts rely on, the same for every verb:

  0  every selected node reached the target (or the verb's question was answered: all healthy)
  1  some did not (or a service failed on the way)
  2  bad input or a refusal: nothing was touched

Parsing and validation happen before any state is opened or any service contacted, so an exit 2
never leaves anything behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import UsageError
from fleet.site import Node, Site, load_site, select_nodes
from fleet.state import StateDB, production_state_dir

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = "Exit codes: 0 every selected node reached the target, 1 some did not, 2 bad input (nothing touched)"
REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_SITE = REPO / "inventory" / "lab" / "site.yml"


def comma_list(text: str) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']: the one parser of comma lists (use with action='extend')."""
    return [item.strip() for item in text.split(",") if item.strip()]


def add_selection(parser: argparse.ArgumentParser) -> None:
    """--site, --rack, --nodes, --state-dir and -v: which site, which nodes, where the state lives."""
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE, help="site inventory (default: the built-in lab)")
    parser.add_argument("--rack", action="append", default=[], metavar="N|A-B", help="rack(s), repeatable: 12, 12-15")
    parser.add_argument("--nodes", action="extend", type=comma_list, default=[], metavar="A,B",
                        help="node names, comma-separated, repeatable")
    parser.add_argument("--state-dir", type=Path, help="state DB directory (default: env FLEET_STATE_DIR, else the "
                        "site's state_dir, else /var/lib/fleet/<site> as root or $XDG_STATE_HOME/fleet/<site>)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every library event")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")


def select(args: argparse.Namespace, site: Site, names: list[str] | None = None) -> list[Node]:
    """The nodes --rack/--nodes (plus `names`) select; every node of the site when nothing is selected."""
    names = [*args.nodes, *(names or [])]
    if not (args.rack or names):
        return list(site.nodes.values())
    try:
        return select_nodes(site, args.rack, names)
    except ValueError as err:
        raise UsageError(str(err), hint="check --rack/--nodes against the site inventory") from None


def load(args: argparse.Namespace) -> Site:
    """The site, with its state directory resolved once (--state-dir, FLEET_STATE_DIR, the site, the
    default): everything kept beside the state DB (the nodes' known_hosts) is then found from the site."""
    site = load_site(args.site)
    return replace(site, state_dir=state_dir(args, site))


def at_least_one(args: argparse.Namespace, *flags: str) -> None:
    for flag in flags:
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1", hint="pass a positive number")


def confirm(verb: str, question: str, console: Console) -> bool:
    """Ask before a destructive action ("[y/N]"); False (and "nothing done") unless the answer is yes.
    A run without a terminal cannot be asked: UsageError naming --yes, before anything is touched."""
    if not sys.stdin.isatty():
        raise UsageError(f"{verb} needs confirmation", hint="pass --yes when running non-interactively")
    if input(f"{question} [y/N] ").strip().lower() in ("y", "yes"):
        return True
    console.print("nothing done")
    return False


def state_dir(args: argparse.Namespace, site: Site) -> Path:
    if getattr(args, "state_dir", None):
        return args.state_dir
    if os.environ.get("FLEET_STATE_DIR"):
        return Path(os.environ["FLEET_STATE_DIR"])
    if site.state_dir is not None:
        return site.state_dir
    return production_state_dir(site.name)


def open_state(args: argparse.Namespace, site: Site) -> StateDB:
    """The site's state: PostgreSQL when the site names `state.url`, else SQLite in the state directory."""
    return StateDB(state_dir(args, site) / "state.db", url=site.state_url)


def existing_state(args: argparse.Namespace, site: Site) -> StateDB | None:
    """The recorded state for read-only verbs (status, dry runs): None when there is none, never created."""
    path = state_dir(args, site) / "state.db"
    if site.state_url:
        return StateDB(path, url=site.state_url)
    return StateDB(path) if path.exists() else None
