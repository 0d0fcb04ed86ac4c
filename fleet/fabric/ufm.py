"""NVIDIA UFM Enterprise REST client: the one module that knows UFM's URLs, fields and quirks.

What UFM does that this client depends on (NVIDIA UFM Enterprise REST API Guide, docs.nvidia.com/
networking/display/UFMEnterpriseRESTAPILatest, and NVIDIA's own clients in github.com/Mellanox/ufm_sdk_3.0):
- Authentication: HTTP basic under `/ufmRest/...`; or a token under `/ufmRestV3/...`, sent as
  `Authorization: Basic <token>` (sic: the token, not user:password) and created by a basic-auth
  `POST /ufmRest/app/tokens` that answers `{"access_token": ...}` (ufm_sdk_3.0 utils/ufm_rest_client.py).
- `GET resources/ports` lists every port of the fabric: `name` (`<guid>_<port>`), `guid`, `number`,
  `external_number`, `system_name`, `node_description` (`<host> mlx5_4` for an HCA), `description`
  ("Computer IB Port" for HCAs: the PDR plugin keys on it), `logical_state` (Active/Down/Init/Arm),
  `physical_state`, `active_speed` (NDR/HDR/...), `active_width` (`4x`), `peer` (`<guid>_<port>`),
  `peer_node_name`, `peer_port_dname`, `severity`, and `cable_info` when asked with `cable_info=true`;
  `?active=true` keeps active ports only (PDR plugin constants.py: GET_ACTIVE_PORTS_REST).
- `GET resources/links` is paged (`page_number`, `rpp`) and answers `{"data": [...]}`: NVIDIA's own
  client asks for one huge page as a workaround for a paging bug (utils/ufm_rest_client.py); we
  page for real and stop at the first short page. A link has `source_guid`, `source_port`,
  `destination_guid`, `destination_port` and the two ends' node descriptions.
- `GET resources/pkeys?guids_data=true` answers `{"0x7fff": {"partition", "ip_over_ib", "guids":
  [{"guid", "membership", "index0"}]}}` (an empty `{}` when there are none). Adding GUIDs is
  `POST resources/pkeys` with `{guids, pkey, membership, index0, ip_over_ib}`; `PUT` with the same body
  *replaces* the member list (scripts/ufm_pkeys/ufm_pkeys.py set_pkey), so we never PUT a partial list;
  removing is `POST actions/remove_guids_from_pkey` with `{pkey, guids}` (Mellanox ib-kubernetes ufm
  plugin). GUIDs go without `0x` (16-20 hex digits).
- `GET app/unhealthy_ports` lists ports marked unhealthy; `PUT app/unhealthy_ports` with `{"ports":
  [names], "ports_policy": "UNHEALTHY", "action": "isolate"|"no_isolate"}` marks (and isolates) them,
  `"ports_policy": "HEALTHY"` restores them (PDR plugin ufm_communication_mgr.py).
- `POST monitoring/snapshot` reads counters (SymbolErrorCounter, LinkDownedCounter, ...) of ports once
  ("Monitoring REST API": monitoring session snapshot); we send `{attributes, objects, functions: [RAW]}`
  and read `{"timestamp", "data": {port: {counter: value}}}`.
- `POST actions` (e.g. a port reset) answers 202 with the job in the `Location` header; `GET jobs/<id>`
  answers `{"ID", "Status": "Running"|"Completed"|"Completed With Errors"|"Aborted", "Progress", "Summary"}`.
- Errors come back as JSON or text; a 401 is wrong credentials, a 5xx or a timeout is UFM being busy
  (the REST server restarts with the SM), worth a retry; a 4xx never is.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from fleet.errors import UfmError

log = logging.getLogger(__name__)

JOB_DONE = ("Completed",)
JOB_FAILED = ("Completed With Errors", "Aborted", "Failed")


@dataclass(frozen=True)
class UfmSettings:
    """Timeouts, retries and paging, the same for every call of one client."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # resources/ports of a 20,000-port fabric takes seconds on a busy UFM
    retries: int = 3
    backoff_s: float = 1.0
    links_page_size: int = 5000
    job_poll_s: float = 2.0
    job_timeout_s: float = 600.0


