"""Bring-up benchmark: wall time over the critical path, Redfish requests per node, us vs. Ansible.

For 1 rack and for 128 racks (512 nodes) it starts a fresh lab whose delays are known exactly: the
racks are new (unknown to MAAS), every BMC power change lands `--power-delay-s` after the request
(lab.redfish's `power_delay_s`), MAAS's commissioning takes its real 300 s and a deployment its
real 600 s, both times the site's time factor (`--deploy-s` / 600). MAAS powers the machines itself
(commissioning and deployment are each a one-time PXE boot and power-on by its Redfish driver, which
does not wait for the change to land), so the slowest node's unavoidable delays are one
commissioning plus one deployment; the critical path is computed from the configuration, never
measured, and

    ratio = wall time of `provision.py --rack 1-N --until os` / (commissioning + deploy duration)

says how much our scheduling, polling and request handling add. BMC requests in flight are the tool's
default (`--bmc-requests 64`: more from one ops host answered no sooner and made the node threads contend);
MAAS deployments at once are the node count (`--maas-deploys N`: the default 128 would deploy 1,280 nodes in
ten rounds); that is printed.
Redfish requests per node are printed twice: ours (the run report's counters) and MAAS's (the lab
BMC front's request log, User-Agent "MAAS").

Then the out-of-band work the tool still does on a site whose MAAS has no BMC access
(`maas.power: manual`: read power, arm one-time PXE, power on/cycle, wait until on) for the same
512 nodes runs two ways on fresh labs: `provision.py --until pxe` and the community.general
`redfish_command` playbook of bench/redfish_ansible, and the ratio of their wall times is printed.
Ratios are printed, not verdicts.

    .venv/bin/python -m bench.bringup                    # 1 and 128 racks, then Ansible on 512 nodes
    .venv/bin/python -m bench.bringup --racks 1 --skip-ansible
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import logging
import os
import platform
import pstats
import re
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.redfish_ansible.oob import run_oob_playbook
from fleet.commands.up import BMC_REQUESTS
from fleet.site import Site
from lab import control
from lab.maas.states import REAL_DURATIONS_S
from lab.redfish.service import RedfishLabFiles
from lab.redfish.tls import ensure_lab_tls
from lab.settings import load_lab_site
from lab.sitegen import NODES_PER_RACK, SiteShape, write_site
from tests.lab.conftest import bmc_span, free_port_block, free_ports

REPO = Path(__file__).resolve().parent.parent
REDFISH = "lab.redfish.service"
log = logging.getLogger("bench.bringup")


@dataclass(frozen=True)
class Delays:
    """The lab's known per-step delays; the critical path is their sum for one node."""

    power_delay_s: float
    deploy_s: float

    @property
    def time_factor(self) -> float:
        return self.deploy_s / REAL_DURATIONS_S["deploy"]

    @property
    def commission_s(self) -> float:
        return REAL_DURATIONS_S["commission"] * self.time_factor

    def critical_path_s(self, until: str) -> float:
        """discover waits for nothing; commission for MAAS's commissioning, os for one deployment;
        pxe (manual power only) for one power change."""
        if until == "pxe":
            return self.power_delay_s
        return self.commission_s + (self.deploy_s if until == "os" else 0.0)


@dataclass(frozen=True)
class RunFigures:
    racks: int
    nodes: int
    until: str
    wall_s: float
    workflow_s: float
    start_s: float  # from the command's start to its workflow's: interpreter, site load, before_run, preflight
    critical_path_s: float
    pxe_requests_mean: float
    pxe_requests_max: int
    requests_mean: float
    compliance_mean: float  # BIOS + firmware compliance read in discover, per node (target <= 6)
    compliance_max: int
    requests_max: int
    maas_requests_mean: float
    maas_requests_max: int
    polls_mean: float
    stage_s_max: dict[str, float]
    summary: dict[str, int]
    cpu_s: dict[str, float]
    usage: CliUsage
    machine: MachineLoad
    last_power_on_s: float  # when MAAS powered the last node on for commissioning, from the run's start
    wave_cpu_s: dict[str, float]  # CPU seconds of each process from the start to that power-on (the BMC wave)
    not_done: dict[str, int]  # "status at stage: detail" -> nodes, for every node that did not end done
    retries: dict[str, int]  # "stage: detail" -> stage attempts that ended in a retry, from the run's journal
    last_node: str  # the node that finished last: when its journal says each stage ended (run-relative)

    @property
    def ratio(self) -> float:
        return self.wall_s / self.critical_path_s


