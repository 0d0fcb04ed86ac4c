"""Lab host hardware: the fixture set follows the node's faults, fault sets are complete nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import faults as lab_faults
from lab.faultfile import FaultFile
from lab.hosts import hardware
from lab.settings import load_lab_site

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({}, "healthy"),
        ({"bmc_5xx": 1.0}, "healthy"),
        ({"gpu_sick": 1.0}, "sick-gpu"),
        ({"ib_link_down": 1.0}, "link-down"),
        ({"dmesg_bad": 1.0}, "bad-dmesg"),
        ({"dmesg_bad": 1.0, "gpu_sick": 1.0}, "sick-gpu"),
    ],
)
def test_set_follows_the_faults(faults: dict, expected: str) -> None:
    assert hardware.choose_set(faults) == expected


def test_install_materialises_every_set_and_reports_the_site_driver(tmp_path: Path) -> None:
    site = load_lab_site(REPO / "inventory" / "lab" / "site.yml")
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    lab_faults.write(lab_dir, {"gpu-012-03": {"ib_link_down": 1.0}})
    chosen = hardware.install(tmp_path / "root", site, "gpu-012-03", lab_dir)
    base = tmp_path / "root" / hardware.TARGET
    assert chosen == "link-down"
    assert (base / "current").resolve() == (base / "link-down").resolve()
    for name in ("healthy", "sick-gpu", "link-down", "bad-dmesg"):
        xml = (base / name / "nvidia-smi-q.xml").read_text()
        assert f"<driver_version>{site.pins['nvidia_driver']}</driver_version>" in xml
        assert (base / name / "sysfs" / "class" / "infiniband" / "mlx5_0").is_dir()
        assert not (base / name / "dmesg-baseline.json").exists()  # day one: the control plane brings it
    state = (base / "link-down" / "sysfs" / "class" / "infiniband" / "mlx5_3" / "ports" / "1" / "state")
    assert "DOWN" in state.read_text()
    lab_faults.write(lab_dir, {})
    assert hardware.select(tmp_path / "root", "gpu-012-03", lab_dir) == "healthy"


def test_a_reimage_clears_the_sick_gpu_and_bad_dmesg_faults_but_not_a_down_link(tmp_path):
    from lab import faults

    faults.write(tmp_path, {"a": {"gpu_sick": 1.0, "ib_link_down": 1.0}, "b": {"dmesg_bad": 1.0},
                            "c": {"bmc_5xx": 0.5}})
    assert faults.clear_on_reimage(tmp_path, "a") == ["gpu_sick"]
    assert faults.clear_on_reimage(tmp_path, "b") == ["dmesg_bad"]
    assert faults.clear_on_reimage(tmp_path, "c") == []
    assert FaultFile(tmp_path / faults.FAULTS_FILE).rates("a") == {"ib_link_down": 1.0}  # what the simulators read
    assert "b" not in json.loads((tmp_path / "faults.json").read_text())
