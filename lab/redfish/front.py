"""The lab's BMC front: one HTTPS address per BMC, like real iDRACs, served by one process.

One sushy-tools emulator holds every lab system, and it runs inside this process: its Flask app is
called through WSGI (`lab.redfish.emulator.call`; reads on the event loop, writes on a few worker
threads), the way sushy-tools' own tests call it (`app.test_client()`) and the way any WSGI
server does, without a socket. Until
2026-12-01 the emulator was a second process (werkzeug's server) and every request crossed HTTP to it:
0.6-0.9 ms of the 1.1-1.3 ms of the emulator's CPU per request was that hop, and the BMC wave of the
bring-up bench (every node's discover and MAAS's power-on, both cores full) waited on it. What the
app answers reaches the client as it did over HTTP: status, the forwarded headers, the body bytes,
Basic auth against the emulator's htpasswd (tests/lab/test_redfish_inprocess.py compares the front
with the emulator's own server, request by request).

A real datacenter has one BMC per server,
each with its own address, certificate, single `Systems` member and its own bad days. The front
listens on every node's `bmc.address`, shows that node only, adds what iDRAC reports and the
emulator does not (the service tag as `SKU`, and `Model`: iDRAC 9 names the server as Dell sells it,
"PowerEdge XE9680" for the HGX H100 8-GPU server the lab stands for, in ComputerSystem.Model of the
DMTF schema), expands the EthernetInterfaces collection for `$expand=*($levels=1)` (iDRAC 9 expands
collections, the emulator ignores the parameter), forwards everything else unchanged (so the
emulator's quirks reach the client), and injects the faults named in `lab_dir/faults.json`.

Every request is written to the front's request log (JSON lines: node, method, path, status, the
fault injected, whether it reached the emulator, a reset's ResetType, and the client's User-Agent,
which tells MAAS's driver ("MAAS") from ours), so tests count what the
BMCs were really asked to do from the lab's side, not from the client's journal.

A server told to boot from the network (a PATCH of `Boot.BootSourceOverrideTarget: Pxe`) and then
started (a successful reset: On, ForceOn, ForceRestart, GracefulRestart, PowerCycle) sends DHCP/PXE
requests from its PXE NIC; MAAS's rack controller is what answers them. The front writes each such
boot to the network-boot feed (`netboots_log`, JSON lines: ts, node, mac) that the lab MAAS reads
(`lab.maas.enlist`): that file stands for the boot network. A `Once` override is spent by the boot. A request held by
the timeout fault is still carried out after the hold (aiohttp does not cancel a handler whose
client went away), as a busy iDRAC does: a timed-out reset may have happened.

Run: python -m lab.redfish.front --config LAB_DIR/redfish/front.json
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import random
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from lab.faultfile import FaultFile
from lab.redfish import emulator
from lab.redfish.dell.routes import DellLayer, Target
from lab.tls_buffers import use_small_tls_buffers

log = logging.getLogger("lab.redfish.front")

SYSTEMS = "/redfish/v1/Systems"
# bmc_html: what a browser login page behind the BMC's address looks like to a Redfish client.
LOGIN_PAGE = "<!DOCTYPE html><html><head><title>Login</title></head><body><form>Username</form></body></html>\n"
LAB_MODEL = "PowerEdge XE9680"  # every lab server, whatever an inventory says it is
EXPAND_ALL = ("*", ".")  # $expand forms that expand a collection's members (iDRAC 9: not on a system itself)
NO_NICS_READS = 3  # bmc_no_nics_yet: EthernetInterfaces reads that list nothing before the NICs appear
FORWARD_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept", "OData-Version", "If-Match", "If-None-Match")
EMULATOR_THREADS = 4  # the emulator's app runs requests that change state on these (see Front._forward)
# Methods the emulator's app answers on the event loop itself: they write to SQLite only when a power change
# lands (one WAL commit without fsync, ~0.1 ms), so they never wait for the disk.
INLINE_METHODS = frozenset({"GET", "HEAD"})
FORWARD_RESPONSE_HEADERS = ("Content-Type", "ETag", "Allow", "WWW-Authenticate", "OData-Version", "Retry-After")

# Message texts as iDRAC 9 and the DMTF Base registry word them, so clients parse real shapes.
MESSAGES = {
    401: ("IDRAC.2.8.SYS415", "Unable to complete the operation because an invalid username and/or password is "
          "entered, and therefore authentication failed.", "Enter valid user name and password and retry."),
    404: ("Base.1.12.ResourceMissingAtURI", "The resource at the URI '{path}' was not found.",
          "Place a valid resource at the URI or correct the URI and resubmit the request."),
    500: ("Base.1.12.InternalError", "The request failed due to an internal service error.  The service is "
          "still operational.", "Resubmit the request.  If the problem persists, consider resetting the service."),
    503: ("Base.1.12.ServiceTemporarilyUnavailable", "The service is temporarily unavailable.  Retry in 1 seconds.",
          "Wait for the indicated retry duration and retry the operation."),
}


@dataclass(frozen=True)
class FrontNode:
    """One BMC the front serves: where it listens and which emulator system is behind it."""

    hostname: str
    host: str
    port: int
    system_id: str
    service_tag: str
    pxe_mac: str = ""  # the NIC the server network-boots from (what MAAS sees in DHCP)


# The resets that start the server (it then boots, from the network when a PXE override is armed).
BOOTING_RESETS = frozenset({"On", "ForceOn", "ForceRestart", "GracefulRestart", "PowerCycle"})


@dataclass(frozen=True)
class FrontConfig:
    """Everything the front needs, written by `lab.redfish.service.prepare` as JSON."""

    emulator_config: str  # the sushy-tools emulator's config file (lab.redfish.emulator.build_app)
    faults_file: str
    cert_file: str
    key_file: str
    seed: int
    timeout_hold_s: float
    nodes: tuple[FrontNode, ...]
    requests_log: str = ""
    dell_dir: str = ""  # the Dell layer's state and request log (lab.redfish.dell)
    time_factor: float = 1.0
    netboots_log: str = ""  # the boot network as the lab MAAS sees it (see the module docstring)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> FrontConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["nodes"] = tuple(FrontNode(**node) for node in raw["nodes"])
        return cls(**raw)


def choose_fault(rates: dict[str, float], draws: list[float]) -> str | None:
    """Which fault, if any, this request gets: each kind fires with its own probability per request.

    Credentials are checked first (a real BMC refuses before doing work), then a hang, then an error.
    `draws` are three uniform numbers in [0, 1), one per kind, so the choice is a pure function.
    """
    for kind, draw in zip(("bmc_bad_credentials", "bmc_timeout", "bmc_5xx"), draws, strict=True):
        if draw < rates.get(kind, 0.0):
            return kind
    return None


def redfish_error(status: int, **fields: str) -> web.Response:
    """An error response with the body shape iDRAC sends: a general code plus @Message.ExtendedInfo."""
    message_id, message, resolution = MESSAGES[status]
    body = {"error": {
        "code": "Base.1.12.GeneralError",
        "message": "A general error has occurred. See ExtendedInfo for more information.",
        "@Message.ExtendedInfo": [{
            "MessageId": message_id, "Message": message.format(**fields), "Resolution": resolution,
            "Severity": "Critical", "MessageArgs": [],
        }],
    }}
    headers = {"WWW-Authenticate": 'Basic realm="RedfishService"'} if status == 401 else {}
    return web.json_response(body, status=status, headers=headers)


class Front:
    """The request handler shared by every BMC address."""

    def __init__(self, config: FrontConfig, app: emulator.WsgiApp) -> None:
        self._config = config
        self._app = app
        self._threads = ThreadPoolExecutor(EMULATOR_THREADS, thread_name_prefix="emulator")
        self._by_port = {node.port: node for node in config.nodes}
        self._faults = FaultFile(Path(config.faults_file))
        self._rng = random.Random(config.seed)
        self._session: ClientSession | None = None
        self._dell = DellLayer(Path(config.dell_dir), time_factor=config.time_factor, seed=config.seed,
                               rates=self._faults.rates) if config.dell_dir else None
        self._nic_reads: dict[str, int] = {}
        self._pxe_armed: dict[str, str] = {}  # hostname -> BootSourceOverrideEnabled of a Pxe override
        self._netboots = (open(config.netboots_log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
                          if config.netboots_log else None)
        self._requests_log = (open(config.requests_log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
                              if config.requests_log else None)  # open for the life of the server

    def _record(self, node: FrontNode, request: web.Request, status: int, fault: str | None, forwarded: bool,
                body: bytes) -> None:
        if self._requests_log is None:
            return
        entry: dict[str, Any] = {"ts": round(time.time(), 3), "node": node.hostname, "method": request.method,
                                 "path": request.path, "status": status, "fault": fault, "forwarded": forwarded,
                                 "agent": request.headers.get("User-Agent", "")}
        if request.method == "POST" and request.path.endswith("/Actions/ComputerSystem.Reset"):
            try:
                entry["reset"] = json.loads(body or b"{}").get("ResetType")
            except ValueError:
                entry["reset"] = None
        self._requests_log.write(json.dumps(entry) + "\n")

    async def start(self, app: web.Application) -> None:
        self._session = ClientSession(connector=TCPConnector(limit=32), timeout=ClientTimeout(total=120))

    async def stop(self, app: web.Application) -> None:
        if self._session:
            await self._session.close()
        self._threads.shutdown(wait=True)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        node = self._by_port[request.transport.get_extra_info("sockname")[1]]
        rates = self._faults.rates(node.hostname)  # one look at the fault file per request (a stat)
        fault = choose_fault(rates, [self._rng.random() for _ in range(3)])
        if fault:
            log.info("%s: injecting %s on %s %s", node.hostname, fault, request.method, request.path)
        payload = await request.read()
        if fault == "bmc_bad_credentials":
            self._record(node, request, 401, fault, False, payload)
            return redfish_error(401)
        if fault == "bmc_timeout":
            await asyncio.sleep(self._config.timeout_hold_s)
            rates = self._faults.rates(node.hostname)  # as they are when the held request is carried out
        if fault == "bmc_5xx":
            status = 503 if self._rng.random() < 0.5 else 500
            self._record(node, request, status, fault, False, payload)
            return redfish_error(status)
        if rates.get("bmc_html"):
            # The address answers, but not with Redfish: a web login page (a proxy or a mis-set port).
            self._record(node, request, 200, "bmc_html", False, payload)
            return web.Response(status=200, content_type="text/html", text=LOGIN_PAGE)
        path = request.path.rstrip("/")
        parts = path.split("/")
        if path.startswith(SYSTEMS + "/") and parts[4] != node.system_id:
            self._record(node, request, 404, fault, False, payload)
            return redfish_error(404, path=request.path)
        target = Target(node.hostname, node.system_id, node.service_tag)
        if self._dell and self._dell.owns(target, request.method, path):
            answer = await self._dell.handle(target, request, self._session)
            self._record(node, request, answer.status, fault, False, payload)
            return answer
        status, headers, body = await self._forward(request)
        self._record(node, request, status, fault, True, payload)
        if request.method == "GET" and status == 200 and path == SYSTEMS:
            body = _only_member(body, f"{SYSTEMS}/{node.system_id}")
        elif request.method == "GET" and status == 200 and path == f"{SYSTEMS}/{node.system_id}":
            system = _as_idrac(json.loads(body), node.service_tag)
            body = json.dumps(self._dell.rewrite_system(target, system) if self._dell else system).encode()
        elif request.method == "POST" and status < 300 and path.endswith("/ComputerSystem.Reset"):
            reset = str(json.loads(payload or b"{}").get("ResetType"))
            if self._dell:
                self._dell.host_reset(target, reset)
            self._booted(node, reset)
        elif request.method == "PATCH" and status < 300 and path == f"{SYSTEMS}/{node.system_id}":
            self._boot_override(node, payload)
        elif request.method == "GET" and status == 200 and path == f"{SYSTEMS}/{node.system_id}/EthernetInterfaces":
            body = self._nics_yet(node, body, rates)
            if request.query.get("$expand", "").startswith(EXPAND_ALL):
                body = await self._expanded(request, body)
        return web.Response(status=status, headers=headers, body=body)

    async def _expanded(self, request: web.Request, body: bytes) -> bytes:
        """`$expand=*` (or `.`) of a collection: each member's resource in place of its link, read from the
        emulator as a GET of the member would be (the emulator itself ignores $expand)."""
        data = json.loads(body)
        members = []
        for member in data.get("Members", []):
            status, _headers, raw = await self._forward(request, path=str(member.get("@odata.id", "")))
            members.append(json.loads(raw) if status == 200 else member)
        data["Members"] = members
        return json.dumps(data).encode()

    def _boot_override(self, node: FrontNode, payload: bytes) -> None:
        """Remember a PXE boot override the BMC accepted (the emulator reads `Once` back as `Continuous`)."""
        try:
            boot = json.loads(payload or b"{}").get("Boot") or {}
        except (ValueError, AttributeError):
            return
        if "BootSourceOverrideTarget" in boot or "BootSourceOverrideEnabled" in boot:
            enabled = boot.get("BootSourceOverrideEnabled")
            if boot.get("BootSourceOverrideTarget", "Pxe") == "Pxe" and enabled != "Disabled":
                self._pxe_armed[node.hostname] = str(boot.get("BootSourceOverrideEnabled") or "Once")
            else:
                self._pxe_armed.pop(node.hostname, None)

    def _booted(self, node: FrontNode, reset: str) -> None:
        """A started server with a PXE override armed network-boots: one line on the boot network."""
        if reset not in BOOTING_RESETS or node.hostname not in self._pxe_armed:
            return
        if self._pxe_armed[node.hostname] == "Once":
            del self._pxe_armed[node.hostname]
        if self._netboots is not None and node.pxe_mac:
            self._netboots.write(json.dumps({"ts": round(time.time(), 3), "node": node.hostname,
                                             "mac": node.pxe_mac.lower()}) + "\n")

    def _nics_yet(self, node: FrontNode, body: bytes, rates: dict[str, float]) -> bytes:
        """`bmc_no_nics_yet`: iDRAC lists no NICs until its inventory collection has run (after a new
        server's first power-on or an AC cycle); the first NO_NICS_READS reads show an empty collection."""
        if not rates.get("bmc_no_nics_yet"):
            return body
        self._nic_reads[node.hostname] = self._nic_reads.get(node.hostname, 0) + 1
        if self._nic_reads[node.hostname] > NO_NICS_READS:
            return body
        data = json.loads(body)
        data["Members"], data["Members@odata.count"] = [], 0
        return json.dumps(data).encode()

    async def _forward(self, request: web.Request, path: str = "") -> tuple[int, dict[str, str], bytes]:
        """The request as the emulator answers it (`path`: a GET of another resource, with the same headers).

        The emulator's app is called through WSGI as a server calls it. A read runs on the event loop: handing
        it to a worker thread and back (a queue, two wake-ups, a future's callbacks) cost about as much CPU as
        the app's answer, ~10% of the front's CPU in the bring-up's BMC wave. A PATCH or POST runs on one of
        the front's worker threads: its SQLite commits wait there, not on the loop that serves every BMC."""
        headers = {k: request.headers[k] for k in FORWARD_REQUEST_HEADERS if k in request.headers}
        method, query, body = ("GET", "", b"") if path else (
            request.method, request.rel_url.raw_query_string, await request.read())
        args = (self._app, method, path or request.path, query, headers, body, request.host)
        if method in INLINE_METHODS:
            status, answer, data = emulator.call(*args)
        else:
            status, answer, data = await asyncio.get_running_loop().run_in_executor(self._threads, emulator.call, *args)
        out = {k: answer[k] for k in FORWARD_RESPONSE_HEADERS if k in answer}
        if "Location" in answer:  # a path (the emulator's alias redirect), or an absolute URL of the BMC's own
            out["Location"] = answer["Location"]
        return status, out, data


def _only_member(body: bytes, member: str) -> bytes:
    """iDRAC's Systems collection has exactly one member: its own server.

    The emulator's collection lists every lab system (~90 KB of JSON at 1,280) and is the same for every
    BMC until systems come or go, so it is parsed once per body (`_collection`); each BMC's answer is that
    collection with its one member (0.3 ms of CPU per BMC at 1,280 systems when every BMC parsed it)."""
    data, members = _collection(body)
    mine = members.get(member, [])
    return json.dumps({**data, "Members": mine, "Members@odata.count": len(mine)}).encode()


@functools.lru_cache(maxsize=4)
def _collection(body: bytes) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """A collection's JSON and its members by `@odata.id`, parsed once per body (read only: shared)."""
    data = json.loads(body)
    members: dict[str, list[Any]] = {}
    for item in data.get("Members", []):
        members.setdefault(item.get("@odata.id"), []).append(item)
    return data, members


def _as_idrac(data: dict[str, Any], service_tag: str) -> dict[str, Any]:
    """iDRAC reports the Dell service tag as the system's SKU, and the server model; the emulator has neither."""
    data["SKU"] = service_tag
    data["Model"] = LAB_MODEL
    return data


async def serve(config: FrontConfig) -> None:
    """Build the emulator's app, then bind every BMC address (in inventory order, so the last one bound
    means all are up) and serve."""
    front = Front(config, emulator.build_app(config.emulator_config))
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.on_startup.append(front.start)
    app.on_cleanup.append(front.stop)
    app.router.add_route("*", "/{tail:.*}", front.handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert_file, config.key_file)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        for node in config.nodes:
            try:
                await web.TCPSite(runner, node.host, node.port, ssl_context=context, backlog=128).start()
            except OSError as err:
                raise SystemExit(f"{node.hostname}: cannot listen on its BMC address {node.host}:{node.port} "
                                 f"({err.strerror}); free the port or change bmc.address in the site") from None
        log.info("serving %d BMC addresses", len(config.nodes))
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("FLEET_LAB_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    use_small_tls_buffers()
    asyncio.run(serve(FrontConfig.load(args.config)))


if __name__ == "__main__":
    main()
