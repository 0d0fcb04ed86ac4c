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
