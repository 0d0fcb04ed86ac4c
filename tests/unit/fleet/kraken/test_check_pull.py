"""`kraken check` verdicts and `image pull` results from what the node probe printed (pure), and the fan-out."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import pytest

from fleet.kraken import check, pull
from fleet.kraken.node_probe import split_image
from fleet.kraken.remote import PROBE_SOURCE, ProbeRun

DIGEST = "sha256:" + "a" * 64
LIMITS = check.Limits(cache_limit_bytes=50 * 10**9, aggressive_threshold_pct=80)


def _seen(**overrides: Any) -> ProbeRun:
    seen = {"v2_status": 200, "v2_error": "", "digest": DIGEST, "digest_error": "", "cache_bytes": 10**9,
            "cache_dir_exists": True, "fs_used_pct": 40.0}
    seen.update(overrides)
    return ProbeRun(0, json.dumps(seen), "", 0.5)


@pytest.mark.parametrize(("run", "reason"), [
    (_seen(), None),
    (_seen(v2_status=401), None),  # auth challenge: the registry API answers
    (ProbeRun(255, "", "ssh: connect to host 198.18.12.11 port 22: No route\n", 5.0), "unreachable: ssh: connect to"),
    (ProbeRun(-1, "", "no answer within 45 s", 45.0), "unreachable: no answer within 45 s"),
    (ProbeRun(1, "", "python3: command not found\n", 0.1), "probe failed on the node: python3: command not found"),
    (_seen(v2_status=None, v2_error="[Errno 111] Connection refused", digest=None),
     "agent registry does not answer /v2/: [Errno 111] Connection refused"),
    (_seen(v2_status=503), "agent registry /v2/ answered HTTP 503"),
    (_seen(digest=None, digest_error="HTTP 404 MANIFEST_UNKNOWN"), "does not resolve through the agent: HTTP 404"),
    (_seen(digest="sha256:" + "b" * 64), "the reference registry says " + DIGEST),
    (_seen(cache_bytes=60 * 10**9), "agent cache holds 60.00 GB, over its limit of 50.00 GB"),
    (_seen(fs_used_pct=85.0), "cache filesystem 85% used, at or over the agent's aggressive-cleanup threshold 80%"),
    (_seen(cache_dir_exists=False), "agent cache directory is missing"),
])  # fmt: skip
def test_check_verdict_names_what_failed(run: ProbeRun, reason: str | None) -> None:
    result = check.decide("gpu-012-01", run, DIGEST, LIMITS)
    assert result.ok is (reason is None)
    if reason:
        assert any(reason in r for r in result.reasons), result.reasons


def test_a_down_agent_is_not_also_blamed_for_the_image() -> None:
    result = check.decide("n", _seen(v2_status=None, v2_error="refused", digest=None), DIGEST, LIMITS)
    assert len(result.reasons) == 1


def test_without_limits_or_image_only_the_registry_api_is_judged() -> None:
    none = check.Limits(None, None)
    assert check.decide("n", _seen(digest=None, cache_bytes=10**15, fs_used_pct=99.0), None, none).ok


@pytest.mark.parametrize(("run", "ok", "error"), [
    (ProbeRun(0, json.dumps({"digest": DIGEST, "bytes": 1234, "blobs": 3, "seconds": 0.7}), "", 1.2), True, ""),
    (ProbeRun(3, json.dumps({"error": "http://127.0.0.1:16000/v2/x/manifests/1: HTTP 404"}), "", 0.2), False,
     "pull through the agent failed: http://127.0.0.1:16000/v2/x/manifests/1: HTTP 404"),
    (ProbeRun(255, "", "Could not resolve hostname x\n", 0.1), False, "unreachable: ssh: Could not resolve hostname x"),
    (ProbeRun(1, "Traceback", "ValueError: boom\n", 0.1), False, "probe failed on the node: ValueError: boom"),
])  # fmt: skip
def test_pull_result_per_node(run: ProbeRun, ok: bool, error: str) -> None:
    result = pull.parse_pull("gpu-012-02", run)
    assert (result.ok, result.error) == (ok, error)
    if ok:
        assert (result.digest, result.bytes, result.seconds) == (DIGEST, 1234, 0.7)


class _Runner:
    """Stands in for subprocess.run: answers per node (from the ssh target), records concurrency and stdin."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.inputs: list[str] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        target = argv[argv.index("--") - 1]
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.inputs.append(kwargs["input"])
        time.sleep(0.02)
        with self.lock:
            self.active -= 1
        if target in self.failing:
            return subprocess.CompletedProcess(argv, 255, "", "ssh: connect: Connection refused\n")
        return subprocess.CompletedProcess(argv, 0, json.dumps({"digest": DIGEST, "bytes": 10, "seconds": 0.02}), "")


def test_pull_runs_at_most_concurrency_nodes_at_once_and_failures_do_not_stop_the_others() -> None:
    nodes = [f"gpu-012-{i:02d}" for i in range(1, 13)]
    runner = _Runner(failing={"gpu-012-03", "gpu-012-07"})
    finished: list[str] = []
    results = pull.pull_nodes(nodes, lambda n: n, image="team/trainer:1", port=16000, concurrency=3, runner=runner,
                              on_done=lambda r: finished.append(r.node))
    assert [r.node for r in results] == nodes
    assert [r.node for r in results if not r.ok] == ["gpu-012-03", "gpu-012-07"]
    assert sorted(finished) == sorted(nodes)
    assert runner.peak == 3
    assert all(source == PROBE_SOURCE for source in runner.inputs)
    summary = pull.summarize("team/trainer:1", results)
    assert summary["summary"] == {"pulled": 10, "failed": 2}
    assert summary["digests"] == [DIGEST]
    assert summary["bytes"] == 100


def test_pull_refuses_a_concurrency_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pull.pull_nodes(["n"], lambda n: n, image="i:1", port=1, concurrency=0, runner=_Runner(set()))


def test_check_sends_the_probe_with_the_image_and_port() -> None:
    seen: list[list[str]] = []

    def runner(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, _seen().stdout, "")

    results = check.check_nodes(["a", "b"], lambda n: f"root@{n}", port=16000, image="team/trainer:1",
                                expected_digest=DIGEST, limits=LIMITS, runner=runner)
    assert [r.ok for r in results] == [True, True]
    remote = seen[0][seen[0].index("--") + 1:]
    assert remote[:3] == ["python3", "-", "check"]
    assert remote[remote.index("--port") + 1] == "16000"
    assert remote[remote.index("--image") + 1] == "team/trainer:1"


@pytest.mark.parametrize(("image", "split"), [
    ("team/trainer:2024.11", ("team/trainer", "2024.11")),
    ("trainer", ("trainer", "latest")),
    ("registry:5000/team/trainer", ("registry:5000/team/trainer", "latest")),
    ("team/trainer@sha256:" + "c" * 64, ("team/trainer", "sha256:" + "c" * 64)),
])  # fmt: skip
def test_image_references_split_into_repository_and_reference(image: str, split: tuple[str, str]) -> None:
    assert split_image(image) == split
