"""The MAAS 2.0 API simulator: one aiohttp process serving the lab's machines to python-libmaas.

What a client can observe follows MAAS: anonymous `describe/` and `version/`, OAuth 1.0 PLAINTEXT on
everything else (401 otherwise), `op=` in the query string, multipart bodies, Piston's plain-text
errors (404 "No Machine matches the given query.", 409 for state violations, 400 for bad input),
and machine JSON with the fields python-libmaas reads. Time is lab time: MAAS's real durations
multiplied by the lab's time factor, so a 10-minute install takes 0.6 s at factor 0.001.

Power is real where MAAS's is: a machine registered with power type `redfish` is powered through its
BMC by `lab.maas.power` (MAAS's Redfish driver, request for request) whenever the state machine asks
for it (commission, deploy, release, power_on/off), and `query_power_state` asks the BMC live, as
MAAS's API does (503 with the driver's error when the BMC does not answer). `machines create`
(`lab.maas.enlist`) registers a machine MAAS does not know and starts commissioning it; the events
API (`events/?op=query`) shows what MAAS logged for each machine (power failures, failed scripts);
`boot-resources/` lists the images MAAS has synced, which `deploy` checks its `distro_series` and
`hwe_kernel` against (`lab.maas.images`).

The simulator's own log (`logs/maas.log` under `lab up`) is its op log: one line per operation it
accepted or refused, per status change, per power action, per network boot (`PXE Request (<purpose>)`,
and `enlisted by network boot` for a MAC MAAS did not know), per rename (`hostname changed`), and
per tag a machine gains or loses
(`tags update_nodes` add/remove, or the tag deleted). Real MAAS writes no node event for
`update_nodes`, only audit events for creating, updating or deleting the tag itself
(src/maasserver/api/tags.py), so the tag lines go to the lab's log, not to the events API.

Users are MAAS's (`lab.maas.users`): each API key is one user, `users/?op=whoami` says which, a
machine's `owner` is the user who allocated or deployed it, and a non-admin acting on another
user's machine gets 403; an admin (the site's key) may act on anyone's, as in MAAS. Every accepted
action's op-log line names the user who sent it (`<host>: <op> accepted: <from> -> <to> (by <user>)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from lab.faultfile import FaultFile
from lab.maas.describe import API_PATH, describe
from lab.maas.enlist import BootNetwork, FormError, enlist, update
from lab.maas.images import BOOT_RESOURCES, ImageError, check_deploy
from lab.maas.multipart import Params, parse_body
from lab.maas.power import PowerFailed, PowerParameters, RedfishDriver
from lab.maas.states import (
    SCRIPT_STATUS_NAMES,
    IllegalTransition,
    MachineState,
    Status,
    Timing,
    advance,
    allocate,
    apply_action,
    due,
    log_event,
    os_booted,
    power_result,
)
from lab.maas.store import Config, HookFile, StateWriter, load_state, system_id_for
from lab.maas.users import SITE_USER, LabUser, lab_users, may_edit
from lab.tls_buffers import use_small_tls_buffers

log = logging.getLogger("lab.maas")
HOOK_CONCURRENCY = 2
# A hook that boots the deployed OS (a light host: one sshd) gates Deployed, and real machines boot in
# parallel: more of them at once, still far from forking one per machine of a 512-node wave.
OS_BOOT_HOOK_CONCURRENCY = 8
# A batch hook (light hosts: one process for many nodes) runs this many at once, each with up to BATCH_MAX
# machines: everything queued meanwhile joins the next run, so a deploy wave costs a few runs, not one per node.
BATCH_HOOK_RUNS = 2
BATCH_MAX = 128
POWER_CONCURRENCY = 32  # power actions a rack controller runs at once
MACHINE_OS_AGENT = "fleet-lab-machine-os"  # the BMC log's name for a machine powering itself off
EVENT_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

MACHINE_ACTIONS = frozenset({
    "deploy", "release", "abort", "commission", "power_on", "power_off", "mark_broken",
    "mark_fixed", "rescue_mode", "exit_rescue_mode", "test",
})
Handler = Callable[[web.Request, Params], Awaitable[web.Response]]
TICK_S = 0.05
SAVE_EVERY_S = 0.5
DOMAIN = {"authoritative": True, "id": 0, "name": "maas", "resource_record_count": 0,
          "ttl": None, "resource_uri": API_PATH + "domains/0/"}
ZONE = {"id": 1, "name": "default", "description": "", "resource_uri": API_PATH + "zones/default/"}
POOL = {"id": 0, "name": "default", "description": "Default pool",
        "resource_uri": API_PATH + "resourcepool/0/"}


def _text(status: int, message: str) -> web.Response:
    """Piston answers errors as plain text, not JSON."""
    return web.Response(status=status, text=message, content_type="text/plain")


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def _oauth_params(header: str) -> dict[str, str]:
    if not header.lower().startswith("oauth "):
        return {}
    params = {}
    for item in header[6:].split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            params[key.strip()] = unquote(value.strip().strip('"'))
    return params


@dataclass(frozen=True)
class HookCall:
    """One machine's event waiting for a batch hook run; `booted` as in `Simulator._fire_hook`."""

    hostname: str
    event: str
    booted: tuple[str, float] | None = None


