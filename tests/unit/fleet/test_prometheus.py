"""file_sd target files from the inventory."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fleet.prometheus import Job, target_groups, write_targets


@dataclass(frozen=True)
class N:
    hostname: str
    rack: int
    slot: int
    role: str
    address: str


NODES = [N("gpu-012-02", 12, 2, "compute", "198.18.12.12"), N("gpu-012-01", 12, 1, "compute", "198.18.12.11")]


def test_one_group_per_node_in_hostname_order_with_its_labels():
    groups = target_groups(NODES, 9100, "lab")
    assert [g["targets"] for g in groups] == [["198.18.12.11:9100"], ["198.18.12.12:9100"]]
    assert groups[0]["labels"] == {"node": "gpu-012-01", "rack": "12", "slot": "1", "role": "compute", "site": "lab"}


def test_target_files_are_written_per_job_and_only_rewritten_when_they_change(tmp_path):
    jobs = (Job("node", 9100), Job("dcgm", 9400))
    assert write_targets(NODES, tmp_path, "lab", jobs) == {"node": True, "dcgm": True}
    assert json.loads((tmp_path / "dcgm.json").read_text())[1]["targets"] == ["198.18.12.12:9400"]
    mtime = (tmp_path / "node.json").stat().st_mtime_ns
    assert write_targets(NODES, tmp_path, "lab", jobs) == {"node": False, "dcgm": False}
    assert (tmp_path / "node.json").stat().st_mtime_ns == mtime
    assert write_targets(NODES[:1], tmp_path, "lab", jobs)["node"] is True
