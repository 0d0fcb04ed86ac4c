"""The describe document: what python-libmaas builds its client from."""

from __future__ import annotations

from maas.client.bones import SessionAPI
from maas.client.utils.creds import Credentials

from lab.maas.describe import describe
from lab.maas.service import system_id_for


def test_handlers_have_absolute_uris_on_the_callers_host_and_libmaas_binds_them() -> None:
    doc = describe("http://127.0.0.1:41234")
    session = SessionAPI(doc, Credentials("c", "t", "s"))
    handlers = dict(session.handlers)
    assert {"Version", "Machines", "Machine", "Tags", "Tag"} <= set(handlers)
    assert handlers["Machine"].uri == "http://127.0.0.1:41234/MAAS/api/2.0/machines/{system_id}/"
    actions = dict(handlers["Machine"].actions)
    for name in ("deploy", "release", "abort", "commission", "power_on", "power_off", "query_power_state",
                 "mark_broken", "mark_fixed", "rescue_mode"):
        assert actions[name].op == name
    assert actions["read"].is_restful and actions["read"].method == "GET"
    assert dict(handlers["Machines"].actions)["allocate"].method == "POST"


def test_version_is_anonymous_and_the_rest_needs_credentials() -> None:
    anonymous = SessionAPI(describe("http://127.0.0.1:1"))
    assert {name for name, _ in anonymous.handlers} == {"Version"}


def test_system_ids_are_stable_maas_like_and_unique() -> None:
    ids = [system_id_for(f"gpu-{rack:03d}-{slot:02d}") for rack in range(1, 129) for slot in range(1, 5)]
    assert ids == [system_id_for(f"gpu-{rack:03d}-{slot:02d}") for rack in range(1, 129) for slot in range(1, 5)]
    assert all(len(i) == 6 and i.isalnum() and i.islower() for i in ids)
    taken = {system_id_for("gpu-001-01")}
    assert system_id_for("gpu-001-01", taken) not in taken
