"""The site's scheduler, as the reimage in-use probe and the watch loop ask it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleet.site import load_site
from fleet.site.watch import WorkloadSettings
from fleet.workload.base import NoScheduler
from fleet.workload.site import for_site, scheduler_in_use

MINIMAL = Path(__file__).resolve().parents[3] / "fixtures" / "inventories" / "good" / "minimal.yml"


def fake_squeue(tmp_path: Path, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "squeue"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return bin_dir


def test_a_site_without_a_scheduler_has_none_and_never_says_in_use():
    site = load_site(MINIMAL)
    assert isinstance(for_site(site), NoScheduler)
    assert scheduler_in_use(site, "gpu-001-01") == ""


def test_slurm_jobs_on_the_node_make_it_in_use_and_an_unreachable_controller_counts_as_in_use(tmp_path):
    site = load_site(MINIMAL)
    busy = dataclasses.replace(site, workload=WorkloadSettings(
        "slurm", slurm_bin_dir=fake_squeue(tmp_path / "a", "echo '17|alice|RUNNING|train'")))
    assert scheduler_in_use(busy, "gpu-001-01") == "slurm job(s) running: 17 (alice)"
    down = dataclasses.replace(site, workload=WorkloadSettings("slurm", slurm_bin_dir=fake_squeue(
        tmp_path / "b", "echo 'squeue: error: Unable to contact slurm controller (connect failure)' >&2; exit 1")))
    assert "Unable to contact slurm controller" in scheduler_in_use(down, "gpu-001-01")
    assert "unknown counts as in use" in scheduler_in_use(down, "gpu-001-01")
