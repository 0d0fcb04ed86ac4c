"""The shipped alert rules are valid and pass their promtool tests; the fleet's metrics fit the rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fleet.prometheus import OutOfService, fleet_metrics

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus) not installed: "
                                    "run scripts/install.sh")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL or "promtool", *args], cwd=MONITORING, input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)


@needs_promtool
def test_every_rule_file_is_valid():
    done = promtool("check", "rules", *sorted(str(p) for p in (MONITORING / "rules").glob("*.yml")))
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_rules_pass_their_promtool_tests():
    tests = sorted(str(p) for p in (MONITORING / "tests").glob("*.test.yml"))
    done = promtool("test", "rules", *tests)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_every_alert_has_a_promtool_test():
    import yaml

    rules = yaml.safe_load((MONITORING / "rules" / "fleet.rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = set()
    for path in (MONITORING / "tests").glob("*.test.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            tested |= {case["alertname"] for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts - tested == set()


@needs_promtool
def test_the_fleet_metrics_are_valid_exposition_text():
    text = fleet_metrics(512, [OutOfService("gpu-012-01", 1764400000.0, 'gpu_ecc_errors: GPU 3 "x"')],
                         {"gpu-012-01": "reset_gpu"})
    done = promtool("check", "metrics", stdin=text)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'fleet_node_out_of_service_since_timestamp_seconds{node="gpu-012-01",cause="gpu_ecc_errors"}' in text
