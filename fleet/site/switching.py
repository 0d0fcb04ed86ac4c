"""The site's `switch_config:` section: what every fleet-configured switch runs (fleet/fabric/switch.py).

    switch_config:
      ntp: [10.0.0.1, 10.0.0.2]
      syslog: [10.0.0.5]
      mtu: 9216            # Ethernet interfaces (management and front-end)
      lldp: true
      vlans: {10: mgmt, 20: frontend}
      access_vlans: {mgmt: 10, frontend: 20}   # switch kind -> the VLAN its node-facing ports carry
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.site.schema import Problems, ip, positive_int

OPTIONAL = {"ntp", "syslog", "mtu", "lldp", "vlans", "access_vlans"}


@dataclass(frozen=True)
class SwitchConfig:
    ntp: tuple[str, ...] = ()
    syslog: tuple[str, ...] = ()
    mtu: int = 9216
    lldp: bool = True
    vlans: dict[int, str] = field(default_factory=dict)
    access_vlans: dict[str, int] = field(default_factory=dict)


def parse_switch_config(file: Path, raw: Any, problems: Problems) -> SwitchConfig:
    if not problems.keys(raw, file, "switch_config", set(), OPTIONAL):
        return SwitchConfig()
    servers = {}
    for key in ("ntp", "syslog"):
        values = raw.get(key) or []
        if not isinstance(values, list):
            problems.add(file, f"switch_config.{key}", "expected a list of server addresses", f"{key}: [10.0.0.1]")
            values = []
        checked = (ip(file, f"switch_config.{key}[{i}]", value, problems) for i, value in enumerate(values))
        servers[key] = tuple(address for address in checked if address)
    mtu = positive_int(file, "switch_config.mtu", raw.get("mtu", 9216), problems, minimum=1280) or 9216
    lldp = raw.get("lldp", True)
    if not isinstance(lldp, bool):
        problems.add(file, "switch_config.lldp", f"expected true or false, got {lldp!r}", "lldp: true")
    vlans_raw = raw.get("vlans") or {}
    vlans: dict[int, str] = {}
    if not isinstance(vlans_raw, dict):
        problems.add(file, "switch_config.vlans", "expected a mapping of VLAN id -> name", "vlans: {10: mgmt}")
        vlans_raw = {}
    for vid, name in vlans_raw.items():
        if isinstance(vid, bool) or not isinstance(vid, int) or not 1 <= vid <= 4094:
            problems.add(file, f"switch_config.vlans.{vid}", f"'{vid}' is not a VLAN id", "use 1-4094")
        else:
            vlans[vid] = str(name)
    access_raw = raw.get("access_vlans") or {}
    access: dict[str, int] = {}
    if not isinstance(access_raw, dict):
        problems.add(file, "switch_config.access_vlans", "expected a mapping of switch kind -> VLAN id",
                     "access_vlans: {mgmt: 10}")
        access_raw = {}
    for kind, vid in access_raw.items():
        if vid not in vlans:
            problems.add(file, f"switch_config.access_vlans.{kind}", f"VLAN {vid!r} is not under switch_config.vlans",
                         "name a VLAN defined under vlans")
        else:
            access[str(kind)] = vid
    return SwitchConfig(servers["ntp"], servers["syslog"], mtu, lldp is not False, vlans, access)