@dataclass(frozen=True)
class MachineLoad:
    """The whole machine during a run (every process: the lab, provision.py, anything else running)."""

    busy_pct: float  # of all CPUs, from /proc/stat
    cpus: int
    load_before: float
    load_after: float


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat's first line."""
    fields = [int(v) for v in Path("/proc/stat").read_text(encoding="utf-8").split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True)
class CliUsage:
    """provision.py's own resources: peak RSS and CPU from wait4 (exact), peak threads sampled."""

    peak_rss_mib: float
    cpu_s: float
    peak_threads: int
    mean_cpu_pct: float
    system_cpu_s: float = 0.0  # of cpu_s, in the kernel (thread wake-ups, sockets, TLS records' I/O)


class CpuTimeline:
    """CPU seconds of provision.py and the lab services, sampled every `every_s` while provision.py runs, so
    the CPU of the BMC wave (up to MAAS's last commissioning power-on) is told from the rest of the run."""

    def __init__(self, lab_pids: dict[str, int], every_s: float = 0.5) -> None:
        self.lab_pids = lab_pids
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, float]]] = []  # (time.time(), CPU seconds by process)

    def sample(self, child: int | None) -> None:
        """One sample (at most one per `every_s`); `child`: provision.py's pid, None before it starts (0 s)."""
        if self.samples and time.time() - self.samples[-1][0] < self.every_s:
            return
        cpu: dict[str, float] = {}
        for name, pid in ({"provision.py": child} if child else {}).items() | self.lab_pids.items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                cpu[name] = process_cpu_s(pid)
        self.samples.append((time.time(), cpu))

    def used(self, until: float) -> dict[str, float]:
        """CPU seconds each process used from the first sample to the last one at or before `until`."""
        taken = [cpu for at, cpu in self.samples if at <= until]
        if len(taken) < 2:
            return {}
        return {name: taken[-1][name] - taken[0].get(name, 0.0) for name in taken[-1]}


def run_measured(argv: list[str], env: dict[str, str], timeline: CpuTimeline | None = None
                 ) -> tuple[int, str, CliUsage]:
    """Run `argv` (provision.py) to the end; its exit code, stderr tail and resource use.

    Peak RSS and CPU come from the kernel's rusage of this one child (os.wait4), not from the
    process group; threads are read from /proc/PID/status every 0.1 s (a node thread lives for the
    whole run, so the peak is not missed between samples).
    """
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_threads = [0]
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    status = Path(f"/proc/{process.pid}/status")
    while True:
        try:
            for line in status.read_text(encoding="utf-8").splitlines():
                if line.startswith("Threads:"):
                    peak_threads[0] = max(peak_threads[0], int(line.split()[1]))
        except OSError:
            pass
        if timeline is not None:
            timeline.sample(process.pid)
        try:
            pid, code, rusage = os.wait4(process.pid, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            break
        time.sleep(0.1)
    process.returncode = os.waitstatus_to_exitcode(code)
    reader.join(10)
    wall_s = time.monotonic() - started
    cpu_s = rusage.ru_utime + rusage.ru_stime
    usage = CliUsage(peak_rss_mib=rusage.ru_maxrss / 1024, cpu_s=cpu_s, peak_threads=peak_threads[0],
                     mean_cpu_pct=100 * cpu_s / wall_s if wall_s else 0.0, system_cpu_s=rusage.ru_stime)
    return process.returncode, "".join(stderr)[-3000:], usage


def profiled_cli(out: Path, cli_args: list[str]) -> int:
    """Run provision.py's main with every thread profiled by its own CPU time; stats dumped to `out`.

    cProfile sees only the thread that enables it, and by default counts wall time (a node thread
    waiting 90 s for MAAS would top the list): each new thread gets its own profiler on thread CPU time.
    """
    from fleet.commands import main as cli_main

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start(*_: object) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()

    threading.setprofile(start)
    main_profile = cProfile.Profile(time.thread_time)
    main_profile.enable()
    try:
        return cli_main(cli_args)
    finally:
        main_profile.disable()
        threading.setprofile(None)
        with lock:
            stats = pstats.Stats(main_profile, *profiles)
        stats.dump_stats(str(out))


def print_profile(path: Path, top: int = 25) -> None:
    stats = pstats.Stats(str(path))
    print(f"      provision.py CPU by function (own time, all threads, top {top}):")
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]  # type: ignore[attr-defined]
    for (file, line, name), (_cc, calls, own_s, cum_s, _callers) in rows:
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
        print(f"        {own_s:7.2f} s own {cum_s:7.2f} s cum {calls:>9} calls  {name} ({where})")


