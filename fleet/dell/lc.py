"""The Lifecycle Controller's readiness: jobs are only queued once it says Ready.

After an iDRAC or host reset, or a forced queue clear, the Lifecycle Controller reloads for minutes
and refuses configuration. Dell's clients ask `DellLCService.GetRemoteServicesAPIStatus` first:
sushy-oem-idrac (lifecycle_service.py) counts the iDRAC ready on HTTP 200 with `LCStatus: Ready`;
Dell's DeleteJobQueueREDFISH.py also wants `Status: Ready`. We ask for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.errors import BmcError
from fleet.redfish import Bmc

LC_STATUS = ("/redfish/v1/Dell/Managers/iDRAC.Embedded.1/DellLCService/Actions/"
             "DellLCService.GetRemoteServicesAPIStatus")
LC = ("LCStatus",)
STATUS = ("Status",)
SERVER = ("ServerStatus",)


@dataclass(frozen=True)
class LcStatus:
    lc: str
    status: str
    server: str

    @property
    def ready(self) -> bool:
        return self.lc == "Ready" and self.status in ("Ready", "")


def parse_status(body: Mapping[str, Any]) -> LcStatus:
    def get(path: tuple[str, ...]) -> str:
        return str(body.get(path[0]) or "")
    return LcStatus(get(LC), get(STATUS), get(SERVER))


def read_status(bmc: Bmc, *, poll: bool = False, within_s: float | None = None) -> LcStatus:
    """One POST; the action only reads, so it may be repeated after a failure. `within_s`: see `Bmc.request`."""
    return parse_status(bmc.request("POST", LC_STATUS, body={}, poll=poll, repeat=True, within_s=within_s).body)


def wait_ready(bmc: Bmc, *, timeout_s: float, poll_s: float, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> LcStatus:
    """Ask until the LC is ready; BmcError naming what it said when `timeout_s` passes first."""
    deadline = clock() + timeout_s
    first = True
    while True:
        status = read_status(bmc, poll=not first, within_s=deadline - clock())
        first = False
        if status.ready:
            return status
        if clock() + poll_s > deadline:
            raise BmcError(f"the Lifecycle Controller is not ready after {timeout_s:g} s "
                           f"(LCStatus {status.lc or '?'}, Status {status.status or '?'})",
                           node=bmc.node.hostname, endpoint=f"POST {LC_STATUS}",
                           hint="wait for it, or reset the iDRAC (racadm racreset) if it stays that way")
        sleep(poll_s)
