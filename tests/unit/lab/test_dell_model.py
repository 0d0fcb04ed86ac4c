"""lab.redfish.dell.model: the iDRAC rules on a clock the test holds (no server)."""

from __future__ import annotations

import json
from dataclasses import asdict

from lab.redfish.dell import model
from lab.redfish.dell.model import DellNode

SYSTEM = "/redfish/v1/Systems/abc"


def never(kind: str) -> bool:
    return False


def node(now: float = 1000.0) -> DellNode:
    fresh = DellNode.factory("gpu-001-01", "TAG0001", 12, now)
    fresh.scale = 0.01
    return fresh


def test_bios_job_waits_for_a_reset_runs_in_post_and_applies_the_values():
    dell = node()
    status, headers, _ = dell.answer_patch_settings(
        {"Attributes": {"SriovGlobalEnable": "Enabled"}, "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}},
        1000.0, never)
    jid = headers["Location"].rsplit("/", 1)[1]
    assert status == 202 and jid.startswith("JID_")
    dell.advance(5000.0)
    assert dell.job(jid, 5000.0).state == "Scheduled"
    dell.host_reset(5000.0)
    assert dell.job(jid, 5000.1).state == "Running"
    assert dell.job(jid, 5000.0 + model.BIOS_JOB_RUN_S * 0.01).state == "Completed"
    assert dell.bios["SriovGlobalEnable"] == "Enabled" and dell.pending == {}


def test_a_value_outside_the_registry_is_refused_and_nothing_is_staged():
    dell = node()
    status, _, body = dell.answer_patch_settings({"Attributes": {"SysProfile": "Fastest", "Nope": 1}}, 1000.0, never)
    ids = [info["MessageId"] for info in body["error"]["@Message.ExtendedInfo"]]
    assert status == 400 and ids == ["Base.1.12.PropertyValueNotInList", "Base.1.12.PropertyUnknown"]
    assert dell.pending == {}


def test_a_pending_bios_job_refuses_more_values_until_the_queue_is_cleared():
    dell = node()
    body = {"Attributes": {"MemTest": "Enabled"}, "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}}
    assert dell.answer_patch_settings(body, 1000.0, never)[0] == 202
    status, _, refused = dell.answer_patch_settings(body, 1001.0, never)
    assert status == 400 and "already committed" in json.dumps(refused)
    assert dell.answer_delete_job_queue({"JobID": "JID_CLEARALL"}, 1002.0)[0] == 200
    assert dell.jobs == [] and dell.pending == {}


def test_forced_clear_restarts_the_lifecycle_controller():
    dell = node()
    dell.answer_delete_job_queue({"JobID": "JID_CLEARALL_FORCE"}, 1000.0)
    assert dell.lc_status(1000.5, never)["LCStatus"] != "Ready"
    assert dell.lc_status(1000.0 + model.LC_RESTART_S * 0.01, never)["LCStatus"] == "Ready"


def test_log_pages_are_newest_first_fifty_a_page_and_skip_past_the_end_is_refused():
    dell = node()
    status, _, first = dell.log_page("Lclog", 0, None)
    assert status == 200 and len(first["Members"]) == model.PAGE_SIZE
    assert first["Members@odata.nextLink"].endswith("$skip=50")
    assert first["Members"][0]["Created"] >= first["Members"][-1]["Created"]
    assert dell.log_page("Lclog", 10_000, None)[0] == 400


def test_state_survives_a_dump_and_load():
    dell = node()
    dell.answer_patch_settings({"Attributes": {"MemTest": "Enabled"},
                                "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}}, 1000.0, never)
    again = DellNode.load(dell.dump())
    assert again.jobs == dell.jobs and again.pending == {"MemTest": "Enabled"}
    assert dell.dump() == json.dumps(asdict(dell))  # the state file's text did not change with the faster dump


def test_a_new_node_is_what_the_catalog_and_datetime_made_and_owns_its_inventory():
    import json as json_
    from dataclasses import asdict
    from datetime import UTC, datetime

    from lab.redfish.dell import catalog
    from lab.redfish.dell.model import DellNode

    now = 1764633600.75  # 2025-12-02 00:00:00.75 UTC
    first = DellNode.factory("gpu-001-01", "TAG0001", 7, now)
    dumped = json_.loads(first.dump())
    assert dumped["firmware"] == [asdict(item) for item in catalog.factory_firmware()]
    assert [row["Created"] for row in dumped["lclog"]] == [
        datetime.fromtimestamp(row["_t"], UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00") for row in dumped["lclog"]]
    assert dumped["sel"][0]["Created"] == "2025-11-29T00:00:00+00:00"
    first.firmware[0]["version"] = "changed"
    assert DellNode.factory("gpu-001-02", "TAG0002", 7, now).firmware[0]["version"] == catalog.BIOS_VERSION
