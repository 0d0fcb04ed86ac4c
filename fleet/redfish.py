"""Out-of-band control through each server's BMC (Redfish), on the DMTF `redfish` library.

What the workflow needs from a BMC is small: read the system (power, service tag, MACs), change
power, arm a one-time network boot, and wait for a power state. What makes it hard is iDRAC's
temperament, so this module owns it in one place:
- iDRACs fall over under parallel sessions: one request at a time per BMC, a fleet-wide cap on
  requests in flight, HTTP basic auth (no Redfish sessions to leak or exhaust).
- They are slow and flaky: GETs and PATCHes (which change nothing when repeated) are retried
  with exponential backoff and jitter on connection errors, timeouts and 5xx; never on 4xx (a
  wrong password does not heal, and retrying it locks the account).
- A `ComputerSystem.Reset` POST is never retried blindly: a reset that timed out or answered 5xx
  may still have been carried out (iDRAC queues requests while busy), and a second one would
  cycle the node twice. After such an ambiguous answer the power state is read back for
  `reset_confirm_s`; only when it shows no sign of the reset is the reset sent again.
- Power changes land seconds after the POST: callers poll (`wait_power`), never assume. A wait
  after a reset proves the transition: "On" after cycling a running server counts only once the
  server was seen leaving On (Off, PoweringOff/On), or the BMC's `LastResetTime` moved (iDRAC's
  warm ForceRestart can keep PowerState On throughout).
- `BootSourceOverrideEnabled: Once` reads back as `Continuous`: a one-time boot is not verified by
  reading it back.
- A request that serves a deadline (a power wait, the Lifecycle Controller's or a job's wait, iDRAC's
  inventory) gets timeouts cut to what is left of it, never above the normal ones nor below a floor
  (`request_timeouts`): a read sent just before a 4.5 s deadline must not hold the caller 30 s past it.
  The reset POST and its read-back keep the normal timeouts: the read-back alone decides whether a reset
  is sent again, and a shortened read would only let it see less.
Decisions (which reset types reach a goal from the observed state, whether a failure is worth a
retry, how long to back off) are pure functions; `Bmc` only carries them out.

The DMTF library, left to itself, retries every failure ten times with a fixed one-second sleep
(POSTs included) and turns TLS verification OFF unless given a CA file; so every request here
passes `max_retry=0` and, unless insecure was asked for explicitly, an explicit CA file (which
also keeps `REQUESTS_CA_BUNDLE` in the environment from silently replacing it).
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import redfish
import requests
from redfish.rest.v1 import JsonDecodingError, RetriesExhaustedError
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context

from fleet.errors import BmcError
from fleet.logs import node_log
from fleet.site import Node, Site, resolve_credentials
from fleet.slots import Slots

log = logging.getLogger(__name__)


class _NoBodyDump(logging.Filter):
    """The library logs a non-JSON answer at ERROR with the whole body (an HTML page, blank lines and all)
    before raising JsonDecodingError; we turn that error into a one-paragraph BmcError that names the
    node and URL, so the dump only adds noise (and an HTML page's markup) to the operator's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Service responded with invalid JSON")


logging.getLogger("redfish.rest.v1").addFilter(_NoBodyDump())

SYSTEMS = "/redfish/v1/Systems"

# JSON paths of everything read from a ComputerSystem, written once.
POWER_STATE = ("PowerState",)
SKU = ("SKU",)  # iDRAC: the Dell service tag
SERIAL_NUMBER = ("SerialNumber",)
MODEL = ("Model",)  # iDRAC: "PowerEdge XE9680"
BOOT_ENABLED = ("Boot", "BootSourceOverrideEnabled")
BOOT_TARGET = ("Boot", "BootSourceOverrideTarget")
BOOT_TARGETS = ("Boot", "BootSourceOverrideTarget@Redfish.AllowableValues")
RESET_TARGET = ("Actions", "#ComputerSystem.Reset", "target")
RESET_TYPES = ("Actions", "#ComputerSystem.Reset", "ResetType@Redfish.AllowableValues")
ETHERNET_INTERFACES = ("EthernetInterfaces", "@odata.id")
MEMBERS = ("Members",)
# OData $expand of a collection's members, one level (iDRAC 9 Redfish API guide, "Query parameters").
EXPAND_MEMBERS = "?$expand=*($levels=1)"
ODATA_ID = ("@odata.id",)
MAC_ADDRESS = ("MACAddress",)
PERMANENT_MAC_ADDRESS = ("PermanentMACAddress",)
LAST_RESET_TIME = ("LastResetTime",)  # ComputerSystem v1.12+; absent on older firmware and sushy-tools
ERROR_MESSAGE = ("error", "message")
ERROR_EXTENDED_INFO = ("error", "@Message.ExtendedInfo")

POWER_ACTIONS = ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle")
CYCLE_ACTIONS = ("ForceRestart", "PowerCycle")
NETWORK_BOOT_TARGETS = ("Pxe", "UefiHttp")
STEADY_STATES = ("On", "Off")
SETTLES_TO = {"PoweringOn": "On", "PoweringOff": "Off"}


class PlanError(ValueError):
    """The goal cannot be reached from what the BMC reports (unknown state, reset type not offered)."""


# ---------------------------------------------------------------- decisions (pure)


@dataclass(frozen=True)
class Step:
    """One thing to do to a BMC: POST a reset, PATCH a one-time boot, or wait for a power state."""

    kind: str  # "reset" | "boot_once" | "wait"
    value: str


def _offered(reset: str, allowable: tuple[str, ...]) -> bool:
    """A BMC that lists no AllowableValues is taken at its word that it accepts the standard ones."""
    return not allowable or reset in allowable


def plan_power(action: str, power_state: str, allowable: tuple[str, ...]) -> tuple[Step, ...]:
    """The steps that carry out `action` on a server now in `power_state`.

    - On / ForceOff / GracefulShutdown are no-ops when the server is already there (iDRAC answers
      an error to "On" on a running server, so we must not send it).
    - A cycle (ForceRestart, PowerCycle) of a server that is off is just "On".
    - A cycle uses the requested reset type if the BMC offers it, else the other cycle type, else
      ForceOff, wait for Off, On (older iDRAC firmware offers no PowerCycle).
    - A server in transition (PoweringOn/Off) is first waited for: iDRAC refuses resets mid-way.
    """
    if action not in POWER_ACTIONS:
        raise PlanError(f"unknown power action '{action}' (use one of {', '.join(POWER_ACTIONS)})")
    steps: tuple[Step, ...] = ()
    if power_state in SETTLES_TO:
        power_state = SETTLES_TO[power_state]
        steps = (Step("wait", power_state),)
    if power_state not in STEADY_STATES:
        raise PlanError(f"the BMC reports power state '{power_state}', which is neither On nor Off")
    if action == "On":
        resets: tuple[Step, ...] = () if power_state == "On" else (Step("reset", "On"),)
    elif action in ("ForceOff", "GracefulShutdown"):
        resets = () if power_state == "Off" else (Step("reset", action),)
    elif power_state == "Off":
        resets = (Step("reset", "On"),)
    else:
        resets = _cycle(action, allowable)
    for step in resets:
        if step.kind == "reset" and not _offered(step.value, allowable):
            raise PlanError(f"the BMC does not offer reset type '{step.value}' (it offers {', '.join(allowable)})")
    return steps + resets


def _cycle(action: str, allowable: tuple[str, ...]) -> tuple[Step, ...]:
    other = "ForceRestart" if action == "PowerCycle" else "PowerCycle"
    for reset in (action, other):
        if _offered(reset, allowable):
            return (Step("reset", reset),)
    return (Step("reset", "ForceOff"), Step("wait", "Off"), Step("reset", "On"))


def plan_network_boot(target: str, power_state: str, reset_types: tuple[str, ...],
                      boot_targets: tuple[str, ...]) -> tuple[Step, ...]:
    """Steps to reach "booting from the network once": arm the one-time boot, then (re)start the server.

    The override is armed before the reset because iDRAC applies it at the next boot only.
    """
    if target not in NETWORK_BOOT_TARGETS:
        raise PlanError(f"'{target}' is not a network boot target (use {' or '.join(NETWORK_BOOT_TARGETS)})")
    if boot_targets and target not in boot_targets:
        raise PlanError(f"the BMC does not offer boot target '{target}' (it offers {', '.join(boot_targets)})")
    return (Step("boot_once", target), *plan_power("PowerCycle", power_state, reset_types))


@dataclass(frozen=True)
class PendingReset:
    """A reset the BMC was sent whose effect has not been seen yet: what was sent, from which state."""

    reset: str
    before: str
    last_reset_time: str | None = None


def reset_seen(pending: PendingReset, power_state: str, last_reset_time: str | None) -> bool:
    """Whether what the BMC reports now proves that `pending` took effect.

    A changed `LastResetTime` proves any reset. Otherwise the power state must show the move:
    On -> seen powering on or on; ForceOff/GracefulShutdown -> seen powering off or off; a cycle of
    a running server -> seen anywhere but On (a cycle ends On again, so "On" proves nothing).
    """
    if pending.last_reset_time is not None and last_reset_time not in (None, pending.last_reset_time):
        return True
    if pending.reset == "On":
        return power_state in ("PoweringOn", "On")
    if pending.reset in ("ForceOff", "GracefulShutdown"):
        return power_state in ("PoweringOff", "Off")
    return power_state in ("PoweringOff", "Off", "PoweringOn")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is retried."""

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay_s(self, retry: int, draw: float) -> float:
        """Pause before retry number `retry` (1-based): doubling, capped, with "equal jitter" (half
        fixed, half random from `draw` in [0, 1)) so 512 nodes that failed together do not return together."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1))
        return ceiling / 2 + draw * ceiling / 2


def classify(status: int | None, failure: str | None) -> str:
    """"ok", "retry" or "fail" for one attempt: an HTTP status, or a failure kind when no response came.

    Failure kinds: "connection", "timeout" (retried: the BMC may be busy or rebooting), "tls" and
    "other" (not retried: a certificate does not become valid by asking again).
    """
    if status is None:
        return "retry" if failure in ("connection", "timeout") else "fail"
    if status < 400:
        return "ok"
    return "retry" if status >= 500 else "fail"


def request_timeouts(connect_s: float, read_s: float, remaining_s: float | None,
                     floor_s: float) -> tuple[float, float]:
    """(connect, read) timeouts of one attempt that serves a deadline `remaining_s` seconds away (None: none).

    Each is the client's normal timeout cut to what is left of the deadline, but never below `floor_s`: a
    read made at the deadline (a wait's last look) still gets a short chance to answer, and a deadline
    already passed (a retry after it) costs the floor per attempt, not the normal 30 s."""
    if remaining_s is None:
        return connect_s, read_s
    bound = max(floor_s, remaining_s)
    return min(connect_s, bound), min(read_s, bound)


def failure_kind(exc: BaseException | None) -> str:
    """Name what went wrong below HTTP, from the exception the library chained."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection"
    return "other"


def _field(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def service_message(body: Mapping[str, Any]) -> str | None:
    """The BMC's own words from a Redfish error body: @Message.ExtendedInfo messages, else error.message."""
    infos = _field(body, ERROR_EXTENDED_INFO) or []
    texts = [str(info["Message"]) for info in infos if isinstance(info, Mapping) and info.get("Message")]
    if texts:
        return " ".join(texts)
    message = _field(body, ERROR_MESSAGE)
    return str(message) if message else None


def normalize_mac(mac: str) -> str:
    """aa:bb:cc:dd:ee:ff, whatever separators and case the BMC used."""
    digits = "".join(ch for ch in mac.lower() if ch in "0123456789abcdef")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2)) if len(digits) == 12 else mac.lower()


