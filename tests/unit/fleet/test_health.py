"""Fleet sweep: SSH outcomes to node results, and the pure fleet decision (quarantine)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.health import (
    UNREACHABLE,
    NodeHealth,
    decide_fleet,
    fetch_templates,
    parse_node_output,
    ssh_argv,
    sweep,
    to_json,
    to_rows,
)
from healthcheck.config import load_config
from healthcheck.output import to_json as report_json
from healthcheck.runner import run_checks

LAB = Path(__file__).resolve().parents[2] / "fixtures" / "lab-node"


def lab_report(fixture_set: str) -> tuple[int, str]:
    # hung_processes reads this machine's /proc (the fixture sets have no process table): a long
    # ansible-playbook running here would otherwise turn the "healthy" node into a WARNING.
    config = replace(load_config(LAB / fixture_set / "config.json"), disabled_checks=("hung_processes",))
    report = run_checks(config, save_state=False)
    return report.verdict.exit_code, json.dumps(report_json(report))


REPORTS = {name: lab_report(name) for name in ("healthy", "sick-gpu", "link-down", "bad-dmesg")}


class FakeSsh:
    """Stands in for subprocess.run: answers per ssh target like the nodes would."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, argv, **kwargs):
        with self.lock:
            self.calls.append(argv)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= 1
        target = argv[argv.index("--") - 1]
        answer = self.answers[target]
        if answer == "timeout":
            raise subprocess.TimeoutExpired(argv, kwargs["timeout"])
        if answer == "refused":
            return subprocess.CompletedProcess(
                argv, 255, "", "ssh: connect to host 198.18.0.9 port 22: Connection refused"
            )
        code, out = REPORTS[answer]
        return subprocess.CompletedProcess(argv, code, out, "")


def test_ssh_never_prompts_and_bounds_the_connect_time():
    argv = ssh_argv("root@198.18.0.5", ("python3", "-m", "healthcheck", "--json"), connect_timeout_s=7)
    assert argv[:1] == ["ssh"] and "BatchMode=yes" in argv and "ConnectTimeout=7" in argv
    assert argv[argv.index("--") - 1] == "root@198.18.0.5"
    assert argv[-4:] == ["python3", "-m", "healthcheck", "--json"]


def test_sweep_runs_in_parallel_within_the_bound_and_keeps_input_order():
    nodes = [f"gpu-001-{i:02d}" for i in range(12)]
    fake = FakeSsh({f"root@{n}": "healthy" for n in nodes})
    results = sweep(nodes, lambda n: f"root@{n}", timeout_s=10, parallel=4, runner=fake)
    assert [r.node for r in results] == nodes
    assert {r.verdict for r in results} == {"OK"}
    assert 1 < fake.max_in_flight <= 4


def test_sweep_reports_each_fault_and_transport_failure_per_node():
    answers = {"a": "healthy", "b": "sick-gpu", "c": "link-down", "d": "bad-dmesg", "e": "refused", "f": "timeout"}
    results = sweep(list(answers), lambda n: n, timeout_s=5, parallel=8, runner=FakeSsh(answers))
    by = {r.node: r for r in results}
    assert [by[n].verdict for n in "abcdef"] == ["OK", "CRITICAL", "CRITICAL", "CRITICAL", UNREACHABLE, UNREACHABLE]
    assert "gpu_ecc_errors" in by["b"].reason and "ib_ports" in by["c"].reason and "Xid 79" in by["d"].reason
    assert "Connection refused" in by["e"].error and "timed out after 5 s" in by["f"].error


@pytest.mark.parametrize(
    ("returncode", "stdout", "stderr", "verdict", "error"),
    [
        (255, "", "Permission denied (publickey).", UNREACHABLE, "ssh: Permission denied (publickey)."),
        (255, "", "No ED25519 host key is known for 198.18.1.11 and you have requested strict checking.\r\n"
         "Host key verification failed.\r\n", UNREACHABLE, "host key of gpu-001-01 (198.18.1.11) unknown"),
        (4, "", "invalid config /etc/healthcheck/config.json", "UNKNOWN", "healthcheck config invalid"),
        (127, "", "bash: python3: command not found", "UNKNOWN", "python3: command not found"),
        (1, "{not json", "", "UNKNOWN", "healthcheck exited 1"),
    ],
)
def test_node_output_that_is_not_a_report_becomes_a_reasoned_result(returncode, stdout, stderr, verdict, error):
    result = parse_node_output("gpu-001-01", returncode, stdout, stderr, 0.1)
    assert result.verdict == verdict and error in result.error


