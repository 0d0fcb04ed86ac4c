"""A node's health verdict becomes the validate stage's result."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet import validate
from fleet.baseline import baseline_file, contributions, ensure
from fleet.health import UNREACHABLE, CheckOutcome, NodeHealth
from fleet.site import load_site
from fleet.state import StateDB
from fleet.validate import verdict_result
from fleet.workflow import NodeContext
from healthcheck.kernlog import Learning, parse_baseline

ECC = CheckOutcome("gpu_ecc", "CRITICAL", "GPU 3: 2 volatile uncorrectable ECC errors",
                   "datacenter tech: drain the node and open an RMA for GPU 3")
TEMP = CheckOutcome("gpu_thermal", "WARNING", "GPU 1 at 84 C", "check the airflow of the rack")


@pytest.mark.parametrize(
    ("health", "ok", "retryable", "quarantine"),
    [
        (NodeHealth("n", "OK"), True, True, False),
        (NodeHealth("n", "WARNING", (TEMP,)), True, True, False),
        (NodeHealth("n", "CRITICAL", (ECC, TEMP)), False, True, True),
        (NodeHealth("n", UNREACHABLE, error="ssh: connection refused"), False, True, False),
        (NodeHealth("n", "UNKNOWN", error="healthcheck exited 3"), False, False, False),
    ],
)
def test_verdicts_map_to_pass_retry_or_quarantine(health: NodeHealth, ok: bool, retryable: bool,
                                                  quarantine: bool) -> None:
    result = verdict_result(health)
    assert (result.ok, result.retryable, result.quarantine) == (ok, retryable, quarantine)


def test_critical_result_names_the_check_and_who_fixes_it() -> None:
    result = verdict_result(NodeHealth("n", "CRITICAL", (ECC,)))
    assert result.detail == "CRITICAL: gpu_ecc: GPU 3: 2 volatile uncorrectable ECC errors"
    assert result.evidence["problems"][0]["fix"].startswith("datacenter tech")


def test_warnings_pass_but_are_kept() -> None:
    result = verdict_result(NodeHealth("n", "WARNING", (TEMP,)))
    assert result.detail == "healthy with warnings: gpu_thermal: GPU 1 at 84 C"


# -- day one: the dmesg baseline is learned from the first nodes validated ----------------------------------

COMMON = frozenset({"Linux version #.#.#", "mlx5_core #:#:#.#: firmware version: #.#.#"})


class Nodes:
    """Stands in for the nodes over SSH: each judges its templates against the baseline the sweep hands over,
    as `python3 -m healthcheck --dmesg-baseline -` does."""

    def __init__(self, templates: dict[str, frozenset[str]]) -> None:
        self.templates = templates
        self.sweeps: list[str] = []

    def sweep(self, names, _target, *, baseline=None, **_kwargs):
        results = []
        for name in names:
            self.sweeps.append(name)
            known = parse_baseline(baseline, "stdin") if baseline is not None else None
            if isinstance(known, Learning):
                dmesg = CheckOutcome("dmesg_baseline", "SKIPPED", known.reason, "")
            elif isinstance(known, frozenset) and self.templates[name] <= known:
                dmesg = CheckOutcome("dmesg_baseline", "OK", "all lines match the baseline", "")
            elif isinstance(known, frozenset):
                dmesg = CheckOutcome("dmesg_baseline", "WARNING", "line 3 never seen on known-good nodes", "")
            else:
                dmesg = CheckOutcome("dmesg_baseline", "UNKNOWN", "no dmesg baseline", "learn one")
            checks = (CheckOutcome("gpu_ecc_errors", "OK", "no errors", ""), dmesg)
            worst = next((v for v in ("UNKNOWN", "WARNING") if dmesg.verdict == v), "OK")
            results.append(NodeHealth(name, worst, checks))
        return results

    def fetch(self, names, _target, **_kwargs):
        return {name: self.templates[name] for name in names}, {}


@pytest.fixture
def day_one(tmp_path, monkeypatch):
    site = load_site(Path(__file__).resolve().parents[2] / "fixtures" / "inventories" / "good" / "minimal.yml")
    site = dataclasses.replace(site, state_dir=tmp_path)  # as the CLI resolves it
    template = site.nodes["gpu-001-01"]
    names = ["n1", "n2", "n3", "n4"]
    nodes = Nodes({name: COMMON | ({"odd line only on n1"} if name == "n1" else set()) for name in names})
    monkeypatch.setattr(validate, "sweep", nodes.sweep)
    monkeypatch.setattr(validate, "fetch_templates", nodes.fetch)
    db = StateDB(tmp_path / "state.db")
    stage = validate.ValidateStage(site)

    def run(name: str):
        node = dataclasses.replace(template, hostname=name)
        return stage.run(node, NodeContext(node, db, 1, "validate"))

    yield run, nodes, tmp_path, db
    db.close()


def test_the_first_nodes_pass_while_learning_and_the_one_completing_it_is_checked_against_it(day_one) -> None:
    run, nodes, state_dir, db = day_one
    ensure(state_dir, 3)  # what the configure stage does before the role installs it
    first, second = run("n1"), run("n2")
    assert first.ok and second.ok and "dmesg_baseline SKIPPED (learning:" in first.detail
    assert "(1 so far)" in first.detail and "(2 so far)" in second.detail
    third = run("n3")
    assert third.ok and third.detail == "healthy", third.detail  # judged against the new baseline, clean
    assert nodes.sweeps == ["n1", "n2", "n3", "n3"]
    saved = json.loads(baseline_file(state_dir).read_text())
    assert set(saved["templates"]) == COMMON and saved["learned_from"] == ["n1", "n2", "n3"]
    learned = [e.detail for e in db.entries("n3") if e.event == "dmesg_baseline_learned"]
    assert learned and learned[0]["learned_from"] == ["n1", "n2", "n3"]
    assert [e.event for e in db.entries("n1")] == ["dmesg_baseline_contributed"]
    again = run("n1")  # the next sweep of a node validated while learning: its own odd line is news
    assert again.ok and again.detail.startswith("healthy with warnings: dmesg_baseline")


def test_a_node_that_is_not_healthy_otherwise_never_contributes(day_one, monkeypatch) -> None:
    run, nodes, state_dir, _db = day_one
    ensure(state_dir, 3)
    healthy = nodes.sweep

    def warm(names, target, **kwargs):
        [health] = healthy(names, target, **kwargs)
        return [dataclasses.replace(health, verdict="WARNING", checks=(
            CheckOutcome("gpu_thermal", "WARNING", "GPU 1 at 84 C", "airflow"), *health.checks[1:]))]

    monkeypatch.setattr(validate, "sweep", warm)
    result = run("n2")
    assert result.ok and "dmesg_baseline SKIPPED (learning:" in result.detail
    assert contributions(state_dir) == {}


def test_concurrent_validations_learn_the_baseline_once(day_one) -> None:
    run, _nodes, state_dir, db = day_one
    ensure(state_dir, 3)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, ["n1", "n2", "n3", "n4"]))
    assert all(r.ok for r in results)
    assert len(contributions(state_dir)) == 3
    learned = [e for name in ("n1", "n2", "n3", "n4") for e in db.entries(name) if e.event == "dmesg_baseline_learned"]
    assert len(learned) == 1


def test_ssh_logs_in_as_the_site_user_through_its_bastion() -> None:
    from dataclasses import replace
    from pathlib import Path

    from fleet import hostkeys, ssh
    from fleet.site import load_site
    from fleet.site.control import SshSettings

    site = load_site("tests/fixtures/inventories/good/minimal.yml")
    known = hostkeys.check_options(hostkeys.known_hosts_file(site))  # the nodes' keys, strictly, first
    assert ssh.options(site) == (*known, "-l", "ubuntu")
    jumped = replace(site, ssh=SshSettings(Path("/etc/fleet/ssh_config"), "ops", "jump@bastion.example:2222"))
    assert ssh.options(jumped) == (*known, "-F", "/etc/fleet/ssh_config", "-l", "ops", "-J",
                                   "jump@bastion.example:2222")
