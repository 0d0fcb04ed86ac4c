"""Soak and crash safety on the lab: seeded faults, end state checked node by node from the lab's own logs.

Soak (`--racks 128`: the 512-node lab, racks new to MAAS: every machine is registered by the commission
stage and commissioned, then deployed, by MAAS through its BMC). A seeded draw gives each node at most
one fault:
- 5% of BMCs failing: 5xx on 30% of requests, timeouts on 5% of requests (the lab holds the request
  past our read timeout, then carries it out), one BMC with wrong credentials, one answering an HTML
  login page instead of JSON;
- 3% of commissionings or deployments failing once (the fault is lifted as soon as the lab MAAS started
  the first one, watched in its log), 1% failing always (half commissionings, half deployments).
- 2% of nodes failing health (at least one of each kind): a sick GPU (`gpu_sick`: ECC storm, row remap
  pending), an InfiniBand link down (`ib_link_down`), an Xid 79 in the kernel log (`dmesg_bad`).
Then `provision.py --rack 1-N --until validate` runs once. Every node MAAS deploys gets a light lab host
(lab/hosts/light.py: its own address, login and new host key, its fault's hardware set, in one shared
container), so hostkey, configure (no Ansible role: light hosts share one root; facts only) and validate's
health checks run on every deployed node. The end state of every node is compared with what its fault
allows, from the run report and the lab's logs (the BMC front's request log: resets sent by us, and MAAS's
power-ons; the MAAS log: registrations, commissionings and deployments started):
- healthy nodes and nodes whose faults retries absorb (5xx, timeouts, a deployment failing once) are
  done at validate with one deployment;
- a BMC 5xx/timeout node may instead be quarantined where the same fault made MAAS's own power driver
  fail (MAAS talks to the same sick BMC): at commission (Failed commissioning) or at os (Failed
  deployment, "cannot power it through its BMC"), never deployed again after that;
- wrong credentials: quarantined at discover with HTTP 401; HTML: quarantined at discover, not JSON;
  neither ever reaches MAAS;
- a commissioning that fails (once or always): quarantined at commission with MAAS's failing script,
  commissioned once, never deployed (a failed commissioning wants a look at the hardware);
- a deployment failing always: quarantined at os after 2 deployments, once: done after 2;
- a health fault: quarantined at validate, CRITICAL, the first check named the one its fault breaks
  (gpu_ecc_errors, ib_ports, gpu_xid), deployed once;
- none lost or left in between (every node done or quarantined);
- at most one reset of ours per node; MAAS powers a node on at most once per operation it started
  (registration/commission, deployment): no node is power-cycled or deployed twice for one reason.
It prints the counts and the wall-time ratio against a fault-free run of the same size on a fresh lab
(light hosts too). `--until os` is the soak without hosts (health faults then pass: done at os).

Crash safety (`--crash-runs 20`, on `--crash-racks` racks): each run starts a fresh lab, starts the
same bring-up, kills it with SIGKILL at a seeded point within the uninterrupted run's wall time, runs
the same command again to completion, and compares every node's (status, stage) with an
uninterrupted run's; from the lab's logs, no node got a second reset of ours or a second deployment.

    .venv/bin/python -m bench.soak                         # 512-node soak, then 20 crash runs on 2 racks
    .venv/bin/python -m bench.soak --racks 8 --crash-runs 20 --crash-racks 1   # 32 nodes, 20 kills on 4
    .venv/bin/python -m bench.soak --only clean --deploy-s 30       # the fault-free run alone: its wall time
    .venv/bin/python -m bench.soak --only faulty --clean-s 300 --deploy-s 30   # then the faulty run, its ratio
Figures are printed, not asserted; the exit code is 1 when a node or a crash run did not end as allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.bringup import Delays, cpu_jiffies, lab_for
from fleet.remediate import DATACENTER_TECH, NODE_OWNER, FindingRef, Fix, plan_node
from fleet.site import Site
from fleet.state import StateDB
from lab import faults as lab_faults
from lab.redfish.service import RedfishLabFiles

REPO = Path(__file__).resolve().parent.parent
Outcome = tuple[str, str, str, int]  # (status, stage it ended at, words in its detail, deployments)
# A BMC fault may also fail MAAS's own power-on (MAAS talks to the same sick BMC): MAAS marks the operation
# failed ("Power on for the node failed: ..."): commissioning quarantines at commission, a deployment at os on
# that first deployment, never deployed again (fleet.maas.decide).
POWER_FAILED: tuple[Outcome, ...] = (("quarantined", "commission", "Power on for the node failed", 0),
                                     ("quarantined", "os", "cannot power it through its BMC", 1))
COMMISSION_FAILED: Outcome = ("quarantined", "commission", "Failed commissioning", 0)
# The lab's health faults (lab/hosts/hardware.py's fixture sets) and the check each one must be quarantined by.
HEALTH_CHECKS = {"gpu_sick": "gpu_ecc_errors", "ib_link_down": "ib_ports", "dmesg_bad": "gpu_xid"}
# Who fixes each health fault, and the first fix, as fleet.remediate's table says for the fixture set's findings
# (tests/fixtures/lab-node/README.md): GPU 3's volatile uncorrectable ECC with a row remap pending -> the node owner
# resets the GPU; mlx5_3 DOWN/Polling -> the port is isolated and a datacenter tech reseats the cable; Xid 79 (fallen
# off the bus) -> the node owner reboots it.
WHO_FIXES = {"gpu_sick": (Fix.RESET_GPU, NODE_OWNER), "ib_link_down": (Fix.ISOLATE_PORT, DATACENTER_TECH),
             "dmesg_bad": (Fix.REBOOT, NODE_OWNER)}
UNTIL = ("os", "validate")  # validate: every deployed node gets a light lab host (lab/hosts/light.py)


@dataclass(frozen=True)
class Expect:
    """What a node's fault allows at the end, and how often it may be reset by us / commissioned."""

    fault: str
    outcomes: tuple[Outcome, ...]
    resets_max: int = 1
    commissions_max: int = 1