@contextmanager
def lab_for(racks: int, delays: Delays, root: Path, *, maas_power: str = "redfish", light_hosts: bool = False
            ) -> Iterator[tuple[Site, dict[str, str]]]:
    """A fresh lab of `racks` racks with the known delays, on free ports; stopped afterwards. With
    `light_hosts` every deployed node gets a light lab host (lab/hosts/light.py: bench/soak.py to validate)."""
    bmc_first = free_port_block(bmc_span(racks))
    taken = set(range(bmc_first, bmc_first + bmc_span(racks)))
    ports = free_ports(4, taken)
    lab_dir = root / "lab"
    # No lab hosts (max_hosts=0) unless light: MAAS then runs no deployed-hook; what is measured is the OOB + OS path.
    shape = SiteShape(racks=racks, name="bench", state_dir=str(lab_dir), maas_port=ports[0], bmc_first=bmc_first,
                      sushy_port=ports[1], apt_port=ports[2], ufm_port=ports[3], time_factor=delays.time_factor,
                      max_hosts=racks * NODES_PER_RACK if light_hosts else 0, light_hosts=light_hosts,
                      fabric=racks <= 128)  # the lab's fabric plan holds up to 128 racks
    site_file = write_site(root / "site", shape)
    if maas_power != "redfish":  # the site's `maas.power`, written where the generator put `maas:`
        text = site_file.read_text(encoding="utf-8")
        site_file.write_text(re.sub(r"(?m)^maas:\n", f"maas:\n  power: {maas_power}\n", text, count=1),
                             encoding="utf-8")
    env = {**os.environ, "FLEET_LAB_DIR": str(lab_dir), "FLEET_STATE_DIR": str(root / "state")}
    before = os.environ.get("FLEET_LAB_DIR")
    os.environ["FLEET_LAB_DIR"] = str(lab_dir)  # this process reads the same site (credentials, CA)
    try:
        site = load_lab_site(site_file)
        try:
            control.up(site, prepare_options={REDFISH: {"power_delay_s": delays.power_delay_s}})
            yield site, env
        finally:
            control.down(site)
    finally:  # a caller that runs on (tests, the crash runs) must not resolve later sites' paths into this lab
        if before is None:
            os.environ.pop("FLEET_LAB_DIR", None)
        else:
            os.environ["FLEET_LAB_DIR"] = before


