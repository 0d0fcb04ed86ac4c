"""The lab UFM's HTTPS REST server (aiohttp) over `lab.ufm.fabric.LabFabric`.

What real UFM Enterprise does that a client notices, and the lab does too (sources: NVIDIA UFM
Enterprise REST API Guide, docs.nvidia.com/networking/display/UFMEnterpriseRESTAPILatest: "Ports REST
API", "Links REST API", "PKey GUIDs REST API", "Unhealthy Ports REST API", "Jobs REST API", "Monitoring
REST API", "Authentication"; NVIDIA's clients in github.com/Mellanox/ufm_sdk_3.0: utils/ufm_rest_client.py,
scripts/ufm_pkeys/ufm_pkeys.py, plugins/pdr_deterministic_plugin/ufm_sim_web_service/ufm_communication_mgr.py;
Mellanox ib-kubernetes' UFM plugin):
- HTTPS only, with a certificate the site must trust (the lab CA here).
- `/ufmRest/...` takes HTTP basic; a wrong user or password is a 401 before any handler runs.
  `/ufmRestV3/...` takes `Authorization: Basic <access token>`, tokens made by `POST /ufmRest/app/tokens`.
- GUIDs are bare lower-case hex in bodies and answers; port names are `<guid>_<port number>`.
- `resources/ports`: every port of every switch and HCA, cabled or not; `?active=true` only active ones;
  `cable_info` only with `?cable_info=true`.
- `resources/links?page_number=N&rpp=M` answers `{"data": [...]}` pages of active links.
- `resources/pkeys?guids_data=true`: `{pkey: {partition, ip_over_ib, guids: [{guid, membership, index0}]}}`;
  `POST resources/pkeys` adds GUIDs, `PUT` replaces the member list, `POST actions/remove_guids_from_pkey`
  removes; a GUID that is not 16-20 hex digits or a pkey outside 0x0-0x7fff is a 400.
- `app/unhealthy_ports`: GET lists; PUT `{ports, ports_policy: UNHEALTHY, action: isolate|no_isolate}` marks,
  `ports_policy: HEALTHY` restores; an unknown port name is a 400.
- `POST actions` answers 202 with the job's URL in `Location`; `GET jobs/<id>` goes Running -> Completed.
- `POST monitoring/snapshot {attributes, objects}`: one read of the named counters of the named ports
  (all ports when `objects` is empty), `{"timestamp": epoch s, "data": {port name: {counter: value}}}`
  (the guide's "Monitoring session snapshot"; the body shape is ours, the client reads it in one place).
- A REST server that is restarting answers 503 (fault `busy`).
Every request is appended to `lab_dir/ufm/requests.jsonl` (method, path, query, status) so tests assert
what the client really sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from lab.ufm.fabric import COUNTERS, LabFabric, load_faults

log = logging.getLogger(__name__)
GUID_RE = re.compile(r"^[0-9a-f]{16,20}$")
PREFIXES = ("/ufmRest/", "/ufmRestV3/")
JOB_SIM_S = 30.0  # a port reset job runs for half a simulated minute


class Simulator:
    """Request handling over one LabFabric; re-applies the fault file whenever it changes."""

    def __init__(self, fabric: LabFabric, *, username: str, password: str, faults_file: Path,
                 request_log: Path) -> None:
        self.fabric = fabric
        self.username = username
        self.password = password
        self.faults_file = faults_file
        self.request_log = request_log
        self._faults_mtime: float | None = None
        self._job_ids = 0
        self.refresh_faults()

    def refresh_faults(self) -> None:
        try:
            mtime = self.faults_file.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime != self._faults_mtime:
            self._faults_mtime = mtime
            self.fabric.apply_faults(load_faults(self.faults_file))
            log.info("faults applied from %s", self.faults_file)

    def record(self, request: web.Request, status: int, body: object = None) -> None:
        entry = {"t": time.time(), "method": request.method, "path": request.path, "query": dict(request.query),
                 "status": status}
        if body is not None:
            entry["body"] = body
        with open(self.request_log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme != "Basic" or not value:
            return False
        if request.path.startswith("/ufmRestV3/"):
            return value in self.fabric.tokens
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.username) and secrets.compare_digest(password, self.password)


def _json(data: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json", headers=headers)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def build_app(sim: Simulator) -> web.Application:
    routes: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.Response]]] = {}

    def route(method: str, path: str) -> Callable:
        def register(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Callable:
            routes[(method, path)] = handler
            return handler
        return register

    async def dispatch(request: web.Request) -> web.Response:
        sim.refresh_faults()
        prefix = next((p for p in PREFIXES if request.path.startswith(p)), None)
        if prefix is None:
            response = _error(404, f"no such resource {request.path}")
        elif not sim.authorised(request):
            # Real UFM's Apache front answers an HTML 401 page
            response = web.Response(status=401, text="<html><body>401 Unauthorized</body></html>",
                                    content_type="text/html")
        elif sim.fabric.busy > 0:
            sim.fabric.busy -= 1
            response = web.Response(status=503, text="Service Unavailable", content_type="text/html")
        else:
            sub = request.path[len(prefix):].rstrip("/")
            handler = routes.get((request.method, sub))
            if handler is None and sub.startswith("jobs/") and request.method == "GET":
                handler = job
            response = await handler(request) if handler else _error(404, f"no such resource {request.path}")
        body = None
        if request.method in ("POST", "PUT") and request.body_exists:
            try:
                body = await request.json()
            except ValueError:
                body = None
        sim.record(request, response.status, body)
        return response

    fabric = sim.fabric

    @route("POST", "app/tokens")
    async def tokens(request: web.Request) -> web.Response:
        if request.path.startswith("/ufmRestV3/"):
            return _error(403, "tokens are created with basic authentication")
        token = secrets.token_hex(16)
        fabric.tokens.add(token)
        return _json({"access_token": token, "revoked": False})

    @route("GET", "resources/systems")
    async def systems(request: web.Request) -> web.Response:
        return _json(fabric.systems)

    @route("GET", "resources/ports")
    async def ports(request: web.Request) -> web.Response:
        return _json(fabric.ports_json(cable_info=request.query.get("cable_info") == "true",
                                       active_only=request.query.get("active") == "true"))

    @route("GET", "resources/links")
    async def links(request: web.Request) -> web.Response:
        data = fabric.links_json()
        try:
            page = int(request.query.get("page_number", "1"))
            rpp = int(request.query.get("rpp", str(len(data) or 1)))
        except ValueError:
            return _error(400, "page_number and rpp must be integers")
        if page < 1 or rpp < 1:
            return _error(400, "page_number and rpp must be positive")
        return _json({"data": data[(page - 1) * rpp:page * rpp]})

    @route("GET", "resources/pkeys")
    async def pkeys(request: web.Request) -> web.Response:
        with_guids = request.query.get("guids_data") == "true"
        result = {}
        for pkey, entry in fabric.pkeys.items():
            item = {"partition": entry["partition"], "ip_over_ib": entry["ip_over_ib"]}
            if with_guids:
                item["guids"] = [{"guid": guid, **member} for guid, member in entry["guids"].items()]
            result[pkey] = item
        return _json(result)

    async def _body(request: web.Request) -> object:
        try:
            return await request.json()
        except ValueError:
            return None

    def _pkey_body(body: object) -> tuple[dict, str, list[str], dict] | web.Response:
        """The body, pkey, port GUIDs and membership of a pkey request, or UFM's 400 for what is wrong in it."""
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        pkey = str(body.get("pkey", "")).lower()
        if not re.match(r"^0x[0-9a-f]{1,4}$", pkey) or not 0 < int(pkey, 16) < 0x7FFF:
            return _error(400, f"Invalid pkey {body.get('pkey')!r}: hexadecimal string between 0x0-0x7fff exclusive")
        guids = body.get("guids")
        if not isinstance(guids, list) or not guids:
            return _error(400, "guids is mandatory: a list of port GUIDs")
        for guid in guids:
            if not isinstance(guid, str) or not GUID_RE.match(guid.lower()):
                return _error(400, f"Invalid GUID {guid!r}: a hexadecimal string of 16-20 characters")
        membership = body.get("membership", "full")
        if membership not in ("full", "limited"):
            return _error(400, f"Invalid membership {membership!r}: full or limited")
        member = {"membership": membership, "index0": bool(body.get("index0", False))}
        return body, pkey, [g.lower() for g in guids], member

    def pkey_route(method: str, path: str) -> Callable:
        """A pkey request's route: the handler gets the parsed body, a bad body gets UFM's 400 first."""
        def register(handler: Callable[[dict, str, list[str], dict], web.Response]) -> Callable:
            async def serve(request: web.Request) -> web.Response:
                parsed = _pkey_body(await _body(request))
                return parsed if isinstance(parsed, web.Response) else handler(*parsed)
            return route(method, path)(serve)
        return register

    @pkey_route("POST", "resources/pkeys")
    def add_guids(body: dict, pkey: str, guids: list[str], member: dict) -> web.Response:
        entry = fabric.pkeys.setdefault(pkey, {"partition": pkey, "ip_over_ib": True, "guids": {}})
        entry["ip_over_ib"] = bool(body.get("ip_over_ib", True))
        entry["guids"].update({guid: dict(member) for guid in guids})
        return _json({})

    @pkey_route("PUT", "resources/pkeys")
    def set_guids(body: dict, pkey: str, guids: list[str], member: dict) -> web.Response:
        entry = fabric.pkeys.setdefault(pkey, {"partition": pkey, "ip_over_ib": True, "guids": {}})
        entry["guids"] = {guid: dict(member) for guid in guids}
        return _json({})

    @pkey_route("POST", "actions/remove_guids_from_pkey")
    def remove_guids(body: dict, pkey: str, guids: list[str], member: dict) -> web.Response:
        if pkey not in fabric.pkeys:
            return _error(404, f"pkey {pkey} not found")
        for guid in guids:
            fabric.pkeys[pkey]["guids"].pop(guid, None)
        return _json({})

    @route("GET", "app/events")
    async def events(request: web.Request) -> web.Response:
        return _json(fabric.events())

    @route("GET", "app/alarms")
    async def alarms(request: web.Request) -> web.Response:
        return _json(fabric.alarms())

    @route("GET", "app/unhealthy_ports")
    async def unhealthy(request: web.Request) -> web.Response:
        return _json(fabric.unhealthy_json())

    @route("PUT", "app/unhealthy_ports")
    async def mark(request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("ports"), list) or not body["ports"]:
            return _error(400, "ports is mandatory: a list of port names")
        policy = body.get("ports_policy")
        action = body.get("action")
        bad_action = policy == "UNHEALTHY" and action not in ("isolate", "no_isolate")
        if policy not in ("UNHEALTHY", "HEALTHY") or bad_action:
            return _error(400, "ports_policy must be UNHEALTHY (action isolate|no_isolate) or HEALTHY")
        unknown = [name for name in body["ports"] if name not in fabric.ports]
        if unknown:
            return _error(400, f"Port(s) not found: {', '.join(map(str, unknown))}")
        for name in body["ports"]:
            if policy == "HEALTHY":
                fabric.unhealthy.pop(name, None)
            else:
                fabric.unhealthy[name] = {"isolated": action == "isolate", "time": time.ctime()}
        return _json({})

    @route("POST", "actions")
    async def actions(request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict) or body.get("action") not in ("reset",):
            return _error(400, "unsupported action (the lab runs: reset)")
        ids = body.get("object_ids")
        if not isinstance(ids, list) or not ids:
            return _error(400, "object_ids is mandatory")
        sim._job_ids += 1
        job_id = str(sim._job_ids)
        fabric.jobs[job_id] = {"ID": job_id, "Operation": body["action"], "RelatedObjects": ids,
                               "Created": time.time(), "Description": body.get("description", "")}
        prefix = "/ufmRestV3/" if request.path.startswith("/ufmRestV3/") else "/ufmRest/"
        return web.Response(status=202, headers={"Location": f"{prefix}jobs/{job_id}"})

    async def job(request: web.Request) -> web.Response:
        job_id = request.path.rstrip("/").rpartition("/")[2]
        entry = fabric.jobs.get(job_id)
        if entry is None:
            return _json([])  # UFM answers an empty list for a job it does not know
        elapsed = (time.time() - entry["Created"]) / fabric.time_factor
        done = elapsed >= JOB_SIM_S
        return _json({**{k: v for k, v in entry.items() if k != "Created"},
                      "Status": "Completed" if done else "Running",
                      "Progress": 100 if done else int(100 * elapsed / JOB_SIM_S),
                      "Summary": "port reset done" if done else ""})

    @route("POST", "monitoring/snapshot")
    async def snapshot(request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        attributes = body.get("attributes") or list(COUNTERS)
        unknown = [a for a in attributes if a not in COUNTERS]
        if unknown:
            return _error(400, f"unknown monitoring attribute(s): {', '.join(map(str, unknown))}")
        data = fabric.counters_json(body.get("objects") or None)
        # samples carry UFM's own clock, so a reader's rates are right however long it waited
        return _json({"timestamp": fabric.start + fabric.sim_seconds(),
                      "data": {name: {a: values[a] for a in attributes} for name, values in data.items()}})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def serve(config_path: Path) -> None:
    from fleet.fabric.topology import load_topology
    from lab.settings import load_lab_site

    config = json.loads(config_path.read_text(encoding="utf-8"))
    site = load_lab_site(config["site"])
    fabric = LabFabric(site, load_topology(config["topology"]), time_factor=config["time_factor"],
                       seed=config["seed"])
    sim = Simulator(fabric, username=config["username"], password=config["password"],
                    faults_file=Path(config["faults_file"]), request_log=Path(config["request_log"]))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["cert_file"], config["key_file"])
    web.run_app(build_app(sim), host=config["host"], port=config["port"], ssl_context=context, access_log=None,
                print=None)
