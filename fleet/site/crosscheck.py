"""Uniqueness and references across the whole site: the errors a per-field check cannot see."""

from __future__ import annotations

from pathlib import Path

from fleet.site.model import Endpoint, Switch
from fleet.site.racks import Placed
from fleet.site.schema import Problems, join, nearest


def cross_check(
    file: Path,
    placed: list[Placed],
    switches: dict[str, Switch],
    credentials: set[str],
    endpoints: dict[str, Endpoint | None],
    problems: Problems,
) -> None:
    """Uniqueness and references across the whole site: the errors a per-field check cannot see.

    Each problem is reported where the second occurrence was written (its file and key path) and
    names the first, because that is the pair the operator has to compare.
    """
    seen: dict[str, dict[str, str]] = {k: {} for k in ("hostname", "bmc", "mac", "guid", "address", "tag", "cable")}

    def unique(kind: str, value: str, where: Placed, key: str, what: str) -> None:
        if not value:
            return
        here = f"{where.file}: {join(where.path, key)}"
        if value in seen[kind]:
            first = seen[kind][value]
            problems.add(where.file, join(where.path, key), f"duplicate {what} '{value}' (also at {first})",
                         f"every {what} must be unique across the site")
        else:
            seen[kind][value] = here

    # credentials name -> every place that uses it (file, key path)
    users: dict[str, list[tuple[Path, str]]] = {}
    for name, endpoint in endpoints.items():
        if endpoint is not None:
            users.setdefault(endpoint.credentials, []).append((file, f"{name}.credentials"))
    for name, switch in switches.items():
        if switch.credentials:
            users.setdefault(switch.credentials, []).append((file, f"switches.{name}.credentials"))
    for where in placed:
        node = where.node
        unique("hostname", node.hostname, where, "hostname", "hostname")
        unique("bmc", node.bmc.address, where, "bmc.address", "BMC address")
        unique("mac", node.pxe_mac, where, "pxe_mac", "MAC")
        unique("address", node.address, where, "address", "node address")
        unique("tag", node.service_tag, where, "service_tag", "service tag")
        users.setdefault(node.bmc.credentials, []).append((where.file, join(where.path, "bmc.credentials")))
        for index, hca in enumerate(node.hcas):
            key = f"hcas[{index}]"
            unique("guid", hca.guid, where, f"{key}.guid", "GUID")
            if hca.leaf and hca.port:
                unique("cable", f"{hca.leaf} port {hca.port}", where, key, "leaf switch port")
            if switches and hca.leaf and hca.leaf not in switches:
                near = nearest(hca.leaf, set(switches))
                problems.add(where.file, join(where.path, f"{key}.leaf"), f"unknown switch '{hca.leaf}'",
                             f"did you mean '{near}'?" if near else "add it under switches: or fix the name")
    for name in sorted(set(users) - credentials):
        first_file, first_key = users[name][0]
        others = len(users[name]) - 1
        near = nearest(name, credentials)
        also = f" (used in {others} more place(s))" if others else ""
        fix = f"did you mean '{near}'?" if near else f"define {name}: {{username: ..., secret: {{env: VAR}}}}"
        problems.add(first_file, first_key, f"credentials '{name}' are not defined{also}", fix)