def run_cli(site: Site, env: dict[str, str], racks: int, until: str, delays: Delays, root: Path,
            profile: Path | None = None) -> RunFigures:
    nodes = racks * NODES_PER_RACK
    report_path = root / f"report-{racks}-{until}.json"
    cli_args = ["--site", str(site.path), "--rack", f"1-{racks}", "--until", until, "--json-report",
                str(report_path), "--bmc-requests", str(BMC_REQUESTS), "--maas-deploys", str(nodes), "--yes"]
    argv = [sys.executable, "provision.py", *cli_args]
    if profile is not None:
        argv = [sys.executable, "-m", "bench.bringup", "--profile-cli", str(profile), "--", *cli_args]
    pids_dir = control.lab_dir_of(site) / "pids"
    lab_pids = {path.stem: int(path.read_text(encoding="utf-8")) for path in pids_dir.glob("*.pid")}
    lab_before = {name: process_cpu_s(pid) for name, pid in lab_pids.items()}
    load_before, jiffies_before = os.getloadavg()[0], cpu_jiffies()
    timeline = CpuTimeline(lab_pids)
    timeline.sample(None)
    started, started_at = time.monotonic(), time.time()
    returncode, stderr, usage = run_measured(argv, env, timeline)
    wall_s = time.monotonic() - started
    busy, total = (after - before for after, before in zip(cpu_jiffies(), jiffies_before, strict=True))
    machine = MachineLoad(100 * busy / max(total, 1), os.cpu_count() or 1, load_before, os.getloadavg()[0])
    cpu = {"provision.py": usage.cpu_s}
    cpu |= {name: process_cpu_s(pid) - lab_before[name] for name, pid in lab_pids.items()}
    # Exit 1 with a report: some nodes ended quarantined (the outcome line says how many); the figures stand.
    if returncode not in (0, 1) or not report_path.exists():
        raise RuntimeError(f"provision.py exited {returncode}: {stderr}")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    rows = report["nodes"]
    stage_max: dict[str, float] = {}
    for row in rows:
        for stage, seconds in row["seconds"].items():
            stage_max[stage] = max(stage_max.get(stage, 0.0), seconds)
    pxe = [row["counters"].get("bmc_requests_pxe", 0) for row in rows]
    compliance = [row["counters"].get("bmc_requests_compliance", 0) for row in rows]
    ours = [row["counters"].get("bmc_requests", 0) for row in rows]
    maas = maas_requests(site, [row["hostname"] for row in rows])
    first_on = first_maas_power_on(site)
    last_on = max(first_on.values(), default=started_at)
    return RunFigures(
        racks=racks, nodes=len(rows), until=until, wall_s=wall_s,
        workflow_s=report["finished"] - report["started"], start_s=report["started"] - started_at,
        critical_path_s=delays.critical_path_s(until),
        pxe_requests_mean=statistics.mean(pxe), pxe_requests_max=max(pxe),
        requests_mean=statistics.mean(ours), requests_max=max(ours),
        maas_requests_mean=statistics.mean(maas), maas_requests_max=max(maas),
        compliance_mean=statistics.mean(compliance), compliance_max=max(compliance),
        polls_mean=statistics.mean(row["counters"].get("bmc_polls", 0) for row in rows),
        stage_s_max=stage_max, summary=report["summary"], cpu_s=cpu, usage=usage, machine=machine,
        last_power_on_s=last_on - started_at, wave_cpu_s=timeline.used(last_on),
        not_done=dict(Counter(f"{row['status']} at {row.get('current') or row['stage']}: {row['detail'][:160]}"
                              for row in rows if row["status"] != "done")),
        **journal_figures(root / "state", started_at),
    )


def journal_figures(state_dir: Path, started_at: float) -> dict:
    """Retried stage attempts, and the timeline of the node that finished last, from the run's own journal."""
    found = sorted(state_dir.rglob("state.db"))
    if not found:
        return {"retries": {}, "last_node": ""}
    with contextlib.closing(sqlite3.connect(found[0])) as db:
        rows = db.execute("SELECT ts, hostname, stage, event, detail FROM journal ORDER BY id").fetchall()
    retries: Counter[str] = Counter()
    ends: dict[str, list[tuple[float, str]]] = {}
    for ts, host, stage, event, detail in rows:
        if event == "stage:retry":
            retries[f"{stage}: {str(json.loads(detail).get('detail', ''))[:120]}"] += 1
        if event.startswith("stage:") or event.endswith(":started"):
            ends.setdefault(host, []).append((ts - started_at, f"{stage} {event}"))
    if not ends:
        return {"retries": dict(retries), "last_node": ""}
    host = max(ends, key=lambda name: ends[name][-1][0])
    steps = ", ".join(f"{what} {at:.1f}" for at, what in ends[host])
    return {"retries": dict(retries), "last_node": f"{host}: {steps}"}


