"""The `describe/` document: the map python-libmaas builds its whole client from.

The shape follows the one captured from a real MAAS 2.2 (python-libmaas's
`maas/client/bones/testing/api22.json`): a list of resources, each with an `anon` and an `auth`
handler (either may be null) naming its actions (`name`, `method`, `op`, `restful`), its URI
parameters and an absolute `uri`. The client calls those URIs as given, so they must carry the host
and port the client used. Only handlers and actions the simulator really serves are described: a
client that asks for anything else fails at once on its side instead of getting a surprise from ours.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

API_PATH = "/MAAS/api/2.0/"


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    op: str | None
    doc: str

    def render(self) -> dict[str, object]:
        return {
            "doc": self.doc,
            "method": self.method,
            "name": self.name,
            "op": self.op,
            "restful": self.op is None,
        }


def _op(name: str, method: str, doc: str) -> Action:
    return Action(name=name, method=method, op=name, doc=doc)


def _rest(name: str, method: str, doc: str) -> Action:
    return Action(name=name, method=method, op=None, doc=doc)


@dataclass(frozen=True)
class Handler:
    """One resource: its path below the API root (URI parameters in braces), doc and actions; an anonymous
    one is served without credentials (MAAS's `anon` handler) and has no `auth` handler."""

    path: str
    doc: str
    actions: tuple[Action, ...]
    anonymous: bool = False

    @classmethod
    def of(cls, path: str, doc: str, *actions: Action, anonymous: bool = False) -> Handler:
        return cls(path, doc, actions, anonymous)

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


HANDLERS: dict[str, Handler] = {
    "VersionHandler": Handler.of(
        "version/", "Information about this MAAS instance.",
        _rest("read", "GET", "Version and capabilities of this MAAS instance."), anonymous=True,
    ),
    "MachinesHandler": Handler.of(
        "machines/", "Manage the collection of all the machines in the MAAS.",
        _rest("read", "GET", "List machines, optionally filtered by hostname, mac_address, id."),
        _rest("create", "POST", "Create a new Machine.\n\n"
              ":param architecture: the architecture type of the machine (required).\n"
              ":param mac_addresses: one or more MAC addresses for the machine (required).\n"
              ":param hostname: a hostname. If not given, one will be generated.\n"
              ":param power_type: a power management type (e.g. \"redfish\", \"ipmi\").\n"
              ":param power_parameters: the power parameters, a JSON object."),
        _op("allocate", "POST", "Allocate an available machine for deployment.\n\n"
            "Returns 409 if no machine matching the constraints could be found."),
    ),
    "MachineHandler": Handler.of(
        "machines/{system_id}/", "Manage an individual machine.",
        _rest("read", "GET", "Read a specific machine."),
        _rest("update", "PUT", "Update a machine.\n\n:param hostname: the new hostname for this machine."),
        _op("deploy", "POST", "Deploy an operating system to a machine.\n\n"
            ":param user_data: base64-encoded cloud-init user data.\n"
            ":param distro_series: the OS release to deploy.\n:param hwe_kernel: the kernel."),
        _op("release", "POST", "Release a machine; optionally erase its disks first."),
        _op("abort", "POST", "Abort a machine's current operation."),
        _op("commission", "POST", "Begin commissioning process for a machine."),
        _op("power_on", "POST", "Turn on a machine."),
        _op("power_off", "POST", "Power off a machine."),
        _op("query_power_state", "GET", "Query the power state of a machine."),
        _op("mark_broken", "POST", "Mark a machine as 'Broken'."),
        _op("mark_fixed", "POST", "Mark a broken machine as fixed and set its status as 'Ready'."),
        _op("rescue_mode", "POST", "Begin rescue mode process for a machine."),
        _op("exit_rescue_mode", "POST", "Exit rescue mode process for a machine."),
        _op("test", "POST", "Begin testing process for a machine."),
    ),
    "EventsHandler": Handler.of(
        "events/", "Retrieve filtered node events.",
        _op("query", "GET", "List Node events, optionally filtered by hostname, mac_address, id, level, "
            "limit, before, after."),
    ),
    "UsersHandler": Handler.of(
        "users/", "Manage the user accounts of this MAAS.",
        _rest("read", "GET", "List users."),
        _op("whoami", "GET", "Returns the currently logged-in user."),
    ),
    "BootResourcesHandler": Handler.of(
        "boot-resources/", "Manage the boot resources.",
        _rest("read", "GET", "List all boot resources."),
    ),
    "TagsHandler": Handler.of(
        "tags/", "Manage all tags known to MAAS.",
        _rest("read", "GET", "List tags."),
        _rest("create", "POST", "Create a new tag.\n\n:param name: the new tag's name."),
    ),
    "TagHandler": Handler.of(
        "tags/{name}/", "Manage a Tag.",
        _rest("read", "GET", "Read a specific Tag."),
        _rest("update", "PUT", "Update a specific Tag."),
        _rest("delete", "DELETE", "Delete a specific Tag."),
        _op("machines", "GET", "Get the list of machines that have this tag."),
        _op("nodes", "GET", "Get the list of nodes that have this tag."),
        _op("update_nodes", "POST", "Add or remove nodes being associated with this tag.\n\n"
            ":param add: system_ids of nodes to add.\n:param remove: system_ids of nodes to remove."),
    ),
}


def describe(base_url: str) -> dict[str, object]:
    """The describe document with absolute URIs under `base_url` (scheme://host:port)."""
    resources = []
    for name, spec in HANDLERS.items():
        handler = {
            "actions": [action.render() for action in spec.actions],
            "doc": spec.doc,
            "name": name,
            "params": spec.params,
            "path": API_PATH + spec.path,
            "uri": base_url.rstrip("/") + API_PATH + spec.path,
        }
        resources.append({
            "anon": handler if spec.anonymous else None,
            "auth": None if spec.anonymous else handler,
            "name": name,
        })
    # MAAS publishes a hash of the API's shape so clients can tell when it changed.
    shape = json.dumps([(r["name"], HANDLERS[r["name"]].path) for r in resources]).encode()
    return {"doc": "MAAS API", "hash": hashlib.sha1(shape, usedforsecurity=False).hexdigest(),
            "resources": resources}
