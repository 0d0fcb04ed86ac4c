"""``python -m healthcheck``: run the checks on this node, list its kernel log's templates, or learn a
dmesg baseline.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; 4 for bad usage or an invalid config
(distinct from the verdicts, so a sweep never mistakes a typo for a sick node). `templates` exits 0,
or 3 when the kernel log cannot be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from healthcheck.config import DEFAULT_PATH, ConfigError, load_config
from healthcheck.ib import state_file
from healthcheck.kernlog import gather_kernel_log, learn_baseline, parse_baseline, save_baseline, templates_of
from healthcheck.model import USAGE_EXIT, Verdict
from healthcheck.output import dumps, to_table, write_textfile
from healthcheck.probe import Missing
from healthcheck.runner import run_checks


def _state_name(text: str) -> str:
    try:
        state_file(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(Path(args.config))
    except ConfigError as err:
        print(f"healthcheck: invalid config {err.path}:\n  - " + "\n  - ".join(err.problems), file=sys.stderr)
        return USAGE_EXIT
    if args.disable:
        extra = tuple(name.strip() for name in args.disable.split(",") if name.strip())
        config = dataclasses.replace(config, disabled_checks=config.disabled_checks + extra)
    baseline = None
    if args.dmesg_baseline == "-":  # the fleet sweep's copy of the site's baseline, on stdin
        baseline = parse_baseline(sys.stdin.read(), "the dmesg baseline on stdin")
    elif args.dmesg_baseline:
        config = dataclasses.replace(config, dmesg=dataclasses.replace(config.dmesg, baseline=args.dmesg_baseline))
    report = run_checks(config, save_state=not args.no_state, state_name=args.state_name, baseline=baseline)
    if args.textfile:
        write_textfile(report, Path(args.textfile))
    print(dumps(report) if args.json else to_table(report))
    return report.verdict.exit_code


def _baseline(args: argparse.Namespace) -> int:
    logs = {}
    for path in args.logs:
        try:
            logs[path] = Path(path).read_text(errors="replace").splitlines()
        except OSError as err:
            print(f"healthcheck baseline: cannot read {path}: {err.strerror}", file=sys.stderr)
            return USAGE_EXIT
    baseline = learn_baseline(logs, args.min_nodes)
    save_baseline(baseline, Path(args.out))
    print(f"{len(baseline.templates)} templates from {len(logs)} logs -> {args.out}")
    return 0


def _templates(args: argparse.Namespace) -> int:
    """This node's kernel log (read as the checks read it: the config's sources) as distinct templates, JSON."""
    try:
        config = load_config(Path(args.config))
    except ConfigError as err:
        print(f"healthcheck: invalid config {err.path}:\n  - " + "\n  - ".join(err.problems), file=sys.stderr)
        return USAGE_EXIT
    lines = gather_kernel_log(config)
    if isinstance(lines, Missing):
        print(f"healthcheck templates: kernel log unreadable: {lines.reason}", file=sys.stderr)
        return Verdict.UNKNOWN.exit_code
    print(json.dumps({"lines": len(lines), "templates": sorted(templates_of(lines))}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m healthcheck", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(DEFAULT_PATH), help="expectations file (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--textfile", metavar="DIR", help="also write DIR/healthcheck.prom for node_exporter")
    parser.add_argument("--no-state", action="store_true", help="do not record IB counters for the next run")
    parser.add_argument("--state-name", default="", type=_state_name, metavar="NAME",
                        help="keep the IB counter state apart for this reader (the fleet sweep passes 'sweep'; "
                        "default: the node's own timer)")
    parser.add_argument("--disable", metavar="A,B", default="",
                        help="skip these checks this once (on top of the config's disabled_checks)")
    parser.add_argument("--dmesg-baseline", metavar="PATH", default="",
                        help="judge the kernel log against this baseline file instead of the config's; "
                        "'-' reads it from stdin (how the fleet sweep hands over the site's current one)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("templates", help="print this node's kernel log templates as JSON (what it contributes "
                   "to its site's dmesg baseline)")
    learn = sub.add_parser("baseline", help="learn a dmesg baseline from known-good nodes' kernel logs")
    learn.add_argument("logs", nargs="+", help="kernel log files (dmesg output), one per known-good node")
    learn.add_argument("--out", required=True, help="baseline file to write")
    learn.add_argument("--min-nodes", type=int, default=1, help="keep templates seen on at least this many logs")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s healthcheck: %(message)s"
    )
    commands = {"baseline": _baseline, "templates": _templates}
    return commands.get(args.command, _run)(args)


if __name__ == "__main__":
    sys.exit(main())
