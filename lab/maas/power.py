"""MAAS's Redfish power driver, as the lab MAAS runs it against the lab BMCs.

Real MAAS never keeps a power state of its own: its rack controller runs the machine's power driver
against the BMC named in the machine's power parameters, and what a client sees follows from that.
This module does what MAAS's driver does (canonical/maas, src/provisioningserver/drivers/power/
redfish.py, `RedfishPowerDriver`), request for request, so the BMC's request log shows MAAS's load:

- every request carries `User-Agent: MAAS`, HTTP basic auth from `power_user`/`power_pass`,
  `Accept: application/json`; `power_address` without a scheme gets `https://`;
- the system is `/redfish/v1/Systems/<node_id>`; without a `node_id` the driver first GETs
  `/redfish/v1/Systems` and takes the first member;
- query: GET the system, `PowerState` lower-cased;
- power_on (commission, deploy, power_on): query; if on, POST `ForceOff`; GET the system for its
  ETag; PATCH `Boot: {BootSourceOverrideEnabled: Once, BootSourceOverrideTarget: Pxe}` with
  `If-Match`; POST `On`. Every power-on of a MAAS machine is a one-time PXE boot;
- power_off (release, power_off): query; if not off, POST `ForceOff`; GET for the ETag; PATCH the
  same one-time PXE boot, so the next start is a network boot again;
- any status >= 400 fails the action with "Redfish request failed with response status code: N."
  (a 404 is retried once with a trailing slash first, as the driver does).

How MAAS reports a failure (src/provisioningserver/drivers/power/__init__.py `get_error_message`,
src/provisioningserver/rpc/power.py): a driver error becomes "Failed to complete power action:
<error>" (a PowerActionError) or "Failed talking to node's BMC: <error>" (anything else, such as a
refused connection or a timeout); a failed power-on marks the node failed with "Power on for the
node failed: <that>" (Commissioning -> Failed commissioning, Deploying -> Failed deployment); a
failed query sets the machine's `power_state` to "error" and logs the event "Failed to query node's
BMC" with "Power state could not be queried: <error>". MAAS retries a failing power action a few
times before giving up (the driver's waiting policy); the lab retries `ATTEMPTS` times with the
pauses scaled by the lab time factor.

Not modelled: MAAS's periodic power poll of every machine (every 5 minutes); scaled by the lab's
time factor it would flood the BMCs, and a client only sees it as a fresher `power_state`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BasicAuth, ClientError, ClientSession, ClientTimeout, TCPConnector

SYSTEMS = "/redfish/v1/Systems"
USER_AGENT = "MAAS"
ATTEMPTS = 3
PAUSES_S = (3.0, 5.0)  # MAAS's waiting policy between attempts, real seconds (scaled by the lab)
# Network time, not lab time: a held request is a timeout whatever the factor (real MAAS: none per request, 5 minutes
# per power action); the lab site's MAAS deadlines leave room for it (lab/sitegen.py, maas_deadline_factor).
REQUEST_TIMEOUT_S = 10.0


class PowerActionError(Exception):
    """The driver's own failure (MAAS's PowerActionError): the BMC answered, but not with success."""


class PowerFailed(Exception):
    """A power action or query failed after the retries; `str()` is MAAS's wording of the cause."""


@dataclass(frozen=True)
class PowerParameters:
    """What `machines create` stored for a redfish machine (power_pass is a secret: never logged)."""

    power_address: str
    power_user: str
    power_pass: str
    node_id: str = ""

    @property
    def url(self) -> str:
        address = self.power_address
        return address if address.startswith(("http://", "https://")) else "https://" + address

    def __repr__(self) -> str:
        return f"PowerParameters(power_address={self.power_address!r}, power_user={self.power_user!r}, ...)"