@dataclass(frozen=True)
class SystemInfo:
    """What the BMC reports about its server, as the workflow compares it with the inventory.

    `boot_once_target` is the armed boot override, or None when none is armed. iDRAC (and the lab)
    read an armed "Once" back as "Continuous", so this cannot tell once from always.
    """

    power_state: str
    service_tag: str
    macs: tuple[str, ...]
    boot_once_target: str | None
    reset_types: tuple[str, ...] = ()
    boot_targets: tuple[str, ...] = ()
    model: str = ""


def parse_system(system: Mapping[str, Any], macs: tuple[str, ...] = ()) -> SystemInfo:
    """A ComputerSystem resource (plus the MACs of its EthernetInterfaces) as a SystemInfo."""
    enabled = _field(system, BOOT_ENABLED)
    target = _field(system, BOOT_TARGET)
    armed = enabled in ("Once", "Continuous") and target not in (None, "None")
    return SystemInfo(
        power_state=str(_field(system, POWER_STATE) or "Unknown"),
        service_tag=str(_field(system, SKU) or _field(system, SERIAL_NUMBER) or ""),
        model=str(_field(system, MODEL) or "").strip(),
        macs=tuple(sorted({normalize_mac(mac) for mac in macs})),
        boot_once_target=str(target) if armed else None,
        reset_types=tuple(_field(system, RESET_TYPES) or ()),
        boot_targets=tuple(_field(system, BOOT_TARGETS) or ()),
    )


