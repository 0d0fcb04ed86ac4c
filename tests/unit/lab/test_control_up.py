"""`lab up` of a lab that already runs its site, unchanged, answers from the last full up's stamp."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import control


@pytest.fixture
def serving() -> Iterator[int]:
    """A port that accepts connections (a running service's ready check)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _lab(tmp_path: Path, port: int, *, pid: int | None = None) -> tuple[Path, Path]:
    """A site tree and a lab directory as a full `up` leaves them: pid files, faults, the stamp."""
    site_dir, lab_dir = tmp_path / "site", tmp_path / "lab"
    (site_dir / "racks").mkdir(parents=True)
    site_file = site_dir / "site.yml"
    site_file.write_text("site: t\n", encoding="utf-8")
    (site_dir / "racks" / "r1.yml").write_text("nodes: []\n", encoding="utf-8")
    (lab_dir / "pids").mkdir(parents=True)
    (lab_dir / "pids" / "maas.pid").write_text(str(pid or os.getpid()), encoding="utf-8")
    (lab_dir / "faults.json").write_text("{}", encoding="utf-8")
    files = control._site_files(site_file.resolve(), lab_dir.resolve())
    stamp = {"site": str(site_file.resolve()), "files": files, "image": False,
             "services": [{"name": "maas", "url": None, "port": port, "host": "127.0.0.1"}]}
    (lab_dir / control.UP_STAMP).write_text(json.dumps(stamp), encoding="utf-8")
    return site_file.resolve(), lab_dir.resolve()


def test_an_unchanged_running_site_is_answered_from_the_stamp(tmp_path: Path, serving: int) -> None:
    site_file, lab_dir = _lab(tmp_path, serving)
    found = control.up_unchanged(site_file, lab_dir)
    assert found == [control.ServiceStatus("maas", os.getpid(), True, True, "serving")]


def test_an_edited_or_added_site_file_needs_the_full_up(tmp_path: Path, serving: int) -> None:
    site_file, lab_dir = _lab(tmp_path, serving)
    rack = site_file.parent / "racks" / "r1.yml"
    rack.write_text("nodes: [gpu-001-01]\n", encoding="utf-8")
    assert control.up_unchanged(site_file, lab_dir) is None
    site_file, lab_dir = _lab(tmp_path / "again", serving)
    (site_file.parent / "racks" / "r2.yml").write_text("nodes: []\n", encoding="utf-8")
    assert control.up_unchanged(site_file, lab_dir) is None


def test_the_labs_own_files_beside_the_site_do_not_count(tmp_path: Path, serving: int) -> None:
    site_file, lab_dir = _lab(tmp_path, serving)
    hidden = site_file.parent / ".lab"
    hidden.mkdir()
    (hidden / "state.yml").write_text("changes: all the time\n", encoding="utf-8")
    assert control.up_unchanged(site_file, lab_dir) is not None


def test_a_stopped_or_silent_service_another_site_or_missing_faults_need_the_full_up(
        tmp_path: Path, serving: int) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    site_file, lab_dir = _lab(tmp_path / "dead", serving, pid=dead.pid)
    assert control.up_unchanged(site_file, lab_dir) is None
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        silent = closed.getsockname()[1]
    site_file, lab_dir = _lab(tmp_path / "silent", silent)
    assert control.up_unchanged(site_file, lab_dir) is None
    site_file, lab_dir = _lab(tmp_path / "other", serving)
    assert control.up_unchanged(site_file.with_name("other.yml"), lab_dir) is None
    (lab_dir / "faults.json").unlink()
    assert control.up_unchanged(site_file, lab_dir) is None
    site_file, lab_dir = _lab(tmp_path / "nostamp", serving)
    (lab_dir / control.UP_STAMP).unlink()
    assert control.up_unchanged(site_file, lab_dir) is None


def test_a_touched_file_of_the_same_size_still_counts(tmp_path: Path, serving: int) -> None:
    site_file, lab_dir = _lab(tmp_path, serving)
    time.sleep(0.01)
    os.utime(site_file, ns=(time.time_ns(), time.time_ns()))
    assert control.up_unchanged(site_file, lab_dir) is None
