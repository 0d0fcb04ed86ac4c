"""Run fleet/kraken/node_probe.py on a node over SSH: its source on stdin, its JSON on stdout.

Nothing is installed on the node for this: `python3 -` reads the probe from stdin, and the probe is
standard library only. Transport failures come back as results, never exceptions, so one dead node
never stops a fleet-wide check or pull.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet.ssh import ssh_argv

PROBE_SOURCE = (Path(__file__).resolve().parent / "node_probe.py").read_text(encoding="utf-8")
SSH_FAILED = 255  # ssh's own exit status for connection and authentication failures

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class ProbeRun:
    rc: int  # the probe's exit status; 255 ssh failed; -1 our deadline passed
    stdout: str
    stderr: str
    seconds: float


def run_probe(
    target: str, args: list[str], *, timeout_s: float, ssh_options: tuple[str, ...] = (),
    runner: Runner = subprocess.run,
) -> ProbeRun:
    """`python3 - <args>` on `target` with the probe on stdin."""
    argv = ssh_argv(target, ("python3", "-", *args), connect_timeout_s=max(1, min(10, int(timeout_s / 3))),
                    options=ssh_options)
    started = time.monotonic()
    try:
        done = runner(argv, input=PROBE_SOURCE, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return ProbeRun(-1, "", f"no answer within {timeout_s:.0f} s", time.monotonic() - started)
    except OSError as err:
        return ProbeRun(SSH_FAILED, "", f"cannot run ssh: {err.strerror}", time.monotonic() - started)
    return ProbeRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def transport_error(run: ProbeRun) -> str | None:
    """Why the probe did not run on the node at all, or None when it did."""
    if run.rc == -1:
        return run.stderr
    if run.rc == SSH_FAILED:
        last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "ssh failed"
        return last if last.startswith("ssh:") else f"ssh: {last}"
    return None
