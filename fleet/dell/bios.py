"""BIOS attributes against the site's pins: the registry that says what is allowed, the diff, the PATCH.

iDRAC 9 keeps the BIOS at `Systems/System.Embedded.1/Bios` (current `Attributes` and, under
`@Redfish.Settings`, the `SupportedApplyTimes`), pending values at `Bios/Settings`, and types and
allowed values in `Bios/BiosRegistry` (`RegistryEntries.Attributes[]`). A PATCH of `Bios/Settings`
with `@Redfish.SettingsApplyTime` stages the values and queues the BIOS job in one request (202,
the job only in `Location`); it is refused while another BIOS job is pending (SYS011). Shapes as
Dell's GetSetBiosAttributesREDFISH.py and dellemc.openmanage idrac_bios.py send and read them.

The registry is the same for every node on one BIOS version and large (hundreds of KB on a real
iDRAC), so it is read once per version for the whole run (`RegistryCache`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.dell.jobs import job_id
from fleet.dell.paths import get
from fleet.errors import BmcError
from fleet.redfish import Bmc

BIOS = "{system}/Bios"
SETTINGS = "{system}/Bios/Settings"
REGISTRY = "{system}/Bios/BiosRegistry"

ATTRIBUTES = ("Attributes",)
APPLY_TIMES = ("@Redfish.Settings", "SupportedApplyTimes")
REGISTRY_ID = ("AttributeRegistry",)
REGISTRY_ATTRIBUTES = ("RegistryEntries", "Attributes")
ENTRY_NAME = ("AttributeName",)
ENTRY_TYPE = ("Type",)
ENTRY_VALUES = ("Value",)
VALUE_NAME = ("ValueName",)
ENTRY_LOWER = ("LowerBound",)
ENTRY_UPPER = ("UpperBound",)
ENTRY_READ_ONLY = ("ReadOnly",)
APPLY_TIME = "@Redfish.SettingsApplyTime"
PENDING_COMMITTED = "already committed"  # SYS011: "Pending configuration values are already committed, ..."


@dataclass(frozen=True)
class AttributeSpec:
    """One registry entry: what values an attribute takes."""

    name: str
    kind: str  # Enumeration | Integer | String | Password | Boolean
    allowed: tuple[str, ...] = ()
    lower: int | None = None
    upper: int | None = None
    read_only: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` cannot be set, or None when it can."""
        if self.read_only:
            return "is read-only"
        if self.kind == "Enumeration" and str(value) not in self.allowed:
            return f"does not allow {value!r} (allowed: {', '.join(self.allowed)})"
        if self.kind == "Integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"takes an integer, not {value!r}"
            if (self.lower is not None and value < self.lower) or (self.upper is not None and value > self.upper):
                return f"takes {self.lower}..{self.upper}, not {value}"
        return None


def parse_registry(body: Mapping[str, Any]) -> dict[str, AttributeSpec]:
    specs = {}
    for entry in get(body, REGISTRY_ATTRIBUTES) or []:
        name = get(entry, ENTRY_NAME)
        if not name:
            continue
        values = tuple(str(get(v, VALUE_NAME)) for v in get(entry, ENTRY_VALUES) or [])
        specs[str(name)] = AttributeSpec(str(name), str(get(entry, ENTRY_TYPE) or ""), values,
                                         get(entry, ENTRY_LOWER), get(entry, ENTRY_UPPER),
                                         bool(get(entry, ENTRY_READ_ONLY)))
    return specs


def pin_problems(pins: Mapping[str, Any], registry: Mapping[str, AttributeSpec]) -> dict[str, str]:
    """Pins this BIOS cannot take (name -> why): unknown names, values outside the registry, read-only."""
    problems = {}
    for name, value in pins.items():
        spec = registry.get(name)
        if spec is None:
            problems[name] = "this BIOS has no such attribute"
        elif (why := spec.problem(value)) is not None:
            problems[name] = why
    return problems


def same(have: Any, want: Any) -> bool:
    """BIOS values compare as iDRAC shows them: exact strings, integers as integers."""
    return have == want or (not isinstance(have, bool) and str(have) == str(want))


def diff(pins: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """name -> (value now, pinned value) for every pin the BIOS does not have."""
    return {name: (current.get(name), want) for name, want in pins.items() if not same(current.get(name), want)}


@dataclass(frozen=True)
class Window:
    """A maintenance window: ISO start with its offset, as iDRAC wants it, and length."""

    start: str
    duration_s: int


def settings_body(changes: Mapping[str, tuple[Any, Any]], window: Window | None) -> dict[str, Any]:
    """The PATCH: only the differing attributes, applied at the next reset (inside the window if one)."""
    apply: dict[str, Any] = {"ApplyTime": "OnReset"}
    if window is not None:
        apply = {"ApplyTime": "InMaintenanceWindowOnReset", "MaintenanceWindowStartTime": window.start,
                 "MaintenanceWindowDurationInSeconds": window.duration_s}
    return {"Attributes": {name: want for name, (_, want) in changes.items()}, APPLY_TIME: apply}


@dataclass(frozen=True)
class BiosState:
    attributes: dict[str, Any]
    apply_times: tuple[str, ...]
    registry_id: str


def read(bmc: Bmc, system: str) -> BiosState:
    body = bmc.request("GET", BIOS.format(system=system), repeat=True).body
    return BiosState(dict(get(body, ATTRIBUTES) or {}), tuple(get(body, APPLY_TIMES) or ()),
                     str(get(body, REGISTRY_ID) or ""))


class RegistryCache:
    """Registries by (registry id, BIOS version), shared by every node of a run; loaded once each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str], dict[str, AttributeSpec]] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str], load: Callable[[], dict[str, AttributeSpec]]) -> dict[str, AttributeSpec]:
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one node loads, the others on the same version wait for it
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
            specs = load()
            with self._lock:
                self._loaded[key] = specs
            return specs


def read_registry(bmc: Bmc, system: str) -> dict[str, AttributeSpec]:
    return parse_registry(bmc.request("GET", REGISTRY.format(system=system), repeat=True).body)


def read_pending(bmc: Bmc, system: str) -> dict[str, Any]:
    return dict(get(bmc.request("GET", SETTINGS.format(system=system), repeat=True).body, ATTRIBUTES) or {})


class PendingCommitted(BmcError):
    """iDRAC refused the PATCH because another BIOS job already holds pending values (SYS011)."""


def patch(bmc: Bmc, system: str, body: Mapping[str, Any]) -> str:
    """Stage the values and queue the job; its JID. Sent once: a repeat after a lost answer would be
    refused (SYS011) with the first one's job pending, so the caller reads the queue instead."""
    try:
        reply = bmc.request("PATCH", SETTINGS.format(system=system), body=dict(body))
    except BmcError as err:
        if err.status == 400 and PENDING_COMMITTED in (err.service_message or ""):
            raise PendingCommitted(err.message, node=err.node, endpoint=err.endpoint, status=err.status,
                                   service_message=err.service_message, hint=err.hint) from None
        raise
    return job_id(reply.headers.get("Location"))
