"""HTTP for the Dell layer: which paths it owns, parsing, persistence and its request log.

The BMC front calls `DellLayer.owns(node, method, path)` for every request it did not fault; owned
requests are answered here from the node's `DellNode` (loaded from `dell_dir/nodes/<host>.json`,
written back whenever it changed), everything else goes on to sushy-tools. The front also reports
every host reset it forwarded (`host_reset`), which is what starts jobs that wait for POST.

`dell_dir/requests.jsonl` records every request this layer answered and every host reset, one JSON
object a line (`t`, `node`, `method`, `path`, `status`, `body`), so tests assert on what the lab saw.
"""

from __future__ import annotations

import email.policy
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from lab.redfish.dell import model
from lab.redfish.dell.model import DellNode

log = logging.getLogger("lab.redfish.dell")

SYSTEMS = "/redfish/v1/Systems"
REBOOTING_RESETS = ("On", "ForceOn", "ForceRestart", "GracefulRestart", "PowerCycle")
FETCH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    """Which BMC a request reached (the front's FrontNode, reduced to what this layer needs)."""

    hostname: str
    system_id: str
    service_tag: str


def node_file(dell_dir: Path, hostname: str) -> Path:
    return dell_dir / "nodes" / f"{hostname}.json"


def read_state(dell_dir: Path, hostname: str) -> DellNode | None:
    """A node's persisted Dell state (for tests and `lab status`); None before its first request."""
    path = node_file(dell_dir, hostname)
    return DellNode.load(path.read_text(encoding="utf-8")) if path.exists() else None


