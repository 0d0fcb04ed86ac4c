"""The lenient multipart reader against bodies built by python-libmaas itself."""

from __future__ import annotations

from maas.client.utils import prepare_payload

from lab.maas.multipart import parse_body


def body_of(data: list[tuple[str, object]]) -> tuple[bytes, str]:
    _uri, body, headers = prepare_payload("deploy", "POST", "http://127.0.0.1/MAAS/api/2.0/machines/x/", data)
    return body, dict(headers)["Content-Type"]


def test_call_without_params_sends_one_nameless_empty_part_which_reads_as_no_params() -> None:
    body, content_type = body_of([])
    assert body  # python-libmaas still sends a body
    assert parse_body(body, content_type) == {}


def test_base64_parts_are_decoded_and_repeated_names_kept() -> None:
    body, content_type = body_of([
        ("distro_series", "jammy"), ("user_data", b"I2Nsb3VkLWNvbmZpZw==\n"), ("erase", True),
        ("add", ["abc123", "def456"]), ("comment", "r\u00e9seau down"),
    ])
    assert parse_body(body, content_type) == {
        "distro_series": ["jammy"], "user_data": ["I2Nsb3VkLWNvbmZpZw==\n"], "erase": ["true"],
        "add": ["abc123", "def456"], "comment": ["r\u00e9seau down"],
    }


def test_plain_parts_and_lf_line_endings_are_accepted() -> None:
    body = b'--XX\nContent-Disposition: form-data; name="hostname"\n\ngpu-001-01\n--XX--\n'
    assert parse_body(body, "multipart/form-data; boundary=XX") == {"hostname": ["gpu-001-01"]}


def test_urlencoded_body_and_unknown_types() -> None:
    assert parse_body(b"name=rack-001&comment=", "application/x-www-form-urlencoded") == {
        "name": ["rack-001"], "comment": [""]}
    assert parse_body(b"{}", "application/json") == {}
