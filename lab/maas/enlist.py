"""How machines come to MAAS: `machines create` as MAAS validates it, and enlistment by network boot.

What a client of real MAAS can notice (MAAS 2.x `MachinesHandler.create`, the doc captured in
python-libmaas's `maas/client/bones/testing/api22.json`, and MAAS's node forms):
- `architecture` and at least one `mac_addresses` are required; the architecture must be one MAAS
  has boot images for ("amd64/generic", or "amd64" which MAAS completes to "amd64/generic");
- `power_type` must be a known driver ("redfish", "ipmi", "manual", ...); its parameters come as
  `power_parameters` (a JSON object, which is what python-libmaas sends) or as
  `power_parameters_<name>` fields; redfish needs `power_address`, `power_user` and `power_pass`;
- a MAC already on another machine, or a hostname already taken, is refused;
- a bad request is 400 with a JSON object of field -> list of messages (Django's form errors);
- `PUT machines/{system_id}/` (MachineHandler.update, what python-libmaas's `Machine.save()` sends
  for a changed `hostname`) takes an admin's key (NodePermission.admin: anyone else gets 403) and
  validates the name as the model does (canonical/maas src/maasserver/models/node.py: `hostname`
  is unique and checked by `validate_hostname`, src/maascommon/utils/dns.py; `clean_hostname_domain`
  splits an FQDN and refuses a domain MAAS does not have with "Nonexistant domain."), answering a
  bad one 400 with the form errors (`MAASAPIValidationError(form.errors)`, src/maasserver/api/
  machines.py): {"hostname": ["Label contains disallowed characters: 'gpu_1'."]} or
  {"hostname": ["Node with this Hostname already exists."]}; a field not sent is left as it was;
- a machine an admin creates through the API starts commissioning at once (New -> Commissioning),
  and MAAS powers it on through its power driver to do it.

Enlistment by network boot (what a site whose MAAS cannot reach the BMCs relies on):
- a machine that PXE-boots on a MAAS-managed network with a MAC MAAS does not know gets the
  enlistment environment (canonical/maas src/maasserver/api/pxeconfig.py: no node for the MAC ->
  the ephemeral image with the enlistment preseed, hostname "maas-enlist"); its scripts report the
  machine to MAAS (`maas-enlist --mac-address ... --arch ...`, the maas-enlist man page), and MAAS
  creates it New with that boot MAC. The whole boot takes minutes (`REAL_DURATIONS_S["enlist"]`);
- with no hostname sent MAAS names it itself (src/maasserver/models/node.py `set_random_hostname`:
  `petname.Generate(2, "-")`, two words such as "ample-hawk"), so a client finds it by MAC;
- its power type is empty ("Node power type is unconfigured", `get_effective_power_type`) unless
  the enlistment scripts could read and configure the BMC, which a `maas.power: manual` site's
  MAAS cannot: MAAS then powers it with nothing. Its manual driver (src/provisioningserver/
  drivers/power/manual.py, `ManualPowerDriver`) logs "You need to power on <id> manually" for on,
  off and reset, and answers a power query "unknown" without touching anything;
- so commissioning and deploying such a machine wait until it network-boots: MAAS hands a
  Commissioning machine the ephemeral image and a Deploying one the installer when it PXE-boots
  (pxeconfig's boot purpose), and logs each boot as a "PXE Request" event;
- a MAC seen booting again while its enlistment is under way is the same enlistment;
- the ephemeral environment powers the machine off at the end of enlistment and of commissioning
  (the lab sends that ForceOff as the machine's own OS, through the BMC the inventory gives it).
The lab's boot network is the BMC front's network-boot feed (`lab.redfish.front`: one JSON line
per server that started with a PXE override armed); `BootNetwork` reads it. The `pxe_unserved`
fault puts a node's PXE NIC on a network whose DHCP MAAS does not serve (a wrong VLAN on its
switch port, a DHCP relay missing): it powers on and boots, but MAAS never hears of it, so it never
enlists, and an operation waiting for its boot fails on MAAS's deadline (lab.maas.states).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab.maas.states import MachineState, Status, log_event, network_booted

ARCHITECTURES = ("amd64/generic", "arm64/generic")
POWER_TYPES = ("redfish", "ipmi", "manual", "virsh", "lxd")
REQUIRED_POWER_PARAMETERS = {"redfish": ("power_address", "power_user", "power_pass"),
                             "ipmi": ("power_address", "power_user", "power_pass")}
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_CHARS = re.compile(r"[a-zA-Z0-9-]*$")  # maascommon.utils.dns.validate_domain_name


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


def hostname_error(hostname: str) -> str | None:
    """MAAS's `validate_hostname` message for `hostname` (host label and domain), or None when valid."""
    if len(hostname) > 255:
        return "Hostname is too long.  Maximum allowed is 255 characters."
    host_part = hostname.split(".")[0]
    if "_" in host_part:
        return f"Host label cannot contain underscore: {host_part!r}."
    for label in hostname.split("."):
        if not label:
            return "DNS name contains an empty label."
        if len(label) > 63:
            return f"Label is too long: {label!r}.  Maximum allowed is 63 characters."
        if label.startswith("-") or label.endswith("-"):
            return f"Label cannot start or end with hyphen: {label!r}."
        if not _LABEL_CHARS.match(label):
            return f"Label contains disallowed characters: {label!r}."
    return None


