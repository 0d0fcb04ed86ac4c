"""The Kraken config validator over the roles' rendered cluster and a corpus of broken examples."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.kraken import validate
from fleet.kraken.schema import AGENT, walk

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "kraken"
CASES = yaml.safe_load((FIXTURES / "broken.yml").read_text(encoding="utf-8"))


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    if value is None:
        data.pop(last, None)
    else:
        data[last] = value


def _apply(stage: Path, case: dict[str, Any]) -> None:
    for relative, edits in case.get("set", {}).items():
        path = stage / relative
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for dotted, value in edits.items():
            _set(data, dotted, value)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    for relative, (old, new) in case.get("replace", {}).items():
        path = stage / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{relative} has no {old!r}: the fixture changed under the case"
        path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def stage(tmp_path: Path) -> Path:
    copy = tmp_path / "stage"
    shutil.copytree(FIXTURES / "stage", copy)
    return copy


def test_the_cluster_the_roles_render_is_valid(stage: Path) -> None:
    assert validate.validate_stage(stage) == []


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_broken_example_is_reported_by_file_and_key(stage: Path, case: dict[str, Any]) -> None:
    _apply(stage, case)
    problems = validate.validate_stage(stage)
    found = {(p.file, p.key) for p in problems}
    assert found == {(file, key) for file, key, _words in case["expect"]}, [str(p) for p in problems]
    for file, key, words in case["expect"]:
        message = next(p.message for p in problems if (p.file, p.key) == (file, key))
        assert words in message


def test_the_command_exits_2_and_prints_every_problem(stage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _apply(stage, CASES[0])
    _apply(stage, next(c for c in CASES if c["name"] == "an agent without trackers"))
    assert validate.main([str(stage)]) == 2
    err = capsys.readouterr().err
    assert "gpu-012-01:/etc/kraken/agent/lab.yaml: scheduler.conn.bandwith: unknown key" in err
    assert "gpu-012-02:/etc/kraken/agent/lab.yaml: tracker.hosts.static: an agent without trackers" in err
    assert "2 problem(s)" in err


def test_the_command_exits_0_on_the_rendered_cluster(stage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main([str(stage)]) == 0
    assert "10 unit(s)" in capsys.readouterr().out


def test_a_stage_without_the_cluster_file_is_bad_input(tmp_path: Path) -> None:
    assert validate.main([str(tmp_path)]) == 2


def test_merge_keeps_base_keys_replaces_lists_and_remembers_the_file() -> None:
    merged: dict[str, Any] = {}
    source: dict[str, str] = {}
    validate.merge(merged, {"store": {"cache_dir": "/a", "cache_cleanup": {"ttl": "24h"}}, "allowed_cidrs": ["x"]},
                   source, "base")
    validate.merge(merged, {"store": {"cache_cleanup": {"tti": "6h"}}, "allowed_cidrs": ["y", "z"]}, source, "env")
    assert merged == {
        "store": {"cache_dir": "/a", "cache_cleanup": {"ttl": "24h", "tti": "6h"}}, "allowed_cidrs": ["y", "z"]
    }
    assert source["store.cache_dir"] == "base"
    assert source["store.cache_cleanup.tti"] == "env"
    assert source["allowed_cidrs"] == "env"


def test_exec_flags_are_read_across_continuation_lines() -> None:
    unit = ("[Service]\nExecStart=/usr/bin/docker run --rm \\\n"
            "  img@sha256:ab /usr/bin/kraken-agent --config=/c.yaml --peer-port 16001\n")
    flags = validate.parse_exec_flags(unit)
    assert flags["config"] == ["/c.yaml"]
    assert flags["peer-port"] == ["16001"]


def test_open_subtrees_are_not_checked_but_known_ones_are() -> None:
    config = {"registry": {"docker": {"anything": {"goes": 1}}}, "store": {"cache_cleanup": {"aggressive_ttL": "1h"}}}
    assert walk(AGENT, config, "") == []
    assert [key for key, _ in walk(AGENT, {"store": {"cache_cleanup": {"aggressive_ttl": "1h"}}}, "")] == [
        "store.cache_cleanup.aggressive_ttl"
    ]


def test_only_the_named_hosts_are_read_so_a_host_that_left_the_site_does_not_fail_the_run(stage: Path) -> None:
    _apply(stage, next(c for c in CASES if c["name"] == "an agent without trackers"))  # gpu-012-02 is stale
    hosts = ["kraken-ctl-1", "kraken-ctl-2", "gpu-012-01"]
    assert validate.validate_stage(stage, hosts) == []
    assert validate.main([str(stage), "--hosts", ",".join(hosts)]) == 0
    assert validate.main([str(stage)]) == 2
