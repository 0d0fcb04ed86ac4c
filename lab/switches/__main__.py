"""`python -m lab.switches --config PATH`: run the switch simulators in the foreground."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lab.switches.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.switches", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="config written by lab.switches.service.prepare")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    serve(args.config)


if __name__ == "__main__":
    main()
