"""The UFM client and the cabling checks against the lab UFM, one fault at a time, exact findings."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fleet.errors import UfmError
from fleet.fabric.cabling import DATACENTER_TECH, FABRIC_OWNER, check_links, check_nodes, links_for
from fleet.fabric.run import TriageInputs
from fleet.fabric.topology import planned_ends
from fleet.fabric.ufm import UfmClient, UfmSettings
from fleet.site import select_nodes
from tests.lab.fabric_lab import FabricLab, running_ufm

pytestmark = pytest.mark.lab
RACK12 = ["12"]


@pytest.fixture(scope="module")
def fabric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricLab]:
    with running_ufm(tmp_path_factory.mktemp("ufm"), racks=12) as lab:
        yield lab


@pytest.fixture
def ufm(fabric: FabricLab) -> Iterator[UfmClient]:
    fabric.faults([])
    yield fabric.client()


def _node_findings(fabric: FabricLab, ufm: UfmClient) -> list[tuple[str, str, str]]:
    nodes = select_nodes(fabric.site, RACK12)
    found = check_nodes(fabric.topology, nodes, ufm.ports(cable_info=True), ufm.pkeys())
    return [(f.subject, f.message, f.who) for f in found]


def test_a_healthy_rack_has_no_findings_in_two_requests(fabric: FabricLab, ufm: UfmClient) -> None:
    assert _node_findings(fabric, ufm) == []
    assert ufm.requests == 2


def test_swapped_cables_are_named_exactly(fabric: FabricLab, ufm: UfmClient) -> None:
    fabric.faults([{"kind": "swapped_cables", "a": "gpu-012-03/mlx5_4", "b": "gpu-012-04/mlx5_4"}])
    assert _node_findings(fabric, ufm) == [
        ("gpu-012-03", "gpu-012-03 mlx5_4 expected leaf-g01-r4 port 15, found leaf-g01-r4 port 16", DATACENTER_TECH),
        ("gpu-012-04", "gpu-012-04 mlx5_4 expected leaf-g01-r4 port 16, found leaf-g01-r4 port 15", DATACENTER_TECH),
    ]


def test_missing_cable_down_port_hdr_and_2x_are_each_named(fabric: FabricLab, ufm: UfmClient) -> None:
    fabric.faults([
        {"kind": "missing_cable", "port": "gpu-012-01/mlx5_0"},
        {"kind": "port_down", "port": "gpu-012-01/mlx5_1"},
        {"kind": "hdr", "port": "gpu-012-02/mlx5_2"},
        {"kind": "width_2x", "port": "gpu-012-02/mlx5_3"},
    ])
    assert _node_findings(fabric, ufm) == [
        ("gpu-012-01", "gpu-012-01 mlx5_0 has no cable: expected a cable to leaf-g01-r0 port 13", DATACENTER_TECH),
        ("gpu-012-01", "gpu-012-01 mlx5_1 is Down (Polling) with a cable in, expected Active to leaf-g01-r1 port 13: "
                       "reseat or replace the cable", DATACENTER_TECH),
        ("gpu-012-02", "gpu-012-02 mlx5_2 runs at HDR 200 Gb/s, expected NDR 400 Gb/s (cable MCP1650-H002E26)",
         DATACENTER_TECH),
        ("gpu-012-02", "gpu-012-02 mlx5_3 runs at 2x width, expected 4x: a lane is bad, reseat or replace the cable",
         DATACENTER_TECH),
    ]


def test_a_guid_missing_from_the_pkey_is_the_fabric_owners_and_is_added_only_when_asked(
        fabric: FabricLab, ufm: UfmClient) -> None:
    from fleet.fabric.cabling import missing_members

    fabric.faults([{"kind": "pkey_missing", "port": "gpu-012-04/mlx5_7"}])
    guid = fabric.site.nodes["gpu-012-04"].hcas[7].guid
    assert _node_findings(fabric, ufm) == [
        ("gpu-012-04", f"gpu-012-04 mlx5_7 ({guid}) is not in pkey 0x0a12 (compute)", FABRIC_OWNER)]
    todo = missing_members(fabric.topology, select_nodes(fabric.site, RACK12), ufm.pkeys())
    assert todo == {"0x0a12": [guid]}
    ufm.add_guids("0x0a12", todo["0x0a12"], membership="full", index0=True, ip_over_ib=True)
    assert _node_findings(fabric, ufm) == []
    (added,) = [r for r in fabric.requests() if r["method"] == "POST" and r["path"] == "/ufmRest/resources/pkeys"]
    assert added["body"] == {"guids": [guid[2:]], "pkey": "0x0a12", "membership": "full", "index0": True,
                             "ip_over_ib": True}


def test_switch_links_missing_or_swapped_are_named(fabric: FabricLab, ufm: UfmClient) -> None:
    fabric.faults([
        {"kind": "missing_cable", "port": "leaf-g01-r4/33"},
        {"kind": "swapped_cables", "a": "leaf-g01-r4/41", "b": "leaf-g01-r4/42"},
    ])
    planned = links_for(fabric.topology, ["leaf-g01-r4"])
    assert len(planned) == 32 + 4 * 32  # the leaf's uplinks, then its four spines' uplinks
    found = check_links(fabric.topology, planned, ufm.ports(), ufm.links())
    assert [(f.subject, f.message, f.who) for f in found] == [
        ("leaf-g01-r4", "leaf-g01-r4 port 33 - spine-p00-r4-s0 port 9 is missing: no cable", DATACENTER_TECH),
        ("leaf-g01-r4", "leaf-g01-r4 port 41 expected spine-p00-r4-s1 port 9, found spine-p00-r4-s1 port 10",
         DATACENTER_TECH),
        ("leaf-g01-r4", "leaf-g01-r4 port 42 expected spine-p00-r4-s1 port 10, found spine-p00-r4-s1 port 9",
         DATACENTER_TECH),
    ]


def test_links_are_read_page_by_page(fabric: FabricLab, ufm: UfmClient) -> None:
    client = fabric.client(settings=UfmSettings(links_page_size=1000))
    links = client.links()
    pages = [r for r in fabric.requests() if r["path"] == "/ufmRest/resources/links"][-client.requests:]
    assert len(links) == len(fabric.topology.links) + len(fabric.site.nodes) * 8
    assert [r["query"]["page_number"] for r in pages] == [str(n) for n in range(1, len(links) // 1000 + 2)]


def test_token_auth_uses_ufmrestv3_with_a_token_from_app_tokens(fabric: FabricLab, ufm: UfmClient) -> None:
    client = fabric.client(token_auth=True)
    assert client.unhealthy_ports() == []
    token_call, read = fabric.requests()[-2:]
    assert (token_call["method"], token_call["path"]) == ("POST", "/ufmRest/app/tokens")
    assert (read["path"], read["status"]) == ("/ufmRestV3/app/unhealthy_ports", 200)


def test_wrong_password_is_a_401_with_the_endpoint_and_no_retry(fabric: FabricLab) -> None:
    assert fabric.site.ufm is not None
    client = UfmClient(fabric.site.ufm.url, "admin", "wrong", ca_file=str(fabric.lab_dir / "tls" / "ca.pem"))
    with pytest.raises(UfmError) as caught:
        client.systems()
    assert caught.value.status == 401 and client.requests == 1
    assert "resources/systems" in str(caught.value) and "wrong" not in str(caught.value)


def test_tls_is_verified_by_default(fabric: FabricLab) -> None:
    assert fabric.site.ufm is not None
    client = UfmClient(fabric.site.ufm.url, "admin", "x")
    with pytest.raises(UfmError, match="TLS certificate was not accepted"):
        client.systems()


def test_5xx_is_retried_and_4xx_is_not(fabric: FabricLab, ufm: UfmClient) -> None:
    client = fabric.client(settings=UfmSettings(backoff_s=0.0))
    fabric.faults([{"kind": "busy", "count": 2}])
    assert len(client.systems()) == 48 + len(fabric.topology.switches)
    assert [r["status"] for r in fabric.requests()[-3:]] == [503, 503, 200]
    with pytest.raises(UfmError) as caught:
        client.add_guids("0x9999", ["nothex"])
    assert caught.value.status == 400 and "Invalid pkey" in str(caught.value)
    assert client.requests == 4


def test_isolate_restore_and_async_action_job(fabric: FabricLab, ufm: UfmClient) -> None:
    port = ufm.ports()[0].name
    ufm.isolate([port])
    assert [(p["UnhealthyGUID"] + "_" + str(p["UnhealthyPortNumber"]), p["Isolated"])
            for p in ufm.unhealthy_ports()] == [(port, True)]
    ufm.restore([port])
    assert ufm.unhealthy_ports() == []
    client = fabric.client(settings=UfmSettings(job_poll_s=0.05))
    started = time.monotonic()
    job = client.action({"action": "reset", "object_ids": [port.partition("_")[0]], "object_type": "System",
                         "params": {"port_id": port}, "description": "", "identifier": "id"})
    assert job["Status"] == "Completed" and time.monotonic() - started < 5
    assert [r["status"] for r in fabric.requests() if r["path"] == "/ufmRest/actions"] == [202]


def test_unknown_port_isolation_carries_ufms_message(fabric: FabricLab, ufm: UfmClient) -> None:
    with pytest.raises(UfmError) as caught:
        ufm.isolate(["0000000000000000_1"])
    assert caught.value.status == 400
    assert caught.value.service_message == "Port(s) not found: 0000000000000000_1"



# --- triage ---------------------------------------------------------------------------------------

TRIAGE_FAULTS = [
    {"kind": "symbol_errors", "port": "spine-p00-r4-s0/33", "per_12min": 20},  # 7x NDR's budget
    {"kind": "symbol_errors", "port": "spine-p00-r4-s0/34", "per_12min": 2},  # under the 2.88 budget
    {"kind": "flapping", "port": "leaf-g01-r2/40", "period_s": 200, "down_s": 5},
    {"kind": "flapping", "port": "gpu-012-03/mlx5_6", "period_s": 200, "down_s": 5},  # an access link
    {"kind": "event_burst", "switch": "leaf-g00-r1", "count": 64},
]


@pytest.fixture(scope="module")
def sampled(fabric: FabricLab) -> tuple[object, list[dict]]:
    from fleet.fabric.run import sample

    fabric.faults(TRIAGE_FAULTS)
    client = fabric.client()
    mark = len(fabric.requests())
    # 0.005 time factor: 4 real seconds are 800 s of UFM time, past NVIDIA's 720 s BER window
    inputs = sample(client, sample_s=4.0)
    seen = fabric.requests()[mark:]
    assert client.requests == 5, seen
    return inputs, seen


def _where(inputs: TriageInputs, system: str, number: int, far: str) -> str:
    """How a plan names a flapping port: by its live peer, or by the cabling plan's far end when the sample
    caught the flap's down phase (UFM names no peer for a port that is down: 2.5% of these flaps' time)."""
    (port,) = [p for p in inputs.ports if p.system_name == system and p.number == number]
    live = port.peer in {p.name for p in inputs.ports}  # "N/A" while down
    return f"{system} port {number} (to {far}{'' if live else ', per the cabling plan: UFM sees the link down now'})"


def test_triage_isolates_high_ber_and_flapping_links_and_collapses_the_burst(
        fabric: FabricLab, sampled: tuple) -> None:
    from fleet.fabric.triage import TriageSettings

    inputs = sampled[0]
    plan = inputs.plan(TriageSettings(), planned_ends(fabric.topology, fabric.site.nodes.values()))
    by_where = {p.where: p.reasons for p in plan.isolate}
    flapping = _where(inputs, "leaf-g01-r2", 40, "spine-p00-r2-s0 port 16")
    assert sorted(by_where) == [flapping, "spine-p00-r4-s0 port 33 (to core-r4-c0 port 1)"], plan
    (ber,) = by_where["spine-p00-r4-s0 port 33 (to core-r4-c0 port 1)"]
    assert ber.startswith("symbol BER ") and "> 1e-14" in ber
    assert by_where[flapping][0].startswith("LinkDownedCounter rose on both ends")
    assert [p.where for p in plan.report] == [_where(inputs, "leaf-g01-r6", 15, "gpu-012-03 mlx5_6")]
    (cause,) = plan.causes
    assert (cause.system, cause.name, cause.count) == ("leaf-g00-r1", "Port state change", 64)
    ports = len(fabric.topology.switches) * 64 + len(fabric.site.nodes) * 8
    assert (plan.cap, plan.refused) == (max(10, ports // 200), "")


def test_nothing_is_isolated_without_apply_and_apply_journals_then_isolates(
        fabric: FabricLab, sampled: tuple) -> None:
    from fleet.fabric.run import isolate, restore
    from fleet.fabric.triage import TriageSettings

    inputs, seen = sampled
    plan = inputs.plan(TriageSettings())
    assert not [r for r in seen if r["method"] == "PUT"]
    journal: list[tuple[str, str, dict]] = []
    client = fabric.client()
    mark = len(fabric.requests())
    names = isolate(client, plan, lambda *entry: journal.append(entry))
    assert [event for _, event, _ in journal] == ["isolate:started", "isolate:done"]
    (put,) = [r for r in fabric.requests()[mark:] if r["method"] == "PUT"]
    assert put["body"] == {"ports": names, "ports_policy": "UNHEALTHY", "action": "isolate"}
    assert sorted(f"{p['UnhealthyGUID']}_{p['UnhealthyPortNumber']}" for p in client.unhealthy_ports()) == sorted(names)
    restore(client, names, lambda *entry: journal.append(entry))
    assert client.unhealthy_ports() == []
    assert [event for _, event, _ in journal][2:] == ["restore:started", "restore:done"]


def test_past_the_cap_triage_refuses_says_why_and_sends_nothing(fabric: FabricLab, sampled: tuple) -> None:
    from fleet.errors import FleetError
    from fleet.fabric.run import isolate
    from fleet.fabric.triage import TriageSettings

    plan = sampled[0].plan(TriageSettings(max_isolated=1))
    assert plan.refused == (
        "refusing to isolate 2 port(s): 0 already isolated + 2 proposed = 2 > the cap of 1 (fabric.max_isolated, "
        f"default max(10, 0.5% of {len(sampled[0].ports)} ports)); a storm of isolations is usually one upstream "
        "cause: look at 64 'Port state change' events from leaf-g00-r1 at "
        f"{plan.causes[0].timestamp} first")
    before = len(fabric.requests())
    journal: list[tuple] = []
    with pytest.raises(FleetError, match="refusing to isolate 2"):
        isolate(fabric.client(), plan, lambda *entry: journal.append(entry))
    assert journal == [] and not [r for r in fabric.requests()[before:] if r["method"] == "PUT"]


def test_check_costs_the_same_few_requests_for_a_rack_or_the_whole_site(fabric: FabricLab, ufm: UfmClient) -> None:
    from fleet.fabric.run import check

    fabric.faults([{"kind": "pkey_missing", "port": "gpu-012-02/mlx5_0"}, {"kind": "hdr", "port": "leaf-g01-r0/33"}])
    rack = check(fabric.topology, select_nodes(fabric.site, RACK12), fabric.client())
    every = check(fabric.topology, fabric.site.nodes.values(), fabric.client())
    assert rack.ufm_requests == every.ufm_requests == 3  # ports, pkeys, one page of links
    assert [f.kind for f in rack.findings] == ["pkey"] and rack.added == {}
    assert [f.message for f in rack.link_findings] == [
        "leaf-g01-r0 port 33 - spine-p00-r0-s0 port 9 runs at HDR, expected NDR"]
    journal: list[tuple] = []
    applied = check(fabric.topology, select_nodes(fabric.site, RACK12), fabric.client(), apply=True,
                    journal=lambda *entry: journal.append(entry))
    guid = fabric.site.nodes["gpu-012-02"].hcas[0].guid
    assert applied.added == {"0x0a12": [guid]} and applied.findings == []
    assert [event for _, event, _ in journal] == ["pkey_add:started", "pkey_add:done"]
    assert applied.ufm_requests == 5  # + the add and a re-read of the pkeys


def test_pkey_members_are_added_replaced_and_removed_as_ufm_does(fabric: FabricLab, ufm: UfmClient) -> None:
    first, second = "0x0002c90300000001", "0x0002c90300000002"
    ufm.add_guids("0x0123", [first], index0=True)
    ufm.add_guids("0x0123", [second], membership="limited")  # POST adds to the members
    assert {(m.guid, m.membership, m.index0) for m in ufm.pkeys()["0x0123"]} == {
        (first, "full", True), (second, "limited", False)}
    ufm.request("PUT", "resources/pkeys", json={"pkey": "0x0123", "guids": [first[2:]]})  # PUT replaces them
    assert [m.guid for m in ufm.pkeys()["0x0123"]] == [first]
    ufm.remove_guids("0x0123", [first])
    assert ufm.pkeys()["0x0123"] == []
    with pytest.raises(UfmError) as caught:
        ufm.request("PUT", "resources/pkeys", json={"pkey": "0x0123", "guids": [], "membership": "full"})
    assert caught.value.status == 400 and "guids is mandatory" in str(caught.value)
    with pytest.raises(UfmError) as caught:
        ufm.remove_guids("0x0456", [first])
    assert caught.value.status == 404
