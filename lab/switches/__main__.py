"""`python -m lab.switches --config PATH`: run the switch simulators in the foreground."""

from __future__ import annotations

from lab.service import run_foreground
from lab.switches.server import serve

if __name__ == "__main__":
    run_foreground("lab.switches", __doc__, serve, quiet=("paramiko",))
