"""Firmware by component against the site's pins, the update plan, and the two ways to hand iDRAC an image.

`UpdateService/FirmwareInventory` lists `Installed-<ComponentID>-<Version>[__<FQDD>]` members (plus
`Previous-`/`Available-` ones); with `$expand=*($levels=1)` one GET returns them all, as Dell's
DeviceFirmwareMultipartUploadREDFISH.py reads it. An update is `#UpdateService.SimpleUpdate` with an
`ImageURI`: an HTTP URL the iDRAC downloads itself (pull: no image traffic through the ops host),
or the `Available-` entry an HTTP push made (`HttpPushUri`: GET for its ETag, multipart POST of
`file` with `If-Match`), as DeviceFirmwareSimpleUpdateREDFISH.py does. Either way the answer is 202
with the job in `Location`, followed through `fleet.dell.jobs`.

Components the iDRAC lists but cannot update (`Updateable: false`: the ConnectX HCAs and GPUs of an
HGX board) are updated from the host; the plan names the tool and the role task that does it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.dell.jobs import job_id
from fleet.dell.paths import ID, NAME, ODATA_ID, get, members
from fleet.redfish import Bmc
from fleet.site.dell import FirmwarePin

UPDATE_SERVICE = "/redfish/v1/UpdateService"
FIRMWARE_INVENTORY = f"{UPDATE_SERVICE}/FirmwareInventory"
INVENTORY_EXPANDED = FIRMWARE_INVENTORY + "?$expand=*($levels=1)"
SIMPLE_UPDATE_DEFAULT = f"{UPDATE_SERVICE}/Actions/UpdateService.SimpleUpdate"

VERSION = ("Version",)
UPDATEABLE = ("Updateable",)
SOFTWARE_ID = ("SoftwareId",)
HTTP_PUSH_URI = ("HttpPushUri",)
SIMPLE_UPDATE = ("Actions", "#UpdateService.SimpleUpdate", "target")
OPERATION_APPLY_TIME = "@Redfish.OperationApplyTime"

NODE_TOOL = "mlxfwmanager"
NODE_ROLE_TASK = "roles/doca_ofed/tasks/firmware.yml (doca_ofed_hca_firmware_update: true)"


@dataclass(frozen=True)
class Installed:
    """One installed firmware: `id` is iDRAC's member id, `name` the device's."""

    id: str
    name: str
    version: str
    updateable: bool
    component_id: str


def parse_members(entries: Iterable[Mapping[str, Any]]) -> list[Installed]:
    return [Installed(str(get(m, ID)), str(get(m, NAME) or ""), str(get(m, VERSION) or ""),
                      bool(get(m, UPDATEABLE)), str(get(m, SOFTWARE_ID) or ""))
            for m in entries if str(get(m, ID) or "").startswith("Installed-")]


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    pinned: str
    versions: tuple[str, ...]  # what the matching devices run
    updateable: bool  # every matching device can be updated by the iDRAC
    ok: bool

    def describe(self) -> str:
        if not self.versions:
            return f"{self.component}: no device matches (Redfish lists none)"
        return f"{self.component}: {', '.join(sorted(set(self.versions)))} (pinned {self.pinned})"


def compliance(pins: Sequence[FirmwarePin], installed: Sequence[Installed]) -> list[ComponentStatus]:
    """Per pinned component: every inventory device whose name contains `match` must run `version`.
    A component with no matching device is reported but not a difference: Redfish does not list
    every device on every model (GPUs, PSUs)."""
    statuses = []
    for pin in pins:
        found = [item for item in installed if pin.match.lower() in item.name.lower()]
        versions = tuple(item.version for item in found)
        statuses.append(ComponentStatus(pin.component, pin.version, versions,
                                        bool(found) and all(item.updateable for item in found),
                                        all(version == pin.version for version in versions)))
    return statuses


@dataclass(frozen=True)
class UpdateStep:
    node: str
    component: str
    have: tuple[str, ...]
    version: str
    image: str
    sha256: str
    how: str  # "bmc" | "node"
    tool: str = ""  # for node-side steps: what applies it

    def describe(self) -> str:
        where = "through the iDRAC" if self.how == "bmc" else f"on the node with {NODE_TOOL} ({self.tool})"
        return f"{self.component} {', '.join(sorted(set(self.have)))} -> {self.version} {where}"


@dataclass(frozen=True)
class NodePlan:
    node: str
    steps: tuple[UpdateStep, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def bmc_steps(self) -> tuple[UpdateStep, ...]:
        return tuple(step for step in self.steps if step.how == "bmc")


def plan_node(node: str, pins: Sequence[FirmwarePin], statuses: Sequence[ComponentStatus]) -> NodePlan:
    """The updates one node needs, in the site's pin order, one component at a time.

    A component the iDRAC cannot update, or pinned `apply: node`, becomes a node-side step naming
    mlxfwmanager and the doca_ofed task; a BMC step without an image is a problem, not a guess."""
    by_name = {pin.component: pin for pin in pins}
    steps, problems = [], []
    for status in statuses:
        if status.ok or not status.versions:
            continue
        pin = by_name[status.component]
        how = "node" if pin.apply == "node" or not status.updateable else "bmc"
        if how == "bmc" and not pin.image:
            problems.append(f"{status.component}: needs {pin.version} but the pin names no image")
            continue
        steps.append(UpdateStep(node, status.component, status.versions, pin.version, pin.image, pin.sha256, how,
                                NODE_ROLE_TASK if how == "node" else ""))
    return NodePlan(node, tuple(steps), tuple(problems))


def checksum_problem(data: bytes, sha256: str) -> str | None:
    """The image must be the one the site pinned: a wrong or truncated download never reaches a BMC."""
    digest = hashlib.sha256(data).hexdigest()
    return None if digest == sha256.lower() else f"sha256 {digest}, the site pins {sha256}"


# -- acting on a BMC (thin) ---------------------------------------------------------------------


def read_inventory(bmc: Bmc) -> list[Installed]:
    """Installed firmware: one GET with $expand; a service that ignores $expand costs one GET per member."""
    body = bmc.request("GET", INVENTORY_EXPANDED, repeat=True).body
    found = members(body)
    if found and all(get(m, VERSION) is None for m in found):
        links = [str(get(m, ODATA_ID)) for m in found if "Installed-" in str(get(m, ODATA_ID))]
        found = [bmc.request("GET", link, repeat=True).body for link in links]
    return parse_members(found)


@dataclass(frozen=True)
class UpdateService:
    push_uri: str
    simple_update: str


def read_service(bmc: Bmc) -> UpdateService:
    body = bmc.request("GET", UPDATE_SERVICE, repeat=True).body
    return UpdateService(str(get(body, HTTP_PUSH_URI) or FIRMWARE_INVENTORY),
                         str(get(body, SIMPLE_UPDATE) or SIMPLE_UPDATE_DEFAULT))


def push(bmc: Bmc, service: UpdateService, data: bytes, filename: str) -> str:
    """HTTP push: the image becomes an `Available-` entry; its URI, for SimpleUpdate."""
    etag = bmc.request("GET", service.push_uri, repeat=True).headers.get("ETag", "")
    reply = bmc.request("POST", service.push_uri, body={"file": (filename, data, "application/octet-stream")},
                        headers={"Content-Type": "multipart/form-data", "If-Match": etag})
    return str(reply.headers.get("Location") or f"{service.push_uri}/{get(reply.body, ID)}")


def simple_update(bmc: Bmc, service: UpdateService, image_uri: str, *, reboot_later: bool = True) -> str:
    """Queue the update; its JID. `reboot_later` applies components that need POST at the next reset
    (the caller decides whether to reset), others apply at once either way. Sent once (it queues a job)."""
    body = {"ImageURI": image_uri, OPERATION_APPLY_TIME: "OnReset" if reboot_later else "Immediate"}
    if image_uri.startswith(("http://", "https://")):
        body["TransferProtocol"] = image_uri.split(":", 1)[0].upper()
    reply = bmc.request("POST", service.simple_update, body=body)
    return job_id(reply.headers.get("Location"))