# ---------------------------------------------------------------- doing (thin)


class RestClient(Protocol):
    """The part of the DMTF library's HttpClient this module uses (also what tests fake)."""

    def get(self, path: str, *, timeout: Any = None, max_retry: int | None = None, **kw: Any) -> Any: ...
    def post(self, path: str, *, body: Any = None, timeout: Any = None, max_retry: int | None = None,
             **kw: Any) -> Any: ...
    def patch(self, path: str, *, body: Any = None, timeout: Any = None, max_retry: int | None = None,
              **kw: Any) -> Any: ...


ClientFactory = Callable[[str, str, str | None], RestClient]  # (base_url, authorization header, CA file)


class CaFileAdapter(HTTPAdapter):
    """Verifies BMC certificates against one CA file through one shared SSLContext.

    Given the CA file's path as `verify`, requests looks the path up on disk (exists, isdir: three
    stat calls) on every request, and urllib3 builds a new SSLContext and loads the file for every
    BMC's pool. Each stat gives up the GIL, and behind a thousand busy node threads getting it back
    takes up to a switch interval. requests documents this override for a custom SSLContext
    (`build_connection_pool_key_attributes`, `cert_verify`). The checks are urllib3's own: its
    context with CERT_REQUIRED, the chain against the file's CAs, the name against the address.
    A request that turns verification off (`verify=False`) gets requests' own handling.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        if verify is False or cert is not None:
            return super().build_connection_pool_key_attributes(request, verify, cert)
        url = urlsplit(request.url or "")
        return ({"scheme": url.scheme.lower(), "host": url.hostname, "port": url.port},
                {"ssl_context": self._context, "cert_reqs": "CERT_REQUIRED"})

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if verify is False or cert is not None:
            super().cert_verify(conn, url, verify, cert)
            return
        conn.cert_reqs = "CERT_REQUIRED"  # the CAs are in the pool's context: nothing to look up


@functools.lru_cache(maxsize=8)
def ca_file_context(ca_file: str, changed_ns: int) -> ssl.SSLContext:
    """urllib3's client context with `ca_file`'s CAs, made once per file version (`changed_ns`: its mtime)."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_verify_locations(cafile=ca_file)
    return context


