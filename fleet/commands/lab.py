"""`provision.py lab up|down|status|reset|fault`: the simulated datacenter on 127.0.0.1.

The lab is not part of the production tool: its arguments go unparsed to `python -m lab` in a
child process (`provision.py lab -h` shows them), so production code never imports `lab/`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from rich.console import Console

from fleet.commands import options

HELP = "the simulated datacenter: up, down, status, reset, fault"
PASSTHROUGH = True  # every argument after `lab` belongs to `python -m lab`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """None of its own: `python -m lab` parses them."""


def run(args: argparse.Namespace, console: Console) -> int:
    return subprocess.call([sys.executable, "-m", "lab", *args.passthrough], cwd=options.REPO)