def expectations(until: str) -> dict[str, Expect]:
    """Fault kind -> what it allows for a run to `until`; a health fault shows only at validate."""
    done: Outcome = ("done", until, "", 1)
    table = [
        Expect("healthy", (done,)),
        Expect("bmc_5xx", (done, *POWER_FAILED)),
        Expect("bmc_timeout", (done, *POWER_FAILED)),
        Expect("bmc_bad_credentials", (("quarantined", "discover", "401", 0),), 0, 0),
        Expect("bmc_html", (("quarantined", "discover", "not JSON", 0),), 0, 0),
        Expect("commission_fails_once", (COMMISSION_FAILED,)),
        Expect("commission_fails_always", (COMMISSION_FAILED,)),
        Expect("deploy_fails_once", (("done", until, "", 2),)),
        Expect("deploy_fails_always", (("quarantined", "os", "MAAS", 2),)),
    ]
    for kind, check in HEALTH_CHECKS.items():
        outcome = ("quarantined", "validate", f"CRITICAL: {check}", 1) if until == "validate" else done
        table.append(Expect(kind, (outcome,)))
    return {expect.fault: expect for expect in table}


def plan_faults(hostnames: list[str], seed: int) -> dict[str, str]:
    """Node -> fault kind (every node has one, 'healthy' for most), the same for the same seed."""
    names = sorted(hostnames)
    random.Random(seed).shuffle(names)
    count = len(names)
    bmc = max(4, round(0.05 * count))
    once, always = max(2, round(0.03 * count)), max(2, round(0.01 * count))  # both halves on a small lab
    health = max(len(HEALTH_CHECKS), round(0.02 * count))  # every kind once on a small lab
    plan = dict.fromkeys(names, "healthy")
    picked = iter(names)
    plan[next(picked)] = "bmc_bad_credentials"
    plan[next(picked)] = "bmc_html"
    for n in range(bmc - 2):
        plan[next(picked)] = "bmc_5xx" if n % 4 else "bmc_timeout"
    for n in range(once):
        plan[next(picked)] = "deploy_fails_once" if n % 2 else "commission_fails_once"
    for n in range(always):
        plan[next(picked)] = "deploy_fails_always" if n % 2 else "commission_fails_always"
    kinds = list(HEALTH_CHECKS)
    for n in range(health):
        plan[next(picked)] = kinds[n % len(kinds)]
    return plan


def lab_faults_for(plan: dict[str, str]) -> dict[str, dict[str, float]]:
    """The lab's faults.json for a plan."""
    rates = {"bmc_5xx": {"bmc_5xx": 0.3}, "bmc_timeout": {"bmc_timeout": 0.05},
             "bmc_bad_credentials": {"bmc_bad_credentials": 1.0}, "bmc_html": {"bmc_html": 1.0},
             "commission_fails_once": {"maas_failed_commissioning": 1.0},
             "commission_fails_always": {"maas_failed_commissioning": 1.0},
             "deploy_fails_once": {"maas_failed_deployment": 1.0},
             "deploy_fails_always": {"maas_failed_deployment": 1.0},
             **{kind: {kind: 1.0} for kind in HEALTH_CHECKS}}
    return {name: rates[kind] for name, kind in plan.items() if kind in rates}