def ca_file_adapter(ca_file: str | None) -> CaFileAdapter | None:
    """The adapter for `ca_file`; None (requests' own handling, and its error) for no file or one that does not load."""
    if not ca_file:
        return None
    try:
        return CaFileAdapter(ca_file_context(ca_file, os.stat(ca_file).st_mtime_ns))
    except (OSError, ssl.SSLError):
        return None


def dmtf_client(base_url: str, authorization: str, ca_file: str | None) -> RestClient:
    """An unconnected DMTF HttpClient that sends HTTP basic auth on every request.

    Basic auth instead of `login()`: login would open a Redfish session (iDRAC allows a handful)
    and costs two extra round trips; the library then sends our header as-is.
    `ca_file=None` means the library passes verify=False: only for an explicit insecure choice.
    The CA file is checked through `CaFileAdapter`, mounted through the library's `https_adapter`.
    """
    client = redfish.redfish_client(base_url=base_url, cafile=ca_file, max_retry=0, check_connectivity=False,
                                    https_adapter=ca_file_adapter(ca_file))
    client.set_authorization_key(authorization)
    # The library sends everything through one plain requests.Session, which by default reads the
    # environment on every request: HTTP(S)_PROXY (BMC traffic belongs on the out-of-band network,
    # never on an ops host's proxy), REQUESTS_CA_BUNDLE (would replace our CA file) and ~/.netrc;
    # scanning the environment also cost ~2 ms of CPU per request at 512 nodes.
    client._session.trust_env = False  # the library offers no other way to set it
    return client


