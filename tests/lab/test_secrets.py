"""Secrets, measured: a bring-up to validate and a reimage with every lab credential set, then every
output, report, journal row, state row and ansible-runner artifact is searched for them. None is found.

The secrets are the lab's generated ones (lab_dir/secrets.yml: BMC, MAAS, UFM and switch passwords,
the MAAS API key) plus the forms they travel in (the BMC's HTTP basic token, the MAAS key's secret
part). ansible-runner removes its private data dir at the end of a run, so a watcher copies every
file under this run's `fleet-ansible-<pid>-*` directories while the runs are in progress.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.lab.conftest import LabSite

pytestmark = [pytest.mark.lab, pytest.mark.slow]
NODE = "gpu-003-01"  # rack 3: clear of the addresses other lab tests use


def secret_forms(lab: LabSite) -> dict[str, str]:
    secrets = yaml.safe_load((lab.lab_dir / "secrets.yml").read_text(encoding="utf-8"))
    forms = {name: str(value) for name, value in secrets.items() if value}
    forms["maas_api_key secret part"] = str(secrets["maas_api_key"]).split(":")[-1]
    token = base64.b64encode(f"root:{secrets['bmc_password']}".encode()).decode()
    forms["bmc basic token"] = token
    return forms


class RunnerArtifacts:
    """Copies ansible-runner's private data dirs of the CLI while they exist (they go at the end of a run)."""

    def __init__(self, into: Path) -> None:
        self.into = into
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self.seen: set[str] = set()

    def __enter__(self) -> RunnerArtifacts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _copy(self) -> None:
        root = Path(tempfile.gettempdir())
        while not self._stop.wait(0.2):
            for run_dir in root.glob("fleet-ansible-*"):
                self.seen.add(run_dir.name)
                try:
                    self._copy_tree(run_dir)
                except OSError:
                    continue  # a folder removed while it was walked (Ansible's own temp dirs): the next round

    def _copy_tree(self, run_dir: Path) -> None:
        for path in run_dir.rglob("*"):
            if path.is_file():
                target = self.into / run_dir.name / path.relative_to(run_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copyfile(path, target)
                except OSError:
                    continue  # removed between the listing and the copy


def test_no_secret_reaches_outputs_reports_state_or_runner_artifacts(make_lab_site: Callable[..., LabSite],
                                                                      tmp_path: Path) -> None:
    lab = make_lab_site(racks=3, max_hosts=1)
    texts: dict[str, str] = {}
    artifacts = tmp_path / "artifacts"
    with RunnerArtifacts(artifacts) as watcher:
        up = lab.cli("--nodes", NODE, "-v", "--json-report", str(tmp_path / "up.json"), timeout_s=900)
        texts["bring-up stdout"], texts["bring-up stderr (-v)"] = up.stdout, up.stderr
        assert up.returncode == 0, up.stderr[-3000:]
        again = lab.cli("reimage", NODE, "--yes", "--force", "--until", "os", "-v", "--json-report",
                        str(tmp_path / "reimage.json"), timeout_s=300)
        texts["reimage stdout"], texts["reimage stderr (-v)"] = again.stdout, again.stderr
        assert again.returncode == 0, again.stderr[-3000:]
        status = lab.cli("status", "--json")
        texts["status --json"] = status.stdout
    assert watcher.seen, "no ansible-runner directory was seen: the configure stage did not run"
    for report in ("up.json", "reimage.json"):
        texts[report] = (tmp_path / report).read_text(encoding="utf-8")
    with sqlite3.connect(lab.state_db) as db:
        texts["state.db"] = "\n".join(db.iterdump())
    texts["journal"] = json.dumps([entry.__dict__ for entry in lab.journal()], default=str)
    for path in artifacts.rglob("*"):
        if path.is_file():
            texts[f"artifact {path.relative_to(artifacts)}"] = path.read_text(encoding="utf-8", errors="replace")
    assert any(name.endswith("/command") for name in texts), "ansible-runner's command file was not captured"

    found = [(where, what) for what, value in secret_forms(lab).items() for where, text in texts.items()
             if value in text]
    assert found == []
