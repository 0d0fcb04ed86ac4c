"""What a lab component hands to `lab.control`: a subprocess to start and how to tell it is up.

Each simulator module describes itself with `service(site, lab_dir) -> LabService`; the lifecycle
code (start detached, log, pid file, wait for ready) lives in one place and knows no simulator.
The simulators that read one config file (MAAS, UFM, switches) share their foreground entry,
`python -m lab.<name> --config PATH`, through `run_foreground`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ReadyCheck:
    """How to tell a started service is serving: an HTTP URL answering, or a TCP port accepting.

    Exactly one of `url` or `port` is set; a URL is preferred where the service has one, because an
    open port can precede a working application by a long way (Python imports, config parsing).
    """

    url: str | None = None
    port: int | None = None
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.port is None):
            raise ValueError("ReadyCheck needs exactly one of url or port")


@dataclass(frozen=True)
class LabService:
    """One lab subprocess: its name (log and pid file names), command line, extra environment, readiness."""

    name: str
    argv: list[str]
    ready: ReadyCheck
    env: dict[str, str] = field(default_factory=dict)


def run_foreground(package: str, description: str | None, serve: Callable[[Path], None], *,
                   quiet: tuple[str, ...] = ()) -> None:
    """`python -m <package> --config PATH [--log-level L]`: log to stderr (lab.control sends it to the
    component's log file), then serve until stopped. `quiet` loggers (a chatty library) log warnings only."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=description)
    parser.add_argument("--config", type=Path, required=True, help=f"config written by {package}.service.prepare")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    serve(args.config)
