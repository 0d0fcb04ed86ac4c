"""Build readings for check tests: real captures plus one changed field at a time."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from healthcheck.config import Config, load_config
from healthcheck.gpu import GpuSnapshot, parse_nvidia_smi_xml, read_nvml
from healthcheck.probe import Missing
from healthcheck.readings import Readings
from tests.unit.healthcheck.nvml_replay import NvmlReplay

REPO = Path(__file__).resolve().parents[3]
DEVICE = REPO / "tests" / "fixtures" / "device-h200"
FAULTS = DEVICE / "faults"
LAB = REPO / "tests" / "fixtures" / "lab-node"


def device_config(**changes: Any) -> Config:
    config = load_config(DEVICE / "config.json")
    return dataclasses.replace(config, **changes) if changes else config


def device_config_with(section: str, **changes: Any) -> Config:
    """The device config with fields of one section (gpu, ib, ...) changed."""
    config = device_config()
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **changes)})


def device_xml(name: str = "") -> GpuSnapshot:
    path = FAULTS / f"nvidia-smi-q-{name}.xml" if name else DEVICE / "nvidia-smi-q.xml"
    return parse_nvidia_smi_xml(path.read_text(), (DEVICE / "nvidia-smi-nvlink-s.txt").read_text())


def device_nvml(name: str = "") -> GpuSnapshot:
    return read_nvml(NvmlReplay(FAULTS / f"nvml-{name}.json" if name else DEVICE / "nvml.json"))


def device_dmesg(name: str = "") -> tuple[str, ...]:
    path = FAULTS / f"dmesg-{name}.txt" if name else DEVICE / "dmesg.txt"
    return tuple(path.read_text().splitlines())


def readings(**changes: Any) -> Readings:
    """Readings of the healthy device H200 capture, with ``changes`` applied."""
    base = Readings(
        gpus=device_nvml(),
        kernel_log=device_dmesg(),
        modules=frozenset({"nvidia", "nvidia_uvm"}),
        ib=(),
        ib_previous=None,
        net={},
        disks=(),
        swaps=(),
        docker=Missing("not gathered"),
        nvswitch_present=False,
        fabric_manager=Missing("no NVSwitch"),
        os=Missing("not gathered"),
        processes=(),
        dmesg_baseline=frozenset(),
    )
    return dataclasses.replace(base, **changes)
