"""The MAAS client: python-libmaas's asynchronous API behind blocking methods safe from many threads.

python-libmaas's blocking facade asks for the current thread's event loop and fails in worker threads,
so `MaasClient` runs the async API on one event-loop thread of its own and hands each call over with
`run_coroutine_threadsafe`: any number of workflow threads can use one client at once, and 512
nodes waiting for Deployed cost 512 sleeping coroutines, not 512 blocked sockets. They also share
one `machines read` per poll interval (`fleet.maas.poller`), and lookups made at the same time share
one read (`fleet.maas.lookup`). Bounding how many deploys start at once is the caller's business (it
owns the per-resource limits), and so are the deadlines: the stages pass the site's
(`site.timeouts`); the defaults here are MAAS's own.

Decisions are pure functions (`fleet.maas.decide`); the methods only talk to MAAS. Library
exceptions become `MaasError` once, here, with the node, the endpoint, the HTTP status and MAAS's own
message; the API key never appears in a message or a log record. TLS: `fleet.maas.session`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from maas.client import bones
from maas.client.bones import CallError, SessionAPI
from maas.client.bones import helpers as bones_helpers
from maas.client.enum import NodeStatus

from fleet.errors import MaasError
from fleet.logs import node_log
from fleet.maas.decide import MAX_DEPLOY_ATTEMPTS, Machine, OsStep, decide_os_action, kernel_name, pick_machine
from fleet.maas.lookup import BatchedLookups
from fleet.maas.poller import StatusPoller
from fleet.maas.session import TlsSession, connect, tls_policy
from fleet.site import Credentials, Endpoint, Node, OsImage, TlsSettings
from fleet.site.control import Timeouts

log = logging.getLogger("fleet.maas")

T = TypeVar("T")

REQUEST_TIMEOUT_S = 60.0
_MAAS = Timeouts()  # MAAS's own deadlines, for callers that pass none


class DeploymentFailed(MaasError):
    """MAAS reports Failed deployment (or gave up on a deployment): carries MAAS's status message."""


@dataclass(frozen=True)
class OsOutcome:
    """How `ensure_os` ended for one node: deployed or quarantined, with every MAAS message seen."""

    machine: Machine
    deployed: bool
    attempts: int
    reason: str
    failures: tuple[str, ...] = ()


