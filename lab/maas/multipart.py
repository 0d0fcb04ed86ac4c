"""A lenient reader for the request bodies MAAS clients send.

python-libmaas (and MAAS's own CLI) build bodies with the `email` package: every part is base64,
the boundary is quoted, and a call without parameters still sends a body holding one empty part with
no name (Piston would otherwise see no body at all). aiohttp's `request.post()` rejects that
nameless part, so the server parses the raw bytes here instead, the way Django does: skip what has
no name, decode what is encoded, keep repeated names.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import quopri
from email.message import Message
from email.parser import BytesHeaderParser
from urllib.parse import parse_qsl

Params = dict[str, list[str]]


def _boundary(content_type: str) -> str | None:
    message = Message()
    message["Content-Type"] = content_type
    return message.get_param("boundary")


def _decode(payload: bytes, transfer_encoding: str, charset: str) -> str:
    encoding = transfer_encoding.strip().lower()
    if encoding == "base64":
        # Not really base64: keep the bytes as sent, as Django would.
        with contextlib.suppress(binascii.Error):
            payload = base64.b64decode(b"".join(payload.split()), validate=False)
    elif encoding == "quoted-printable":
        payload = quopri.decodestring(payload)
    return payload.decode(charset or "utf-8", errors="replace")


def parse_multipart(body: bytes, boundary: str) -> Params:
    """Split a multipart/form-data body into name -> values, skipping nameless parts."""
    params: Params = {}
    delimiter = b"--" + boundary.encode("latin-1")
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk.removeprefix(b"\r\n").removeprefix(b"\n")
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = chunk.partition(b"\n\n")
        if not sep:
            continue  # no header/body separator: the empty part of a parameterless call
        payload = payload.removesuffix(b"\r\n").removesuffix(b"\n")
        headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not name:
            continue
        value = _decode(
            payload,
            headers.get("content-transfer-encoding", ""),
            headers.get_content_charset() or "utf-8",
        )
        params.setdefault(str(name), []).append(value)
    return params


def parse_body(body: bytes, content_type: str) -> Params:
    """Parameters from a request body of any type a MAAS client may send; unknown types give none."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        boundary = _boundary(content_type)
        return parse_multipart(body, boundary) if boundary else {}
    if kind == "application/x-www-form-urlencoded":
        params: Params = {}
        for name, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
            params.setdefault(name, []).append(value)
        return params
    return {}
