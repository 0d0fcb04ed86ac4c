"""lab.tls_buffers: the lab's asyncio TLS connections read into 32 KiB, and carry large bodies intact."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from asyncio import sslproto

from aiohttp import ClientSession, TCPConnector, web

from lab.redfish.tls import ensure_lab_tls
from lab.tls_buffers import READ_BUFFER_BYTES, use_small_tls_buffers


def test_bodies_far_larger_than_the_buffer_cross_both_ways_intact(tmp_path, monkeypatch):
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", sslproto.SSLProtocol.max_size)  # restored afterwards
    use_small_tls_buffers()
    paths = ensure_lab_tls(tmp_path)
    body = bytes(range(256)) * 8192  # 2 MiB, 64 buffers' worth
    buffers: list[int] = []

    async def echo(request: web.Request) -> web.Response:
        data = await request.read()
        buffers.append(len(request.transport._ssl_protocol._ssl_buffer))  # the server side of the connection
        return web.Response(body=hashlib.sha256(data).digest() + data)

    async def exchange() -> bytes:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(paths.cert_file, paths.key_file)
        app = web.Application(client_max_size=4 * len(body))
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        client_tls = ssl.create_default_context(cafile=str(paths.ca_file))
        try:
            async with ClientSession(connector=TCPConnector(ssl=client_tls)) as session, \
                    session.post(f"https://127.0.0.1:{port}/echo", data=body) as resp:
                return await resp.read()
        finally:
            await runner.cleanup()

    answer = asyncio.run(exchange())
    assert answer[:32] == hashlib.sha256(body).digest()
    assert answer[32:] == body
    assert buffers == [READ_BUFFER_BYTES]
