"""The background runs' CPU groups: every process of a run joins its cgroup before it starts anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.molecule.runner import JOIN_AND_EXEC, CpuGroup


def hierarchies(root: Path) -> Path:
    for name in ("cpu", "cpuacct"):
        (root / name).mkdir()
    return root


def test_a_group_is_made_in_both_hierarchies_with_its_shares(tmp_path: Path) -> None:
    group = CpuGroup("fleet-molecule-x", 128, hierarchies(tmp_path))
    procs = group.create()
    assert procs == [tmp_path / "cpu/fleet-molecule-x/cgroup.procs", tmp_path / "cpuacct/fleet-molecule-x/cgroup.procs"]
    assert (tmp_path / "cpu/fleet-molecule-x/cpu.shares").read_text(encoding="utf-8") == "128"
    (tmp_path / "cpuacct/fleet-molecule-x/cpuacct.usage").write_text("1500000000\n", encoding="utf-8")
    assert group.cpu_s() == 1.5


def test_without_the_hierarchies_there_is_no_group_and_nothing_is_left(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()  # cpuacct missing: the group is given up whole
    group = CpuGroup("fleet-molecule-x", 128, tmp_path)
    assert group.create() == []
    assert list(tmp_path.rglob("*")) == [tmp_path / "cpu"]
    assert group.cpu_s() is None


def test_the_run_joins_its_groups_as_the_process_that_becomes_the_command(tmp_path: Path) -> None:
    procs = [tmp_path / "a.procs", tmp_path / "b.procs"]
    done = subprocess.run(["sh", "-c", JOIN_AND_EXEC, "sh", "sh", "-c", "echo $$"], capture_output=True, text=True,
                          env={**os.environ, "FLEET_MOLECULE_CGROUPS": " ".join(map(str, procs))}, check=True)
    assert [p.read_text(encoding="utf-8").strip() for p in procs] == [done.stdout.strip()] * 2


def test_a_run_without_groups_still_runs_its_command() -> None:
    done = subprocess.run(["sh", "-c", JOIN_AND_EXEC, "sh", "echo", "ran"], capture_output=True, text=True,
                          env={**os.environ, "FLEET_MOLECULE_CGROUPS": ""}, check=True)
    assert done.stdout == "ran\n"


def test_a_group_still_in_use_is_kept_quietly_and_removed_once_it_is_not(tmp_path: Path) -> None:
    group = CpuGroup("fleet-molecule-x", 128, hierarchies(tmp_path))
    group.create()
    group.remove()  # cpu.shares here stands for a process still in the group
    assert group.dirs[0].is_dir() and not group.dirs[1].exists()
    (group.dirs[0] / "cpu.shares").unlink()
    group.remove()
    assert not group.dirs[0].exists()