def maas_requests(site: Site, hostnames: list[str]) -> list[int]:
    """Requests each node's BMC got from MAAS's Redfish driver, from the lab BMC front's own log."""
    log_file = RedfishLabFiles.under(control.lab_dir_of(site)).requests_log
    counts: Counter[str] = Counter()
    for line in log_file.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("agent") == "MAAS":
            counts[entry["node"]] += 1
    return [counts[name] for name in hostnames]


def first_maas_power_on(site: Site) -> dict[str, float]:
    """When MAAS's driver first powered each node on (its commissioning boot), from the BMC front's log."""
    first: dict[str, float] = {}
    log_file = RedfishLabFiles.under(control.lab_dir_of(site)).requests_log
    for line in log_file.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("agent") == "MAAS" and entry.get("reset") == "On" and entry["node"] not in first:
            first[entry["node"]] = entry["ts"]
    return first


def commit() -> str:
    """The checkout's commit (with '+' when it has uncommitted changes), so a figure names its code."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty else "")


@dataclass(frozen=True)
class MachineSpeed:
    """Three fixed workloads, the fastest of three tries each, in ms (lower is faster).

    This VM's speed drifts within an hour (2026-12-03: one commit gave ratio 1.184 at 14:09 and 1.236-1.250 at
    14:53-15:04, every process taking 30-60% more CPU for the same work), so each run prints these before and after
    it: a change of code and a change of machine then read apart. Pure Python (a loop, a JSON dump); what the BMC
    wave is made of, TLS handshakes and round trips over loopback with the lab's certificates; and thread wake-ups."""

    python_ms: float
    tls_ms: float
    wakeup_ms: float

    def __str__(self) -> str:
        return (f"Python {self.python_ms:.0f} ms, 100 loopback TLS handshakes {self.tls_ms:.0f} ms, "
                f"2,000 thread round trips {self.wakeup_ms:.0f} ms")


def machine_speed(rounds: int = 3) -> MachineSpeed:
    return MachineSpeed(*(min(workload() for _ in range(rounds)) * 1000
                          for workload in (_python_workload_s, _tls_workload_s, _wakeup_workload_s)))


def _python_workload_s() -> float:
    document = {"nodes": [{"name": f"gpu-{i:03d}", "address": f"198.18.{i // 250}.{i % 250}", "ok": True}
                          for i in range(2000)]}
    started = time.perf_counter()
    total = 0
    for value in range(1_000_000):
        total += value
    for _ in range(10):
        json.dumps(document)
    return time.perf_counter() - started


def _wakeup_workload_s(count: int = 2000) -> float:
    """Round trips between two threads over a socket pair: the kernel's wake-ups and syscalls that 1,282 node
    threads and the lab's event loops live on (slurmctld, a C daemon idle through the run, took 2.3 s of CPU at
    14:09 and 3.5-3.8 s after 14:53 on 2026-12-03, while the pure Python and TLS workloads stayed put)."""
    ours, theirs = socket.socketpair()

    def echo() -> None:
        for _ in range(count):
            theirs.sendall(theirs.recv(1))

    thread = threading.Thread(target=echo)
    thread.start()
    started = time.perf_counter()
    for _ in range(count):
        ours.sendall(b"x")
        ours.recv(1)
    elapsed = time.perf_counter() - started
    thread.join()
    ours.close()
    theirs.close()
    return elapsed


