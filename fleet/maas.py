"""OS installs through MAAS, on python-libmaas's asynchronous API.

python-libmaas's blocking facade asks for the current thread's event loop and fails in worker threads,
so `MaasClient` runs the async API on one event-loop thread of its own and hands each call over with
`run_coroutine_threadsafe`: any number of workflow threads can use one client at once, and 512
nodes waiting for Deployed cost 512 sleeping coroutines, not 512 blocked sockets. They also share
one `machines read` per poll interval (`StatusPoller`), not one read each: 512 waiting nodes are
two requests per interval for MAAS's region controller, not 512. Bounding how many deploys start
at once is the caller's business (it owns the per-resource limits).

TLS: python-libmaas builds an aiohttp connector per request from one `insecure` flag, passing aiohttp
the deprecated `verify_ssl` argument, and offers no way to name a CA file. The client therefore
always tells python-libmaas "secure" and supplies the real TLS policy itself, per client, through a
context variable read by a thin stand-in for the `aiohttp` name inside python-libmaas's modules
(see `_TlsAiohttp`): verification on with the system roots by default, a site CA file when given,
and off only when the site says `verify: false`.

Decisions are pure functions (`decide_os_action`); the methods only talk to MAAS. Library
exceptions become `MaasError` once, here, with the node, the endpoint, the HTTP status and MAAS's own
message; the API key never appears in a message or a log record.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from types import ModuleType
from typing import Any, TypeVar

import aiohttp
from maas.client import bones
from maas.client.bones import CallError, SessionAPI
from maas.client.bones import helpers as bones_helpers
from maas.client.enum import NodeStatus

from fleet.errors import MaasError
from fleet.site import Credentials, Endpoint, Node, OsImage, TlsSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# MAAS's own monitored timeout for Deploying (node_status.py); the lab passes it scaled.
DEPLOY_TIMEOUT_S = 40 * 60.0
RELEASE_TIMEOUT_S = 5 * 60.0
ERASE_TIMEOUT_S = 30 * 60.0
POLL_INTERVAL_S = 10.0
REQUEST_TIMEOUT_S = 60.0
# System ids per batched `machines read`: 256 six-character ids keep the query near 2.6 KB, well
# inside the 8 KB request line that web servers in front of MAAS (and aiohttp) accept.
MAX_IDS_PER_READ = 256
MAX_DEPLOY_ATTEMPTS = 2  # the first deploy and one retry after a failed deployment


# -- the observed machine and the decision --------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """What MAAS says about one machine, reduced to what the workflow decides on."""

    system_id: str
    hostname: str
    status: int
    status_name: str
    status_message: str
    distro_series: str
    tags: tuple[str, ...]
    hwe_kernel: str | None = None
    power_state: str = "unknown"
    macs: tuple[str, ...] = ()  # its interfaces' MACs, the boot interface's first

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Machine:
        """From MAAS's machine JSON (the field names are MAAS's, written once here)."""
        return cls(
            system_id=str(data["system_id"]),
            hostname=str(data["hostname"]),
            status=int(data["status"]),
            status_name=str(data.get("status_name") or ""),
            status_message=str(data.get("status_message") or ""),
            distro_series=str(data.get("distro_series") or ""),
            tags=tuple(data.get("tag_names") or ()),
            hwe_kernel=data.get("hwe_kernel") or None,
            power_state=str(data.get("power_state") or "unknown"),
            macs=_macs(data),
        )


def _macs(data: dict[str, Any]) -> tuple[str, ...]:
    boot = (data.get("boot_interface") or {}).get("mac_address")
    others = [str(i.get("mac_address")) for i in data.get("interface_set") or () if i.get("mac_address")]
    return tuple(dict.fromkeys([str(boot).lower()] * bool(boot) + [m.lower() for m in others]))


def pick_machine(node: Node, by_mac: list[dict[str, Any]], by_hostname: list[dict[str, Any]] | None) -> Machine:
    """The node's machine from MAAS's answers (pure): only a machine with the node's PXE MAC is it.

    A machine with the node's hostname but another MAC is a swapped chassis or a stale record of
    a replaced one: deploying it would install the wrong server, so it is an error that names both
    MACs. `by_hostname` is only read when nothing matched by MAC.
    """
    if len(by_mac) > 1:
        ids = ", ".join(sorted(str(m["system_id"]) for m in by_mac))
        raise MaasError(f"{len(by_mac)} MAAS machines match by PXE MAC: {ids}", node=node.hostname,
                        hint="delete the stale duplicates in MAAS")
    if by_mac:
        return Machine.from_api(by_mac[0])
    if by_hostname:
        other = Machine.from_api(by_hostname[0])
        macs = ", ".join(other.macs) or "none"
        raise MaasError(
            f"MAAS machine {other.system_id} is named {other.hostname} but has MAC(s) {macs}, "
            f"not the inventory's PXE MAC {node.pxe_mac}: a swapped chassis or a stale MAAS record; it is not used",
            node=node.hostname,
            hint=f"check the chassis' service tag ({node.service_tag}) on site; then fix pxe_mac in the inventory, "
                 f"or delete the stale machine {other.system_id} in MAAS so the server enlists afresh")
    raise MaasError("machine is not enlisted in MAAS", node=node.hostname,
                    hint=f"PXE-boot it once so MAAS enlists MAC {node.pxe_mac}, or check pxe_mac in the inventory")


class OsStep(StrEnum):
    NOTHING = "nothing"  # already Deployed with the wanted image
    DEPLOY = "deploy"  # Ready or Allocated: deploy now
    REDEPLOY = "redeploy"  # Deployed with another image: release, then deploy
    RETRY = "retry"  # a failed deployment/release with attempts left: release, then deploy
    COMMISSION = "commission"  # New: MAAS must commission it before it can deploy
    WAIT = "wait"  # MAAS is busy with it (deploying, releasing, erasing, ...): poll again
    QUARANTINE = "quarantine"  # broken, out of attempts, or someone else's: stop and report


@dataclass(frozen=True)
class OsAction:
    step: OsStep
    reason: str


_BUSY = {
    NodeStatus.DEPLOYING, NodeStatus.RELEASING, NodeStatus.DISK_ERASING, NodeStatus.COMMISSIONING,
    NodeStatus.TESTING, NodeStatus.ENTERING_RESCUE_MODE, NodeStatus.EXITING_RESCUE_MODE,
}
_RETRYABLE_FAILURES = {
    NodeStatus.FAILED_DEPLOYMENT, NodeStatus.FAILED_RELEASING, NodeStatus.FAILED_DISK_ERASING,
}
# Statuses an operator or another system owns: touching them would break someone's work.
_HANDS_OFF: dict[int, str] = {
    NodeStatus.BROKEN: "MAAS marks it Broken; an operator must mark it fixed",
    NodeStatus.RESCUE_MODE: "it is in rescue mode (someone is debugging it)",
    NodeStatus.RESERVED: "it is reserved",
    NodeStatus.RETIRED: "it is retired",
    NodeStatus.MISSING: "MAAS cannot reach it (Missing)",
    NodeStatus.FAILED_COMMISSIONING: "commissioning failed; its hardware needs a look",
    NodeStatus.FAILED_TESTING: "hardware testing failed",
    NodeStatus.FAILED_ENTERING_RESCUE_MODE: "it failed to enter rescue mode",
    NodeStatus.FAILED_EXITING_RESCUE_MODE: "it failed to exit rescue mode",
}


def image_matches(machine: Machine, image: OsImage) -> bool:
    """Deployed with the wanted release (and the wanted kernel, when the site pins one)."""
    if machine.distro_series != image.distro_series:
        return False
    return not image.hwe_kernel or (machine.hwe_kernel or "") == image.hwe_kernel


def decide_os_action(
    machine: Machine, image: OsImage, *, failed_attempts: int = 0, max_attempts: int = MAX_DEPLOY_ATTEMPTS
) -> OsAction:
    """The next OS step for a machine as MAAS reports it; pure, so every row is a unit test.

    `failed_attempts` counts deployments of this run that already ended in failure; a failed
    deployment is released and retried while `failed_attempts < max_attempts`, then quarantined.
    """
    status = machine.status
    name = machine.status_name or str(status)
    if status == NodeStatus.DEPLOYED:
        if image_matches(machine, image):
            return OsAction(OsStep.NOTHING, f"already Deployed with {machine.distro_series}")
        return OsAction(
            OsStep.REDEPLOY,
            f"Deployed with {machine.distro_series or 'an unknown image'}"
            f"{'/' + machine.hwe_kernel if machine.hwe_kernel else ''}, wanted {image.distro_series}"
            f"{'/' + image.hwe_kernel if image.hwe_kernel else ''}",
        )
    if status in (NodeStatus.READY, NodeStatus.ALLOCATED):
        return OsAction(OsStep.DEPLOY, f"{name}: deploy {image.distro_series}")
    if status == NodeStatus.NEW:
        return OsAction(OsStep.COMMISSION, "New: MAAS must commission it first")
    if status in _BUSY:
        return OsAction(OsStep.WAIT, f"MAAS is busy with it ({name})")
    if status in _RETRYABLE_FAILURES:
        detail = f"{name}: {machine.status_message}" if machine.status_message else name
        if failed_attempts < max_attempts:
            return OsAction(OsStep.RETRY, f"{detail}; release and deploy again")
        return OsAction(OsStep.QUARANTINE, f"{detail}; {failed_attempts} failed attempt(s), giving up")
    reason = _HANDS_OFF.get(status, f"status {name} is not one this tool acts on")
    return OsAction(OsStep.QUARANTINE, f"{name}: {reason}")


def node_tags(node: Node) -> tuple[str, ...]:
    """The MAAS tags a node carries: its rack and its role (MAAS tag names allow [a-zA-Z0-9_-])."""
    return (f"rack-{node.rack:03d}", f"role-{node.role}")


# -- TLS through python-libmaas -------------------------------------------------------------------

_TLS: contextvars.ContextVar[ssl.SSLContext | bool | None] = contextvars.ContextVar("fleet_maas_tls", default=None)


class _TlsAiohttp(ModuleType):
    """Stands in for `aiohttp` inside python-libmaas: its connectors take this client's TLS policy.

    Everything but `TCPConnector` is aiohttp's own. When no MaasClient task is running (the context
    variable is unset) the library's own behaviour is kept unchanged.
    """

    def __init__(self) -> None:
        super().__init__("aiohttp")

    def __getattr__(self, name: str) -> Any:
        return getattr(aiohttp, name)

    @staticmethod
    def TCPConnector(*args: Any, verify_ssl: bool = True, **kwargs: Any) -> aiohttp.TCPConnector:
        policy = _TLS.get()
        if policy is None:
            return aiohttp.TCPConnector(*args, verify_ssl=verify_ssl, **kwargs)
        return aiohttp.TCPConnector(*args, ssl=policy, **kwargs)


_SHIM = _TlsAiohttp()
for _module in (bones, bones_helpers):
    _module.aiohttp = _SHIM  # type: ignore[attr-defined]


def tls_policy(tls: TlsSettings) -> ssl.SSLContext | bool:
    """An SSL context that verifies (system roots, or the site's CA file), or False when told not to."""
    if not tls.verify:
        return False
    return ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)


