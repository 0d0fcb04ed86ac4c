"""`python -m lab.ufm --config PATH`: run the UFM simulator in the foreground (lab.control detaches it)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lab.ufm.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.ufm", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="config written by lab.ufm.service.prepare")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.config)


if __name__ == "__main__":
    main()
