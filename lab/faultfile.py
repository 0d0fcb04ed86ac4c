"""The simulators' reading of `lab_dir/faults.json` ({hostname: {kind: rate}}), re-read whenever it changes.

Tests and `provision.py lab fault` inject faults into a running lab by rewriting that file
(`lab.faults.write`); polling its mtime on use costs one stat() and needs no signal or reload
endpoint. The MAAS simulator and the BMC front read it through this one class; the UFM simulator
applies faults to its fabric as a whole (`lab.ufm`). Standard library only, so a simulator's process
does not load the site to read its faults.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class FaultFile:
    """One simulator's live view of the fault file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime_ns: int | None = None
        self._faults: dict[str, dict[str, float]] = {}

    def rates(self, hostname: str) -> dict[str, float]:
        """{kind: rate} for `hostname` as the file says now; {} without a file or a fault for it."""
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime_ns, self._faults = None, {}
            return {}
        if mtime_ns != self._mtime_ns:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8") or "{}")
                self._faults = {
                    host: {kind: float(rate) for kind, rate in kinds.items()}
                    for host, kinds in raw.items()
                    if isinstance(kinds, dict)
                }
                self._mtime_ns = mtime_ns
                log.info("fault file %s loaded: %d node(s) with faults", self.path, len(self._faults))
            except (OSError, ValueError, AttributeError) as err:
                # A half-written file: keep the previous faults and read it again next time.
                log.warning("fault file %s unreadable, keeping previous faults: %s", self.path, err)
        return self._faults.get(hostname, {})
