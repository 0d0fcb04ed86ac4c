"""Is a process alive, and what did it say last? One answer for every module that keeps a pid file
(hosts, VMs, leases, the lab's services) or reports a failed command from its log; whether it is alive is
production's own answer (`fleet.proc`), so the lab and the tool never disagree on a pid file."""

from __future__ import annotations

from pathlib import Path

from fleet.proc import pid_alive as pid_alive  # re-exported: the lab's modules ask here


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log, for an error's service message ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
