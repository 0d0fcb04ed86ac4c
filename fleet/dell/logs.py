"""The System Event Log and the Lifecycle log: read them (paged, newest first), pick the evidence.

iDRAC 9 serves `Managers/iDRAC.Embedded.1/LogServices/Sel/Entries` and `.../Lclog/Entries` as
LogEntry collections, 50 entries a page with `Members@odata.nextLink` (`$skip`), newest first; a
`$skip` past the end answers 400 (Dell's GetIdracLcLogsREDFISH.py stops on "out of range"). A
used iDRAC's Lifecycle log holds thousands of entries, mostly logins, so readers stop early: at
`since`, or after `max_pages`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from fleet.dell.paths import ID, MESSAGE, MESSAGE_ID, NEXT, get, members
from fleet.redfish import Bmc

LOGS = {"sel": "/redfish/v1/Managers/iDRAC.Embedded.1/LogServices/Sel/Entries",
        "lclog": "/redfish/v1/Managers/iDRAC.Embedded.1/LogServices/Lclog/Entries"}
CREATED = ("Created",)
SEVERITY = ("Severity",)
SEVERE = ("Critical", "Warning")
MAX_PAGES = 40  # 2,000 entries: the whole SEL, and a long stretch of the Lifecycle log


def created_s(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class LogEntry:
    log: str  # sel | lclog
    id: str
    created: str
    severity: str
    message_id: str
    message: str

    @property
    def created_s(self) -> float:
        return created_s(self.created) or 0.0

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def parse_entries(log: str, body: Mapping[str, Any]) -> tuple[list[LogEntry], str | None]:
    entries = [LogEntry(log, str(get(m, ID) or ""), str(get(m, CREATED) or ""),
                        str(get(m, SEVERITY) or ""), str(get(m, MESSAGE_ID) or ""),
                        str(get(m, MESSAGE) or ""))
               for m in members(body)]
    link = get(body, NEXT)
    return entries, str(link) if link else None


def newest_first(entries: Iterable[LogEntry]) -> list[LogEntry]:
    return sorted(entries, key=lambda entry: entry.created_s, reverse=True)


def evidence(entries: Iterable[LogEntry], limit: int = 10) -> list[LogEntry]:
    """The newest critical and warning entries: what a quarantine record should show first."""
    return [entry for entry in newest_first(entries) if entry.severity in SEVERE][:limit]


_SINCE = re.compile(r"^(\d+)([smhd])$")


def parse_since(text: str, now: float | None = None) -> float:
    """`--since`: an age (`90m`, `6h`, `2d`) or an ISO time with offset; ValueError says what it takes."""
    now = time.time() if now is None else now
    match = _SINCE.match(text.strip())
    if match:
        return now - int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    when = created_s(text.strip())
    if when is None:
        raise ValueError(f"--since {text!r}: give an age like 90m, 6h or 2d, or a time like 2026-12-01T08:00:00+00:00")
    return when


def read(bmc: Bmc, log: str, *, since_s: float | None = None, max_pages: int = MAX_PAGES,
         repeat: bool = True) -> list[LogEntry]:
    """Entries of one log, newest first, down to `since_s` (or `max_pages` pages)."""
    path: str | None = LOGS[log]
    out: list[LogEntry] = []
    for _ in range(max_pages):
        if path is None:
            break
        entries, path = parse_entries(log, bmc.request("GET", path, repeat=repeat).body)
        out += [entry for entry in entries if since_s is None or entry.created_s >= since_s]
        if since_s is not None and entries and all(entry.created_s < since_s for entry in entries):
            break  # newest first: every later page is older still
    return newest_first(out)


def read_evidence(bmc: Bmc, *, limit: int = 10) -> list[LogEntry]:
    """The newest critical/warning entries of both logs from their first page each: two requests, each
    sent once (evidence for a node already in trouble must not hold up its quarantine with retries)."""
    entries: list[LogEntry] = []
    for log in LOGS:
        entries += read(bmc, log, max_pages=1, repeat=False)
    return evidence(entries, limit)
