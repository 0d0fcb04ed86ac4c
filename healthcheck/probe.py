"""Thin I/O helpers shared by the gatherers: run a command with a timeout, read a file.

Failures become ``Missing(reason)`` values instead of exceptions, because a reading that could
not be taken must reach its check as a reason for UNKNOWN, never vanish or crash the run.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("healthcheck")


@dataclass(frozen=True)
class Missing:
    """A reading that could not be taken, and why."""

    reason: str


def run(argv: tuple[str, ...] | list[str], timeout_s: float) -> str | Missing:
    """Run a command and return its stdout, or Missing with the reason it failed."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False, errors="replace"
        )
    except FileNotFoundError:
        return Missing(f"{argv[0]} not found")
    except subprocess.TimeoutExpired:
        log.warning("command timed out after %.0f s: %s", timeout_s, " ".join(argv))
        return Missing(f"{' '.join(argv)} timed out after {timeout_s:.0f} s")
    except OSError as err:
        return Missing(f"{argv[0]}: {err.strerror}")
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return Missing(f"{' '.join(argv)} exited {done.returncode}: {detail[-1] if detail else 'no output'}")
    return done.stdout


def read_text(path: Path) -> str | Missing:
    """Read a small text file (sysfs, procfs), or Missing with the reason."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return Missing(f"{path} does not exist")
    except OSError as err:
        return Missing(f"{path}: {err.strerror}")
