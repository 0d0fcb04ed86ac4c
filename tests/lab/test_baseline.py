"""Day one on real lab hosts: the first rack learns the site's dmesg baseline; `health baseline` relearns it.

A fresh lab site has no baseline, as a real site on its first day (the lab ships none). Three nodes of
rack 1 are brought up to configure, which leaves the learning placeholder in the state dir and has
the healthcheck_agent role install it on each host. One host then logs a line of its own, and the
run goes on to validate: every node passes with `dmesg_baseline` SKIPPED "learning" while the
baseline is learned from the three hosts' kernel logs (read by the nodes' own checks, over SSH), the
one-node line is not learned, and the next sweep judges every node against the baseline. Then each
host logs a new line, and `health baseline` shows it added (dry run: nothing saved; then saved).
Everything is asserted from the state dir's file, the hosts' own files and the nodes' own reports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.baseline import baseline_file
from healthcheck.kernlog import Learning, load_baseline, template, templates_of
from lab.hosts import nspawn
from tests.lab.conftest import REPO, LabSite

pytestmark = [
    pytest.mark.lab, pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (nspawn, overlayfs, bridge)"),
]

NODES = ("gpu-001-01", "gpu-001-02", "gpu-001-03")
ODD = NODES[0]
FIXTURE_DMESG = REPO / "tests" / "fixtures" / "lab-node" / "healthy" / "dmesg.txt"
ODD_LINE = "[ 4242.424242] fleet-lab: a line only this node logs, 0xdeadbeef"
NEW_LINE = "[ 5151.515151] fleet-lab: a line every node logs after the baseline, port 7"


def host_root(lab: LabSite, node: str) -> Path:
    return nspawn.hosts_dir(lab.lab_dir) / node / "merged"


def log_line(lab: LabSite, node: str, line: str) -> None:
    """The host's kernel logs a line: appended to the kernel log its checks read (the lab's hardware set)."""
    with open(host_root(lab, node) / "opt/fleet-lab/hardware/current/dmesg.txt", "a", encoding="utf-8") as log:
        log.write(line + "\n")


def dmesg_checks(lab: LabSite) -> dict[str, tuple[str, str]]:
    sweep = lab.cli("health", "--nodes", ",".join(NODES), "--json")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    return {node["node"]: next((c["verdict"], c["summary"]) for c in node["report"]["checks"]
                               if c["name"] == "dmesg_baseline") for node in json.loads(sweep.stdout)["nodes"]}


def test_the_first_rack_learns_the_baseline_and_health_baseline_relearns_it(
        make_lab_site: Callable[..., LabSite]) -> None:
    lab = make_lab_site(racks=1, max_hosts=len(NODES))
    configured = lab.cli("--nodes", ",".join(NODES), "--until", "configure", "--json", timeout_s=900)
    assert configured.returncode == 0, configured.stderr[-3000:]
    placeholder = baseline_file(lab.state_dir)
    assert load_baseline(placeholder) == Learning(0, 3)
    for node in NODES:  # the role installed the state dir's file on every host
        installed = host_root(lab, node) / "etc/healthcheck/dmesg-baseline.json"
        assert installed.read_text() == placeholder.read_text()
        assert (installed.stat().st_mode & 0o777, installed.stat().st_uid) == (0o644, 0)

    log_line(lab, ODD, ODD_LINE)
    validated = lab.cli("--nodes", ",".join(NODES), "--json", timeout_s=600)
    assert validated.returncode == 0, validated.stderr[-3000:]
    rows = {row["hostname"]: row for row in json.loads(validated.stdout)["nodes"]}
    assert {(r["status"], r["stage"]) for r in rows.values()} == {("done", "validate")}, rows

    contributed = {node: [e.detail for e in lab.journal(node) if e.event == "dmesg_baseline_contributed"]
                   for node in NODES}
    assert sorted(d[0]["have"] for d in contributed.values()) == [1, 2, 3]
    learner = next(node for node, d in contributed.items() if d[0]["have"] == 3)
    for node in NODES:
        [passed] = [e.detail["detail"] for e in lab.journal(node) if e.event == "stage:ok" and e.stage == "validate"]
        if node == learner:  # the node completing the baseline is judged against it before it passes
            assert "learning" not in passed, passed
        else:
            assert "dmesg_baseline SKIPPED (learning:" in passed, passed

    saved = json.loads(placeholder.read_text())
    fixture = templates_of(FIXTURE_DMESG.read_text().splitlines())
    assert saved["learned_from"] == list(NODES) and set(saved["templates"]) == fixture
    assert template(ODD_LINE) not in saved["templates"]  # seen on one node only: never learned

    checked = dmesg_checks(lab)  # the next sweep checks the nodes validated while it was learning
    assert checked[ODD][0] == "WARNING" and "a line only this node logs" in checked[ODD][1], checked
    assert {checked[n][0] for n in NODES if n != ODD} == {"OK"}, checked

    for node in NODES:
        log_line(lab, node, NEW_LINE)
    dry = lab.cli("health", "baseline", "--json", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    diff = json.loads(dry.stdout)
    assert (diff["added"], diff["removed"], diff["saved"]) == ([template(NEW_LINE)], [], False), diff
    assert json.loads(placeholder.read_text()) == saved  # a dry run saves nothing

    relearned = lab.cli("health", "baseline")
    assert relearned.returncode == 0, relearned.stderr[-3000:]
    assert f"+ {template(NEW_LINE)}" in relearned.stderr and "1 added, 0 removed" in relearned.stderr
    assert template(NEW_LINE) in json.loads(placeholder.read_text())["templates"]
    after = dmesg_checks(lab)
    assert {after[n][0] for n in NODES if n != ODD} == {"OK"}, after