def test_fleet_decision_quarantines_only_critical_nodes_that_answered():
    results = [
        NodeHealth("n1", "OK"),
        NodeHealth("n2", "WARNING"),
        parse_node_output("n3", *REPORTS["sick-gpu"], "", 1.0),
        NodeHealth("n4", UNREACHABLE, error="ssh: timed out"),
        NodeHealth("n5", "UNKNOWN", error="no report"),
    ]
    decision = decide_fleet(results)
    assert decision.verdict == "CRITICAL"
    assert [n for n, _ in decision.quarantine] == ["n3"]
    assert "row remap pending" in decision.quarantine[0][1] or "ECC" in decision.quarantine[0][1]
    assert decision.unreachable == ("n4",)
    assert decision.counts == {"CRITICAL": 1, "OK": 1, UNREACHABLE: 1, "UNKNOWN": 1, "WARNING": 1}


@pytest.mark.parametrize(
    ("verdicts", "fleet"),
    [
        ((), "UNKNOWN"),
        (("OK", "OK"), "OK"),
        (("OK", "WARNING"), "WARNING"),
        (("WARNING", UNREACHABLE), UNREACHABLE),
        (("UNKNOWN", "CRITICAL"), "CRITICAL"),
    ],
)
def test_fleet_verdict_is_the_worst_node(verdicts, fleet):
    assert decide_fleet([NodeHealth(f"n{i}", v) for i, v in enumerate(verdicts)]).verdict == fleet


def test_rows_and_json_carry_reason_fix_and_the_node_report():
    results = [parse_node_output("n1", *REPORTS["link-down"], "", 0.4)]
    (row,) = to_rows(results)
    assert row["verdict"] == "CRITICAL" and "mlx5_3" in row["reason"] and "cable" in row["fix"]
    data = to_json(results, decide_fleet(results))
    assert data["quarantine"][0]["node"] == "n1"
    assert data["nodes"][0]["report"]["schema"] == 1
    json.dumps(data)


def test_templates_are_fetched_per_node_and_a_node_that_cannot_answer_is_named():
    def runner(argv, **kwargs):
        target = argv[argv.index("--") - 1]
        assert argv[argv.index("--") + 1:] == ["sudo", "-n", "python3", "-m", "healthcheck", "templates"]
        answers = {"a": (0, json.dumps({"lines": 2, "templates": ["x #", "y"]}), ""),
                   "down": (255, "", "ssh: no route to host"), "garbled": (0, "not json", ""),
                   "unreadable": (3, "", "healthcheck templates: kernel log unreadable: dmesg: EPERM")}
        return subprocess.CompletedProcess(argv, *answers[target])

    found, errors = fetch_templates(["a", "down", "garbled", "unreadable"], lambda n: n, runner=runner)
    assert found == {"a": frozenset({"x #", "y"})}
    assert "no route to host" in errors["down"] and "EPERM" in errors["unreadable"] and "garbled" in errors


def test_the_sweep_hands_each_node_the_sites_baseline_on_stdin():
    seen = []

    def runner(argv, **kwargs):
        seen.append((argv[argv.index("--") + 1:], kwargs.get("input"), kwargs.get("stdin")))
        return subprocess.CompletedProcess(argv, *REPORTS["healthy"], "")

    sweep(["a"], lambda n: n, runner=runner, baseline='{"schema": 1, "templates": []}')
    sweep(["a"], lambda n: n, runner=runner)
    (with_file, text, _), (without, none, stdin) = seen
    assert with_file[-2:] == ["--dmesg-baseline", "-"] and text == '{"schema": 1, "templates": []}'
    assert "--dmesg-baseline" not in without and none is None and stdin == subprocess.DEVNULL


def test_a_health_check_that_started_on_the_node_and_hung_is_critical_and_quarantined():
    from fleet.health import STARTED_MARKER

    def hangs_after_starting(argv, **kwargs):
        assert STARTED_MARKER in " ".join(argv[argv.index("--") + 1:])
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"], output=f"{STARTED_MARKER}\n".encode())

    def never_connects(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"], output=b"")

    [hung] = sweep(["gpu-001-01"], lambda n: n, timeout_s=5, runner=hangs_after_starting)
    [silent] = sweep(["gpu-001-02"], lambda n: n, timeout_s=5, runner=never_connects)
    assert hung.verdict == "CRITICAL" and "hung" in hung.error and "wedged GPU" in hung.error
    assert silent.verdict == UNREACHABLE
    decision = decide_fleet([hung, silent])
    assert decision.quarantine == (("gpu-001-01", hung.error),) and decision.unreachable == ("gpu-001-02",)


def test_the_started_marker_is_not_part_of_the_report():
    from fleet.health import STARTED_MARKER

    code, out = REPORTS["healthy"]
    result = parse_node_output("gpu-001-01", code, f"{STARTED_MARKER}\n{out}", "", 0.1)
    assert result.verdict == "OK" and not result.error