POWER_ON_RESETS = ("On", "ForceOn", "ForceRestart", "GracefulRestart", "PowerCycle")
COMMISSIONS = (": commission accepted", ": created (")  # a registered machine starts commissioning
MAAS_POWER_ON_OPS = (": deploy accepted", ": power_on accepted", *COMMISSIONS)
MACHINE_OS_AGENT = "fleet-lab-machine-os"  # the lab machine powering itself off: not a power cycle


@dataclass
class LabCounts:
    """Destructive requests per node, from the lab's own logs."""

    resets: Counter = field(default_factory=Counter)  # reset POSTs of ours that reached the emulator
    deploys: Counter = field(default_factory=Counter)  # deployments the lab MAAS accepted
    commissions: Counter = field(default_factory=Counter)  # commissionings it started
    maas_power_ons: Counter = field(default_factory=Counter)  # power-on resets MAAS's driver landed
    maas_power_ops: Counter = field(default_factory=Counter)  # MAAS operations that power the machine on


def _maas_log(lab_dir: Path) -> list[str]:
    maas_log = lab_dir / "logs" / "maas.log"
    return maas_log.read_text(encoding="utf-8").splitlines() if maas_log.exists() else []


def _count(lines: list[str], marker: str) -> Counter:
    found: Counter = Counter()
    for line in lines:
        if marker in line:
            found[line.split(marker)[0].rsplit(" ", 1)[-1]] += 1
    return found


def deploys_accepted(lab_dir: Path) -> Counter:
    """Deployments the lab MAAS accepted, per node (one `NODE: deploy accepted` line each in its log)."""
    return _count(_maas_log(lab_dir), ": deploy accepted")


def lab_counts(lab_dir: Path) -> LabCounts:
    lines = _maas_log(lab_dir)
    counts = LabCounts(deploys=_count(lines, ": deploy accepted"))
    for marker in MAAS_POWER_ON_OPS:
        counts.maas_power_ops.update(_count(lines, marker))
    for marker in COMMISSIONS:
        counts.commissions.update(_count(lines, marker))
    log = RedfishLabFiles.under(lab_dir).requests_log
    for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else ():
        entry = json.loads(line)
        if not (entry.get("reset") and entry.get("forwarded")) or entry.get("agent") == MACHINE_OS_AGENT:
            continue
        if entry.get("agent") != "MAAS":
            counts.resets[entry["node"]] += 1
        elif entry["reset"] in POWER_ON_RESETS and int(entry.get("status", 500)) < 300:
            counts.maas_power_ons[entry["node"]] += 1
    return counts


class LiftAfterFirst:
    """Lifts a node's fault once the lab MAAS started the operation it fails ("fails once"): the first
    deployment it accepted, or the first commissioning (its registration starts one)."""

    def __init__(self, lab_dir: Path, faults: dict[str, dict[str, float]], nodes: dict[str, tuple[str, ...]]) -> None:
        self._lab_dir, self._faults, self._nodes = lab_dir, faults, dict(nodes)  # node -> its log markers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> LiftAfterFirst:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while self._nodes and not self._stop.wait(0.05):
            lines = _maas_log(self._lab_dir)
            started = {name for name, markers in self._nodes.items()
                       if any(f"{name}{marker}" in line for marker in markers for line in lines)}
            if started:
                for name in started:
                    self._faults.pop(name, None)
                    del self._nodes[name]
                lab_faults.write(self._lab_dir, self._faults)


@dataclass(frozen=True)
class Verdict:
    node: str
    fault: str
    status: str
    where: str
    detail: str
    ok: bool
    why: str


