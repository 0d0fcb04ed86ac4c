"""The `state:` section: where the run state lives when it is not the embedded SQLite file.

    state:
      url: postgresql://fleet@db.example.net/fleet   # shared by several ops hosts

No password in the URL (the inventory holds no secrets): libpq reads it from ~/.pgpass or the
file PGPASSFILE names, or the server authenticates the ops host (peer, certificates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleet.site.schema import Problems

SCHEMES = ("postgresql", "postgres")


def parse_state(file: Path, raw: Any, problems: Problems) -> str | None:
    """The PostgreSQL URL, or None (SQLite under the state directory)."""
    if raw is None or not problems.keys(raw, file, "state", set(), {"url"}):
        return None
    url = raw.get("url")
    if url is None:
        return None
    url = str(url)
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        problems.add(file, "state.url", f"'{url}' is not a PostgreSQL URL",
                     "write postgresql://USER@HOST/DATABASE, or drop state: to keep SQLite in the state directory")
        return None
    if parts.password is not None:
        problems.add(file, "state.url", "the URL holds a password (the inventory never holds secrets)",
                     "remove it from the URL and put it in ~/.pgpass (mode 0600) or the file PGPASSFILE names")
        return None
    return url