class MaasClient:
    """Blocking methods over python-libmaas's async API, safe to call from many threads at once."""

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        tls: TlsSettings,
        *,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        poll_interval_s: float = _MAAS.maas_poll_s,
        me: str | None = None,
    ) -> None:
        self.url = endpoint.url
        if endpoint.url.startswith("http://"):
            if not endpoint.insecure_http:  # the site loader refuses this; a hand-built Endpoint must say so too
                raise MaasError("refusing plain-HTTP MAAS: the API key would travel in clear", endpoint=endpoint.url,
                                hint="use https://, or set maas.insecure_http: true in the site")
            log.warning("MAAS at %s over plain HTTP: the API key travels in clear on every request "
                        "(maas.insecure_http: true in the site)", endpoint.url)
        if credentials.secret.count(":") != 2:
            raise MaasError("the MAAS API key is malformed", endpoint=endpoint.url,
                            hint=f"credential '{endpoint.credentials}' must hold consumer:token:secret")
        self._apikey = credentials.secret
        try:
            self._tls = tls_policy(tls)
        except (OSError, ssl.SSLError) as err:
            raise MaasError("cannot load the CA file for MAAS", endpoint=endpoint.url, service_message=str(err),
                            hint="fix maas_tls.ca_file in the site file") from None
        self.request_timeout_s = request_timeout_s
        self.poll_interval_s = poll_interval_s
        self._session: SessionAPI | None = None
        self._session_lock: asyncio.Lock | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="maas-client", daemon=True)
        self._thread.start()
        self.requests = 0
        self._poller = StatusPoller(self._read_many, poll_interval_s)
        self._lookups = BatchedLookups(self._read_by)  # find_machine's reads, shared by the nodes looking at once
        # Tags seen to exist: 512 nodes tagged with the same rack/role tags read each tag once, not
        # once per node. Only ever grows from the workers' threads (set operations are atomic);
        # a tag deleted behind our back is forgotten when MAAS answers 404 for it.
        self._tags_known: set[str] = set()
        self._me = me  # our MAAS user when the caller already read it (the run's preflight), else asked once
        self._me_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MaasClient({self.url!r})"

    def close(self) -> None:
        """Stop the event-loop thread; the client cannot be used afterwards."""
        if self._loop.is_closed():
            return
        if isinstance(self._session, TlsSession):  # its pooled connections close on the loop they were made on
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._session.close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> MaasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    async def _api(self) -> SessionAPI:
        if self._session_lock is None:
            self._session_lock = asyncio.Lock()
        async with self._session_lock:
            if self._session is None:
                self._session = await connect(self.url, self._apikey, self._tls)
            return self._session

    def _call(self, node: str, what: str, call: Callable[[SessionAPI], Awaitable[T]]) -> T:
        """One MAAS request."""
        async def run() -> T:
            session = await self._api()
            self.requests += 1
            return await call(session)

        return self._wrapped(node, what, run, self.request_timeout_s)

    def _wrapped(self, node: str, what: str, make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Run on the loop thread; every library error becomes one MaasError, here and only here."""
        endpoint = f"{self.url} {what}"
        try:
            return self._run(make, timeout_s)
        except CallError as err:
            raise MaasError(
                f"MAAS refused {what}", node=node, endpoint=endpoint, status=err.status,
                service_message=err.content.decode("utf-8", "replace").strip(), hint=_hint_for(err.status),
            ) from None
        except (bones.SessionError, bones_helpers.RemoteError) as err:
            raise MaasError(f"MAAS did not describe its API at {self.url}", node=node, endpoint=endpoint,
                            service_message=str(err), hint="check the MAAS URL in the site file") from None
        except (aiohttp.ClientError, OSError) as err:
            raise MaasError(f"cannot reach MAAS for {what}", node=node, endpoint=endpoint,
                            service_message=str(err) or type(err).__name__,
                            hint="check that MAAS is up and the URL and TLS settings are right") from None
        except TimeoutError:
            raise MaasError(f"MAAS did not answer {what} within {timeout_s:.0f} s", node=node,
                            endpoint=endpoint, hint="MAAS is overloaded or unreachable; retry later") from None

    # -- reads ------------------------------------------------------------------------------

    def whoami(self) -> str:
        """Our own MAAS user name (the API key's user), read once per client: `users/?op=whoami`.

        python-libmaas's `client.users.whoami()` sends the same request through its bones handler
        (`Users.whoami`); decisions compare it with a machine's `owner` (see `foreign_owner`).
        """
        with self._me_lock:
            if self._me is None:
                data = self._call("-", "users whoami", lambda s: s.Users.whoami())
                self._me = str(data["username"])
            return self._me

    def lookup(self, node: Node) -> Machine | None:
        """The node's machine, or None when MAAS does not know it (a new rack: register it)."""
        try:
            return self.find_machine(node)
        except MaasError as err:
            if err.status is None and "not enlisted" in err.message:
                return None
            raise

    def find_machine(self, node: Node) -> Machine:
        """The node's machine: matched by its PXE MAC (what MAAS saw at enlistment); see `pick_machine`."""
        found = self._wrapped(node.hostname, "machines read mac_address",
                              lambda: self._lookups.find("mac_address", node.pxe_mac), self.request_timeout_s)
        named = None if found else self._wrapped(
            node.hostname, "machines read hostname", lambda: self._lookups.find("hostname", node.hostname),
            self.request_timeout_s)
        try:
            machine = pick_machine(node, list(found), list(named) if named is not None else None)
        except MaasError as err:
            err.endpoint = self.url
            raise
        how = "PXE MAC"
        if machine.hostname != node.hostname:
            node_log(log, node.hostname).warning("MAAS knows PXE MAC %s as '%s' (%s)", node.pxe_mac,
                        machine.hostname, machine.system_id)
        node_log(log, node.hostname).debug("found %s by %s, %s", machine.system_id, how, machine.status_name)
        return machine

    def read(self, node: str, machine: Machine) -> Machine:
        data = self._call(node, f"machines/{machine.system_id} read",
                          lambda s: s.Machine.read(system_id=machine.system_id))
        return Machine.from_api(data)

    # -- actions ----------------------------------------------------------------------------

    def deploy(self, node: str, machine: Machine, image: OsImage, *, user_data: bytes | None = None,
               comment: str | None = None) -> Machine:
        """Allocate (if Ready) and deploy `image` with optional cloud-init user data."""
        if machine.status == NodeStatus.READY:
            # Older MAAS 2.x refuses to deploy an unallocated machine; allocating by system_id is exact.
            self._call(node, "machines allocate", lambda s: s.Machines.allocate(system_id=machine.system_id))
        params: dict[str, Any] = {"system_id": machine.system_id, "distro_series": image.distro_series}
        if image.hwe_kernel:  # in MAAS's own name ("hwe-j" -> "hwe-22.04"): its deploy form takes no alias
            params["hwe_kernel"] = kernel_name(image.hwe_kernel, image.distro_series)
        if user_data is not None:
            params["user_data"] = base64.b64encode(user_data)  # MAAS wants it base64-encoded
        if comment:
            params["comment"] = comment
        node_log(log, node).info("deploying %s on %s", image.distro_series, machine.system_id)
        data = self._call(node, f"machines/{machine.system_id} op=deploy", lambda s: s.Machine.deploy(**params))
        return Machine.from_api(data)

    def release(self, node: str, machine: Machine, *, erase: bool = False, quick_erase: bool = False,
                comment: str | None = None) -> Machine:
        params: dict[str, Any] = {"system_id": machine.system_id}
        if erase or quick_erase:
            params["erase"] = True
            params["quick_erase"] = quick_erase
        if comment:
            params["comment"] = comment
        erasing = " with disk erase" if erase or quick_erase else ""
        node_log(log, node).info("releasing %s%s", machine.system_id, erasing)
        data = self._call(node, f"machines/{machine.system_id} op=release", lambda s: s.Machine.release(**params))
        return Machine.from_api(data)

    def mark_broken(self, node: str, machine: Machine, comment: str) -> Machine:
        node_log(log, node).warning("marking %s broken: %s", machine.system_id, comment)
        data = self._call(node, f"machines/{machine.system_id} op=mark_broken",
                          lambda s: s.Machine.mark_broken(system_id=machine.system_id, comment=comment))
        return Machine.from_api(data)

    def register(self, node: Node, power_user: str, power_pass: str, *, node_id: str = "",
                 architecture: str = "amd64/generic") -> Machine:
        """`machines create` for a machine MAAS does not know: its PXE MAC, and Redfish power control
        through its BMC (address, credentials and the Redfish system id, MAAS's `node_id`, which saves
        MAAS's driver a Systems read per power action), so MAAS commissions and powers it itself (an
        admin's create starts commissioning at once)."""
        power = {"power_address": node.bmc.address, "power_user": power_user, "power_pass": power_pass}
        if node_id:
            power["node_id"] = node_id
        node_log(log, node.hostname).info("registering in MAAS (MAC %s, Redfish power via %s)", node.pxe_mac,
                                          node.bmc.address)
        data = self._call(node.hostname, "machines create", lambda s: s.Machines.create(
            architecture=architecture, mac_addresses=[node.pxe_mac], hostname=node.hostname,
            power_type="redfish", power_parameters=power))
        return Machine.from_api(data)

    def set_hostname(self, node: str, machine: Machine, hostname: str) -> Machine:
        """Rename the machine in MAAS: `PUT machines/{system_id}/ hostname=...`, the request python-libmaas's
        `Machine.save()` sends for a changed `hostname` (its handler's `update`). MAAS validates the name
        (400 with its form errors for an invalid or taken one: a MaasError with status 400)."""
        node_log(log, node).info("renaming %s in MAAS: '%s' -> '%s'", machine.system_id, machine.hostname, hostname)
        data = self._call(node, f"machines/{machine.system_id} update hostname",
                          lambda s: s.Machine.update(system_id=machine.system_id, hostname=hostname))
        return Machine.from_api(data)

    def failed_scripts(self, node: str, machine: Machine) -> tuple[str, ...]:
        """The scripts MAAS logged as failed for the machine (its "Script" events), newest first."""
        query = {"id": [machine.system_id], "level": ["WARNING"], "limit": ["20"]}
        data = self._call(node, "events query", lambda s: s.Events.query(**query))
        return tuple(str(e.get("description", "")) for e in data.get("events", []) if e.get("type") == "Script")

    def boot_images(self) -> dict[str, tuple[str, ...]]:
        """What MAAS can deploy: release ("jammy") -> the kernels it has synced ("ga-22.04", ...)."""
        data = self._call("-", "boot-resources read", lambda s: s.BootResources.read())
        images: dict[str, list[str]] = {}
        for resource in data:
            name, arch = str(resource.get("name", "")), str(resource.get("architecture", ""))
            if "/" in name:
                osystem, series = name.split("/", 1)
                if osystem == "ubuntu":
                    images.setdefault(series, []).append(arch.split("/", 1)[-1])
        return {series: tuple(kernels) for series, kernels in images.items()}

    def commission(self, node: str, machine: Machine) -> Machine:
        data = self._call(node, f"machines/{machine.system_id} op=commission",
                          lambda s: s.Machine.commission(system_id=machine.system_id))
        return Machine.from_api(data)

    def tag(self, node: str, machine: Machine, tags: Iterable[str]) -> Machine:
        """Put `tags` on the machine, creating the tags MAAS does not have yet."""
        wanted = [t for t in tags if t not in machine.tags]
        for name in wanted:
            self._ensure_tag(node, name)
            try:
                self._call(node, f"tags/{name} op=update_nodes",
                           lambda s, name=name: s.Tag.update_nodes(name=name, add=machine.system_id))
            except MaasError as err:
                if err.status == 404:
                    self._tags_known.discard(name)  # deleted meanwhile: the stage's retry creates it again
                raise
        if wanted:
            node_log(log, node).info("tagged %s with %s", machine.system_id, ", ".join(wanted))
        return Machine.from_api({**_as_api(machine), "tag_names": [*machine.tags, *wanted]})

    def untag(self, node: str, machine: Machine, tags: Iterable[str]) -> Machine:
        """Take `tags` off the machine (the tags themselves stay in MAAS for the other machines)."""
        present = [t for t in tags if t in machine.tags]
        for name in present:
            self._call(node, f"tags/{name} op=update_nodes",
                       lambda s, name=name: s.Tag.update_nodes(name=name, remove=machine.system_id))
        if present:
            node_log(log, node).info("removed %s from %s", ", ".join(present), machine.system_id)
        return Machine.from_api({**_as_api(machine), "tag_names": [t for t in machine.tags if t not in present]})

    def _ensure_tag(self, node: str, name: str) -> None:
        if name in self._tags_known:
            return
        try:
            self._call(node, f"tags/{name} read", lambda s: s.Tag.read(name=name))
            self._tags_known.add(name)
            return
        except MaasError as err:
            if err.status != 404:
                raise
        try:
            self._call(node, "tags create", lambda s: s.Tags.create(name=name, comment="fleet provisioning"))
        except MaasError as err:
            # Another worker created it between our read and our create.
            if err.status != 400 or "already exists" not in (err.service_message or ""):
                raise
        self._tags_known.add(name)

    # -- waits ------------------------------------------------------------------------------

    async def _read_by(self, field: str, values: tuple[str, ...]) -> list[dict[str, Any]]:
        """One `machines read` filtered by `field`, repeated for each of `values` (MAAS ORs them)."""
        session = await self._api()
        self.requests += 1
        return await session.Machines.read(**{field: list(values)})

    async def _read_many(self, system_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        """One `machines read` for the given machines (MAAS accepts repeated `id=` filters)."""
        session = await self._api()
        self.requests += 1
        return await session.Machines.read(id=list(system_ids))

    def _wait(self, node: str, machine: Machine, busy: set[int], deadline_s: float) -> Machine:
        """Wait on the loop thread until the status leaves `busy` or the deadline passes (shared polling)."""
        async def poll() -> Machine | None:
            return await self._poller.wait(machine.system_id, busy, deadline_s)

        what = f"machines read id={machine.system_id} (waiting)"
        current = self._wrapped(node, what, poll, deadline_s + self.poll_interval_s + self.request_timeout_s)
        if current is None:
            raise MaasError(f"MAAS no longer lists machine {machine.system_id}", node=node,
                            endpoint=f"{self.url} {what}", status=404, hint=_hint_for(404))
        return current

    def wait_deployed(self, node: str, machine: Machine, *, deadline_s: float = _MAAS.maas_deploy_s) -> Machine:
        """Wait for Deployed; DeploymentFailed (with MAAS's status message) on failure or deadline."""
        current = self._wait(node, machine, {NodeStatus.DEPLOYING}, deadline_s)
        if current.status == NodeStatus.DEPLOYED:
            node_log(log, node).info("Deployed (%s)", current.distro_series)
            return current
        endpoint = f"{self.url} machines/{machine.system_id}"
        if current.status == NodeStatus.DEPLOYING:
            raise DeploymentFailed(
                f"deployment timed out after {deadline_s:.0f} s (MAAS still says Deploying)", node=node,
                endpoint=endpoint, status=current.status_name, service_message=current.status_message,
                hint="look at the machine's console and MAAS's installation log")
        raise DeploymentFailed(
            "deployment failed", node=node, endpoint=endpoint, status=current.status_name,
            service_message=current.status_message, hint="read MAAS's installation log for the machine")

    def wait_commissioned(self, node: str, machine: Machine, *,
                          deadline_s: float = _MAAS.maas_commission_s) -> Machine:
        """Wait while MAAS commissions (and tests) the machine; returns it as MAAS then says."""
        return self._wait(node, machine, {NodeStatus.COMMISSIONING, NodeStatus.TESTING}, deadline_s)

    def wait_ready(self, node: str, machine: Machine, *, deadline_s: float = _MAAS.maas_release_s) -> Machine:
        """Wait for a release (and disk erase) to finish in Ready; MaasError otherwise."""
        current = self._wait(node, machine, {NodeStatus.RELEASING, NodeStatus.DISK_ERASING}, deadline_s)
        if current.status == NodeStatus.READY:
            node_log(log, node).info("released, Ready")
            return current
        raise MaasError(
            "release did not end in Ready", node=node, endpoint=f"{self.url} machines/{machine.system_id}",
            status=current.status_name, service_message=current.status_message,
            hint="check the machine's power control (BMC) in MAAS")

    # -- the whole OS step ------------------------------------------------------------------

    def ensure_os(
        self,
        node: Node,
        image: OsImage,
        *,
        user_data: bytes | None = None,
        deploy_timeout_s: float = _MAAS.maas_deploy_s,
        release_timeout_s: float = _MAAS.maas_erase_s,
        verdict_grace_s: float = _MAAS.maas_verdict_s,
        max_attempts: int = MAX_DEPLOY_ATTEMPTS,
        erase_on_retry: bool = False,
        machine: Machine | None = None,
        redeploys: int = 0,
        claimed: bool = False,
        on_deploying: Callable[[Machine, bool], None] | None = None,
    ) -> OsOutcome:
        """Bring the node to Deployed with `image`: deploy, retry a failed deployment once, else mark broken.

        Each turn reads MAAS, asks `decide_os_action` and does that one step, so a node found half-way
        (Deploying from a crashed run, Deployed with the wrong image) is carried on, never restarted.
        `machine` is the caller's fresh read of it, if it has one (saves a lookup per node).
        `redeploys` are the node's redeploys already done in this generation, `claimed` whether its
        deployment was ours before this call (see decide_os_action); a deployment sent here is ours.
        A machine MAAS still calls Deploying when `deploy_timeout_s` passes gets `verdict_grace_s` more
        for MAAS's own verdict (its status monitor marks Failed deployment on its timeout); past that
        it is quarantined, never deployed again while MAAS says it is deploying.
        `on_deploying(machine, sent)` is called when MAAS says Deploying, right after a deploy was
        sent (`sent`) or when one is found under way, before waiting: where MAAS cannot power the
        machine (`maas.power: manual`) that is when the caller starts it.
        """
        host = node.hostname
        me = self.whoami()
        machine = machine or self.find_machine(node)
        failures: list[str] = []
        attempts = 0
        overdue = False
        while True:
            action = decide_os_action(machine, image, me=me, failed_attempts=len(failures), max_attempts=max_attempts,
                                      redeploys=redeploys, claimed=claimed or attempts > 0, overdue=overdue)
            node_log(log, host).info("%s (%s)", action.step.value, action.reason)
            if action.step == OsStep.NOTHING:
                return OsOutcome(machine, True, attempts, action.reason, tuple(failures))
            if action.step == OsStep.QUARANTINE:
                if failures and machine.status != NodeStatus.BROKEN:
                    comment = f"fleet: {len(failures)} failed deployment(s): {failures[-1]}"
                    machine = self.mark_broken(host, machine, comment[:500])
                return OsOutcome(machine, False, attempts, action.reason, tuple(failures))
            if action.step == OsStep.WAIT:
                if on_deploying is not None and machine.status == NodeStatus.DEPLOYING:
                    on_deploying(machine, False)
                busy = {NodeStatus(machine.status)}
                machine = self._wait(host, machine, busy, deploy_timeout_s)
                if machine.status in busy:
                    return OsOutcome(machine, False, attempts, f"still {machine.status_name} after "
                                     f"{deploy_timeout_s:.0f} s", tuple(failures))
                continue
            if action.step == OsStep.COMMISSION:
                return OsOutcome(machine, False, attempts, action.reason, tuple(failures))
            if action.step == OsStep.REDEPLOY:
                redeploys += 1
            if action.step in (OsStep.REDEPLOY, OsStep.RETRY):
                machine = self.release(host, machine, erase=erase_on_retry, comment=action.reason[:200])
                machine = self.wait_ready(host, machine, deadline_s=release_timeout_s)
            attempts += 1
            machine = self.deploy(host, machine, image, user_data=user_data)
            if on_deploying is not None and machine.status == NodeStatus.DEPLOYING:
                on_deploying(machine, True)
            try:
                machine = self.wait_deployed(host, machine, deadline_s=deploy_timeout_s)
            except DeploymentFailed as err:
                machine = self._verdict(host, machine, verdict_grace_s)
                overdue = machine.status == NodeStatus.DEPLOYING
                failures.append(machine.status_message if machine.status == NodeStatus.FAILED_DEPLOYMENT
                                and machine.status_message else err.service_message or err.message)

    def _verdict(self, node: str, machine: Machine, grace_s: float) -> Machine:
        """After our deploy deadline: wait up to `grace_s` for MAAS to leave Deploying on its own.

        Our deadline is MAAS's own timeout, measured from our side: MAAS's status monitor (every
        60 s, src/maasserver/status_monitor.py) marks the machine Failed deployment a little later.
        Deploying it again before that would race MAAS's own verdict (and count a deployment twice).
        """
        current = self.read(node, machine)
        if current.status != NodeStatus.DEPLOYING:
            return current
        node_log(log, node).info("deploy deadline passed, MAAS still says Deploying: waiting up to %.0f s "
                                 "for its verdict", grace_s)
        return self._wait(node, current, {NodeStatus.DEPLOYING}, grace_s)


def _as_api(machine: Machine) -> dict[str, Any]:
    return {
        "system_id": machine.system_id, "hostname": machine.hostname, "status": machine.status,
        "status_name": machine.status_name, "status_message": machine.status_message,
        "distro_series": machine.distro_series, "tag_names": list(machine.tags),
        "hwe_kernel": machine.hwe_kernel, "power_state": machine.power_state, "owner": machine.owner,
        "power_type": machine.power_type,
    }


def _hint_for(status: int) -> str:
    if status == 401:
        return "the MAAS API key is wrong or revoked; check the site's maas credential"
    if status == 403:
        return "the MAAS user lacks permission for this; use an admin API key"
    if status == 404:
        return "the machine or tag is gone from MAAS; re-run discovery"
    if status == 409:
        return "MAAS refused the action in the machine's current state; check its status in MAAS"
    if status >= 500:
        return "MAAS had an internal error; read its regiond log"
    return "check the request against MAAS's API documentation"