@dataclass(frozen=True)
class BmcSettings:
    """Per-request and polling behaviour shared by every BMC of a pool."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # iDRAC 9 takes >10 s on some GETs while busy with a job
    # The least a request that serves a nearly spent deadline waits (request_timeouts): an idle iDRAC answers
    # a GET in well under a second, so a last look still has its chance.
    min_timeout_s: float = 2.0
    poll_interval_s: float = 2.0
    power_timeout_s: float = 120.0
    # How long an ambiguous reset (timeout, 5xx) is watched for before it counts as not carried out:
    # longer than a busy iDRAC holds a request plus the seconds a power change takes to show.
    reset_confirm_s: float = 40.0
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class Reply:
    """One answered request as an OEM resource module sees it: status, headers and the JSON body.

    iDRAC names a job it just created only in the `Location` header, and the HTTP push URI hands
    out its `ETag` there, so callers of `Bmc.request` need more than the body.
    """

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class RequestCounts:
    """Requests sent to one BMC: `requests` (retries included), `polls` (waiting for power), `retries`."""

    requests: int = 0
    polls: int = 0
    retries: int = 0


class Bmc:
    """One node's BMC: one request at a time, retried where it deserves it, counted."""

    def __init__(self, node: Node, *, site: Site, ca_file: str | None, slots: Slots,
                 settings: BmcSettings, client_factory: ClientFactory, sleep: Callable[[float], None],
                 rng: random.Random) -> None:
        self.node = node
        self._site = site
        self._ca_file = ca_file
        self._slots = slots
        self._settings = settings
        self._client_factory = client_factory
        self._sleep = sleep
        self._rng = rng
        self._lock = threading.RLock()  # one request at a time to this BMC, across threads
        self._client: RestClient | None = None
        self._system_path: str | None = None
        self._reset_path: str | None = None
        self._pending: PendingReset | None = None  # the last reset sent, until its effect is seen
        self._counts = RequestCounts()
        self._log = node_log(log, node.hostname)

    @property
    def requests(self) -> int:
        return self._counts.requests

    @property
    def polls(self) -> int:
        return self._counts.polls

    def counts(self) -> RequestCounts:
        return self._counts

    def read_system(self, *, within_s: float | None = None) -> SystemInfo:
        """Power state, service tag, MACs and boot override, read fresh from the BMC; `within_s`: what is left
        of the deadline the read serves (its requests' timeouts are cut to it, see `request_timeouts`)."""
        deadline = _deadline(within_s)
        with self._lock:
            system = self._get_system(deadline)
            macs: list[str] = []
            interfaces = _field(system, ETHERNET_INTERFACES)
            if interfaces:
                # One GET for every NIC: iDRAC expands collections (not the system itself); a service that
                # ignores $expand lists links only, and each NIC is then read on its own.
                for member in _field(self._call("GET", interfaces + EXPAND_MEMBERS, deadline=deadline), MEMBERS) or []:
                    expanded = MAC_ADDRESS[0] in member or PERMANENT_MAC_ADDRESS[0] in member
                    nic = member if expanded else self._call("GET", _field(member, ODATA_ID), deadline=deadline)
                    mac = _field(nic, MAC_ADDRESS) or _field(nic, PERMANENT_MAC_ADDRESS)
                    if mac:
                        macs.append(str(mac))
            return parse_system(system, tuple(macs))

    def power(self, action: str, *, timeout_s: float | None = None) -> tuple[Step, ...]:
        """Carry out a power action from the current state (see `plan_power`); returns the steps taken.

        Returns once the BMC accepted the last reset: the change lands later, so `wait_power` for it.
        """
        with self._lock:
            system = self._get_system()
            steps = self._plan(lambda: plan_power(action, str(_field(system, POWER_STATE)),
                                                  tuple(_field(system, RESET_TYPES) or ())))
            self._run(steps, system, timeout_s)
            return steps

    def boot_once(self, target: str = "Pxe") -> None:
        """Arm a one-time boot from `target` (Pxe or UefiHttp) for the next boot."""
        if target not in NETWORK_BOOT_TARGETS:
            raise BmcError(f"'{target}' is not a network boot target", node=self.node.hostname,
                           hint=f"use {' or '.join(NETWORK_BOOT_TARGETS)}")
        with self._lock:
            self._call("PATCH", self._system(), body={
                "Boot": {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": "Once"}})
            self._log.info("one-time boot from %s armed", target)

    def network_boot(self, target: str = "Pxe", *, timeout_s: float | None = None) -> tuple[Step, ...]:
        """Reach "booting from the network once": arm the override, then power on or cycle.

        Three requests on a known BMC (read, PATCH, reset), four on first contact (+ Systems).
        """
        with self._lock:
            system = self._get_system()
            steps = self._plan(lambda: plan_network_boot(
                target, str(_field(system, POWER_STATE)), tuple(_field(system, RESET_TYPES) or ()),
                tuple(_field(system, BOOT_TARGETS) or ())))
            self._run(steps, system, timeout_s)
            return steps

    @property
    def reset_confirm_s(self) -> float:
        """How long a reset whose outcome is unknown is watched before it counts as not carried out."""
        return self._settings.reset_confirm_s

    def power_on_seen_within(self, timeout_s: float) -> bool:
        """Whether the server is, or within `timeout_s` becomes, On or PoweringOn (polled, one read at least).

        For a resumed run: a power-on sent just before the process died may land seconds later."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                seen = self._observe(self._call("GET", self._system(), poll=True, deadline=deadline))
                if seen in ("On", "PoweringOn"):
                    return True
                if time.monotonic() + self._settings.poll_interval_s > deadline:
                    return False
                self._sleep(self._settings.poll_interval_s)

    def wait_power(self, state: str, timeout_s: float | None = None) -> str:
        """Poll until the server reports `state` after the last reset sent was seen to take effect.

        BmcError when the deadline passes first, saying whether the state was never reached or the
        server sat in it the whole time (a cycle that never happened).
        """
        timeout_s = self._settings.power_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                seen = self._observe(self._call("GET", self._system(), poll=True, deadline=deadline))
                if seen == state and self._pending is None:
                    return seen
                if time.monotonic() + self._settings.poll_interval_s > deadline:
                    raise self._wait_error(state, seen, timeout_s)
                self._sleep(self._settings.poll_interval_s)

    def _wait_error(self, state: str, seen: str, timeout_s: float) -> BmcError:
        endpoint = self._endpoint("GET", self._system())
        if seen == state and self._pending is not None:
            return BmcError(f"the server reports {seen} but never left {self._pending.before} after the "
                            f"{self._pending.reset} reset within {timeout_s:g} s: the reset did not take effect",
                            node=self.node.hostname, endpoint=endpoint, status=f"last seen {seen}",
                            hint="check the server's lifecycle log; the reset is not sent again by itself")
        return BmcError(f"the server did not reach power state {state} within {timeout_s:g} s",
                        node=self.node.hostname, endpoint=endpoint, status=f"last seen {seen}",
                        hint="the BMC accepted the request; check the server's lifecycle log")

    def system_path(self) -> str:
        """The ComputerSystem's path (found once; System.Embedded.1 on iDRAC)."""
        with self._lock:
            return self._system()

    def request(self, method: str, path: str, *, body: Any = None, headers: Mapping[str, str] | None = None,
                poll: bool = False, repeat: bool = False, within_s: float | None = None) -> Reply:
        """One request for a resource module beside this one (fleet/dell/): the same per-BMC lock,
        fleet-wide cap, retry policy, error wrapping and counters as this module's own requests.

        Sent once unless `repeat` says a retryable failure may be answered by sending it again (a GET,
        a read-only action): a request that queues a job is not, the caller reads the queue instead.
        `poll` counts it as waiting (following a job) rather than as a request. `within_s`: what is left of the
        deadline the caller serves; each attempt's timeouts are cut to it (`request_timeouts`)."""
        deadline = _deadline(within_s)
        with self._lock:
            return self._call(method, path, body=body, poll=poll, headers=headers, reply=True, repeat=repeat,
                              deadline=deadline)

    # -- internals

    def _plan(self, decide: Callable[[], tuple[Step, ...]]) -> tuple[Step, ...]:
        try:
            return decide()
        except PlanError as err:
            raise BmcError(str(err), node=self.node.hostname, endpoint=self._endpoint("GET", self._system()),
                           hint="check the server in the BMC's web interface") from None

    def _run(self, steps: tuple[Step, ...], system: Mapping[str, Any], timeout_s: float | None) -> None:
        for step in steps:
            if step.kind == "wait":
                self.wait_power(step.value, timeout_s)
                system = {**system, "PowerState": step.value}
            elif step.kind == "boot_once":
                self.boot_once(step.value)
            else:
                self._reset(step.value, PendingReset(step.value, str(_field(system, POWER_STATE)),
                                                     _field(system, LAST_RESET_TIME)))

    def _reset(self, reset: str, pending: PendingReset) -> None:
        """POST one reset; after an ambiguous answer, read back before ever sending it again."""
        path = self._reset_path or f"{self._system()}/Actions/ComputerSystem.Reset"
        policy = self._settings.retry
        attempt = 0
        while True:
            attempt += 1
            self._pending = pending
            status, failure, payload, cause = self._attempt("POST", path, {"ResetType": reset}, False)
            verdict = classify(status, failure)
            if verdict == "ok":
                self._log.info("reset %s accepted", reset)
                return
            if verdict == "fail":
                raise self._error("POST", path, status, failure, payload, attempt, cause)
            what = f"HTTP {status}" if status is not None else failure
            self._log.warning("reset %s: %s; the BMC may still carry it out: reading the power state back", reset, what)
            if self._confirm():
                self._log.info("reset %s confirmed by the power state read back", reset)
                return
            if attempt >= policy.attempts:
                raise self._error("POST", path, status, failure, payload, attempt, cause)
            self._counts = RequestCounts(self._counts.requests, self._counts.polls, self._counts.retries + 1)
            self._log.warning("reset %s left no trace within %g s: sending it again (%d/%d)", reset,
                              self._settings.reset_confirm_s, attempt, policy.attempts - 1)

    def _confirm(self) -> bool:
        """Watch the power state for `reset_confirm_s` (one read at least) for the pending reset's effect.

        Its reads keep the normal timeouts (no deadline): what they see decides whether the reset is sent again."""
        deadline = time.monotonic() + self._settings.reset_confirm_s
        while True:
            self._observe(self._call("GET", self._system(), poll=True))
            if self._pending is None:
                return True
            if time.monotonic() + self._settings.poll_interval_s > deadline:
                return False
            self._sleep(self._settings.poll_interval_s)

    def _observe(self, system: Mapping[str, Any]) -> str:
        """The power state read; a pending reset whose effect it shows is no longer pending."""
        seen = str(_field(system, POWER_STATE))
        if self._pending is not None and reset_seen(self._pending, seen, _field(system, LAST_RESET_TIME)):
            self._pending = None
        return seen

    def _get_system(self, deadline: float | None = None) -> dict[str, Any]:
        system = self._call("GET", self._system(), deadline=deadline)
        self._reset_path = _field(system, RESET_TARGET) or self._reset_path
        self._observe(system)
        return system

    def _system(self) -> str:
        """The ComputerSystem's path: iDRAC has exactly one member (System.Embedded.1); found once."""
        if self._system_path is None:
            members = _field(self._call("GET", SYSTEMS), MEMBERS) or []
            if len(members) != 1:
                raise BmcError(f"expected one system behind the BMC, found {len(members)}", node=self.node.hostname,
                               endpoint=self._endpoint("GET", SYSTEMS),
                               hint="check that the inventory's bmc.address is this node's BMC")
            self._system_path = str(_field(members[0], ODATA_ID))
        return self._system_path

    def _rest(self) -> RestClient:
        if self._client is None:
            creds = resolve_credentials(self._site, self.node.bmc.credentials)
            token = base64.b64encode(f"{creds.username}:{creds.secret}".encode()).decode()
            self._client = self._client_factory(f"https://{self.node.bmc.address}", f"Basic {token}", self._ca_file)
        return self._client

    def _endpoint(self, method: str, path: str) -> str:
        return f"{method} https://{self.node.bmc.address}{path}"

    def _call(self, method: str, path: str, *, body: Any = None, poll: bool = False,
              headers: Mapping[str, str] | None = None, reply: bool = False, repeat: bool | None = None,
              deadline: float | None = None) -> Any:
        """One logical GET or PATCH: attempts until success, a non-retryable answer, or the policy gives up.

        `repeat` given (by `request`) allows other methods and says whether to retry at all; `reply`
        returns the whole `Reply` instead of the JSON body; `deadline` (time.monotonic()) bounds each
        attempt's timeouts."""
        if repeat is None and method not in ("GET", "PATCH"):
            raise ValueError(f"{method} is not safe to repeat: send it through its own confirming wrapper")
        policy = self._settings.retry
        attempt = 0
        while True:
            attempt += 1
            status, failure, payload, cause, answer = self._attempt_reply(method, path, body, poll, headers, deadline)
            verdict = classify(status, failure)
            if verdict == "ok":
                if reply:
                    got = CaseInsensitiveDict(answer.getheaders() if answer is not None else {})
                    return Reply(int(status or 0), got, payload)
                return payload
            what = f"HTTP {status}" if status is not None else failure
            if verdict == "retry" and repeat is not False and attempt < policy.attempts:
                delay = policy.delay_s(attempt, self._rng.random())
                self._counts = RequestCounts(self._counts.requests, self._counts.polls, self._counts.retries + 1)
                self._log.warning("%s %s: %s, retry %d/%d in %.2f s", method, path, what, attempt,
                                  policy.attempts - 1, delay)
                self._sleep(delay)
                continue
            raise self._error(method, path, status, failure, payload, attempt, cause)

    def _attempt(self, method: str, path: str, body: Any,
                 poll: bool) -> tuple[int | None, str | None, dict[str, Any], BaseException | None]:
        return self._attempt_reply(method, path, body, poll)[:4]

    def _attempt_reply(self, method: str, path: str, body: Any, poll: bool, headers: Mapping[str, str] | None = None,
                       deadline: float | None = None,
                       ) -> tuple[int | None, str | None, dict[str, Any], BaseException | None, Any]:
        """One attempt; also hands back the library's response (its headers) when one came."""
        client = self._rest()
        settings = self._settings
        timeout = request_timeouts(settings.connect_timeout_s, settings.read_timeout_s,
                                   None if deadline is None else deadline - time.monotonic(), settings.min_timeout_s)
        extra = {"headers": dict(headers)} if headers else {}
        with self._slots:
            c = self._counts
            self._counts = RequestCounts(c.requests + (not poll), c.polls + poll, c.retries)
            try:
                if method == "GET":
                    resp = client.get(path, timeout=timeout, max_retry=0, **extra)
                elif method == "POST":
                    resp = client.post(path, body=body, timeout=timeout, max_retry=0, **extra)
                else:
                    resp = client.patch(path, body=body, timeout=timeout, max_retry=0, **extra)
            except RetriesExhaustedError as err:
                return None, failure_kind(err.__cause__), {}, err.__cause__, None
        try:
            payload = resp.dict
        except JsonDecodingError:
            if 200 <= resp.status < 300 and str(getattr(resp, "read", "") or "").strip():
                # A login page or a proxy answering for the BMC: no Redfish behind this address.
                return None, "not JSON", {}, None, resp
            payload = {}  # an empty body (204, or a reset accepted with no message)
        return resp.status, None, payload if isinstance(payload, dict) else {}, None, resp

    def _error(self, method: str, path: str, status: int | None, failure: str | None, payload: dict[str, Any],
               attempts: int, cause: BaseException | None) -> BmcError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if status is None:
            message, hint = {
                "tls": ("the BMC's TLS certificate was not accepted",
                        "set bmc_tls.ca_file in the site to the CA that signed the BMC certificates "
                        "(or pass --insecure-bmc to skip verification)"),
                "timeout": (f"the BMC did not answer in time{tries}",
                            "the BMC may be overloaded or hung: retry later or reset the iDRAC (racadm racreset)"),
                "connection": (f"cannot connect to the BMC{tries}",
                               "check the BMC address in the inventory and the out-of-band network"),
                "not JSON": ("the BMC answered with a body that is not JSON: no Redfish service answers there",
                             "check that the inventory's bmc.address is the BMC's Redfish (HTTPS) address; "
                             "an HTML answer is a login page or a proxy"),
            }.get(failure or "", (f"the request to the BMC failed{tries}", "see the log for the cause"))
            return BmcError(message, node=self.node.hostname, endpoint=self._endpoint(method, path),
                            status=failure, service_message=str(cause) if failure == "tls" else None, hint=hint)
        if status == 401:
            hint = f"check the credentials '{self.node.bmc.credentials}' in the site (username and secret)"
        elif status >= 500:
            hint = "the BMC is unwell: retry later or reset the iDRAC (racadm racreset)"
        else:
            hint = "the BMC refused the request: see its message"
        return BmcError(f"the BMC answered HTTP {status}{tries}", node=self.node.hostname,
                        endpoint=self._endpoint(method, path), status=status,
                        service_message=service_message(payload), hint=hint)


def _deadline(within_s: float | None) -> float | None:
    """A caller's "seconds left" as a time.monotonic() deadline (the caller may count on a clock of its own)."""
    return None if within_s is None else time.monotonic() + within_s


def default_ca_file() -> str:
    """The system trust store, where operators install their BMC CA (requests' certifi bundle otherwise)."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile or DEFAULT_CA_BUNDLE_PATH


class BmcPool:
    """Hands out one `Bmc` per node, all sharing a fleet-wide cap on requests in flight."""

    def __init__(self, site: Site, *, max_requests: int, insecure: bool = False,
                 settings: BmcSettings | None = None, client_factory: ClientFactory = dmtf_client,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None) -> None:
        self._site = site
        self._slots = Slots(max_requests)
        self._settings = settings or BmcSettings()
        self._client_factory = client_factory
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._clients: dict[str, Bmc] = {}
        self._lock = threading.Lock()
        if insecure or not site.bmc_tls.verify:
            log.warning("TLS verification of BMC certificates is OFF (%s)",
                        "--insecure-bmc" if insecure else "bmc_tls.verify: false in the site")
            self._ca_file: str | None = None
        else:
            self._ca_file = str(site.bmc_tls.ca_file) if site.bmc_tls.ca_file else default_ca_file()

    def client(self, node: Node | str) -> Bmc:
        """The node's BMC client (the same object for the same node, so its counters accumulate)."""
        name = node if isinstance(node, str) else node.hostname
        with self._lock:
            if name not in self._clients:
                if name not in self._site.nodes:
                    raise BmcError(f"node '{name}' is not in site '{self._site.name}'", node=name,
                                   hint="check the node name or --site")
                self._clients[name] = Bmc(
                    self._site.nodes[name], site=self._site, ca_file=self._ca_file, slots=self._slots,
                    settings=self._settings, client_factory=self._client_factory, sleep=self._sleep, rng=self._rng)
            return self._clients[name]

    def counts(self) -> dict[str, RequestCounts]:
        """Requests per node so far, for the run report."""
        with self._lock:
            return {name: bmc.counts() for name, bmc in self._clients.items()}