def _tls_workload_s(count: int = 100) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        paths = ensure_lab_tls(Path(tmp))
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(paths.cert_file, paths.key_file)
        client = ssl.create_default_context(cafile=str(paths.ca_file))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def echo() -> None:
            for _ in range(count):
                conn, _ = listener.accept()
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(1))

        thread = threading.Thread(target=echo)
        thread.start()
        started = time.perf_counter()
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", port)) as raw, \
                    client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"x")
                tls.recv(1)
        elapsed = time.perf_counter() - started
        thread.join()
    return elapsed


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running lab service (it is not our child: read /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bring_up(racks: int, delays: Delays, until: str = "os", profile: Path | None = None,
             maas_power: str = "redfish") -> RunFigures:
    with tempfile.TemporaryDirectory(prefix=f"bench-{racks}-") as tmp, \
            lab_for(racks, delays, Path(tmp), maas_power=maas_power) as lab:
        site, env = lab
        return run_cli(site, env, racks, until, delays, Path(tmp), profile)


def ansible_oob(racks: int, delays: Delays, forks: int, poll_delay_s: float) -> float:
    with tempfile.TemporaryDirectory(prefix=f"bench-ansible-{racks}-") as tmp, \
            lab_for(racks, delays, Path(tmp)) as (site, _env):
        return run_oob_playbook(site, list(site.nodes.values()), forks=forks, poll_delay_s=poll_delay_s,
                                work_dir=Path(tmp))


def print_run(figures: RunFigures) -> None:
    stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in figures.stage_s_max.items())
    print(f"  {figures.racks:>3} rack(s), {figures.nodes:>3} nodes, --until {figures.until}: "
          f"wall {figures.wall_s:.1f} s (start {figures.start_s:.1f} s, workflow {figures.workflow_s:.1f} s, "
          f"then {figures.wall_s - figures.start_s - figures.workflow_s:.1f} s: report, table, exit), critical path "
          f"{figures.critical_path_s:.1f} s, ratio {figures.ratio:.3f}")
    print(f"      Redfish requests per node: ours mean {figures.requests_mean:.2f} (max {figures.requests_max}, "
          f"polls {figures.polls_mean:.2f}, pxe {figures.pxe_requests_mean:.2f}); MAAS's mean "
          f"{figures.maas_requests_mean:.2f} (max {figures.maas_requests_max})")
    print(f"      Redfish requests per compliant node for the BIOS + firmware compliance read in discover: mean "
          f"{figures.compliance_mean:.2f}, max {figures.compliance_max} (target <= 6; the registry is read once "
          "per BIOS version for the run)")
    print(f"      slowest node per stage: {stages}; outcome {figures.summary}")
    for why, count in sorted(figures.not_done.items(), key=lambda item: -item[1]):
        print(f"      not done: {count} node(s) {why}")
    for why, count in sorted(figures.retries.items(), key=lambda item: -item[1]):
        print(f"      retried: {count} stage attempt(s) {why}")
    if figures.last_node:
        print(f"      last node to finish (its journal, s from the start): {figures.last_node}")
    cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(figures.cpu_s.items(), key=lambda i: -i[1]))
    print(f"      CPU seconds during the run: {cpu}")
    load = figures.machine
    powered = (f"; MAAS powered the last node on for commissioning {figures.last_power_on_s:.1f} s after the start"
               if figures.last_power_on_s else "")
    print(f"      the machine: {load.busy_pct:.0f}% of its {load.cpus} CPUs busy over the run (every process, other "
          f"work included), load {load.load_before:.1f} -> {load.load_after:.1f}{powered}")
    if figures.wave_cpu_s and figures.last_power_on_s:
        wave = ", ".join(f"{name} {seconds:.1f} ({1000 * seconds / figures.nodes:.1f} ms/node)"
                         for name, seconds in sorted(figures.wave_cpu_s.items(), key=lambda i: -i[1])
                         if seconds >= 0.05)
        print(f"      CPU seconds in the BMC wave (to the last commissioning power-on, sampled every 0.5 s): {wave}")
    use = figures.usage
    print(f"      provision.py: peak RSS {use.peak_rss_mib:.0f} MiB, CPU {use.cpu_s:.1f} s "
          f"({use.system_cpu_s:.1f} s of it in the kernel; {use.mean_cpu_pct:.0f}% of one core over the run), "
          f"peak threads {use.peak_threads}")