@dataclass(frozen=True)
class Port:
    """One UFM port, each field read from one place (`from_json`)."""

    name: str
    guid: str
    number: int
    system_name: str
    node_description: str
    is_hca: bool
    logical_state: str
    physical_state: str
    speed: str
    width: str
    peer: str
    peer_node_name: str
    peer_port: int | None
    severity: str
    cable: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, raw: dict) -> Port:
        peer_dname = str(raw.get("peer_port_dname") or "")
        return cls(
            name=str(raw.get("name", "")),
            guid=_guid(raw.get("guid")),
            number=int(raw.get("external_number") or raw.get("number") or 0),
            system_name=str(raw.get("system_name", "")),
            node_description=str(raw.get("node_description", "")),
            is_hca="Computer IB Port" in str(raw.get("description", "")),
            logical_state=str(raw.get("logical_state", "")),
            physical_state=str(raw.get("physical_state", "")),
            speed=str(raw.get("active_speed") or ""),
            width=str(raw.get("active_width") or ""),
            peer=str(raw.get("peer") or ""),
            peer_node_name=str(raw.get("peer_node_name") or ""),
            peer_port=int(peer_dname) if peer_dname.isdigit() else None,
            severity=str(raw.get("severity", "")),
            cable=dict(raw.get("cable_info") or {}),
        )

    @property
    def hca(self) -> str:
        """`mlx5_4` from an HCA's node description `gpu-012-03 mlx5_4`."""
        return self.node_description.rpartition(" ")[2]


@dataclass(frozen=True)
class UfmLink:
    source_guid: str
    source_port: int
    destination_guid: str
    destination_port: int
    source_name: str
    destination_name: str

    @classmethod
    def from_json(cls, raw: dict) -> UfmLink:
        return cls(_guid(raw.get("source_guid")), int(raw.get("source_port") or 0),
                   _guid(raw.get("destination_guid")), int(raw.get("destination_port") or 0),
                   str(raw.get("source_port_node_description", "")),
                   str(raw.get("destination_port_node_description", "")))


@dataclass(frozen=True)
class PkeyMember:
    guid: str
    membership: str
    index0: bool


def _guid(value: Any) -> str:
    """UFM writes GUIDs as bare hex; the inventory writes 0x...: compare them as 0x + lower-case."""
    text = str(value or "").lower()
    return text if text.startswith("0x") or not text else "0x" + text


def bare(guid: str) -> str:
    """A GUID as UFM wants it in request bodies: no 0x."""
    return guid.lower().removeprefix("0x")


