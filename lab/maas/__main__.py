"""`python -m lab.maas --config PATH`: run the MAAS simulator in the foreground (lab.control detaches it)."""

from __future__ import annotations

from lab.maas.server import serve
from lab.service import run_foreground

if __name__ == "__main__":
    run_foreground("lab.maas", __doc__, serve)
