"""InfiniBand from a sysfs tree, and the host checks, decided from readings."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from healthcheck.ib import (
    IbCountersCheck,
    IbPcieBandwidthCheck,
    IbPortsCheck,
    counter_snapshot,
    gather_ib,
    load_counter_state,
    save_counter_state,
)
from healthcheck.model import Verdict
from healthcheck.probe import Missing
from healthcheck.readings import DiskUsage, DockerState, NetLink, Process
from healthcheck.system import (
    DiskCheck,
    DockerCheck,
    EthernetCheck,
    FabricManagerCheck,
    HungProcessCheck,
    ModulesCheck,
    SwapCheck,
)
from tests.unit.healthcheck.helpers import LAB, device_config, device_config_with, readings


def lab_config(**ib):
    return device_config_with("ib", **{"hca_count": 8, "rate_gbps": 400, **ib})


def test_healthy_lab_tree_has_eight_ndr_ports_active():
    hcas = gather_ib(str(LAB / "healthy" / "sysfs"))
    result = IbPortsCheck().evaluate(readings(ib=hcas), lab_config(firmware_versions=("28.39.1002",)))
    assert result.verdict is Verdict.OK
    assert result.evidence["ports_active"] == 8 and result.evidence["mlx5_0_1_rate_gbps"] == 400


def test_down_link_is_critical_and_names_the_cable():
    hcas = gather_ib(str(LAB / "link-down" / "sysfs"))
    result = IbPortsCheck().evaluate(readings(ib=hcas), lab_config(cabling={"mlx5_3": "leaf-07 port 12"}))
    assert result.verdict is Verdict.CRITICAL
    assert "mlx5_3 port 1 (cabled to leaf-07 port 12): DOWN/Polling" in result.summary
    assert "cable" in result.fix


def test_port_at_lower_rate_is_critical(tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(LAB / "healthy" / "sysfs", root)
    (root / "class/infiniband/mlx5_5/ports/1/rate").write_text("200 Gb/sec (4X HDR)\n")
    result = IbPortsCheck().evaluate(readings(ib=gather_ib(str(root))), lab_config())
    assert result.verdict is Verdict.CRITICAL and "200 Gb/s, expected 400" in result.summary


def test_missing_hcas_are_critical_and_none_expected_is_skipped(tmp_path):
    assert gather_ib(str(tmp_path)) == ()
    assert IbPortsCheck().evaluate(readings(ib=()), lab_config()).verdict is Verdict.CRITICAL
    assert IbPortsCheck().evaluate(readings(ib=()), device_config()).verdict is Verdict.SKIPPED


def test_firmware_off_pin_is_a_warning():
    hcas = gather_ib(str(LAB / "healthy" / "sysfs"))
    result = IbPortsCheck().evaluate(readings(ib=hcas), lab_config(firmware_versions=("28.40.1000",)))
    assert result.verdict is Verdict.WARNING and "28.39.1002" in result.summary


@pytest.mark.parametrize(
    ("counter", "verdict"),
    [("symbol_error", Verdict.WARNING), ("port_rcv_errors", Verdict.WARNING), ("link_downed", Verdict.CRITICAL)],
)
def test_counter_rising_since_last_run_is_flagged(tmp_path, counter, verdict):
    root = tmp_path / "sys"
    shutil.copytree(LAB / "healthy" / "sysfs", root)
    config = lab_config()
    before = counter_snapshot(gather_ib(str(root)), config.ib.counters)
    save_counter_state(str(tmp_path / "state"), before)
    (root / f"class/infiniband/mlx5_2/ports/1/counters/{counter}").write_text("3\n")
    previous = load_counter_state(str(tmp_path / "state"))
    result = IbCountersCheck().evaluate(readings(ib=gather_ib(str(root)), ib_previous=previous), config)
    assert result.verdict is verdict
    assert f"mlx5_2 port 1 {counter} rose by 3" in result.summary


def test_first_run_and_counter_reset_are_not_faults():
    hcas = gather_ib(str(LAB / "healthy" / "sysfs"))
    assert IbCountersCheck().evaluate(readings(ib=hcas), lab_config()).verdict is Verdict.OK
    previous = {"mlx5_0/1/symbol_error": 50}  # counters went down: reboot or reset, a new start
    assert IbCountersCheck().evaluate(readings(ib=hcas, ib_previous=previous), lab_config()).verdict is Verdict.OK


def test_mlx5_limited_pcie_bandwidth_message_is_critical():
    line = (
        "[   25.1] mlx5_core 0000:9a:00.0: 126.024 Gb/s available PCIe bandwidth, limited by 16.0 GT/s PCIe x8 "
        "link at 0000:97:01.0 (capable of 504.112 Gb/s with 32.0 GT/s PCIe x16 link)"
    )
    result = IbPcieBandwidthCheck().evaluate(readings(kernel_log=(line,)), lab_config())
    assert result.verdict is Verdict.CRITICAL and "0000:9a:00.0" in result.summary
    assert IbPcieBandwidthCheck().evaluate(readings(), lab_config()).verdict is Verdict.OK


def test_ethernet_down_is_critical_and_slow_is_warning():
    config = replace(device_config(), ethernet={"eth0": 100000, "eth1": None, "eth2": None})
    net = {"eth0": NetLink("eth0", "up", 25000), "eth1": NetLink("eth1", "down", None)}
    result = EthernetCheck().evaluate(readings(net=net), config)
    messages = [f.message for f in result.findings]
    assert result.verdict is Verdict.CRITICAL
    assert messages == ["eth0 at 25000 Mb/s, expected 100000 Mb/s", "eth1 is down", "eth2 does not exist"]


@pytest.mark.parametrize(("pct", "verdict"), [(50.0, Verdict.OK), (90.0, Verdict.WARNING), (97.0, Verdict.CRITICAL)])
def test_disk_thresholds(pct, verdict):
    disks = (DiskUsage("/", True, pct, 10**12),)
    assert DiskCheck().evaluate(readings(disks=disks), device_config()).verdict is verdict


def test_unmounted_disk_is_critical():
    disks = (DiskUsage("/raid", False, None, None),)
    assert DiskCheck().evaluate(readings(disks=disks), device_config()).verdict is Verdict.CRITICAL


def test_swap_on_is_a_warning():
    assert SwapCheck().evaluate(readings(swaps=("/swap.img",)), device_config()).verdict is Verdict.WARNING
    assert SwapCheck().evaluate(readings(swaps=()), device_config()).verdict is Verdict.OK


def test_docker_without_nvidia_runtime_or_failing_gpu_container_is_critical():
    config = device_config_with("docker", required=True, gpu_container_image="nvcr.io/nvidia/cuda:12.4.1-base")
    plain = DockerState("27.1", ("io.containerd.runc.v2", "runc"), "runc", None)
    assert DockerCheck().evaluate(readings(docker=plain), config).verdict is Verdict.CRITICAL
    ok = DockerState("27.1", ("nvidia", "runc"), "runc", "GPU 0: NVIDIA H200 (UUID: GPU-4f8c)\n")
    assert DockerCheck().evaluate(readings(docker=ok), config).verdict is Verdict.OK
    broken = DockerState("27.1", ("nvidia", "runc"), "runc", Missing("docker run exited 125: could not select"))
    assert DockerCheck().evaluate(readings(docker=broken), config).verdict is Verdict.CRITICAL
    down = Missing("docker daemon not answering")
    assert DockerCheck().evaluate(readings(docker=down), config).verdict is Verdict.CRITICAL
    assert DockerCheck().evaluate(readings(docker=down), device_config()).verdict is Verdict.SKIPPED


def test_fabric_manager_checked_only_where_nvswitches_exist():
    config = device_config()
    assert FabricManagerCheck().evaluate(readings(), config).verdict is Verdict.SKIPPED
    failed = readings(nvswitch_present=True, fabric_manager="failed")
    assert FabricManagerCheck().evaluate(failed, config).verdict is Verdict.CRITICAL
    active = readings(nvswitch_present=True, fabric_manager="active")
    assert FabricManagerCheck().evaluate(active, config).verdict is Verdict.OK


def test_nvidia_peermem_not_loaded_is_critical():
    config = replace(device_config(), modules=("nvidia", "nvidia_peermem"))
    result = ModulesCheck().evaluate(readings(modules=frozenset({"nvidia"})), config)
    assert result.verdict is Verdict.CRITICAL and "nvidia_peermem" in result.summary


def test_old_sg_inq_or_fact_gathering_is_a_hung_process_warning():
    procs = (
        Process(4242, "sg_inq", "D", 3600.0, "sg_inq /dev/sdb"),
        Process(4343, "python3", "S", 5.0, "python3 AnsiballZ_setup.py"),
    )
    result = HungProcessCheck().evaluate(readings(processes=procs), device_config())
    assert result.verdict is Verdict.WARNING
    assert [f.message.split()[1] for f in result.findings] == ["4242"]
    assert "D state" in result.fix