def update(params: dict[str, list[str]], m: MachineState, machines: dict[str, MachineState], *,
           domain: str) -> MachineState:
    """`PUT machines/{system_id}/` for the fields the lab keeps (the hostname), or FormError as MAAS
    words it. `domain` is the one domain MAAS has; an FQDN in another one is refused."""
    if "hostname" not in params:
        return m
    wanted = params["hostname"][-1]
    problem = hostname_error(wanted)
    name, _, in_domain = wanted.partition(".")
    if problem is None and in_domain and in_domain != domain:
        problem = "Nonexistant domain."
    if problem is None and any(other.hostname == name for other in machines.values()
                               if other.system_id != m.system_id):
        problem = "Node with this Hostname already exists."
    if problem is not None:
        raise FormError({"hostname": [problem]})
    return replace(m, hostname=name)


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


# A small part of the petname word lists: enough for a rack's worth of distinct two-word names.
_ADJECTIVES = ("ample", "brave", "calm", "deep", "eager", "fair", "glad", "keen", "lucky", "merry", "noble",
               "proud", "quick", "sharp", "tidy", "vital", "witty", "young")
_ANIMALS = ("ant", "bat", "crab", "deer", "eel", "fox", "gnu", "hawk", "ibex", "koi", "lynx", "mole", "newt",
            "owl", "pug", "ram", "seal", "toad", "wasp", "yak")


def petname(rng: random.Random, taken: set[str]) -> str:
    """A MAAS-style generated hostname (two words), unused so far."""
    while True:
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_ANIMALS)}"
        if name not in taken:
            return name


def enlist_by_netboot(mac: str, machines: dict[str, MachineState], system_id: str, *, now: float,
                      rng: random.Random) -> MachineState:
    """The New machine MAAS creates when an unknown machine's enlistment environment reports in."""
    hostname = petname(rng, {m.hostname for m in machines.values()})
    # The enlistment environment powers the machine off once it has reported in (power_request
    # "shutdown": the machine's own OS, no MAAS request).
    m = MachineState(system_id=system_id, hostname=hostname, macs=(mac,), status=Status.NEW, status_message="New",
                     power_state="unknown", power_type="", commissioning_status=-1, waits_for_boot=True,
                     power_request="shutdown")
    return log_event(m, now, "Node changed status", "From 'None' to 'New'", "DEBUG")


@dataclass
class BootNetwork:
    """The lab's boot network as MAAS's rack controller sees it: new lines of the netboot feed.

    Every boot is a "PXE Request" for a known MAC (`network_booted`), and an enlistment, due
    `enlist_s` later, for an unknown one. Read from the start of the feed, so a restarted simulator
    sees the boots again: a known MAC's old boot does nothing (it predates any waiting operation)
    and an unknown MAC's is an enlistment still to come.
    """

    path: Path | None
    enlist_s: float
    offset: int = 0
    enlisting: dict[str, float] = field(default_factory=dict)  # mac -> when MAAS has the machine

    def boots(self) -> list[tuple[float, str, str]]:
        """(ts, mac, node) of the boots written since the last call."""
        if self.path is None:
            return []
        try:
            with self.path.open("rb") as feed:
                feed.seek(self.offset)
                data = feed.read()
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next tick
        self.offset += len(complete)
        found = []
        for line in complete.decode(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                found.append((float(entry["ts"]), str(entry["mac"]).lower(), str(entry.get("node", ""))))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def step(self, machines: dict[str, MachineState], new_id: Callable[[str], str], *, now: float,
             rng: random.Random, unserved: Callable[[str], bool] = lambda node: False) -> list[tuple[str, str]]:
        """Apply the new boots and the enlistments now due to `machines`; returns (system id, what
        happened) for the op log. `unserved(node)`: that server's boots never reach MAAS."""
        changed: list[tuple[str, str]] = []
        boots = self.boots()
        if not boots and not self.enlisting:
            return changed  # the clock ticks 20 times a second: no index of every machine's MACs for nothing
        by_mac = {mac: m.system_id for m in machines.values() for mac in m.macs}
        for at, mac, node in boots:
            if unserved(node):
                continue
            if mac in by_mac:
                system_id = by_mac[mac]
                before = machines[system_id]
                after = machines[system_id] = network_booted(before, at)
                started = before.pending is not None and before.pending.awaiting_power and not (
                    after.pending is not None and after.pending.awaiting_power)
                changed.append((system_id, f"PXE Request ({after.maas_events[-1][3]})"
                                + (f": {after.status_name} under way" if started else "")))
            elif mac not in self.enlisting:
                self.enlisting[mac] = at + self.enlist_s
        for mac, due_at in list(self.enlisting.items()):
            if due_at > now:
                continue
            del self.enlisting[mac]
            if mac in by_mac:
                continue
            m = enlist_by_netboot(mac, machines, new_id(mac), now=due_at, rng=rng)
            machines[m.system_id] = m
            by_mac[mac] = m.system_id
            changed.append((m.system_id, f"enlisted by network boot: New ({mac})"))
        return changed
