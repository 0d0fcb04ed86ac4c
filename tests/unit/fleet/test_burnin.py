"""provision.py burnin: the node's burn-in report over SSH becomes results, journal entries and quarantines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet import burnin, commands
from fleet.errors import InventoryError
from fleet.health import STARTED_MARKER
from fleet.site import load_site
from fleet.state import StateDB

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MINIMAL = FIXTURES / "inventories" / "good" / "minimal.yml"
DEVICE = FIXTURES / "device-h200-burnin"


def report(name: str) -> str:
    return (DEVICE / name / "report.json").read_text()


def runner_for(outputs: dict[str, tuple[int, str]], seen: list[list[str]]):
    """A stand-in for subprocess.run: the node's answer by the address ssh was pointed at."""
    site = load_site(MINIMAL)
    by_address = {n.address: n.hostname for n in site.nodes.values()}

    def run(argv, **kwargs):
        seen.append(argv)
        node = by_address[argv[argv.index("--") - 1]]
        rc, out = outputs[node]
        return subprocess.CompletedProcess(argv, rc, f"{STARTED_MARKER}\n{out}", "ssh: connect refused" if rc == 255
                                           else "")

    return run


def test_the_node_runs_the_burnin_module_with_the_site_settings(tmp_path):
    site = load_site(MINIMAL)
    seen: list[list[str]] = []
    results = burnin.burnin_sweep(site, list(site.nodes.values()), duration_s=120,
                                  runner=runner_for({"gpu-001-01": (0, report("clean")),
                                                     "gpu-001-02": (2, report("plant-corrupt-mantissa"))}, seen))
    remote = seen[0][seen[0].index("--") + 1:]
    assert remote[:3] == ["echo", STARTED_MARKER, ";"]
    assert remote[3:9] == ["python3", "-m", "healthcheck.burnin", "run", "--duration", "120"]
    assert "--textfile" in remote and "/var/lib/prometheus/node-exporter" in remote
    assert [r.verdict for r in results] == ["OK", "CRITICAL"]


def test_a_wrong_product_quarantines_with_gpu_and_element_and_the_report_is_kept(tmp_path):
    site = load_site(MINIMAL)
    seen: list[list[str]] = []
    results = burnin.burnin_sweep(site, list(site.nodes.values()),
                                  runner=runner_for({"gpu-001-01": (255, ""),
                                                     "gpu-001-02": (2, report("plant-corrupt-exponent"))}, seen))
    db = StateDB(tmp_path / "state.db")
    quarantined = burnin.record(db, results, tmp_path / "burnin", quarantine=True)
    assert quarantined == ["gpu-001-02"]  # the unreachable node is reported, never quarantined
    state = db.node("gpu-001-02")
    assert state.status == "quarantined" and state.current == "burnin"
    assert "burnin_gpu_math" in state.last_error and "[5461,3276]" in state.last_error
    events = [(e.stage, e.event) for e in db.entries("gpu-001-02")]
    assert events == [("burnin", "result"), ("burnin", "quarantine")]
    [finding] = db.entries("gpu-001-02")[1].detail["findings"]
    assert finding["check"] == "burnin_gpu_math" and "check freivalds" in finding["message"]
    assert db.node("gpu-001-01").status != "quarantined"
    assert json.loads((tmp_path / "burnin" / "gpu-001-02.json").read_text())["verdict"] == "CRITICAL"
    assert not (tmp_path / "burnin" / "gpu-001-01.json").exists()


def test_stage_results_from_burnin_reports():
    site = load_site(MINIMAL)
    seen: list[list[str]] = []
    outputs = {"gpu-001-01": (2, report("plant-slow")), "gpu-001-02": (3, "")}
    bad, no_torch = burnin.burnin_sweep(site, list(site.nodes.values()), runner=runner_for(outputs, seen))
    result = burnin.stage_result(bad)
    assert not result.ok and result.quarantine
    assert result.detail.startswith("burn-in CRITICAL: burnin_gpu_rate: GPU 0")
    assert result.evidence["figures"]["gpu0"]["tflops"] < 600
    assert not burnin.stage_result(no_torch).ok and not burnin.stage_result(no_torch).quarantine


def test_the_command_journals_quarantines_and_exits_1(tmp_path, monkeypatch, capsys):
    seen: list[list[str]] = []
    outputs = {"gpu-001-01": (0, report("clean")), "gpu-001-02": (2, report("plant-memory"))}
    real = burnin.burnin_sweep
    monkeypatch.setattr(burnin, "burnin_sweep", lambda site, nodes, **kw: real(site, nodes, **kw,
                                                                               runner=runner_for(outputs, seen)))
    tagged: list[list[str]] = []
    monkeypatch.setattr("fleet.commands.burnin._tag", lambda site, names: tagged.append(names))
    code = commands.main(["burnin", "--site", str(MINIMAL), "--state-dir", str(tmp_path), "--rack", "1",
                          "--duration", "30", "--json"])
    assert code == 1
    body = json.loads(capsys.readouterr().out)
    assert body["verdict"] == "CRITICAL" and body["quarantine"][0]["node"] == "gpu-001-02"
    assert "byte offset 6442549704" in body["quarantine"][0]["reason"]
    assert tagged == [["gpu-001-02"]]
    assert StateDB(tmp_path / "state.db").node("gpu-001-02").status == "quarantined"
    assert "--duration" in seen[0] and "30" in seen[0]


def test_bad_input_exits_2_before_any_node_is_contacted(tmp_path, capsys):
    assert commands.main(["burnin", "--site", str(MINIMAL), "--state-dir", str(tmp_path)]) == 2
    assert "no nodes selected" in capsys.readouterr().err + capsys.readouterr().out
    assert commands.main(["burnin", "--site", str(MINIMAL), "--state-dir", str(tmp_path), "--rack", "1",
                          "--duration", "-5"]) == 2
    assert not (tmp_path / "state.db").exists()


def test_site_burnin_settings_are_checked_with_file_and_key(tmp_path):
    text = MINIMAL.read_text() + "\nburnin:\n  duration_s: -1\n  python: 'my python'\n  tflops_floor: 650\n"
    site_file = tmp_path / "site.yml"
    site_file.write_text(text)
    for extra in MINIMAL.parent.iterdir():
        if extra != MINIMAL and not (tmp_path / extra.name).exists():
            (tmp_path / extra.name).symlink_to(extra)
    with pytest.raises(InventoryError) as err:
        load_site(site_file)
    text_err = str(err.value)
    assert "burnin.duration_s" in text_err and "burnin.python" in text_err
    site_file.write_text(MINIMAL.read_text() + "\nburnin:\n  duration_s: 900\n  tflops_floor: 650\n")
    settings = load_site(site_file).burnin
    assert settings.remote_args()[4:6] == ("--duration", "900") and "--tflops-floor" in settings.remote_args()
