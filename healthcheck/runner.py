"""Gather every reading (concurrently where it shells out), then run the pure checks."""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from healthcheck import ib
from healthcheck.config import Config
from healthcheck.gpu import gather_gpus
from healthcheck.gpu_checks import GPU_CHECKS
from healthcheck.kernlog import DmesgBaselineCheck, Learning, gather_kernel_log, load_baseline
from healthcheck.model import Check, Result, Verdict, node_verdict
from healthcheck.probe import Missing
from healthcheck.readings import Readings
from healthcheck.system import (
    DiskCheck,
    DockerCheck,
    EthernetCheck,
    FabricManagerCheck,
    HungProcessCheck,
    ModulesCheck,
    OsPinsCheck,
    SwapCheck,
    gather_disks,
    gather_docker,
    gather_fabric_manager,
    gather_modules,
    gather_net,
    gather_os,
    gather_processes,
    gather_swaps,
    nvswitch_present,
)
from healthcheck.xid import SxidCheck, XidCheck

log = logging.getLogger("healthcheck")


def all_checks() -> list[Check]:
    """Every check, in report order."""
    return [
        *(make() for make in GPU_CHECKS),
        XidCheck(),
        SxidCheck(),
        FabricManagerCheck(),
        ModulesCheck(),
        ib.IbPortsCheck(),
        ib.IbCountersCheck(),
        ib.IbPcieBandwidthCheck(),
        EthernetCheck(),
        DiskCheck(),
        SwapCheck(),
        DockerCheck(),
        OsPinsCheck(),
        HungProcessCheck(),
        DmesgBaselineCheck(),
    ]


def gather(config: Config, state_name: str = "", baseline: frozenset[str] | Learning | Missing | None = None
           ) -> Readings:
    """Take every reading; slow ones (NVML/nvidia-smi, dmesg, docker, systemctl) run in parallel.

    `state_name` picks whose IB counter state to compare against (see healthcheck.ib); `baseline`, when
    given, is the dmesg baseline to judge against instead of the configured file (the fleet sweep hands
    the site's current one over, see `--dmesg-baseline -`).
    """
    src = config.sources
    present = nvswitch_present(config)
    docker_needed = config.docker.required and "docker" not in config.disabled_checks
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="gather") as pool:
        gpus = pool.submit(gather_gpus, src.use_nvml, src.nvidia_smi, src.command_timeout_s)
        kernel_log = pool.submit(gather_kernel_log, config)
        docker = pool.submit(gather_docker, config) if docker_needed else None
        fabric = pool.submit(gather_fabric_manager, config) if present else None
        ib_hcas = pool.submit(ib.gather_ib, src.sysfs_root)
        processes = pool.submit(gather_processes, src.proc_root, config.processes.patterns)
        return Readings(
            gpus=gpus.result(),
            kernel_log=kernel_log.result(),
            modules=gather_modules(src.proc_root, src.modules_file),
            ib=ib_hcas.result(),
            ib_previous=ib.load_counter_state(src.state_dir, state_name),
            net=gather_net(src.sysfs_root, list(config.ethernet)),
            disks=gather_disks(src.proc_root, config.disk.mounts),
            swaps=gather_swaps(src.proc_root),
            docker=docker.result() if docker else Missing("not gathered (docker not required)"),
            nvswitch_present=present,
            fabric_manager=fabric.result() if fabric else Missing("no NVSwitch"),
            os=gather_os(config),
            processes=processes.result(),
            dmesg_baseline=load_baseline(Path(config.dmesg.baseline)) if baseline is None else baseline,
        )


def evaluate(readings: Readings, config: Config, checks: list[Check] | None = None) -> list[Result]:
    """Run each enabled check; a check that raises is UNKNOWN with the error, never a crash."""
    results = []
    for check in checks if checks is not None else all_checks():
        if check.name in config.disabled_checks:
            continue
        try:
            results.append(check.evaluate(readings, config))
        except Exception as err:  # one broken check must not hide the verdicts of the others
            log.exception("check %s failed", check.name)
            results.append(Result(check.name, Verdict.UNKNOWN, f"check crashed: {type(err).__name__}: {err}", {}))
    return results


@dataclass(frozen=True)
class Report:
    node: str
    verdict: Verdict
    results: tuple[Result, ...]
    severities: dict[str, Verdict]
    started_at: float
    duration_s: float
    gpu_source: str


def run_checks(config: Config, *, save_state: bool = True, state_name: str = "",
               baseline: frozenset[str] | Learning | Missing | None = None) -> Report:
    started = time.time()
    node = config.node.hostname or socket.gethostname()
    readings = gather(config, state_name, baseline)
    checks = all_checks()
    results = evaluate(readings, config, checks)
    if save_state and isinstance(readings.ib, tuple) and readings.ib:
        try:
            ib.save_counter_state(config.sources.state_dir, ib.counter_snapshot(readings.ib, config.ib.counters),
                                  state_name)
        except OSError as err:
            log.warning("node %s: cannot save IB counter state in %s: %s", node, config.sources.state_dir, err)
    source = "none" if isinstance(readings.gpus, Missing) else readings.gpus.source
    return Report(
        node,
        node_verdict(results),
        tuple(results),
        {c.name: c.severity for c in checks},
        started,
        round(time.time() - started, 3),
        source,
    )