class UfmClient:
    """Blocking UFM REST client; safe to share between threads (one requests.Session, counters)."""

    def __init__(self, url: str, username: str, password: str, *, ca_file: str | None = None,
                 verify: bool = True, token_auth: bool = False, settings: UfmSettings = UfmSettings(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base = url.rstrip("/")
        self.settings = settings
        self._basic = (username, password)
        self._token: str | None = None
        self._token_auth = token_auth
        # A CA file, else the system store; False only when the operator asked for it explicitly.
        self._verify: bool | str = ca_file if (verify and ca_file) else verify
        self._session = requests.Session()
        # The environment would add HTTPS_PROXY (UFM is on the management network) and
        # REQUESTS_CA_BUNDLE (it would replace the site's CA file).
        self._session.trust_env = False
        self._sleep = sleep
        self.requests = 0

    # --- transport ---------------------------------------------------------------------------

    def _url(self, path: str) -> tuple[str, dict[str, str], tuple[str, str] | None]:
        if self._token_auth:
            if self._token is None:
                self._token = self.create_token()
            return f"{self.base}/ufmRestV3/{path}", {"Authorization": f"Basic {self._token}"}, None
        return f"{self.base}/ufmRest/{path}", {}, self._basic

    def create_token(self) -> str:
        """A new access token (basic auth, `POST app/tokens`); the token itself is never logged."""
        body = self._call("POST", f"{self.base}/ufmRest/app/tokens", "app/tokens", {}, self._basic, None, None)
        token = body.json().get("access_token") if _is_json(body) else None
        if not token:
            raise UfmError("UFM answered app/tokens without an access_token", endpoint="app/tokens",
                           status=body.status_code, hint="check that the UFM user may create tokens")
        return str(token)

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                expect: Iterable[int] = (200,)) -> requests.Response:
        url, headers, auth = self._url(path)
        response = self._call(method, url, path, headers, auth, params, json)
        if response.status_code not in tuple(expect):
            raise self._error(method, path, response)
        return response

    def _call(self, method: str, url: str, path: str, headers: dict, auth: tuple[str, str] | None,
              params: dict | None, json: Any) -> requests.Response:
        timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        for attempt in range(self.settings.retries + 1):
            self.requests += 1
            try:
                response = self._session.request(method, url, headers=headers, auth=auth, params=params,
                                                 json=json, timeout=timeout, verify=self._verify)
            except requests.Timeout:
                if attempt < self.settings.retries:
                    self._backoff(attempt, path, "timed out")
                    continue
                raise UfmError(f"UFM {method} {path} timed out {attempt + 1} times", endpoint=self._where(path),
                               hint="check that UFM is up and not overloaded") from None
            except requests.exceptions.SSLError as err:
                raise UfmError("UFM's TLS certificate was not accepted", endpoint=self._where(path),
                               service_message=str(err.__context__ or err)[:300],
                               hint="set ufm_tls.ca_file to the CA that signed UFM's certificate") from None
            except requests.ConnectionError as err:
                raise UfmError("cannot connect to UFM", endpoint=self._where(path),
                               service_message=str(err.__context__ or err)[:300],
                               hint="check the site's ufm.url and that UFM is running") from None
            if response.status_code >= 500 and attempt < self.settings.retries:
                self._backoff(attempt, path, f"answered {response.status_code}")
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _backoff(self, attempt: int, path: str, what: str) -> None:
        delay = self.settings.backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)  # jitter, not crypto
        log.warning("UFM %s %s; retrying in %.1f s", path, what, delay)
        self._sleep(delay)

    def _where(self, path: str) -> str:
        return f"{self.base}/{'ufmRestV3' if self._token_auth else 'ufmRest'}/{path}"

    def _error(self, method: str, path: str, response: requests.Response) -> UfmError:
        message = _service_message(response)
        hints = {401: "check the site's UFM credentials", 403: "give the UFM user the role this call needs",
                 404: "check the UFM version supports this API"}
        return UfmError(f"UFM {method} {path} failed", endpoint=self._where(path), status=response.status_code,
                        service_message=message, hint=hints.get(response.status_code, "read UFM's message above"))

    def _json(self, path: str, params: dict | None = None) -> Any:
        response = self.request("GET", path, params=params)
        if not _is_json(response):
            raise UfmError(f"UFM GET {path} did not answer JSON", endpoint=self._where(path),
                           status=response.status_code, service_message=response.text[:200])
        return response.json()

    # --- reads ----------------------------------------------------------------------------------

    def systems(self) -> list[dict]:
        return list(self._json("resources/systems"))

    def ports(self, *, cable_info: bool = False, active_only: bool = False) -> list[Port]:
        params = {}
        if cable_info:
            params["cable_info"] = "true"
        if active_only:
            params["active"] = "true"
        return [Port.from_json(raw) for raw in self._json("resources/ports", params or None)]

    def links(self) -> list[UfmLink]:
        """Every link, page by page; a short page is the last one."""
        result: list[UfmLink] = []
        page = 1
        size = self.settings.links_page_size
        while True:
            body = self._json("resources/links", {"page_number": page, "rpp": size})
            data = body.get("data", []) if isinstance(body, dict) else body
            result.extend(UfmLink.from_json(raw) for raw in data)
            if len(data) < size:
                return result
            page += 1

    def pkeys(self) -> dict[str, list[PkeyMember]]:
        """pkey (0x-hex, lower-case) -> members."""
        body = self._json("resources/pkeys", {"guids_data": "true"})
        return {
            str(pkey).lower(): [PkeyMember(_guid(m.get("guid")), str(m.get("membership", "full")),
                                           bool(m.get("index0", False))) for m in (entry or {}).get("guids", [])]
            for pkey, entry in (body or {}).items()
        }

    def counters(self, attributes: Iterable[str], ports: Iterable[str] = ()) -> tuple[float, dict[str, dict]]:
        """One snapshot of port counters: (UFM's timestamp, {port name: {counter: value}}).

        The timestamp is UFM's, so rates computed between two snapshots are right whatever the
        caller's own clock did between them."""
        body = self.request("POST", "monitoring/snapshot", json={
            "scope_object": "site", "monitor_object": "Port", "attributes": list(attributes),
            "objects": list(ports), "functions": ["RAW"]}).json()
        return float(body.get("timestamp", 0.0)), dict(body.get("data", {}))

    def events(self) -> list[dict]:
        return list(self._json("app/events"))

    def alarms(self) -> list[dict]:
        return list(self._json("app/alarms"))

    def unhealthy_ports(self) -> list[dict]:
        return list(self._json("app/unhealthy_ports"))

    # --- changes --------------------------------------------------------------------------------

    def add_guids(self, pkey: str, guids: Iterable[str], *, membership: str = "full", index0: bool = False,
                  ip_over_ib: bool = True) -> None:
        """Add GUIDs to a pkey (POST: adds; a PUT would replace the whole member list)."""
        body = {"guids": [bare(g) for g in guids], "pkey": pkey, "membership": membership,
                "index0": index0, "ip_over_ib": ip_over_ib}
        self.request("POST", "resources/pkeys", json=body)

    def remove_guids(self, pkey: str, guids: Iterable[str]) -> None:
        self.request("POST", "actions/remove_guids_from_pkey", json={"pkey": pkey, "guids": [bare(g) for g in guids]})

    def isolate(self, ports: Iterable[str]) -> None:
        """Mark ports unhealthy and isolate them (the SM stops routing through them)."""
        self.request("PUT", "app/unhealthy_ports",
                     json={"ports": list(ports), "ports_policy": "UNHEALTHY", "action": "isolate"})

    def mark_unhealthy(self, ports: Iterable[str]) -> None:
        """Mark ports unhealthy without isolating them (`no_isolate`)."""
        self.request("PUT", "app/unhealthy_ports",
                     json={"ports": list(ports), "ports_policy": "UNHEALTHY", "action": "no_isolate"})

    def restore(self, ports: Iterable[str]) -> None:
        """Mark ports healthy again: UFM un-isolates them."""
        self.request("PUT", "app/unhealthy_ports", json={"ports": list(ports), "ports_policy": "HEALTHY"})

    def action(self, body: dict) -> dict:
        """Run an async `actions` request: 202, then poll its job until it completes; returns the job."""
        response = self.request("POST", "actions", json=body, expect=(202,))
        location = response.headers.get("Location", "")
        job_id = location.rstrip("/").rpartition("/")[2]
        if not job_id:
            raise UfmError("UFM accepted the action but named no job", endpoint=self._where("actions"), status=202,
                           hint="poll GET jobs by hand")
        return self.wait_job(job_id)

    def wait_job(self, job_id: str) -> dict:
        deadline = time.monotonic() + self.settings.job_timeout_s
        while True:
            job = self._json(f"jobs/{job_id}")
            status = str(job.get("Status", ""))
            if status in JOB_DONE:
                return dict(job)
            if status in JOB_FAILED:
                raise UfmError(f"UFM job {job_id} ended {status}", endpoint=self._where(f"jobs/{job_id}"),
                               service_message=str(job.get("Summary", "")), hint="read the job's summary in UFM")
            if time.monotonic() > deadline:
                waited = f"{self.settings.job_timeout_s:.0f} s"
                raise UfmError(f"UFM job {job_id} still {status or 'pending'} after {waited}",
                               endpoint=self._where(f"jobs/{job_id}"), hint="check the job in UFM")
            self._sleep(self.settings.job_poll_s)


def _is_json(response: requests.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "")


def _service_message(response: requests.Response) -> str:
    """UFM's own words: {"error": ...} / {"message": ...} / plain text, shortened."""
    if _is_json(response):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("error", "message", "description", "detail"):
                if body.get(key):
                    return str(body[key])[:300]
    return response.text.strip()[:300]
