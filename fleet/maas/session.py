"""python-libmaas sessions that speak TLS as this client says, and only this client's sessions.

python-libmaas builds an aiohttp connector per request from one `insecure` flag (passing aiohttp
the deprecated `verify_ssl`) and offers no way to name a CA file. It documents `CallAPI.dispatch`
as the place to override ("can be overridden to use a different HTTP library"), so the session
made here binds every action of its own to `TlsCall`, whose dispatch sends through a connector
with the client's SSL context, and fetches the API description the same way. Nothing of
python-libmaas or aiohttp is patched: any other user of them in the process keeps their behaviour.
Verification is on with the system roots by default, with the site's CA file when given, and off
only when the site says `verify: false`.

python-libmaas's own dispatch also opens a new aiohttp session, so a new TCP connection (and TLS
handshake) for every call: 1,280 nodes registering, allocating, deploying and tagging made ~6,400 of
them in a bring-up. A session made here sends every call through one aiohttp session with a pooled
keep-alive connector, created on the loop of its first call and closed by `close()` on that loop.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin

import aiohttp
from maas.client.bones import ActionAPI, CallAPI, CallError, CallResult, SessionAPI
from maas.client.bones.helpers import RemoteError
from maas.client.utils import api_url
from maas.client.utils.creds import Credentials

from fleet.site import TlsSettings

TlsPolicy = ssl.SSLContext | bool


def tls_policy(tls: TlsSettings) -> TlsPolicy:
    """An SSL context that verifies (system roots, or the site's CA file), or False when told not to."""
    if not tls.verify:
        return False
    return ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)


class TlsSession(SessionAPI):
    """A python-libmaas session whose calls carry `tls` (set by `connect`) over one pooled HTTP session."""

    tls: TlsPolicy = True
    _http: aiohttp.ClientSession | None = None

    def http(self) -> aiohttp.ClientSession:
        """The pooled HTTP session, made on the running loop at the first call (one loop per session)."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.tls))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class TlsCall(CallAPI):
    """A call dispatched with its session's TLS policy; the rest (signing, errors, decoding) is python-libmaas's."""

    async def dispatch(self, uri: str, body: Any, headers: dict[str, str]) -> CallResult:
        sent = dict(headers)
        if not any(name.lower() == "accept" for name in sent):  # as python-libmaas's own dispatch: prefer JSON
            sent["Accept"] = "application/json,*/*;q=0.9"
        async with self.action.handler.session.http().request(self.action.method, uri, data=body,
                                                              headers=sent) as response:
            content = await response.read()
            if response.status // 100 != 2:
                request = {"body": body, "headers": headers, "method": self.action.method, "uri": uri}
                raise CallError(request, response, content, self)
            json_body = (response.content_type or "").endswith("/json")
            data = json.loads(content.decode("utf-8")) if json_body else content
            return CallResult(response, content, data)


async def connect(url: str, apikey: str, tls: TlsPolicy) -> TlsSession:
    """What `SessionAPI.connect(url, apikey=...)` does, with the API description fetched under `tls`."""
    url = api_url(url)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http, \
            http.get(urljoin(url, "describe/")) as response:
        if response.status != HTTPStatus.OK:
            raise RemoteError(f"{url} -> {response.status} {response.reason}")
        if response.content_type != "application/json":
            raise RemoteError(f"Expected application/json, got: {response.content_type}")
        description = await response.json()
    return tls_session(description, apikey, tls, scheme=url.split(":", 1)[0])


def tls_session(description: dict[str, Any], apikey: str, tls: TlsPolicy, *, scheme: str = "https") -> TlsSession:
    """A session over an API description whose every action binds to `TlsCall` (this session's objects only)."""
    session = TlsSession(description, Credentials.parse(apikey))
    session.scheme = scheme
    session.tls = tls
    for _name, handler in session.handlers:
        for _action_name, action in handler.actions:
            action.bind = _binder(action)
    return session


def _binder(action: ActionAPI) -> Callable[..., TlsCall]:
    def bind(**params: Any) -> TlsCall:
        return TlsCall(params, action)

    return bind
