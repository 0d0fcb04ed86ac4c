#!/usr/bin/env python3
"""Bring up and keep healthy a fleet of bare-metal GPU servers: `python provision.py --rack 12`.

Thin entry point; everything lives in `fleet/` (see `python provision.py --help`).
"""

import sys

from fleet.commands import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
