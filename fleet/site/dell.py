"""The site's BIOS pins, firmware pins by component, firmware repository and maintenance window.

    bios:
      apply_time: OnReset                    # or InMaintenanceWindowOnReset (needs maintenance_window)
      attributes: {BootMode: Uefi, SriovGlobalEnable: Enabled, SysProfile: PerfOptimized}
    maintenance_window: {start: "2026-12-05T22:00:00+00:00", duration_s: 14400}
    firmware:
      repository: http://repo.dc1.example.com/dell/   # the iDRACs download images from here
      transfer: pull                                   # or push (the ops host uploads them)
      max_parallel: 8                                  # nodes updating at once
      components:
        idrac: {version: 7.10.70.00, image: iDRAC_7.10.70.00_A00.exe, sha256: <64 hex>}
        bios: {version: 2.3.5, image: BIOS_2.3.5.exe, sha256: <64 hex>}
        hca: {version: 28.42.1000, apply: node}     # ConnectX on HGX: mlxfwmanager from the host

A component matches the FirmwareInventory devices whose name contains `match` (defaults below for
the usual components). Whether a BIOS pin is possible is only known from the node's attribute
registry: discover reports a pin the registry refuses as an inventory error naming `bios.attributes.X`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fleet.site.schema import Problems, positive_int

APPLY_TIMES = ("OnReset", "InMaintenanceWindowOnReset")
TRANSFERS = ("pull", "push")
APPLIES = ("bmc", "node")
DEFAULT_MATCH = {
    "bios": "BIOS",
    "idrac": "Integrated Dell Remote Access Controller",
    "cpld": "CPLD",
    "nic": "Ethernet",
    "hca": "ConnectX",
    "gpu": "NVIDIA H",
    "psu": "Power Supply",
}
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class FirmwarePin:
    """One component's pin: FirmwareInventory names containing `match` must run `version`.

    `image` (a file in the site's repository) and its `sha256` are needed for an update through the
    iDRAC; `apply: node` says the iDRAC cannot do it (ConnectX on HGX): mlxfwmanager from the host."""

    component: str
    match: str
    version: str
    image: str = ""
    sha256: str = ""
    apply: str = "bmc"


@dataclass(frozen=True)
class MaintenanceWindow:
    start: str  # ISO 8601 with its offset, as iDRAC wants it
    duration_s: int

    @property
    def start_s(self) -> float:
        return datetime.fromisoformat(self.start).timestamp()

    def contains(self, now_s: float) -> bool:
        return self.start_s <= now_s <= self.start_s + self.duration_s


@dataclass(frozen=True)
class BiosSettings:
    attributes: dict[str, str | int] = field(default_factory=dict)
    apply_time: str = "OnReset"


@dataclass(frozen=True)
class FirmwareSettings:
    repository: str = ""
    transfer: str = "pull"
    max_parallel: int = 8
    components: tuple[FirmwarePin, ...] = ()

    def image_url(self, pin: FirmwarePin) -> str:
        return self.repository.rstrip("/") + "/" + pin.image.lstrip("/")


def parse_window(file: Path, raw: Any, problems: Problems) -> MaintenanceWindow | None:
    if raw is None or not problems.keys(raw, file, "maintenance_window", {"start", "duration_s"}, set()):
        return None
    start = str(raw.get("start", ""))
    try:
        parsed = datetime.fromisoformat(start)
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        problems.add(file, "maintenance_window.start", f"'{start}' is not a time with its UTC offset",
                     "quote it with the offset iDRAC wants: start: '2026-12-05T22:00:00+00:00'")
        return None
    duration = positive_int(file, "maintenance_window.duration_s", raw.get("duration_s"), problems, minimum=60)
    return MaintenanceWindow(start, duration) if duration else None


def parse_bios(file: Path, raw: Any, window: MaintenanceWindow | None, problems: Problems) -> BiosSettings:
    if raw is None or not problems.keys(raw, file, "bios", {"attributes"}, {"apply_time"}):
        return BiosSettings()
    apply_time = str(raw.get("apply_time", "OnReset"))
    if apply_time not in APPLY_TIMES:
        problems.add(file, "bios.apply_time", f"'{apply_time}' is not an apply time the tool uses",
                     f"use one of {', '.join(APPLY_TIMES)}")
    elif apply_time == "InMaintenanceWindowOnReset" and window is None:
        problems.add(file, "bios.apply_time", "InMaintenanceWindowOnReset needs a maintenance window",
                     "add maintenance_window: {start: '2026-12-05T22:00:00+00:00', duration_s: 14400}")
    attributes: dict[str, str | int] = {}
    if not isinstance(raw.get("attributes"), dict):
        problems.add(file, "bios.attributes", "expected a mapping of BIOS attribute -> value",
                     "attributes: {SriovGlobalEnable: Enabled, SysProfile: PerfOptimized}")
        return BiosSettings({}, apply_time)
    for name, value in raw["attributes"].items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            problems.add(file, f"bios.attributes.{name}", f"expected a string or an integer, got {value!r}",
                         "write the value as the BIOS registry names it: Enabled, not true")
        else:
            attributes[str(name)] = value
    return BiosSettings(attributes, apply_time)


def parse_firmware(file: Path, raw: Any, problems: Problems) -> FirmwareSettings:
    keys = {"repository", "transfer", "max_parallel", "components"}  # how long a job may take: timeouts
    if raw is None or not problems.keys(raw, file, "firmware", set(), keys):
        return FirmwareSettings()
    repository = str(raw.get("repository", ""))
    if repository and not repository.startswith(("http://", "https://")):
        problems.add(file, "firmware.repository", f"'{repository}' is not an HTTP(S) URL",
                     "the iDRACs download from it: repository: http://repo.dc1.example.com/dell/")
    transfer = str(raw.get("transfer", "pull"))
    if transfer not in TRANSFERS:
        problems.add(file, "firmware.transfer", f"unknown transfer '{transfer}'", f"use {' or '.join(TRANSFERS)}")
    max_parallel = positive_int(file, "firmware.max_parallel", raw.get("max_parallel", 8), problems)
    components = []
    entries = raw.get("components") or {}
    if not isinstance(entries, dict):
        problems.add(file, "firmware.components", "expected a mapping of component -> pin",
                     "components: {bios: {version: 2.3.5, image: BIOS_2.3.5.exe, sha256: ...}}")
        entries = {}
    for name, entry in entries.items():
        pin = _parse_pin(file, str(name), entry, problems)
        if pin is not None:
            components.append(pin)
    if any(pin.image for pin in components) and not repository:
        problems.add(file, "firmware.repository", "components name images but there is no repository",
                     "add repository: http://repo.dc1.example.com/dell/")
    return FirmwareSettings(repository, transfer, max_parallel or 8, tuple(components))


def _parse_pin(file: Path, name: str, entry: Any, problems: Problems) -> FirmwarePin | None:
    path = f"firmware.components.{name}"
    if not problems.keys(entry, file, path, {"version"}, {"match", "image", "sha256", "apply"}):
        return None
    match = str(entry.get("match") or DEFAULT_MATCH.get(name, ""))
    if not match:
        problems.add(file, f"{path}.match", f"component '{name}' has no default device name to match",
                     "add match: a part of the FirmwareInventory name, e.g. match: 'ConnectX-7'")
    if isinstance(entry.get("version"), (dict, list)) or entry.get("version") is None:
        problems.add(file, f"{path}.version", "expected a version string", "quote it: version: '2.3.5'")
        return None
    apply = str(entry.get("apply", "bmc"))
    if apply not in APPLIES:
        problems.add(file, f"{path}.apply", f"unknown apply '{apply}'", "use bmc (through the iDRAC) or node")
    image, sha256 = str(entry.get("image") or ""), str(entry.get("sha256") or "")
    if image and not SHA256_RE.match(sha256):
        problems.add(file, f"{path}.sha256", "an image needs its SHA-256 checksum (64 hex digits)",
                     f"sha256sum {image} and paste the digest")
    if sha256 and not image:
        problems.add(file, f"{path}.image", "a checksum without an image", "name the image file in the repository")
    return FirmwarePin(name, match, str(entry["version"]), image, sha256.lower(), apply)
