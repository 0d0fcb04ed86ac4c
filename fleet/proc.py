"""Is a process of this host alive? One answer for production (run locks, stale ansible-runner folders) and
the lab (its services' and hosts' pid files), which imports it from here (production never imports lab/)."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    """True for a running process; False for none, a gone one, or a zombie (exited, not yet reaped: a run
    killed under a parent that has not waited for it holds nothing). One we may not signal still exists."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