def judge(report: dict, plan: dict[str, str], counts: LabCounts, until: str = "os") -> list[Verdict]:
    """Every node's end state against what its fault allows (pure over the report and the lab counts)."""
    rows = {row["hostname"]: row for row in report["nodes"]}
    allowed = expectations(until)
    verdicts = []
    for name, kind in sorted(plan.items()):
        expect = allowed[kind]
        row = rows.get(name)
        if row is None:
            verdicts.append(Verdict(name, kind, "missing", "", "", False, "not in the report: lost"))
            continue
        where = row["stage"] if row["status"] == "done" else row["current"]
        fits = [deploys for status, stage, words, deploys in expect.outcomes
                if row["status"] == status and where == stage and words in row["detail"]]
        problems = [] if fits else [f"ended {row['status']} at {where}, expected one of {expect.outcomes}"]
        if counts.resets[name] > expect.resets_max:
            problems.append(f"{counts.resets[name]} resets of ours reached the BMC (at most {expect.resets_max})")
        if counts.maas_power_ons[name] > counts.maas_power_ops[name]:
            problems.append(f"MAAS powered it on {counts.maas_power_ons[name]} times for "
                            f"{counts.maas_power_ops[name]} operation(s) that power it on")
        if fits and counts.deploys[name] != fits[0]:
            problems.append(f"deployed {counts.deploys[name]} times (expected {fits[0]})")
        if counts.commissions[name] > expect.commissions_max:
            problems.append(f"commissioned {counts.commissions[name]} times (at most {expect.commissions_max})")
        verdicts.append(Verdict(name, kind, row["status"], where, row["detail"], not problems, "; ".join(problems)))
    return verdicts


def who_fixes(evidence: dict) -> tuple[Fix, str]:
    """(first fix, owner) the remediation table gives a node quarantined with this validate evidence (pure)."""
    findings = [FindingRef(p["check"], p["verdict"], p.get("summary", ""), p.get("fix", ""))
                for p in evidence.get("problems", []) if p.get("verdict") == "CRITICAL"]
    plan = plan_node(findings, [])
    return plan.fix, plan.remedy.owner if plan.remedy else ""


def misrouted(plan: dict[str, str], evidence: dict[str, dict]) -> list[str]:
    """Health-faulty nodes whose quarantine evidence routes to another fix or owner than their fault's (pure)."""
    wrong = []
    for name, kind in sorted(plan.items()):
        if kind in WHO_FIXES and (got := who_fixes(evidence.get(name, {}))) != WHO_FIXES[kind]:
            wrong.append(f"{name} ({kind}): {got[0].value} by {got[1] or 'nobody'}, expected "
                         f"{WHO_FIXES[kind][0].value} by {WHO_FIXES[kind][1]}")
    return wrong


