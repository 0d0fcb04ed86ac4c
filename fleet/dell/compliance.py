"""A node's BIOS and firmware against the site's pins, read in at most three requests.

FirmwareInventory ($expand, 1), Bios (1) and the attribute registry (1, and only for the first node
on a BIOS version: `RegistryCache` shares it across the run). The registry decides whether a pin is
possible at all: a pin it does not allow is an inventory error, not a difference to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.dell import bios, firmware
from fleet.dell.firmware import ComponentStatus
from fleet.redfish import Bmc
from fleet.site.dell import FirmwarePin


@dataclass(frozen=True)
class Compliance:
    bios: dict[str, tuple[Any, Any]]  # attribute -> (value now, pinned)
    firmware: tuple[ComponentStatus, ...]
    inventory_problems: dict[str, str]  # BIOS pin -> why the registry does not allow it
    bios_version: str

    @property
    def ok(self) -> bool:
        return not self.bios and all(status.ok for status in self.firmware) and not self.inventory_problems

    def differences(self) -> list[str]:
        out = [f"BIOS {name} is {have!r}, pinned {want!r}" for name, (have, want) in sorted(self.bios.items())]
        out += [f"firmware {status.describe()}" for status in self.firmware if not status.ok]
        return out

    def as_evidence(self) -> dict[str, Any]:
        return {"bios_version": self.bios_version,
                "bios_diff": {name: {"have": have, "want": want} for name, (have, want) in self.bios.items()},
                "firmware": {status.component: {"versions": sorted(set(status.versions)), "pinned": status.pinned,
                                                "ok": status.ok} for status in self.firmware},
                "inventory_problems": dict(self.inventory_problems)}


def evaluate(bios_pins: Mapping[str, Any], registry: Mapping[str, bios.AttributeSpec], attributes: Mapping[str, Any],
             pins: Sequence[FirmwarePin], installed: Sequence[firmware.Installed]) -> Compliance:
    """Pure: the comparison itself. Pins the registry refuses are left out of the diff."""
    problems = bios.pin_problems(bios_pins, registry) if bios_pins else {}
    possible = {name: value for name, value in bios_pins.items() if name not in problems}
    version = next((item.version for item in installed if item.name == "BIOS"), "")
    return Compliance(bios.diff(possible, attributes), tuple(firmware.compliance(pins, installed)),
                      problems, version)


def read(bmc: Bmc, bios_pins: Mapping[str, Any], pins: Sequence[FirmwarePin],
         registries: bios.RegistryCache) -> Compliance:
    installed = firmware.read_inventory(bmc) if pins or bios_pins else []
    attributes: dict[str, Any] = {}
    registry: Mapping[str, bios.AttributeSpec] = {}
    if bios_pins:
        system = bmc.system_path()
        state = bios.read(bmc, system)
        attributes = state.attributes
        version = next((item.version for item in installed if item.name == "BIOS"), "")
        registry = registries.get((state.registry_id, version), lambda: bios.read_registry(bmc, system))
    return evaluate(bios_pins, registry, attributes, pins, installed)
