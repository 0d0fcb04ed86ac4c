"""`provision.py VERB ...`: one argparse tree, one module per verb.

The registry is `VERBS` below. A verb is a module `fleet/commands/<verb>.py` with:

    HELP = "one line for `provision.py -h`"      # the module docstring is `provision.py VERB -h`'s text
    def add_arguments(parser) -> None           # its options; shared ones come from `options`
    def run(args, console) -> int               # an exit code from `options` (EXIT_OK/FAILED/USAGE)

and, optionally, `PASSTHROUGH = True` to receive every later argument unparsed in `args.passthrough`.
Adding a verb is adding its module and its name to `VERBS`. Modules import only what building their
parser needs at the top (`provision.py -h` imports every verb); heavy clients are imported in `run`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from types import ModuleType

from rich.console import Console

from fleet.commands import options
from fleet.errors import FleetError, InventoryError, LockError, UsageError
from fleet.logs import NodeFormatter

# The registry, in `provision.py -h` order.
VERBS = ("up", "status", "reimage", "health", "burnin", "watch", "return", "quarantine", "fabric", "firmware", "logs",
         "kraken", "image", "hostkey", "lab")
DEFAULT_VERB = "up"


def verb_module(name: str) -> ModuleType:
    return importlib.import_module(f"fleet.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision.py", description="Bring up and keep healthy a fleet of bare-metal GPU servers.",
        epilog=f"Without a verb, `{DEFAULT_VERB}` is meant: `provision.py --rack 12`. {options.EXIT_CODES}.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs")
    for name in VERBS:
        module = verb_module(name)
        passthrough = getattr(module, "PASSTHROUGH", False)
        verb = verbs.add_parser(name, help=module.HELP, description=module.__doc__, add_help=not passthrough,
                                epilog=options.EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(verb)
        verb.set_defaults(run=module.run, passthrough=passthrough)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse a command line; with no verb first, the default verb is meant."""
    if not argv or (argv[0] not in VERBS and argv[0] not in ("-h", "--help")):
        argv = [DEFAULT_VERB, *argv]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.passthrough:
        args.passthrough = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(NodeFormatter("%(asctime)s %(levelname)s %(name)s %(node)s%(message)s"))
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        handlers=[handler])
    console = Console(stderr=True, soft_wrap=True, emoji=False)
    try:
        return args.run(args, console)
    except (InventoryError, UsageError) as err:
        console.print(str(err), markup=False, highlight=False)
        return options.EXIT_USAGE
    except LockError as err:
        console.print(f"refused: {err}", markup=False, highlight=False)
        return options.EXIT_USAGE
    except FleetError as err:
        console.print(f"error: {err}", markup=False, highlight=False)
        return options.EXIT_FAILED