def take_batch(queue: list[HookCall], busy: set[str], limit: int) -> tuple[list[HookCall], list[HookCall]]:
    """The next batch hook run's calls and what stays queued (pure). FIFO per machine: a call is taken only
    if its machine is in no running batch and has no earlier call still queued, and only with the event of
    the first call taken (one run has one event); at most `limit`."""
    taken: list[HookCall] = []
    rest: list[HookCall] = []
    held = set(busy)  # machines whose later calls must wait
    for call in queue:
        if call.hostname in held or len(taken) >= limit or (taken and call.event != taken[0].event):
            rest.append(call)
        else:
            taken.append(call)
        held.add(call.hostname)
    return taken, rest


class Simulator:
    """Machines, tags and the clock; every handler goes through `_machine()` so state is current."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.timing = Timing(config.time_factor)
        self.rng = random.Random(config.seed)
        self.faults = FaultFile(config.faults_file)
        self.hook = HookFile(config.hook_file)
        self.machines, self.tags = load_state(config)
        self.writer = StateWriter(config.state_file)
        self.users = lab_users(config.api_key)
        self.dirty = False
        self.hook_tasks: set[asyncio.Task[None]] = set()
        # A 512-node deploy wave must not fork 512 hook processes at once (it starved the API).
        self.hook_slots = asyncio.Semaphore(HOOK_CONCURRENCY)
        self.os_boot_slots = asyncio.Semaphore(OS_BOOT_HOOK_CONCURRENCY)
        self.hook_queue: list[HookCall] = []  # for a batch hook
        self.hook_busy: set[str] = set()  # machines in a running batch
        self.batch_runs = 0
        self.power_slots = asyncio.Semaphore(POWER_CONCURRENCY)
        self.power_tasks: dict[str, asyncio.Task[None]] = {}
        self.texts: dict[str, tuple[MachineState, str]] = {}  # machine_text's cache, by system id
        self.driver: RedfishDriver | None = None
        self.machine_os: RedfishDriver | None = None
        self.boot_network = BootNetwork(config.netboots_file, self.timing.of("enlist"))

    # -- power ------------------------------------------------------------------------------

    def _start_power(self, m: MachineState) -> None:
        """Run the machine's pending power request through its driver, one at a time per machine."""
        if m.power_request is None or m.system_id in self.power_tasks or self.driver is None:
            return
        task = asyncio.get_running_loop().create_task(self._power(m.system_id, m.power_request))
        self.power_tasks[m.system_id] = task
        task.add_done_callback(lambda _t, sid=m.system_id: self.power_tasks.pop(sid, None))

    async def _power(self, system_id: str, request: str) -> None:
        m = self.machines[system_id]
        params = _power_parameters(m) if m.power_parameters or request != "shutdown" else self._hardware_bmc(m)
        error = None
        async with self.power_slots:
            try:
                if request == "on":
                    await self.driver.power_on(params)  # type: ignore[union-attr]
                elif request == "off":
                    await self.driver.power_off(params)  # type: ignore[union-attr]
                else:
                    await self.machine_os.shutdown(params)  # type: ignore[union-attr]
            except PowerFailed as err:
                error = str(err)
            except Exception as err:  # noqa: BLE001 - the machine's own OS never fails MAAS
                error = f"Failed talking to node's BMC: {err}"
        m = self.machines[system_id]
        new = power_result(m, request, error, now=time.time(), timing=self.timing)
        self.machines[system_id] = new
        self.dirty = True
        if error:
            log.warning("%s: power %s failed: %s", m.hostname, request, error)
        if new.status != m.status:
            log.info("%s: %s -> %s (%s)", new.hostname, m.status_name, new.status_name, new.status_message)

    # -- clock and events -------------------------------------------------------------------

    def _advance(self, system_id: str, now: float) -> MachineState:
        m = self.machines[system_id]
        if m.power_request is not None:
            self._start_power(m)
        if m.pending is None and m.power_target is None:
            return m
        started = m.pending.started if m.pending is not None else 0.0  # the operation's: a reboot keeps it
        # Only a due operation's end draws on the faults (`due`): a deploying machine read between its
        # events costs no stat of the fault file.
        rates = self.faults.rates(m.hostname) if due(m, now) else {}
        new, events = advance(m, now=now, timing=self.timing, rates=rates, rng=self.rng)
        if new != m:
            self.machines[system_id] = new
            self.dirty = True
            if new.status != m.status:
                log.info("%s: %s -> %s (%s)", new.hostname, m.status_name, new.status_name,
                         new.status_message)
        for event in events:
            if event == "deployed" and self.hook.boots_os():
                # Deployed once the hook brought the OS up (cloud-init's user-data request in real MAAS).
                self._fire_hook(new.hostname, event, booted=(system_id, started))
                continue
            if event == "deployed":  # no hook boots it: the OS is up as soon as the machine reboots
                new = self.machines[system_id] = os_booted(new, started)
            self._fire_hook(new.hostname, event)
        if new.power_request is not None:
            self._start_power(new)
        return new

    def tick(self) -> None:
        """Fire what is due (hooks, power actions); reads bring their machines up to date themselves."""
        now = time.time()
        for system_id, what in self.boot_network.step(
                self.machines, self._new_system_id, now=now, rng=self.rng,
                unserved=lambda node: bool(self.faults.rates(node).get("pxe_unserved"))):
            self.dirty = True
            log.info("%s: %s", self.machines[system_id].hostname, what)
        for system_id, m in list(self.machines.items()):
            if due(m, now):
                self._advance(system_id, now)

    def _hardware_bmc(self, m: MachineState) -> PowerParameters:
        """The BMC of the server behind the machine's MAC, as the inventory has it: what the machine's
        own OS powers off through when MAAS has no power parameters (manual power)."""
        spec = next((s for s in self.config.machines if set(s.macs) & set(m.macs) and s.power_parameters), None)
        return _power_parameters(replace(m, power_parameters=spec.power_parameters if spec else ()))

    def _new_system_id(self, mac: str) -> str:
        return system_id_for(mac, set(self.machines))

    def _fire_hook(self, hostname: str, event: str, booted: tuple[str, float] | None = None) -> None:
        """Run the lab's hook (e.g. start/stop the node's lab host) without holding up the API.

        `booted` (system id, deployment start): the hook boots that deployment's OS; once it succeeded the
        OS is up (`os_booted`). A hook that fails leaves the machine Deploying until MAAS's monitor fails it."""
        argv = self.hook.argv()
        if not argv:
            return
        if self.hook.batch():
            self.hook_queue.append(HookCall(hostname, event, booted))
            if self.batch_runs < BATCH_HOOK_RUNS:  # a run takes the queue when it starts, after this tick
                self.batch_runs += 1
                batches = asyncio.get_running_loop().create_task(self._run_batches())
                self.hook_tasks.add(batches)
                batches.add_done_callback(self.hook_tasks.discard)
            return
        slots = self.os_boot_slots if self.hook.boots_os() else self.hook_slots
        task = asyncio.get_running_loop().create_task(self._run_hook([*argv, hostname, event], slots, booted))
        self.hook_tasks.add(task)
        task.add_done_callback(self.hook_tasks.discard)

    async def _run_hook(self, argv: list[str], slots: asyncio.Semaphore, booted: tuple[str, float] | None) -> None:
        hostname, event = argv[-2:]
        try:
            async with slots:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                output, _ = await proc.communicate()
        except OSError as err:
            log.error("%s: hook %s for %s could not start: %s", hostname, argv[0], event, err)
            return
        if proc.returncode:
            log.error("%s: hook for %s exited %s: %s", hostname, event, proc.returncode,
                      output.decode(errors="replace").strip()[-500:])
            return
        log.info("%s: hook for %s done", hostname, event)
        self._hook_done(hostname, booted)

    def _hook_done(self, hostname: str, booted: tuple[str, float] | None) -> None:
        if booted is not None and (m := self.machines.get(booted[0])) is not None:
            up = os_booted(m, booted[1])
            if up != m:
                self.machines[booted[0]] = up
                self.dirty = True
                log.info("%s: deployed OS up (its cloud-init asked for its user-data)", hostname)

    async def _run_batches(self) -> None:
        """Run the batch hook until nothing queued can run (what waits on a busy machine is taken by the run
        that holds it, once it finished)."""
        try:
            while True:
                calls, self.hook_queue = take_batch(self.hook_queue, self.hook_busy, BATCH_MAX)
                if not calls:
                    return
                names = {call.hostname for call in calls}
                self.hook_busy |= names
                try:
                    await self._run_batch(calls)
                finally:
                    self.hook_busy -= names
        finally:
            self.batch_runs -= 1

    async def _run_batch(self, calls: list[HookCall]) -> None:
        event = calls[0].event
        argv = [*self.hook.argv(), event, *(call.hostname for call in calls)]
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            output, errors = await proc.communicate()
        except OSError as err:
            log.error("hook %s for %s of %d machines could not start: %s", argv[0], event, len(calls), err)
            return
        done = {line.split(" ", 1)[1] for line in output.decode(errors="replace").splitlines()
                if line.startswith("done ")}
        log.info("hook for %s of %d machines: %d done in %.1f s", event, len(calls), len(done),
                 time.monotonic() - started)
        for call in calls:
            if call.hostname in done:
                log.info("%s: hook for %s done", call.hostname, event)
                self._hook_done(call.hostname, call.booted)
            else:
                log.error("%s: hook for %s exited %s without it: %s", call.hostname, event, proc.returncode,
                          errors.decode(errors="replace").strip()[-500:])

    # -- auth -------------------------------------------------------------------------------

    def authorised(self, request: web.Request) -> LabUser | None:
        """OAuth 1.0 PLAINTEXT as MAAS checks it: a known consumer and token, signature '&' + secret.

        Returns the key's user (None: 401)."""
        p = _oauth_params(request.headers.get("Authorization", ""))
        if p.get("oauth_signature_method") != "PLAINTEXT":
            return None
        for user in self.users:
            consumer, token, secret = user.api_key.split(":")
            if (hmac.compare_digest(p.get("oauth_consumer_key", ""), consumer)
                    and hmac.compare_digest(p.get("oauth_token", ""), token)
                    and hmac.compare_digest(p.get("oauth_signature", ""), "&" + secret)):  # consumer secret: empty
                return user
        return None

    # -- rendering --------------------------------------------------------------------------

    def machine_json(self, m: MachineState) -> dict[str, object]:
        uri = f"{API_PATH}machines/{m.system_id}/"
        interfaces = [
            {
                "id": index, "name": f"eth{index}", "type": "physical", "enabled": True,
                "mac_address": mac, "system_id": m.system_id, "tags": [], "params": "",
                "links": [], "discovered": [], "parents": [], "children": [], "vlan": None,
                "resource_uri": f"{API_PATH}nodes/{m.system_id}/interfaces/{index}/",
            }
            for index, mac in enumerate(m.macs)
        ]
        return {
            "system_id": m.system_id,
            "hostname": m.hostname,
            "fqdn": f"{m.hostname}.{DOMAIN['name']}",
            "domain": DOMAIN,
            "zone": ZONE,
            "pool": POOL,
            "node_type": 0,
            "node_type_name": "Machine",
            "architecture": m.architecture,
            "cpu_count": 224,
            "memory": 2097152,
            "status": int(m.status),
            "status_name": m.status_name,
            "status_message": m.status_message,
            "status_action": "",
            "osystem": m.osystem,
            "distro_series": m.distro_series,
            "hwe_kernel": m.hwe_kernel,
            "min_hwe_kernel": None,
            "netboot": m.status not in (Status.DEPLOYED,),
            "locked": False,
            "disable_ipv4": False,
            "power_state": m.power_state,
            "power_type": m.power_type,
            "commissioning_status": m.commissioning_status,
            "commissioning_status_name": SCRIPT_STATUS_NAMES[m.commissioning_status],
            "owner": m.owner,
            "owner_data": {},
            "tag_names": list(m.tags),
            "boot_interface": interfaces[0] if interfaces else None,
            "interface_set": interfaces,
            "ip_addresses": [],
            "blockdevice_set": [],
            "boot_disk": None,
            "resource_uri": uri,
        }

    def machine_text(self, m: MachineState) -> str:
        """`json.dumps(machine_json(m))`, kept while the machine's state is the same object (states are
        frozen and replaced on every change): 1,280 waiting machines are read every poll interval, and
        nearly all of them have not changed since the last read."""
        cached = self.texts.get(m.system_id)
        if cached is None or cached[0] is not m:
            cached = (m, json.dumps(self.machine_json(m)))
            self.texts[m.system_id] = cached
        return cached[1]

    def tag_json(self, name: str) -> dict[str, object]:
        tag = self.tags[name]
        return {"name": name, "comment": tag.get("comment", ""), "definition": tag.get("definition", ""),
                "kernel_opts": tag.get("kernel_opts") or None, "resource_uri": f"{API_PATH}tags/{name}/"}

    # -- handlers ---------------------------------------------------------------------------

    async def handle_describe(self, request: web.Request) -> web.Response:
        return _json(describe(f"{request.scheme}://{request.host}"))

    async def handle_version(self, request: web.Request) -> web.Response:
        return _json({
            "capabilities": ["networks-management", "static-ipaddresses", "ipv6-deployment-ubuntu",
                             "devices-management", "storage-deployment-ubuntu",
                             "network-deployment-ubuntu", "bridging-interface-ubuntu",
                             "bridging-automatic-ubuntu", "authenticate-api"],
            "version": "2.2.0",
            "subversion": "lab-simulator",
        })

    async def handle_machines(self, request: web.Request, params: Params) -> web.Response:
        op = request.query.get("op")
        now = time.time()
        if request.method == "GET" and op is None:
            texts = [self.machine_text(m) for m in self._filter(params, now)]
            return web.Response(text=f"[{', '.join(texts)}]", content_type="application/json")
        if request.method == "POST" and op == "allocate":
            return self._allocate(params, now, request["user"])
        if request.method == "POST" and op is None:
            return self._create(params, now, request["user"])
        return _text(400, f"Unrecognised signature: method={request.method} op={op}")

    def _filter(self, params: Params, now: float) -> list[MachineState]:
        """Machines matching every filter given, brought up to `now`.

        The filters look at fields the clock never changes (hostname, MACs, system_id), so only the
        matches are advanced: a read by one MAC or a batch of ids costs what it returns, not 512 advances.
        """
        hostnames = {h.split(".", 1)[0] for h in params.get("hostname", [])}
        macs = {mac.lower() for mac in params.get("mac_address", [])}
        ids = set(params.get("id", []))
        found = []
        for system_id, m in list(self.machines.items()):
            if hostnames and m.hostname not in hostnames:
                continue
            if macs and not macs.intersection(mac.lower() for mac in m.macs):
                continue
            if ids and system_id not in ids:
                continue
            found.append(self._advance(system_id, now))
        return found

    def _create(self, params: Params, now: float, user: LabUser) -> web.Response:
        """`machines create`: validate as MAAS's form does, then commission at once (an admin's create)."""
        hostname = (params.get("hostname") or [""])[-1].split(".", 1)[0].lower()
        system_id = system_id_for(hostname or ",".join(params.get("mac_addresses", [])), set(self.machines))
        try:
            m = enlist(params, self.machines, system_id, now=now)
        except FormError as err:
            log.info("machines create refused: %s", err.errors)
            return _json(err.errors, status=400)
        m = apply_action(m, "commission", {}, now=now, timing=self.timing,
                         rates=self.faults.rates(m.hostname), rng=self.rng, owner=user.username)
        self.machines[system_id] = m
        self.dirty = True
        log.info("%s: created (%s, power %s) and commissioning", m.hostname, system_id, m.power_type)
        self._start_power(m)
        return _json(self.machine_json(m))

    def _allocate(self, params: Params, now: float, user: LabUser) -> web.Response:
        """The first Ready machine matching the constraints, allocated (dry_run: only shown).

        Name and system id never change with the clock, so only the machines they match are brought up
        to `now` (as `_filter` does): an allocate by name costs one advance, not one per machine (at
        1,280 deploying machines that was 1,280 advances for each node's allocate, O(N^2) per wave)."""
        names = {n.split(".", 1)[0] for n in params.get("name", [])}
        ids = set(params.get("system_id", []))
        wanted_tags = set(params.get("tags", []))
        refused_tags = set(params.get("not_tags", []))
        for system_id, known in list(self.machines.items()):
            if names and known.hostname not in names:
                continue
            if ids and system_id not in ids:
                continue
            m = self._advance(system_id, now)
            if m.status != Status.READY:
                continue
            if not wanted_tags.issubset(m.tags) or refused_tags.intersection(m.tags):
                continue
            if params.get("dry_run", ["false"])[0].lower() != "true":
                m = allocate(m, user.username, now)
                self.machines[system_id] = m
                self.dirty = True
                log.info("%s: allocated (by %s)", m.hostname, user.username)
            return _json(self.machine_json(m))
        constraints = {k: v for k, v in params.items() if k not in ("dry_run", "verbose", "agent_name", "comment")}
        resolved = " ".join(f"{k}={','.join(v)}" for k, v in sorted(constraints.items()))
        return _text(409, f"No available machine matches constraints: {sorted(constraints.items())} "
                          f"(resolved to \"{resolved}\")")

    async def handle_machine(self, request: web.Request, params: Params) -> web.Response:
        system_id = request.match_info["system_id"]
        if system_id not in self.machines:
            return _text(404, "No Machine matches the given query.")
        now = time.time()
        m = self._advance(system_id, now)
        op = request.query.get("op")
        if request.method == "GET" and op is None:
            return _json(self.machine_json(m))
        if request.method == "GET" and op == "query_power_state":
            return await self._query_power(m)
        if request.method == "PUT" and op is None:
            return self._update(m, params, request["user"])
        if request.method == "POST" and op in MACHINE_ACTIONS:
            user = request["user"]
            if not may_edit(user, m.owner):  # NodePermission.edit: the owner or an admin
                log.info("%s: %s refused: owned by %s, not %s", m.hostname, op, m.owner, user.username)
                return _text(403, "")
            flat = {name: values[-1] for name, values in params.items()}
            try:
                if op == "deploy":
                    flat.update(check_deploy(flat, m.architecture))
                new = apply_action(m, op, flat, now=now, timing=self.timing,
                                   rates=self.faults.rates(m.hostname), rng=self.rng, owner=user.username)
            except IllegalTransition as err:
                log.info("%s: %s refused: %s", m.hostname, op, err)
                return _text(409, str(err))
            except ImageError as err:
                log.info("%s: %s refused: %s", m.hostname, op, err.errors)
                return _json(err.errors, status=400)
            self.machines[system_id] = new
            self.dirty = True
            log.info("%s: %s accepted: %s -> %s (by %s)", m.hostname, op, m.status_name, new.status_name,
                     user.username)
            self._start_power(new)
            return _json(self.machine_json(new))
        return _text(400, f"Unrecognised signature: method={request.method} op={op}")

    def _update(self, m: MachineState, params: Params, user: LabUser) -> web.Response:
        """`PUT machines/{system_id}/` (MachineHandler.update): an admin's, validated as MAAS's form."""
        if not user.is_superuser:  # NodePermission.admin
            log.info("%s: update refused: %s is not an admin", m.hostname, user.username)
            return _text(403, "")
        try:
            new = update(params, m, self.machines, domain=str(DOMAIN["name"]))
        except FormError as err:
            log.info("%s: update refused: %s", m.hostname, err.errors)
            return _json(err.errors, status=400)
        if new.hostname != m.hostname:
            self.machines[m.system_id] = new
            self.dirty = True
            log.info("%s: hostname changed to %s (by %s)", m.hostname, new.hostname, user.username)
        return _json(self.machine_json(new))

    async def _query_power(self, m: MachineState) -> web.Response:
        """MAAS asks the BMC while the client waits; without power control it answers what it knows."""
        if m.power_type != "redfish" or self.driver is None:
            return _json({"state": m.power_state})
        try:
            state = await self.driver.query(_power_parameters(m))
        except PowerFailed as err:
            now = time.time()
            self.machines[m.system_id] = log_event(
                replace(self.machines[m.system_id], power_state="error"), now, "Failed to query node's BMC",
                f"Power state could not be queried: {err}", "WARNING")
            self.dirty = True
            return _text(503, str(err))
        self.machines[m.system_id] = replace(self.machines[m.system_id], power_state=state)
        self.dirty = True
        return _json({"state": state})

    async def handle_events(self, request: web.Request, params: Params) -> web.Response:
        """`events/?op=query`: newest first, filtered by system id / hostname and minimum level."""
        if request.method != "GET" or request.query.get("op") != "query":
            return _text(400, f"Unrecognised signature: method={request.method} op={request.query.get('op')}")
        ids = set(params.get("id", []))
        hostnames = {h.split(".", 1)[0] for h in params.get("hostname", [])}
        level = (params.get("level") or ["INFO"])[-1].upper()
        if level not in EVENT_LEVELS:
            return _json({"level": [f"Select a valid choice. {level} is not one of the available choices."]},
                         status=400)
        floor = EVENT_LEVELS.index(level)
        limit = min(int((params.get("limit") or ["100"])[-1]), 1000)
        found = []
        for m in self.machines.values():
            if (ids and m.system_id not in ids) or (hostnames and m.hostname not in hostnames):
                continue
            for created, kind, event_level, description in m.maas_events:
                if EVENT_LEVELS.index(event_level) >= floor:
                    found.append((created, m, kind, event_level, description))
        found.sort(key=lambda e: e[0], reverse=True)
        events = [
            {"id": int(created * 1_000_000), "node": m.system_id, "hostname": m.hostname, "username": SITE_USER,
             "level": event_level, "type": kind, "description": description,
             "created": time.strftime("%a, %d %b. %Y %H:%M:%S", time.gmtime(created))}
            for created, m, kind, event_level, description in found[:limit]
        ]
        return _json({"count": len(events), "events": events, "next_uri": None, "prev_uri": None})

    async def handle_users(self, request: web.Request, params: Params) -> web.Response:
        """`users/?op=whoami`: the key's own user; `users/`: every user, ordered by username."""
        op = request.query.get("op")
        if request.method == "GET" and op == "whoami":
            return _json(request["user"].as_json())
        if request.method == "GET" and op is None:
            return _json([user.as_json() for user in sorted(self.users, key=lambda u: u.username)])
        return _text(400, f"Unrecognised signature: method={request.method} op={op}")

    async def handle_boot_resources(self, request: web.Request, params: Params) -> web.Response:
        if request.method == "GET" and "op" not in request.query:
            return _json([{**resource, "resource_uri": f"{API_PATH}boot-resources/{resource['id']}/"}
                          for resource in BOOT_RESOURCES])
        return _text(400, f"Unrecognised signature: method={request.method} op={request.query.get('op')}")

    async def handle_tags(self, request: web.Request, params: Params) -> web.Response:
        if request.method == "GET" and "op" not in request.query:
            return _json([self.tag_json(name) for name in sorted(self.tags)])
        if request.method == "POST" and "op" not in request.query:
            name = (params.get("name") or [""])[-1]
            if not name:
                return _json({"name": ["This field is required."]}, status=400)
            if name in self.tags:
                return _json({"name": ["Tag with this Name already exists."]}, status=400)
            self.tags[name] = {key: (params.get(key) or [""])[-1] for key in ("comment", "definition", "kernel_opts")}
            self.dirty = True
            return _json(self.tag_json(name))
        return _text(400, f"Unrecognised signature: method={request.method} op={request.query.get('op')}")

    async def handle_tag(self, request: web.Request, params: Params) -> web.Response:
        name = request.match_info["name"]
        if name not in self.tags:
            return _text(404, "No Tag matches the given query.")
        op = request.query.get("op")
        if request.method == "GET" and op is None:
            return _json(self.tag_json(name))
        if request.method == "GET" and op in ("machines", "nodes"):
            tagged = [m for m in self._filter({}, time.time()) if name in m.tags]
            return _json([self.machine_json(m) for m in tagged])
        if request.method == "POST" and op == "update_nodes":
            added = removed = 0
            for system_id in params.get("add", []):
                m = self.machines.get(system_id)
                if m is not None and name not in m.tags:
                    self.machines[system_id] = replace(m, tags=(*m.tags, name))
                    log.info("%s: tag %s added", m.hostname, name)
                    added += 1
            for system_id in params.get("remove", []):
                m = self.machines.get(system_id)
                if m is not None and name in m.tags:
                    self.machines[system_id] = replace(m, tags=tuple(t for t in m.tags if t != name))
                    log.info("%s: tag %s removed", m.hostname, name)
                    removed += 1
            self.dirty = True
            return _json({"added": added, "removed": removed})
        if request.method == "PUT" and op is None:
            for key in ("comment", "definition", "kernel_opts"):
                if key in params:
                    self.tags[name][key] = params[key][-1]
            self.dirty = True
            return _json(self.tag_json(name))
        if request.method == "DELETE" and op is None:
            del self.tags[name]
            for system_id, m in self.machines.items():
                if name in m.tags:
                    self.machines[system_id] = replace(m, tags=tuple(t for t in m.tags if t != name))
                    log.info("%s: tag %s removed (tag deleted)", m.hostname, name)
            self.dirty = True
            return web.Response(status=204)
        return _text(400, f"Unrecognised signature: method={request.method} op={op}")

    # -- persistence ------------------------------------------------------------------------

    def save(self) -> None:
        if self.dirty:
            self.dirty = False
            self.writer.save(self.machines, self.tags)


