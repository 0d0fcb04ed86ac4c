"""Is a process (or its process group) alive, and what did it say last? One answer for every module that
keeps a pid file (hosts, VMs, leases, the lab's services) or reports a failed command from its log; whether
a process is alive is production's own answer (`fleet.proc`), so the lab and the tool never disagree on a pid file."""

from __future__ import annotations

from pathlib import Path

from fleet.proc import pid_alive as pid_alive  # re-exported: the lab's modules ask here


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log, for an error's service message ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is in process group `pgid`, its leader or not."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False