def print_memory_per_node(runs: list[RunFigures]) -> None:
    """Peak RSS growth per node between the smallest and the largest run (linear if the fit holds)."""
    if len(runs) < 2:
        return
    small, large = min(runs, key=lambda r: r.nodes), max(runs, key=lambda r: r.nodes)
    if large.nodes == small.nodes:  # repeated runs of one size (--racks 128,128): no slope to take
        return
    per_node_kib = (large.usage.peak_rss_mib - small.usage.peak_rss_mib) * 1024 / (large.nodes - small.nodes)
    print(f"  memory per node: ({large.usage.peak_rss_mib:.0f} - {small.usage.peak_rss_mib:.0f}) MiB / "
          f"({large.nodes} - {small.nodes}) nodes = {per_node_kib:.0f} KiB per node "
          f"(base {small.usage.peak_rss_mib - small.nodes * per_node_kib / 1024:.0f} MiB)")
    if len(runs) > 2:
        for run in runs:
            predicted = small.usage.peak_rss_mib + (run.nodes - small.nodes) * per_node_kib / 1024
            print(f"    {run.nodes:>5} nodes: peak {run.usage.peak_rss_mib:.0f} MiB, linear fit {predicted:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--profile-cli"]:  # the profiled child of --profile: PATH -- provision.py arguments
        return profiled_cli(Path(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racks", default="1,128", help="comma-separated rack counts (default: 1,128)")
    parser.add_argument("--power-delay-s", type=float, default=5.0, help="every BMC power change lands after this")
    parser.add_argument("--deploy-s", type=float, default=90.0, help="every MAAS deployment takes this")
    parser.add_argument("--skip-ansible", action="store_true", help="skip the community.general comparison")
    parser.add_argument("--profile", type=Path, metavar="PATH",
                        help="profile provision.py (every thread, CPU time) in the largest run; stats to PATH")
    parser.add_argument("--ansible-racks", type=int, default=128, help="racks for the OOB comparison")
    parser.add_argument("--ansible-forks", type=int, default=8, help="Ansible forks (more than ~10 is slower here)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    delays = Delays(args.power_delay_s, args.deploy_s)
    print(f"bench/bringup.py on {platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()}), "
          f"{time.strftime('%Y-%m-%d %H:%M')}, commit {commit()}, load {os.getloadavg()[0]:.1f}")
    print(f"known lab delays: BMC power change {delays.power_delay_s:g} s, MAAS commissioning "
          f"{delays.commission_s:g} s, MAAS deployment {delays.deploy_s:g} s "
          f"(time factor {delays.time_factor:g}); BMC requests in flight: the tool's default "
          f"(--bmc-requests {BMC_REQUESTS}); MAAS deployments at once: the node count (--maas-deploys N)")
    print("bring-up of new racks to os (ratio = wall / critical path; critical path = commissioning + deploy, "
          "from the config):")
    counts = [int(text) for text in args.racks.split(",")]
    runs = []
    for racks in counts:
        profile = args.profile if args.profile and racks == max(counts) else None
        before = machine_speed()
        runs.append(bring_up(racks, delays, profile=profile))
        print_run(runs[-1])
        print(f"      the machine's speed (fixed workloads; lower is faster, compare runs only at like speeds): "
              f"before the run {before}; after {machine_speed()}")
        if profile:
            print_profile(profile)
    print_memory_per_node(runs)
    if args.skip_ansible:
        return 0
    racks = args.ansible_racks
    print(f"out-of-band only on a maas.power: manual site (read, one-time PXE, power on/cycle, wait on) for "
          f"{racks * NODES_PER_RACK} nodes:")
    ours = bring_up(racks, delays, until="pxe", maas_power="manual")
    print_run(ours)
    poll_s = max(0.2, 2.0 * delays.time_factor)  # the BMC poll interval fleet.stages.shared uses for this lab clock
    theirs_s = ansible_oob(racks, delays, args.ansible_forks, poll_s)
    print(f"  community.general.redfish_command playbook, {args.ansible_forks} forks, poll every {poll_s:g} s: "
          f"wall {theirs_s:.1f} s")
    print(f"  ours / theirs = {ours.wall_s:.1f} / {theirs_s:.1f} = {ours.wall_s / theirs_s:.3f} "
          "(ours includes discover: identity check + MAAS lookup)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
