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

python-libmaas builds every POST body with the `email` package (a MIME message per call, a regex
compiled per boundary, header folding per part): ~1.5 ms of CPU per call, about as much as the rest
of a MAAS call together, 4,000-7,000 times in a 1,280-node bring-up. `CallAPI.prepare` is documented
as the place to marshal a request differently; `TlsCall.prepare` writes the same bytes as
python-libmaas (the same parts, headers in the same order, base64 in 76-character lines, CRLF line
ends; only the random boundary differs) for the values our calls pass (text, bytes, numbers,
booleans, None, lists of them) and hands anything else (files, openers) to python-libmaas.
"""

from __future__ import annotations

import base64
import json
import random
import re
import ssl
import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin, urlparse

import aiohttp
from maas.client import utils
from maas.client.bones import ActionAPI, CallAPI, CallError, CallResult, SessionAPI
from maas.client.bones.helpers import RemoteError
from maas.client.utils import api_url
from maas.client.utils.creds import Credentials

from fleet.site import TlsSettings

TlsPolicy = ssl.SSLContext | bool
# A form field name the email package writes as name="..." unchanged (no quoting, no RFC 2231).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_TEXT_HEADERS = ("Content-Transfer-Encoding: base64\nContent-Disposition: form-data; name=\"{}\"\n"
                 "MIME-Version: 1.0\nContent-Type: text/plain; charset=\"utf-8\"\n\n")
_BYTES_HEADERS = ("Content-Type: application/octet-stream\nMIME-Version: 1.0\n"
                  "Content-Transfer-Encoding: base64\nContent-Disposition: form-data; name=\"{}\"\n\n")


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


def _form_values(value: Any) -> list[tuple[bool, bytes]] | None:
    """(is text, raw bytes) for each part python-libmaas's `make_payloads` would make of `value`; None
    for what it reads itself (files, openers)."""
    if value is None:
        return [(False, b"")]
    if isinstance(value, bool):
        return [(False, b"true" if value else b"false")]
    if isinstance(value, int):
        return [(False, b"%d" % value)]
    if isinstance(value, bytes):
        return [(False, value)]
    if isinstance(value, str):
        return [(True, value.encode("utf-8"))]
    if isinstance(value, (list, tuple)):
        parts: list[tuple[bool, bytes]] = []
        for item in value:
            found = _form_values(item)
            if found is None:
                return None
            parts += found
        return parts
    return None


def multipart_form(data: Iterable[tuple[str, Any]]) -> tuple[dict[str, str], bytes] | None:
    """The headers and body python-libmaas would send for `data` (up to the boundary), or None when
    `data` holds something only python-libmaas's own encoder handles.

    Base64 never holds a '-', so the boundary cannot occur in a part: no collision check is needed."""
    boundary = "=" * 15 + str(random.randrange(sys.maxsize)) + "=="  # the email package's form
    delimiter = b"--" + boundary.encode("ascii")
    chunks = [delimiter]
    for name, value in data:
        found = _form_values(value)
        if found is None or not _PLAIN_NAME.fullmatch(name):
            return None
        for text, raw in found:
            chunks += [(_TEXT_HEADERS if text else _BYTES_HEADERS).format(name).encode("ascii")
                       + base64.encodebytes(raw), delimiter]
    if len(chunks) == 1:  # no field: one empty part, as the email package writes it
        chunks += [b"", delimiter]
    # Lines end in CRLF, as python-libmaas makes them (nothing here holds a CR of its own).
    encoded = b"\n".join(chunks).replace(b"\n", b"\r\n") + b"--"
    headers = {"Content-Type": f'multipart/form-data; boundary="{boundary}"', "MIME-Version": "1.0",
               "Content-Length": str(len(encoded))}
    return headers, encoded


class TlsCall(CallAPI):
    """A call dispatched with its session's TLS policy; the rest (signing, errors, decoding) is python-libmaas's."""

    def prepare(self, data: dict[str, Any]) -> tuple[str, Any, dict[str, str]]:
        """python-libmaas's `prepare` (query for GET/DELETE, multipart body otherwise, OAuth-signed), with
        the multipart body written by `multipart_form` instead of the email package."""
        encoded = None if self.action.method in ("GET", "DELETE") else multipart_form(data.items())
        if encoded is None:
            return super().prepare(data)
        headers, body = encoded
        query = [] if self.action.op is None else [("op", self.action.op)]
        uri = urlparse(self.uri)._replace(query=utils.urlencode(query)).geturl()
        credentials = self.action.handler.session.credentials
        if credentials is not None:
            utils.sign(uri, headers, credentials)
        return uri, body, headers

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