# -- waiting for many machines at once -------------------------------------------------------------

ReadMany = Callable[[tuple[str, ...]], Awaitable[list[dict[str, Any]]]]


@dataclass(eq=False)
class _Waiter:
    """One caller waiting for one machine to leave `busy`, until `end` on the poller's clock."""

    system_id: str
    busy: frozenset[int]
    end: float
    result: asyncio.Future[Machine | None]


class StatusPoller:
    """Reads every machine somebody is waiting for in one batched `machines read` per interval.

    Each waiter keeps the semantics of polling alone: it gets the machine as soon as a read shows it
    out of `busy`, or the machine as last read once its deadline has passed (a read is made at the
    deadline), at most one interval after it started waiting. What is shared is the read: MAAS's
    `machines read` with repeated `id=` filters (chunked by `max_ids_per_read`) answers for all of
    them. A failed read fails the waiters it was for, as their own read would have.

    Lives on one event loop (the client's); not thread-safe, and needs no locks there.
    """

    def __init__(self, read_many: ReadMany, interval_s: float, *, max_ids_per_read: int = MAX_IDS_PER_READ,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read_many = read_many
        self.interval_s = interval_s
        self._max_ids = max_ids_per_read
        self._clock = clock
        self._waiters: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def wait(self, system_id: str, busy: Iterable[int], deadline_s: float) -> Machine | None:
        """The machine once it leaves `busy` or `deadline_s` has passed; None if MAAS no longer lists it."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(system_id, frozenset(busy), self._clock() + deadline_s, loop.create_future())
        self._waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        else:
            self._wake.set()  # its deadline may come before the next scheduled read
        try:
            return await waiter.result
        finally:
            self._waiters.remove(waiter)

    async def _run(self) -> None:
        next_read = self._clock()  # the first waiter is read at once, later ones join the next round
        while True:
            # Answered waiters stay listed until their callers resume: they no longer count.
            pending = [w for w in self._waiters if not w.result.done()]
            if not pending:
                return
            delay = min(next_read, *(w.end for w in pending)) - self._clock()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self._read_round(pending)
            next_read = self._clock() + self.interval_s

    async def _read_round(self, waiters: list[_Waiter]) -> None:
        ids = sorted({w.system_id for w in waiters})
        for first in range(0, len(ids), self._max_ids):
            chunk = tuple(ids[first:first + self._max_ids])
            in_chunk = set(chunk)
            members = [w for w in waiters if w.system_id in in_chunk]
            try:
                found = {str(data["system_id"]): data for data in await self._read_many(chunk)}
            except Exception as err:  # noqa: BLE001 - handed to each waiter, whose caller wraps it once
                for waiter in members:
                    if not waiter.result.done():
                        waiter.result.set_exception(err)
                continue
            now = self._clock()
            for waiter in members:
                if waiter.result.done():  # cancelled by its caller's timeout meanwhile
                    continue
                data = found.get(waiter.system_id)
                if data is None:
                    waiter.result.set_result(None)
                    continue
                machine = Machine.from_api(data)
                if machine.status not in waiter.busy or now >= waiter.end:
                    waiter.result.set_result(machine)


# -- the client -----------------------------------------------------------------------------------


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
        poll_interval_s: float = POLL_INTERVAL_S,
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
        # Tags seen to exist: 512 nodes tagged with the same rack/role tags read each tag once, not
        # once per node. Only ever grows from the workers' threads (set operations are atomic);
        # a tag deleted behind our back is forgotten when MAAS answers 404 for it.
        self._tags_known: set[str] = set()

    def __repr__(self) -> str:
        return f"MaasClient({self.url!r})"

    def close(self) -> None:
        """Stop the event-loop thread; the client cannot be used afterwards."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> MaasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        async def with_tls() -> T:
            _TLS.set(self._tls)  # this task's own context: other clients keep theirs
            return await make()

        future = asyncio.run_coroutine_threadsafe(with_tls(), self._loop)
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
                _profile, self._session = await SessionAPI.connect(self.url, apikey=self._apikey, insecure=False)
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

    def find_machine(self, node: Node) -> Machine:
        """The node's machine: matched by its PXE MAC (what MAAS saw at enlistment); see `pick_machine`."""
        found = self._call(node.hostname, "machines read mac_address",
                           lambda s: s.Machines.read(mac_address=[node.pxe_mac]))
        named = None if found else self._call(node.hostname, "machines read hostname",
                                              lambda s: s.Machines.read(hostname=[node.hostname]))
        try:
            machine = pick_machine(node, list(found), list(named) if named is not None else None)
        except MaasError as err:
            err.endpoint = self.url
            raise
        how = "PXE MAC"
        if machine.hostname != node.hostname:
            log.warning("%s: MAAS knows PXE MAC %s as '%s' (%s)", node.hostname, node.pxe_mac,
                        machine.hostname, machine.system_id)
        log.debug("%s: found %s by %s, %s", node.hostname, machine.system_id, how, machine.status_name)
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
        if image.hwe_kernel:
            params["hwe_kernel"] = image.hwe_kernel
        if user_data is not None:
            params["user_data"] = base64.b64encode(user_data)  # MAAS wants it base64-encoded
        if comment:
            params["comment"] = comment
        log.info("%s: deploying %s on %s", node, image.distro_series, machine.system_id)
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
        log.info("%s: releasing %s%s", node, machine.system_id, " with disk erase" if erase or quick_erase else "")
        data = self._call(node, f"machines/{machine.system_id} op=release", lambda s: s.Machine.release(**params))
        return Machine.from_api(data)

    def mark_broken(self, node: str, machine: Machine, comment: str) -> Machine:
        log.warning("%s: marking %s broken: %s", node, machine.system_id, comment)
        data = self._call(node, f"machines/{machine.system_id} op=mark_broken",
                          lambda s: s.Machine.mark_broken(system_id=machine.system_id, comment=comment))
        return Machine.from_api(data)

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
            log.info("%s: tagged %s with %s", node, machine.system_id, ", ".join(wanted))
        return Machine.from_api({**_as_api(machine), "tag_names": [*machine.tags, *wanted]})

    def untag(self, node: str, machine: Machine, tags: Iterable[str]) -> Machine:
        """Take `tags` off the machine (the tags themselves stay in MAAS for the other machines)."""
        present = [t for t in tags if t in machine.tags]
        for name in present:
            self._call(node, f"tags/{name} op=update_nodes",
                       lambda s, name=name: s.Tag.update_nodes(name=name, remove=machine.system_id))
        if present:
            log.info("%s: removed %s from %s", node, ", ".join(present), machine.system_id)
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

    def wait_deployed(self, node: str, machine: Machine, *, deadline_s: float = DEPLOY_TIMEOUT_S) -> Machine:
        """Wait for Deployed; DeploymentFailed (with MAAS's status message) on failure or deadline."""
        current = self._wait(node, machine, {NodeStatus.DEPLOYING}, deadline_s)
        if current.status == NodeStatus.DEPLOYED:
            log.info("%s: Deployed (%s)", node, current.distro_series)
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

    def wait_ready(self, node: str, machine: Machine, *, deadline_s: float = RELEASE_TIMEOUT_S) -> Machine:
        """Wait for a release (and disk erase) to finish in Ready; MaasError otherwise."""
        current = self._wait(node, machine, {NodeStatus.RELEASING, NodeStatus.DISK_ERASING}, deadline_s)
        if current.status == NodeStatus.READY:
            log.info("%s: released, Ready", node)
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
        deploy_timeout_s: float = DEPLOY_TIMEOUT_S,
        release_timeout_s: float = ERASE_TIMEOUT_S,
        max_attempts: int = MAX_DEPLOY_ATTEMPTS,
        erase_on_retry: bool = False,
        machine: Machine | None = None,
    ) -> OsOutcome:
        """Bring the node to Deployed with `image`: deploy, retry a failed deployment once, else mark broken.

        Each turn reads MAAS, asks `decide_os_action` and does that one step, so a node found half-way
        (Deploying from a crashed run, Deployed with the wrong image) is carried on, never restarted.
        `machine` is the caller's fresh read of it, if it has one (saves a lookup per node).
        """
        host = node.hostname
        machine = machine or self.find_machine(node)
        failures: list[str] = []
        attempts = 0
        while True:
            action = decide_os_action(machine, image, failed_attempts=len(failures), max_attempts=max_attempts)
            log.info("%s: %s (%s)", host, action.step.value, action.reason)
            if action.step == OsStep.NOTHING:
                return OsOutcome(machine, True, attempts, action.reason, tuple(failures))
            if action.step == OsStep.QUARANTINE:
                if failures and machine.status != NodeStatus.BROKEN:
                    comment = f"fleet: {len(failures)} failed deployment(s): {failures[-1]}"
                    machine = self.mark_broken(host, machine, comment[:500])
                return OsOutcome(machine, False, attempts, action.reason, tuple(failures))
            if action.step == OsStep.WAIT:
                busy = {NodeStatus(machine.status)}
                machine = self._wait(host, machine, busy, deploy_timeout_s)
                if machine.status in busy:
                    return OsOutcome(machine, False, attempts, f"still {machine.status_name} after "
                                     f"{deploy_timeout_s:.0f} s", tuple(failures))
                continue
            if action.step == OsStep.COMMISSION:
                return OsOutcome(machine, False, attempts, action.reason, tuple(failures))
            if action.step in (OsStep.REDEPLOY, OsStep.RETRY):
                machine = self.release(host, machine, erase=erase_on_retry, comment=action.reason[:200])
                machine = self.wait_ready(host, machine, deadline_s=release_timeout_s)
            attempts += 1
            machine = self.deploy(host, machine, image, user_data=user_data)
            try:
                machine = self.wait_deployed(host, machine, deadline_s=deploy_timeout_s)
            except DeploymentFailed as err:
                failures.append(err.service_message or err.message)
                machine = self.read(host, machine)
                if machine.status == NodeStatus.DEPLOYING:
                    # Our deadline (MAAS's own) passed a moment before MAAS's monitor noticed: decide as
                    # MAAS is about to see it. Releasing and marking broken are both legal from Deploying.
                    machine = replace(machine, status=int(NodeStatus.FAILED_DEPLOYMENT),
                                      status_name="Failed deployment")


def _as_api(machine: Machine) -> dict[str, Any]:
    return {
        "system_id": machine.system_id, "hostname": machine.hostname, "status": machine.status,
        "status_name": machine.status_name, "status_message": machine.status_message,
        "distro_series": machine.distro_series, "tag_names": list(machine.tags),
        "hwe_kernel": machine.hwe_kernel, "power_state": machine.power_state,
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
