"""Take turns on a lock file: the lab's one way for processes sharing a machine to serialize a step.

Lab processes run side by side (each test's lab, each molecule scenario, `lab up`), and several of
their steps must happen once at a time: building a cached image or apt repository, fetching the
Slurm packages, leasing bridge addresses, rewriting the lab's known_hosts, starting a host from a
MAAS hook. Each holds an exclusive `flock` on a file next to what it guards; the kernel drops the
lock when the holder exits, so a crashed process never leaves a stale lock behind.

Production has its own copy (`fleet.baseline.locked`), on purpose: `lab/` may import only
`fleet.site` and `fleet.errors` (docs/contracts.md), so the lab never leans on production internals,
and a package shared by both would be a third top-level package that every install ships, for eight
lines of the standard library. Two small copies that each side owns cost less than that coupling.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Held while the caller's step runs; another process locking the same `path` waits for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