def _power_parameters(m: MachineState) -> PowerParameters:
    raw = dict(m.power_parameters)
    return PowerParameters(raw.get("power_address", ""), raw.get("power_user", ""), raw.get("power_pass", ""),
                           raw.get("node_id", ""))


def build_app(sim: Simulator) -> web.Application:
    """Routes under /MAAS/api/2.0/, auth on everything but describe/ and version/."""

    def authenticated(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            user = sim.authorised(request)
            if user is None:
                return _text(401, "Authorization Error: Invalid API key.")
            request["user"] = user
            if request.method == "GET" or request.method == "DELETE":
                params: Params = {}
                for key, value in request.query.items():
                    if key != "op":
                        params.setdefault(key, []).append(value)
            else:
                params = parse_body(await request.read(), request.headers.get("Content-Type", ""))
            return await handler(request, params)

        return wrapped

    app = web.Application()
    app.router.add_get(API_PATH + "describe/", sim.handle_describe)
    app.router.add_get(API_PATH + "version/", sim.handle_version)
    for path, handler in (
        ("machines/", sim.handle_machines),
        ("machines/{system_id}/", sim.handle_machine),
        ("tags/", sim.handle_tags),
        ("tags/{name}/", sim.handle_tag),
        ("events/", sim.handle_events),
        ("boot-resources/", sim.handle_boot_resources),
        ("users/", sim.handle_users),
    ):
        app.router.add_route("*", API_PATH + path, authenticated(handler))

    async def background(app: web.Application) -> AsyncIterator[None]:
        async def run() -> None:
            last_save = time.monotonic()
            while True:
                await asyncio.sleep(TICK_S)
                sim.tick()
                if time.monotonic() - last_save >= SAVE_EVERY_S:
                    sim.save()
                    last_save = time.monotonic()

        sim.driver = RedfishDriver(RedfishDriver.session(sim.config.bmc_ca_file),
                                   time_factor=sim.config.time_factor)
        sim.machine_os = RedfishDriver(RedfishDriver.session(sim.config.bmc_ca_file),
                                       time_factor=sim.config.time_factor, agent=MACHINE_OS_AGENT)
        task = asyncio.get_running_loop().create_task(run())
        yield
        task.cancel()
        for pending in list(sim.power_tasks.values()):
            pending.cancel()
        await sim.driver.close()
        await sim.machine_os.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sim.save()
        if sim.hook_tasks:
            await asyncio.wait(sim.hook_tasks, timeout=5)

    app.cleanup_ctx.append(background)
    return app


def serve(config_path: Path) -> None:
    config = Config.load(config_path)
    sim = Simulator(config)
    log.info("MAAS simulator: %d machines on %s:%d, time factor %s", len(sim.machines), config.host,
             config.port, config.time_factor)
    tls = None
    if config.cert_file and config.key_file:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(config.cert_file, config.key_file)
    use_small_tls_buffers()  # its API's connections and its Redfish driver's, one per power action
    web.run_app(build_app(sim), host=config.host, port=config.port, access_log=None,
                print=None, handle_signals=True, ssl_context=tls)
