"""The host-only bridge the lab hosts sit on: the lab's end is the gateway address (198.18.0.1/15).

Nothing is routed or NATed from it, so a lab host reaches the machine running the lab (apt repo,
NTP) and its peers, and nothing else.
"""

from __future__ import annotations

import json
import logging
import subprocess

from lab.hosts.image import HostError
from lab.hosts.plan import LAB_NETWORK

log = logging.getLogger(__name__)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def ensure_bridge(name: str, gateway: str) -> None:
    """Create the bridge, give it the gateway address and bring it up; each step only if missing."""
    shown = _ip("-j", "addr", "show", "dev", name)
    if shown.returncode != 0:
        added = _ip("link", "add", name, "type", "bridge")
        if added.returncode != 0 and "exists" not in added.stderr:
            raise HostError(f"could not create the lab bridge {name}", service_message=added.stderr,
                            hint="lab hosts need root and the bridge kernel module")
        log.info("created lab bridge %s", name)
        shown = _ip("-j", "addr", "show", "dev", name)
    info = json.loads(shown.stdout or "[{}]")[0]
    addresses = {a.get("local") for a in info.get("addr_info", [])}
    if gateway not in addresses:
        added = _ip("addr", "add", f"{gateway}/{LAB_NETWORK.prefixlen}", "dev", name)
        if added.returncode != 0 and "exists" not in added.stderr:
            raise HostError(f"could not give the lab bridge {name} the address {gateway}",
                            service_message=added.stderr)
    if "UP" not in info.get("flags", []):
        up = _ip("link", "set", name, "up")
        if up.returncode != 0:
            raise HostError(f"could not bring the lab bridge {name} up", service_message=up.stderr)
