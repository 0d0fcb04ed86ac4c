"""Replace a lab file whole, so a reader (a simulator, ssh, another lab process) never sees half of it.

Lab processes write the same files at once: two `lab up`s of one site (two provision.py runs on disjoint
racks, each with the site's before_run) rewrite every service's config, faults and TLS material; hosts
starting side by side rewrite known_hosts and ssh_config. Each writer therefore writes its own temporary
file (named by process and thread) next to the target and renames it over the target; with one shared
`.tmp` name the second writer's rename found the first had taken the file (FileNotFoundError), or
renamed the other writer's half-written text into place.

Production has its own (`fleet.prometheus`), as with `lab.filelock`: `lab/` leans on no production
internals.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> Path:
    """Replace `path` with `data` (text is UTF-8); the file has `mode` from its first byte (a key is never
    briefly world-readable). Returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