def read_requests(dell_dir: Path) -> list[dict[str, Any]]:
    path = dell_dir / "requests.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class DellLayer:
    """The Dell OEM and BIOS/firmware paths of every lab iDRAC, on the front's event loop."""

    def __init__(self, dell_dir: Path, *, time_factor: float, seed: int,
                 rates: Callable[[str], dict[str, float]], clock: Callable[[], float] = time.time) -> None:
        self._dir = dell_dir
        (dell_dir / "nodes").mkdir(parents=True, exist_ok=True)
        self._scale = time_factor
        self._seed = seed
        self._rates = rates
        self._clock = clock
        self._rng = random.Random(seed)
        self._nodes: dict[str, DellNode] = {}
        self._saved: dict[str, str] = {}
        self._log_lock = threading.Lock()

    # -- what the front asks -----------------------------------------------------------------
    @staticmethod
    def owns(target: Target, method: str, path: str) -> bool:
        system = f"{SYSTEMS}/{target.system_id}"
        if path in (f"{system}/Bios", f"{system}/Bios/Settings", f"{system}/Bios/BiosRegistry"):
            return True
        if path.startswith(f"{model.TASKS}/JID_"):
            return True
        return any(path == root or path.startswith(root + "/") for root in (
            model.UPDATE_SERVICE, model.JOBS, model.DELL_MANAGER, model.LOG_SERVICES))

    def rewrite_system(self, target: Target, data: dict[str, Any]) -> dict[str, Any]:
        """iDRAC's ComputerSystem links `Bios` (sushy-tools says `BIOS`) and reports the BIOS version."""
        node = self._node(target)
        data["Bios"] = {"@odata.id": f"{SYSTEMS}/{target.system_id}/Bios"}
        data["BiosVersion"] = next(item["version"] for item in node.firmware if item["component_id"] == "159")
        return data

    def host_reset(self, target: Target, reset_type: str) -> None:
        if reset_type not in REBOOTING_RESETS:
            return
        node = self._node(target)
        node.host_reset(self._clock())
        self._record(target, "POST", f"{SYSTEMS}/{target.system_id}/Actions/ComputerSystem.Reset", 204,
                     {"ResetType": reset_type, "event": "host_reset"})
        self._save(target.hostname)

    async def handle(self, target: Target, request: web.Request, session: ClientSession | None) -> web.Response:
        path = request.path.rstrip("/")
        query = parse_qs(urlsplit(request.path_qs).query)
        body: Any = None
        upload: tuple[bytes | None, str] = (None, "")
        if request.method in ("POST", "PATCH"):
            if request.content_type == "multipart/form-data":
                upload = await self._upload(request)
            else:
                raw = await request.read()
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    status, headers, answer = model.error(400, "Base.1.12.MalformedJSON", "The request body "
                                                          "submitted was malformed JSON and could not be parsed.")
                    return self._respond(target, request, path, body, status, headers, answer)
        fetched: tuple[bytes | None, str | None] = (None, None)
        if path == model.SIMPLE_UPDATE and request.method == "POST" and isinstance(body, dict):
            uri = body.get("ImageURI")
            if isinstance(uri, str) and uri.startswith(("http://", "https://")):
                fetched = await self._fetch(session, uri)
        node = self._node(target)
        status, headers, answer = self._route(target, node, request.method, path, query, body, upload, fetched,
                                              request.headers.get("If-Match"))
        self._save(target.hostname)
        return self._respond(target, request, path, body if upload[0] is None else {"file": upload[1]},
                             status, headers, answer)

    # -- routing ------------------------------------------------------------------------------
    def _route(self, target: Target, node: DellNode, method: str, path: str, query: dict[str, list[str]],
               body: Any, upload: tuple[bytes | None, str], fetched: tuple[bytes | None, str | None],
               if_match: str | None) -> model.Answer:
        now = self._clock()
        rates = self._rates(target.hostname)

        def hit(kind: str) -> bool:
            rate = rates.get(kind, 0.0)
            return rate > 0 and self._rng.random() < rate

        node.hardware(now, hit)
        node.advance(now)
        system = f"{SYSTEMS}/{target.system_id}"
        expand = any(value.startswith("*") for value in query.get("$expand", []))
        routes: dict[tuple[str, str], Callable[[], model.Answer]] = {
            ("GET", f"{system}/Bios"): lambda: (200, {}, node.bios_resource(system)),
            ("GET", f"{system}/Bios/Settings"): lambda: (200, {}, node.settings_resource(system)),
            ("PATCH", f"{system}/Bios/Settings"): lambda: node.answer_patch_settings(body, now, hit),
            ("GET", f"{system}/Bios/BiosRegistry"): lambda: (200, {}, node.registry_resource(system)),
            ("GET", model.UPDATE_SERVICE): lambda: (200, {}, self._update_service()),
            ("GET", model.FIRMWARE_INVENTORY): lambda: (200, {"ETag": node.etag_text}, self._inventory(node, expand)),
            ("POST", model.FIRMWARE_INVENTORY): lambda: node.answer_push(if_match, upload[0], upload[1], now, hit),
            ("POST", model.SIMPLE_UPDATE): lambda: node.answer_simple_update(body, fetched[0], fetched[1], now, hit),
            ("GET", model.JOBS): lambda: (200, {}, node.jobs_collection(now, expand)),
            ("POST", model.JOBS): lambda: node.answer_create_job(body, system, now, hit),
            ("GET", model.JOB_SERVICE): lambda: (200, {}, self._service("DellJobService", model.DELETE_JOB_QUEUE,
                                                                        "#DellJobService.DeleteJobQueue")),
            ("POST", model.DELETE_JOB_QUEUE): lambda: node.answer_delete_job_queue(body, now),
            ("GET", model.LC_SERVICE): lambda: (200, {}, self._service("DellLCService", model.LC_STATUS,
                                                                       "#DellLCService.GetRemoteServicesAPIStatus")),
            ("POST", model.LC_STATUS): lambda: (200, {}, node.lc_status(now, hit)),
        }
        action = routes.get((method, path))
        if action is not None:
            return action()
        if method == "GET":
            found = self._lookup(node, path, query, now)
            if found is not None:
                return found
        if any(known == path for _, known in routes):
            return model.error(405, "Base.1.12.OperationNotAllowed", f"The operation {method} is not allowed on "
                               f"{path}.", "Use an allowed HTTP method for this resource.")
        return model.error(404, "Base.1.12.ResourceMissingAtURI", f"The resource at the URI '{path}' was not found.",
                           "Place a valid resource at the URI or correct the URI and resubmit the request.")

    def _lookup(self, node: DellNode, path: str, query: dict[str, list[str]], now: float) -> model.Answer | None:
        """Member resources: a job, a task, a firmware member, a page of log entries."""
        head, _, leaf = path.rpartition("/")
        if head == model.JOBS or head == model.TASKS:
            job = node.job(leaf, now)
            if job is None:
                return None
            return 200, {}, job.resource() if head == model.JOBS else job.task()
        if head == model.FIRMWARE_INVENTORY:
            member = node.inventory_member(leaf)
            return (200, {}, member) if member else None
        for name in ("Sel", "Lclog"):
            if path == f"{model.LOG_SERVICES}/{name}/Entries":
                try:
                    skip = int((query.get("$skip") or ["0"])[0])
                except ValueError:
                    return model.error(400, "Base.1.12.QueryParameterValueTypeError", "The value for the query "
                                       "parameter $skip is of a different type than the parameter can accept.")
                return node.log_page(name, max(0, skip), _severity(query))
            if path == f"{model.LOG_SERVICES}/{name}":
                return 200, {}, {"@odata.id": path, "Id": name, "Name": f"{name} Log Service",
                                 "DateTime": model._stamp(now), "Entries": {"@odata.id": f"{path}/Entries"}}
        return None

    @staticmethod
    def _update_service() -> dict[str, Any]:
        """UpdateService as DeviceFirmwareSimpleUpdateREDFISH.py reads it (HttpPushUri, the SimpleUpdate target)."""
        return {"@odata.id": model.UPDATE_SERVICE, "@odata.type": "#UpdateService.v1_8_0.UpdateService",
                "Id": "UpdateService", "Name": "Update Service", "ServiceEnabled": True,
                "HttpPushUri": model.FIRMWARE_INVENTORY,
                "FirmwareInventory": {"@odata.id": model.FIRMWARE_INVENTORY},
                "Actions": {"#UpdateService.SimpleUpdate": {
                    "target": model.SIMPLE_UPDATE,
                    "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS"],
                    "@Redfish.OperationApplyTimeSupport": {"SupportedValues": ["Immediate", "OnReset"]}}}}

    @staticmethod
    def _inventory(node: DellNode, expand: bool) -> dict[str, Any]:
        members = node.inventory_members()
        return {"@odata.id": model.FIRMWARE_INVENTORY, "@odata.type": "#SoftwareInventoryCollection."
                "SoftwareInventoryCollection", "Name": "Firmware Inventory Collection",
                "Members": members if expand else [{"@odata.id": m["@odata.id"]} for m in members],
                "Members@odata.count": len(members)}

    @staticmethod
    def _service(name: str, target: str, action: str) -> dict[str, Any]:
        path = target.split("/Actions/")[0]
        return {"@odata.id": path, "@odata.type": f"#{name}.v1_1_0.{name}", "Id": name, "Name": name,
                "Actions": {action: {"target": target}}}

    # -- plumbing -----------------------------------------------------------------------------
    @staticmethod
    async def _upload(request: web.Request) -> tuple[bytes | None, str]:
        """The `file` part of a multipart POST (the front has read the body already: parse the bytes)."""
        raw = await request.read()
        head = f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        for part in message.iter_parts() if message.is_multipart() else ():
            if part.get_param("name", header="content-disposition") == "file":
                return part.get_payload(decode=True), str(part.get_filename() or "")
        return None, ""

    @staticmethod
    async def _fetch(session: ClientSession | None, uri: str) -> tuple[bytes | None, str | None]:
        """The iDRAC downloads an HTTP ImageURI itself (from the repository, never through the client)."""
        if session is None:
            return None, "no HTTP client"
        try:
            async with session.get(uri, timeout=ClientTimeout(total=FETCH_TIMEOUT_S)) as resp:
                if resp.status != 200:
                    return None, f"HTTP {resp.status}"
                return await resp.read(), None
        except (ClientError, TimeoutError) as err:
            return None, type(err).__name__

    def _node(self, target: Target) -> DellNode:
        node = self._nodes.get(target.hostname)
        if node is None:
            stored = read_state(self._dir, target.hostname)
            node = stored or DellNode.factory(target.hostname, target.service_tag, self._seed, self._clock())
            self._nodes[target.hostname] = node
            self._saved[target.hostname] = "" if stored is None else node.dump()
        node.scale = self._scale
        return node

    def _save(self, hostname: str) -> None:
        text = self._nodes[hostname].dump()
        if text != self._saved.get(hostname):
            path = node_file(self._dir, hostname)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            self._saved[hostname] = text

    def _respond(self, target: Target, request: web.Request, path: str, body: Any, status: int,
                 headers: dict[str, str], answer: dict[str, Any]) -> web.Response:
        self._record(target, request.method, request.path_qs, status, body)
        return web.json_response(answer, status=status, headers=headers)

    def _record(self, target: Target, method: str, path: str, status: int, body: Any) -> None:
        line = json.dumps({"t": self._clock(), "node": target.hostname, "method": method, "path": path,
                           "status": status, "body": body if isinstance(body, dict) else None})
        with self._log_lock, (self._dir / "requests.jsonl").open("a", encoding="utf-8") as out:
            out.write(line + "\n")


def _severity(query: dict[str, list[str]]) -> str | None:
    """`$filter=Severity eq 'Critical'` (iDRAC filters its logs; dellemc.openmanage filters on MessageId)."""
    for text in query.get("$filter", []):
        field, _, value = text.partition(" eq ")
        if field.strip() == "Severity":
            return value.strip().strip("'")
    return None