def run_cli(site: Site, env: dict[str, str], nodes: int, report: Path, racks: int, until: str = "os"
            ) -> tuple[int, float]:
    argv = [sys.executable, "provision.py", "--site", str(site.path), "--rack", f"1-{racks}", "--until", until,
            "--json-report", str(report), "--bmc-requests", str(nodes), "--maas-deploys", str(nodes)]
    started, load_before, jiffies_before = time.monotonic(), os.getloadavg()[0], cpu_jiffies()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if not report.exists():
        raise RuntimeError(f"provision.py exited {result.returncode} without a report: {result.stderr[-2000:]}")
    wall_s = time.monotonic() - started
    busy, total = (after - before for after, before in zip(cpu_jiffies(), jiffies_before, strict=True))
    print(f"  {nodes} nodes --until {until}: wall {wall_s:.1f} s; the machine {100 * busy / max(total, 1):.0f}% of its "
          f"{os.cpu_count()} CPUs busy (every process), load {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    return result.returncode, wall_s


def clean_run(racks: int, delays: Delays, until: str = "validate") -> float:
    """The fault-free run's wall time (s) on a fresh lab of the same size (light hosts to validate)."""
    with tempfile.TemporaryDirectory(prefix="soak-clean-") as tmp, \
            lab_for(racks, delays, Path(tmp), light_hosts=until == "validate") as (site, env):
        _, clean_s = run_cli(site, env, len(site.nodes), Path(tmp) / "report.json", racks, until)
    return clean_s


def soak(racks: int, seed: int, delays: Delays, until: str = "validate", clean_s: float | None = None
         ) -> tuple[list[Verdict], list[str], float, float]:
    """(verdicts, health-faulty nodes routed to the wrong fix or owner, faulty wall s, fault-free wall s); to
    validate, every deployed node gets a light lab host.
    `clean_s`: the fault-free wall time of an earlier run (`--only clean`), else it is run first."""
    hosts = until == "validate"
    if clean_s is None:
        clean_s = clean_run(racks, delays, until)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, \
            lab_for(racks, delays, Path(tmp), light_hosts=hosts) as (site, env):
        lab_dir = Path(env["FLEET_LAB_DIR"])
        plan = plan_faults(list(site.nodes), seed)
        faults = lab_faults_for(plan)
        lab_faults.write(lab_dir, faults)
        once = {name: (": deploy accepted",) if kind == "deploy_fails_once" else COMMISSIONS
                for name, kind in plan.items() if kind in ("deploy_fails_once", "commission_fails_once")}
        with LiftAfterFirst(lab_dir, faults, once):
            _, faulty_s = run_cli(site, env, len(site.nodes), Path(tmp) / "report.json", racks, until)
        report = json.loads((Path(tmp) / "report.json").read_text(encoding="utf-8"))
        found = sorted((Path(tmp) / "state").rglob("state.db"))  # FLEET_STATE_DIR (bench.bringup.lab_for)
        state = StateDB(found[0]) if found else None
        evidence = {name: state.node(name).evidence for name in plan} if state else {}
        return judge(report, plan, lab_counts(lab_dir), until), misrouted(plan, evidence), faulty_s, clean_s


@dataclass(frozen=True)
class CrashRun:
    """One killed-and-resumed run. Since MAAS powers the machines (issue 9's port), the destructive requests
    are mostly MAAS's on our behalf: a registration (which starts a commissioning), a commissioning, a
    deployment, and MAAS's power-ons for them; a repeat of any of them after the resume counts."""

    kill_after_s: float
    killed: bool
    matches: bool
    resets_max: int  # resets of ours per node
    deploys_max: int  # deployments the lab MAAS accepted per node
    resume_rc: int
    why: str
    commissions_max: int = 0  # registrations + commissionings per node
    power_ons_extra: int = 0  # MAAS power-ons beyond one per operation that powers the node on, worst node

    @property
    def repeated(self) -> bool:
        return self.resets_max > 1 or self.deploys_max > 1 or self.commissions_max > 1 or self.power_ons_extra > 0


def crash_runs(racks: int, runs: int, seed: int, delays: Delays) -> list[CrashRun]:
    """Each run: fresh lab, bring-up killed with SIGKILL at a seeded point, resumed, compared."""
    with tempfile.TemporaryDirectory(prefix="crash-ref-") as tmp, lab_for(racks, delays, Path(tmp)) as (site, env):
        _, reference_s = run_cli(site, env, len(site.nodes), Path(tmp) / "report.json", racks)
        reference = {row["hostname"]: (row["status"], row["stage"])
                     for row in json.loads((Path(tmp) / "report.json").read_text())["nodes"]}
    rng = random.Random(seed)
    results = []
    for _ in range(runs):
        kill_after = rng.uniform(0.3, reference_s)
        with tempfile.TemporaryDirectory(prefix="crash-") as tmp, lab_for(racks, delays, Path(tmp)) as (site, env):
            nodes = len(site.nodes)
            argv = [sys.executable, "provision.py", "--site", str(site.path), "--rack", f"1-{racks}", "--until", "os",
                    "--bmc-requests", str(nodes), "--maas-deploys", str(nodes)]
            first = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                first.wait(timeout=kill_after)
                killed = False
            except subprocess.TimeoutExpired:
                os.kill(first.pid, signal.SIGKILL)
                first.wait()
                killed = True
            rc, _ = run_cli(site, env, nodes, Path(tmp) / "report.json", racks)
            got = {row["hostname"]: (row["status"], row["stage"])
                   for row in json.loads((Path(tmp) / "report.json").read_text())["nodes"]}
            counts = lab_counts(Path(env["FLEET_LAB_DIR"]))
            resets = max(counts.resets.values(), default=0)
            deploys = max(counts.deploys.values(), default=0)
            commissions = max(counts.commissions.values(), default=0)
            extra = max((counts.maas_power_ons[n] - counts.maas_power_ops[n] for n in got), default=0)
            differs = sorted(set(got.items()) ^ set(reference.items()))
            why = [] if got == reference else [f"end state differs: {differs}"]
            if resets > 1:
                why.append(f"a node got {resets} resets of ours")
            if deploys > 1:
                why.append(f"a node was deployed {deploys} times")
            if commissions > 1:
                why.append(f"a node was registered/commissioned {commissions} times")
            if extra > 0:
                why.append(f"MAAS powered a node on {extra} more time(s) than the operations it started")
            results.append(CrashRun(round(kill_after, 2), killed, got == reference, resets, deploys, rc,
                                    "; ".join(why), commissions, max(extra, 0)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racks", type=int, default=128, help="soak lab size in racks (128 = 512 nodes); 0 skips")
    parser.add_argument("--until", choices=UNTIL, default="validate",
                        help="the soak's target stage (validate: light lab hosts, health faults, no Ansible roles)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--crash-runs", type=int, default=20)
    parser.add_argument("--crash-racks", type=int, default=2)
    parser.add_argument("--power-delay-s", type=float, default=0.5)
    parser.add_argument("--deploy-s", type=float, default=3.0, help="every MAAS deployment takes this")
    parser.add_argument("--only", choices=("clean", "faulty"),
                        help="run only the fault-free run (prints its wall time) or only the faulty one (the "
                             "ratio then needs --clean-s): two shorter holds of the lab lock instead of one")
    parser.add_argument("--clean-s", type=float, help="the fault-free wall time of an earlier --only clean run")
    args = parser.parse_args(argv)
    if args.only == "faulty" and args.clean_s is None:
        parser.error("--only faulty needs --clean-s (the wall time an --only clean run printed)")
    delays = Delays(args.power_delay_s, args.deploy_s)
    print(f"bench/soak.py seed {args.seed}, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs; "
          f"lab deploy {delays.deploy_s:g} s, power change {delays.power_delay_s:g} s")
    failed = False
    if args.racks and args.only == "clean":
        print(f"soak fault-free run: {args.racks * 4} nodes, wall {clean_run(args.racks, delays, args.until):.1f} s")
    elif args.racks:
        verdicts, wrong_owner, faulty_s, clean_s = soak(args.racks, args.seed, delays, args.until, args.clean_s)
        by_fault = Counter(v.fault for v in verdicts)
        outcome = Counter((v.fault, v.status, v.where) for v in verdicts)
        bad = [v for v in verdicts if not v.ok]
        print(f"soak: {len(verdicts)} nodes, faults {dict(sorted(by_fault.items()))}")
        for (fault, status, where), n in sorted(outcome.items()):
            print(f"  {fault:<20} {status:<12} at {where:<9} {n:>4}")
        healthy = [v for v in verdicts if v.fault == "healthy"]
        faulty = [v for v in verdicts if v.fault != "healthy"]
        print(f"  as their fault allows: healthy {sum(v.ok for v in healthy)}/{len(healthy)} (done at "
              f"{args.until}), faulty {sum(v.ok for v in faulty)}/{len(faulty)} (quarantined "
              f"{sum(v.status == 'quarantined' for v in faulty)}, with the stage and cause their fault allows, "
              f"or done where retries absorb it)")
        print(f"  lost or in between: {sum(v.status not in ('done', 'quarantined') for v in verdicts)}; "
              f"node-by-node mismatches: {len(bad)}")
        print("  from the lab's logs, nodes: deployed more often than their fault allows "
              f"{sum('deployed' in v.why for v in verdicts)}, reset by us more than once "
              f"{sum('resets of ours' in v.why for v in verdicts)}, powered on by MAAS beyond its operations "
              f"{sum('MAAS powered' in v.why for v in verdicts)}, commissioned twice "
              f"{sum('commissioned' in v.why for v in verdicts)}")
        for v in bad[:20]:
            print(f"    {v.node} ({v.fault}): {v.why} [{v.detail[:160]}]")
        if args.until == "validate":
            routed = sum(kind in WHO_FIXES for kind in (v.fault for v in verdicts))
            print(f"  who fixes it: {routed - len(wrong_owner)}/{routed} health quarantines route to their fault's "
                  f"first fix and owner (fleet.remediate)")
            for line in wrong_owner[:20]:
                print(f"    {line}")
        print(f"  wall: faulty {faulty_s:.1f} s, fault-free {clean_s:.1f} s, ratio {faulty_s / clean_s:.2f}")
        failed |= bool(bad) or bool(wrong_owner)
    if args.crash_runs and not args.only:
        runs = crash_runs(args.crash_racks, args.crash_runs, args.seed, delays)
        print(f"crash safety: {len(runs)} runs on {args.crash_racks * 4} nodes, SIGKILL at seeded points")
        for run in runs:
            print(f"  kill at {run.kill_after_s:5.2f} s ({'killed' if run.killed else 'finished first'}): "
                  f"converged {run.matches}, max per node: resets of ours {run.resets_max}, deployments "
                  f"{run.deploys_max}, registrations+commissionings {run.commissions_max}, extra MAAS power-ons "
                  f"{run.power_ons_extra}"
                  + (f"; {run.why}" if run.why else ""))
        print(f"  converged {sum(r.matches for r in runs)}/{len(runs)}, killed {sum(r.killed for r in runs)}, "
              f"runs with a repeated destructive request {sum(r.repeated for r in runs)}")
        failed |= not all(r.matches and not r.repeated for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
