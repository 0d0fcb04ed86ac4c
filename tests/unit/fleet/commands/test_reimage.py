"""reimage: the new generation is taken under the node's lock, and the dry run shows what a reimage would do."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from rich.console import Console

from fleet.commands import main, up
from fleet.errors import LockError
from fleet.state import StateDB

MINIMAL = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "good" / "minimal.yml"


def test_reimage_dry_run_of_a_done_node_shows_the_whole_reimage(tmp_path: Path, capsys) -> None:
    db = StateDB(tmp_path / "state.db")
    db.update("gpu-001-01", stage="validate", status="done")
    db.close()
    code = main(["reimage", "--site", str(MINIMAL), "--state-dir", str(tmp_path), "--dry-run", "gpu-001-01"])
    out = capsys.readouterr().out
    assert code == 0
    from fleet import stages

    assert f"gpu-001-01: {' -> '.join(stages.order(reimage=True))}" in out
    assert stages.order(reimage=True)[0] == "release" and stages.order(reimage=True)[-1] == "validate"
    assert "nothing to do" not in out and "new generation 2" in out


def test_reimage_takes_the_lock_before_it_resets_the_record(tmp_path: Path, monkeypatch, capsys) -> None:
    """A bring-up holding the node: the reimage is refused and the running record is left as it is."""
    bringup = StateDB(tmp_path / "state.db", run_id="bring-up")
    bringup.acquire(["gpu-001-01"], "provision.py --rack 1")
    bringup.update("gpu-001-01", stage="os", status="running", current="configure")
    monkeypatch.setattr("fleet.usage.in_use", lambda site, node: "")
    code = main(["reimage", "--site", str(MINIMAL), "--state-dir", str(tmp_path), "--yes", "gpu-001-01"])
    assert code == 2 and "locked by another run: 'provision.py --rack 1'" in capsys.readouterr().err
    state = bringup.node("gpu-001-01")
    assert (state.stage, state.status, state.generation) == ("os", "running", 1)
    assert "reimage_requested" not in [e.event for e in bringup.entries("gpu-001-01")]


def test_bring_up_runs_prepare_after_the_lock_is_taken_and_before_any_stage(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []

    def prepare(db: StateDB) -> None:
        with pytest.raises(LockError):
            StateDB(tmp_path / "state.db", run_id="other").acquire(["gpu-001-01"], "other")
        seen.append("prepared")

    monkeypatch.setattr(up, "_run", lambda *a, **k: seen.append("ran") or 0)
    monkeypatch.setattr(up.stages, "build", NoStages)
    monkeypatch.setattr(up.preflight, "check", lambda site, nodes: None)  # no MAAS here
    args = argparse.Namespace(dry_run=False, retry_quarantined=False, verbose=False, state_dir=tmp_path, fault=[],
                              bmc_requests=1, maas_deploys=1, erase=False, insecure_bmc=False, until="validate")
    from fleet.site import load_site

    site = load_site(MINIMAL)
    assert up.bring_up(args, site, [site.nodes["gpu-001-01"]], Console(), prepare=prepare) == 0
    assert seen == ["prepared", "ran"]


class NoStages:
    """Stands in for the stages.build context manager: no clients, no stages."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return []

    def __exit__(self, *exc) -> None:
        return None