def error_message(err: BaseException) -> str:
    """MAAS's `get_error_message` for the errors a Redfish driver raises."""
    if isinstance(err, PowerActionError):
        return f"Failed to complete power action: {err}"
    if isinstance(err, TimeoutError):
        return "Failed talking to node's BMC: User timeout caused connection failure."
    return f"Failed talking to node's BMC: {err}"


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The lab's BMCs are certified by the lab CA; verify against it (never against the system store)."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class RedfishDriver:
    """One aiohttp session for every machine's BMC; each call is one MAAS power operation."""

    def __init__(self, session: ClientSession, *, time_factor: float, agent: str = USER_AGENT) -> None:
        self._session = session
        self._pause_factor = time_factor
        self._agent = agent

    async def close(self) -> None:
        await self._session.close()

    @staticmethod
    def session(ca_file: Path | None) -> ClientSession:
        # trust_env=False: the lab's BMCs are on 127.0.0.1 and no proxy setting may reach them.
        return ClientSession(timeout=ClientTimeout(total=REQUEST_TIMEOUT_S), trust_env=False,
                             connector=TCPConnector(ssl=tls_context(ca_file), limit=64))

    async def _request(self, params: PowerParameters, method: str, path: str, body: dict | None = None,
                       headers: dict[str, str] | None = None) -> tuple[dict, dict[str, str]]:
        sent = {"User-Agent": self._agent, "Accept": "application/json",
                "Content-Type": "application/json; charset=utf-8", **(headers or {})}
        auth = BasicAuth(params.power_user, params.power_pass)
        data = json.dumps(body).encode() if body is not None else None
        for url in (params.url + path, params.url + path + "/"):
            async with self._session.request(method, url, headers=sent, auth=auth, data=data,
                                             allow_redirects=True) as resp:
                if resp.status == 404 and not url.endswith("/"):
                    continue  # the driver retries a 404 once with a trailing slash
                if resp.status >= 400:
                    raise PowerActionError(f"Redfish request failed with response status code: {resp.status}.")
                text = await resp.text()
                try:
                    return (json.loads(text) if text else {}), dict(resp.headers)
                except ValueError as err:
                    raise PowerActionError(f"Redfish request failed from a JSON parse error: {err}.") from None
        raise PowerActionError("Redfish request failed with response status code: 404.")

    async def _node_id(self, params: PowerParameters) -> str:
        if params.node_id:
            return params.node_id
        systems, _ = await self._request(params, "GET", SYSTEMS)
        return str(systems["Members"][0]["@odata.id"]).rstrip("/").rsplit("/", 1)[-1]

    async def _query(self, params: PowerParameters, node_id: str) -> str:
        system, _ = await self._request(params, "GET", f"{SYSTEMS}/{node_id}")
        return str(system.get("PowerState", "")).lower()

    async def _set_pxe_boot(self, params: PowerParameters, node_id: str) -> None:
        system, headers = await self._request(params, "GET", f"{SYSTEMS}/{node_id}")
        etag = system.get("@odata.etag") or headers.get("ETag")
        await self._request(
            params, "PATCH", f"{SYSTEMS}/{node_id}",
            {"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}},
            {"If-Match": etag} if etag else None)

    async def _reset(self, params: PowerParameters, node_id: str, reset_type: str) -> None:
        await self._request(params, "POST", f"{SYSTEMS}/{node_id}/Actions/ComputerSystem.Reset",
                            {"ResetType": reset_type})

    async def _power_on(self, params: PowerParameters) -> None:
        node_id = await self._node_id(params)
        if await self._query(params, node_id) == "on":
            await self._reset(params, node_id, "ForceOff")
        await self._set_pxe_boot(params, node_id)
        await self._reset(params, node_id, "On")

    async def _power_off(self, params: PowerParameters) -> None:
        node_id = await self._node_id(params)
        if await self._query(params, node_id) != "off":
            await self._reset(params, node_id, "ForceOff")
        await self._set_pxe_boot(params, node_id)

    async def _retried(self, operation: str, params: PowerParameters) -> str:
        last: BaseException | None = None
        for attempt in range(ATTEMPTS):
            try:
                if operation == "on":
                    await self._power_on(params)
                    return "on"
                if operation == "off":
                    await self._power_off(params)
                    return "off"
                return await self._query(params, await self._node_id(params))
            except (TimeoutError, PowerActionError, ClientError, OSError, KeyError, IndexError) as err:
                last = err
                if attempt < len(PAUSES_S):
                    await asyncio.sleep(PAUSES_S[attempt] * self._pause_factor)
        assert last is not None
        raise PowerFailed(error_message(last))

    async def power_on(self, params: PowerParameters) -> None:
        """One-time PXE boot and power on, as MAAS's driver does; PowerFailed with MAAS's words."""
        await self._retried("on", params)

    async def power_off(self, params: PowerParameters) -> None:
        await self._retried("off", params)

    async def query(self, params: PowerParameters) -> str:
        return await self._retried("query", params)

    async def shutdown(self, params: PowerParameters) -> None:
        """The machine's own OS powering it off (end of commissioning): one ForceOff, no boot override.

        Not a MAAS request: the lab sends it with its own User-Agent so the BMC log keeps it apart."""
        await self._reset(params, await self._node_id(params), "ForceOff")

