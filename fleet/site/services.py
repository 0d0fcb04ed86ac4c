"""The services a site talks to and how: MAAS and UFM endpoints, TLS, the OS image, version pins, switches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fleet.site.control import expand_path
from fleet.site.model import Endpoint, OsImage, Switch, TlsSettings
from fleet.site.schema import Problems, host_port

DEVICE_TYPES = ("dell_os10", "cumulus_linux", "mellanox_mlnxos")  # netmiko's names, fleet/fabric/switch.py
# maas.power: who powers the machines. redfish (default): MAAS, through their BMCs (the bring-up registers
# unknown machines with their BMC as power control); manual: MAAS has no BMC access, the pxe stage
# network-boots the machines MAAS does not know yet (enlistment) or waits to see boot.
MAAS_POWER = ("redfish", "manual")


def parse_switches(file: Path, raw: Any, problems: Problems) -> dict[str, Switch]:
    result: dict[str, Switch] = {}
    if not isinstance(raw, dict):
        problems.add(file, "switches", "expected a mapping of switch name -> settings", "switches: {leaf-01: {...}}")
        return result
    for name, entry in raw.items():
        path = f"switches.{name}"
        if problems.keys(entry, file, path, {"kind", "address"}, {"credentials", "device_type", "ports"}):
            address = host_port(file, f"{path}.address", entry.get("address"), problems)
            device_type = str(entry.get("device_type", ""))
            if device_type and device_type not in DEVICE_TYPES:
                problems.add(file, f"{path}.device_type", f"'{device_type}' is not a supported netmiko device type",
                             f"write one of {', '.join(DEVICE_TYPES)}")
                device_type = ""
            ports = entry.get("ports") or {}
            if not isinstance(ports, dict) or not all(isinstance(v, str) for v in ports.values()):
                problems.add(file, f"{path}.ports", "expected a mapping of interface -> description",
                             "ports: {ethernet1/1/1: gpu-012-01}")
                ports = {}
            result[str(name)] = Switch(str(name), str(entry.get("kind")), address, str(entry.get("credentials", "")),
                                       device_type, {str(k): v for k, v in ports.items()})
    return result


def parse_endpoint(file: Path, path: str, raw: Any, problems: Problems) -> Endpoint | None:
    """An API endpoint. MAAS signs requests with OAuth PLAINTEXT (the API key itself goes in the
    Authorization header), so plain http is refused unless the site accepts it by name."""
    optional = {"insecure_http", "power"} if path == "maas" else set()
    if not problems.keys(raw, file, path, {"url", "credentials"}, optional):
        return None
    url = str(raw.get("url", ""))
    insecure = raw.get("insecure_http", False)
    if not isinstance(insecure, bool):
        problems.add(file, f"{path}.insecure_http", f"expected true or false, got {insecure!r}",
                     "insecure_http: true (only for a MAAS you reach over a network you trust)")
        insecure = False
    if not re.match(r"^https?://[^/]+", url):
        problems.add(file, f"{path}.url", f"'{url}' is not an http(s) URL", "write e.g. https://maas.example:5443/MAAS/")
    elif path == "maas" and url.startswith("http://") and not insecure:
        problems.add(file, f"{path}.url", f"'{url}' is plain HTTP: MAAS's OAuth PLAINTEXT signature sends the API "
                     "key in clear on every request", "use https:// (MAAS: `maas config-tls enable`), or set "
                     "maas.insecure_http: true to accept it knowingly")
    return Endpoint(url, str(raw.get("credentials", "")), insecure)


def parse_maas_power(file: Path, raw: Any, problems: Problems) -> str:
    power = str(raw.get("power", "redfish")) if isinstance(raw, dict) else "redfish"
    if power not in MAAS_POWER:
        problems.add(file, "maas.power", f"'{power}' is not a power mode",
                     "write redfish (MAAS powers machines through their BMCs) or manual (MAAS has no BMC access)")
        return "redfish"
    return power


def parse_tls(file: Path, path: str, raw: Any, path_vars: dict[str, Path], problems: Problems) -> TlsSettings:
    if raw is None or not problems.keys(raw, file, path, set(), {"verify", "ca_file"}):
        return TlsSettings()
    verify = raw.get("verify", True)
    if not isinstance(verify, bool):
        problems.add(file, f"{path}.verify", f"expected true or false, got {verify!r}", "verify: true")
    ca_file = raw.get("ca_file")
    return TlsSettings(verify is not False, expand_path(file, str(ca_file), path_vars) if ca_file else None)


def parse_os(file: Path, raw: Any, problems: Problems) -> OsImage:
    if raw is None or not problems.keys(raw, file, "os", {"distro_series"}, {"hwe_kernel"}):
        return OsImage()
    return OsImage(str(raw["distro_series"]), str(raw.get("hwe_kernel", "")))



def parse_pins(file: Path, raw: Any, problems: Problems) -> dict[str, str]:
    """Version pins are name -> version string; a nested value is a mistake, not a version."""
    if not isinstance(raw, dict):
        problems.add(file, "pins", f"expected a mapping of name -> version, got {type(raw).__name__}",
                     "pins: {nvidia_driver: '550.127.05'}")
        return {}
    pins = {}
    for name, version in raw.items():
        if isinstance(version, (dict, list)) or version is None:
            problems.add(file, f"pins.{name}", "expected a version string", "quote it: nvidia_driver: '550.127.05'")
        else:
            pins[str(name)] = str(version)
    return pins
