"""The MAAS client's TLS is its own: python-libmaas sessions it makes carry it; the libraries stay untouched."""

from __future__ import annotations

import ssl

import aiohttp
from maas.client import bones
from maas.client.bones import helpers

from fleet.maas.session import TlsCall, tls_policy, tls_session
from fleet.site import TlsSettings
from lab.maas.describe import describe


def test_importing_the_client_patches_nothing_of_python_libmaas() -> None:
    import fleet.maas  # noqa: F401 - importing is the act under test

    assert bones.aiohttp is aiohttp and helpers.aiohttp is aiohttp
    assert bones.CallAPI.dispatch is not TlsCall.dispatch


def test_every_action_of_a_session_dispatches_with_that_sessions_policy() -> None:
    strict = tls_session(describe("https://maas.example:5443"), "c:t:s", tls_policy(TlsSettings()))
    lax = tls_session(describe("https://maas.example:5443"), "c:t:s", tls_policy(TlsSettings(verify=False)))

    for session, want in ((strict, ssl.SSLContext), (lax, bool)):
        handlers = dict(session.handlers)
        call = dict(handlers["Machine"].actions)["deploy"].bind(system_id="abc123")
        assert isinstance(call, TlsCall) and isinstance(call.action.handler.session.tls, want)
        assert isinstance(call.rebind(system_id="def456"), TlsCall)  # python-libmaas's own rebind keeps the class
    assert lax.tls is False and strict.tls.verify_mode == ssl.CERT_REQUIRED
    plain = bones.SessionAPI(describe("https://maas.example:5443"))
    assert type(dict(dict(plain.handlers)["Version"].actions)["read"].bind()) is bones.CallAPI


def test_a_sessions_calls_share_one_pooled_http_session_closed_with_it() -> None:
    import asyncio

    session = tls_session(describe("http://maas.example:5240"), "c:t:s", tls_policy(TlsSettings()))

    async def use() -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        first, second = session.http(), session.http()
        await session.close()
        return first, second

    first, second = asyncio.run(use())
    assert first is second and first.closed  # one connection pool for every call, closed with the session


FORM_CASES = [
    [("hostname", "gpu-001-01"), ("mac_addresses", ["7c:c2:55:0a:12:34", "7c:c2:55:0a:12:35"]), ("commission", True),
     ("erase", False), ("count", 3), ("comment", None), ("user_data", b"#cloud-config\n" + b"x" * 300)],
    [("power_parameters", '{"power_address": "10.0.0.1", "power_pass": "é' + "p" * 120 + '"}'), ("empty", "")],
    [],
    [("tags", [])],
]


def _boundary(content_type: str) -> str:
    import re

    return re.search(r'boundary="([^"]+)"', content_type).group(1)  # type: ignore[union-attr]


def test_multipart_bodies_are_python_libmaas_bytes_but_for_the_random_boundary() -> None:
    from maas.client.utils import prepare_payload

    from fleet.maas.session import multipart_form

    for data in FORM_CASES:
        _uri, theirs, their_headers = prepare_payload("create", "POST", "https://maas.example/MAAS/api/2.0/", data)
        encoded = multipart_form(data)
        assert encoded is not None
        headers, ours = encoded
        theirs_by_name = dict(their_headers)
        ours_b, theirs_b = _boundary(headers["Content-Type"]), _boundary(theirs_by_name["Content-Type"])
        assert ours.replace(ours_b.encode(), theirs_b.encode()) == theirs
        assert headers.pop("Content-Length") == str(len(ours))  # the boundary's digits vary in number
        del theirs_by_name["Content-Length"]
        assert {k: v.replace(ours_b, theirs_b) for k, v in headers.items()} == theirs_by_name


def test_a_file_or_an_unusual_field_name_is_left_to_python_libmaas() -> None:
    import io

    from fleet.maas.session import multipart_form

    assert multipart_form([("script", io.BytesIO(b"#!/bin/sh\n"))]) is None
    assert multipart_form([("a name", "x")]) is None
    assert multipart_form([("ok", [1, io.BytesIO(b"")])]) is None


def test_a_posted_call_is_signed_and_reads_back_as_its_fields() -> None:
    from lab.maas.multipart import parse_body

    session = tls_session(describe("https://maas.example:5443"), "c:t:s", tls_policy(TlsSettings()))
    call = dict(dict(session.handlers)["Machines"].actions)["allocate"].bind()
    fields = {"hostname": "gpu-001-01", "mac_addresses": ["7c:c2:55:0a:12:34"], "commission": True}
    uri, body, headers = call.prepare(fields)
    assert uri == bones.CallAPI.prepare(call, fields)[0] == "https://maas.example:5443/MAAS/api/2.0/machines/?op=allocate"
    assert headers["Authorization"].startswith("OAuth ") and 'oauth_token="t"' in headers["Authorization"]
    assert parse_body(body, headers["Content-Type"]) == {"hostname": ["gpu-001-01"],
                                                         "mac_addresses": ["7c:c2:55:0a:12:34"], "commission": ["true"]}
    read = dict(dict(session.handlers)["Machines"].actions)["read"].bind()
    uri, body, headers = read.prepare({"id": ["abc123", "def456"]})
    assert body is None and uri.endswith("/machines/?id=abc123&id=def456")  # python-libmaas's own query
