"""`python -m lab.ufm --config PATH`: run the UFM simulator in the foreground (lab.control detaches it)."""

from __future__ import annotations

from lab.service import run_foreground
from lab.ufm.server import serve

if __name__ == "__main__":
    run_foreground("lab.ufm", __doc__, serve)
