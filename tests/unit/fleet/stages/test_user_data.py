"""cloud-init user-data is YAML built by yaml.safe_dump: any inventory value reads back as itself."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml

from fleet.stages.deploy import user_data
from tests.unit.fleet.test_workflow import make_node


@pytest.mark.parametrize("tag", ["ABC1234", "O'Brien", "a: b\n- c", "#x", "'; rm -rf / #", "{\"k\": 1}"])
def test_user_data_round_trips_the_node_identity_whatever_it_holds(tag):
    node = replace(make_node(12, 3), service_tag=tag)
    text = user_data(node)
    assert text.startswith(b"#cloud-config\n")
    config = yaml.safe_load(text)
    [entry] = config["write_files"]
    assert (entry["path"], entry["permissions"]) == ("/etc/fleet/node.json", "0644")
    assert json.loads(entry["content"]) == {"hostname": "gpu-012-03", "rack": 12, "slot": 3, "service_tag": tag}
    assert list(config) == ["write_files"]
