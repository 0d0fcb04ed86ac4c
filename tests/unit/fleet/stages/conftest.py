"""What the stage tests share: a one-rack generated site and the run's journal, both in `tmp_path`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.site import Site, load_site
from fleet.state import StateDB
from lab.sitegen import SiteShape, write_site


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    """Rack 1 (gpu-001-01..04); its secrets resolve from an empty lab dir of this test's own."""
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    monkeypatch.setenv("FLEET_LAB_DIR", str(lab_dir))
    return load_site(write_site(tmp_path / "site", SiteShape(racks=1)))


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    """The state DB a stage journals into and a test reads the journal back from."""
    return StateDB(tmp_path / "state.db")
