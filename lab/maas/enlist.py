"""`machines create` as MAAS validates it: the form's rules and its error bodies.

What a client of real MAAS can notice (MAAS 2.x `MachinesHandler.create`, the doc captured in
python-libmaas's `maas/client/bones/testing/api22.json`, and MAAS's node forms):
- `architecture` and at least one `mac_addresses` are required; the architecture must be one MAAS
  has boot images for ("amd64/generic", or "amd64" which MAAS completes to "amd64/generic");
- `power_type` must be a known driver ("redfish", "ipmi", "manual", ...); its parameters come as
  `power_parameters` (a JSON object, which is what python-libmaas sends) or as
  `power_parameters_<name>` fields; redfish needs `power_address`, `power_user` and `power_pass`;
- a MAC already on another machine, or a hostname already taken, is refused;
- a bad request is 400 with a JSON object of field -> list of messages (Django's form errors);
- a machine an admin creates through the API starts commissioning at once (New -> Commissioning),
  and MAAS powers it on through its power driver to do it.
"""

from __future__ import annotations

import json
import re

from lab.maas.states import MachineState, Status, log_event

ARCHITECTURES = ("amd64/generic", "arm64/generic")
POWER_TYPES = ("redfish", "ipmi", "manual", "virsh", "lxd")
REQUIRED_POWER_PARAMETERS = {"redfish": ("power_address", "power_user", "power_pass"),
                             "ipmi": ("power_address", "power_user", "power_pass")}
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class FormError(Exception):
    """A 400 with Django's form error body: {field: [messages]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors


def _power_parameters(params: dict[str, list[str]], errors: dict[str, list[str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    raw = (params.get("power_parameters") or [""])[-1]
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            errors.setdefault("power_parameters", []).append("Enter a valid JSON object.")
        else:
            found.update({str(k): str(v) for k, v in parsed.items()})
    for key, values in params.items():
        if key.startswith("power_parameters_") and values:
            found[key[len("power_parameters_"):]] = values[-1]
    return found


def enlist(params: dict[str, list[str]], machines: dict[str, MachineState], system_id: str, *,
           now: float) -> MachineState:
    """The new machine MAAS would create from these form fields, or FormError with MAAS's messages.

    `system_id` is the id MAAS gives it; `machines` are the ones MAAS already has.
    """
    errors: dict[str, list[str]] = {}
    architecture = (params.get("architecture") or [""])[-1]
    if not architecture:
        errors["architecture"] = ["This field is required."]
    else:
        architecture = architecture if "/" in architecture else f"{architecture}/generic"
        if architecture not in ARCHITECTURES:
            errors["architecture"] = [f"'{architecture}' is not a valid architecture.  It should be one of: "
                                      + ", ".join(f"'{a}'" for a in ARCHITECTURES) + "."]
    macs = [mac.strip().lower() for mac in params.get("mac_addresses", []) if mac.strip()]
    if not macs:
        errors["mac_addresses"] = ["This field is required."]
    for mac in macs:
        if not _MAC.match(mac):
            errors.setdefault("mac_addresses", []).append(f"'{mac}' is not a valid MAC address.")
            continue
        owner = next((m.hostname for m in machines.values() if mac in m.macs), None)
        if owner:
            errors.setdefault("mac_addresses", []).append(
                f"One or more MAC addresses is invalid. (MAC address {mac} already in use on {owner}.)")
    hostname = (params.get("hostname") or [""])[-1].split(".", 1)[0].lower() or f"node-{system_id}"
    if not _HOSTNAME.match(hostname):
        errors["hostname"] = [f"Invalid hostname: {hostname!r}."]
    elif any(m.hostname == hostname for m in machines.values()):
        errors["hostname"] = ["Node with this Hostname already exists."]
    power_type = (params.get("power_type") or [""])[-1] or "manual"
    if power_type not in POWER_TYPES:
        errors["power_type"] = [f"Select a valid choice. {power_type} is not one of the available choices."]
    power = _power_parameters(params, errors)
    missing = [key for key in REQUIRED_POWER_PARAMETERS.get(power_type, ()) if not power.get(key)]
    if missing:
        errors.setdefault("power_parameters", []).extend(f"{key}: This field is required." for key in missing)
    if errors:
        raise FormError(errors)
    m = MachineState(system_id=system_id, hostname=hostname, macs=tuple(macs), status=Status.NEW,
                     status_message="New", power_state="unknown", power_type=power_type,
                     power_parameters=tuple(sorted(power.items())), architecture=architecture,
                     commissioning_status=-1)
    return log_event(m, now, "Node changed status", "From 'None' to 'New'", "DEBUG")
