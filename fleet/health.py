"""Fleet health sweep: run the node-side checks over SSH and decide what to quarantine.

The node does the judging (``python3 -m healthcheck --json``, see healthcheck/README.md); this
module only fetches those reports in parallel, turns transport failures into per-node results,
and decides, in a pure function, the fleet verdict and which nodes to quarantine. It never
powers anything off: quarantine is a decision handed to the caller (MAAS tag, state DB).

Used by ``provision.py health`` and the workflow's ``validate`` stage:

    results = sweep(["gpu-012-01", ...], ssh_target=lambda n: f"root@{site.nodes[n].address}",
                    timeout_s=60, parallel=32)
    decision = decide_fleet(results)
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fleet import hostkeys
from fleet.logs import node_log
from fleet.ssh import SSH_FAILED, ssh_argv
from healthcheck.model import USAGE_EXIT, Verdict

log = logging.getLogger("fleet.health")

# Printed by the node's shell before the checks start: a run that timed out after it was seen
# reached the node and hung there (typical of a wedged GPU: NVML or nvidia-smi stop answering), which
# is a finding about the node (CRITICAL, quarantined), not a transport failure (UNREACHABLE).
STARTED_MARKER = "fleet-healthcheck-started"
# The sweep keeps its own IB counter state on the node, apart from the node's timer (healthcheck.ib).
# The login user is not root (MAAS's Ubuntu): the checks read the kernel log and docker and write the
# agent's state dir, so they run under `sudo -n` (never a password prompt: fails at once instead).
REMOTE_COMMAND = ("echo", STARTED_MARKER, ";", "sudo", "-n", "python3", "-m", "healthcheck", "--json",
                  "--state-name", "sweep")
# The node's kernel log as templates (healthcheck's `templates`), for learning the dmesg baseline.
TEMPLATES_COMMAND = ("sudo", "-n", "python3", "-m", "healthcheck", "templates")
UNREACHABLE = "UNREACHABLE"
_HUNG = -2  # our own status: the checks started on the node and gave no report before the deadline


def rank(verdict: str) -> int:
    """healthcheck's own order of verdicts (`Verdict.rank`); UNREACHABLE, or any other word, ranks as UNKNOWN:
    we could not verify the node."""
    try:
        return Verdict(verdict).rank
    except ValueError:
        return Verdict.UNKNOWN.rank


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    verdict: str
    summary: str
    fix: str


@dataclass(frozen=True)
class NodeHealth:
    """One node's sweep result: its own report when it answered, else why not."""

    node: str
    verdict: str  # OK, WARNING, CRITICAL, UNKNOWN or UNREACHABLE
    checks: tuple[CheckOutcome, ...] = ()
    error: str = ""
    duration_s: float = 0.0
    report: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def problems(self) -> tuple[CheckOutcome, ...]:
        return tuple(c for c in self.checks if c.verdict not in ("OK", "SKIPPED"))

    @property
    def reason(self) -> str:
        """One line: the worst checks' summaries, or the transport error."""
        if self.error:
            return self.error
        worst = sorted(self.problems, key=lambda c: -rank(c.verdict))
        return "; ".join(f"{c.name}: {c.summary}" for c in worst[:3])


@dataclass(frozen=True)
class FleetDecision:
    verdict: str
    counts: Mapping[str, int]
    quarantine: tuple[tuple[str, str], ...]  # (node, reason)
    unreachable: tuple[str, ...]


def parse_node_output(node: str, returncode: int, stdout: str, stderr: str, duration_s: float) -> NodeHealth:
    """Turn one SSH run into a NodeHealth; pure, so every transport outcome is table-tested."""
    if stdout.startswith(STARTED_MARKER):
        stdout = stdout[len(STARTED_MARKER):].lstrip("\n")
    if returncode == _HUNG:
        return NodeHealth(node, "CRITICAL", error=f"health check started on the node but hung: {stderr} "
                          "(typical of a wedged GPU: nvidia-smi/NVML not answering); drain the node, then "
                          "reset the GPUs or reboot it", duration_s=duration_s)
    if returncode == SSH_FAILED:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "ssh failed"
        refused = hostkeys.explain(node, stderr)  # ssh refused the node's host key: say which and what next
        return NodeHealth(node, UNREACHABLE, error=refused or f"ssh: {last}", duration_s=duration_s)
    if returncode == USAGE_EXIT:
        return NodeHealth(
            node,
            "UNKNOWN",
            error=f"healthcheck config invalid on the node: {stderr.strip()[:300]}",
            duration_s=duration_s,
        )
    try:
        report = json.loads(stdout)
        checks = tuple(CheckOutcome(c["name"], c["verdict"], c["summary"], c.get("fix", "")) for c in report["checks"])
        verdict = str(report["verdict"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"no report ({err})"
        return NodeHealth(node, "UNKNOWN", error=f"healthcheck exited {returncode}: {detail}", duration_s=duration_s)
    return NodeHealth(node, verdict, checks, duration_s=duration_s, report=report)


def _run_one(
    node: str, argv: list[str], timeout_s: float, runner: Callable[..., subprocess.CompletedProcess],
    stdin: str | None = None,
) -> tuple[int, str, str, float]:
    started = time.monotonic()
    feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    try:
        done = runner(argv, capture_output=True, text=True, timeout=timeout_s, check=False, **feed)
    except subprocess.TimeoutExpired as err:
        node_log(log, node).warning("health check timed out after %.0f s", timeout_s)
        seen = err.stdout or b""  # what came before the deadline (bytes, even with text=True)
        seen = seen.decode(errors="replace") if isinstance(seen, bytes) else seen
        rc = _HUNG if seen.startswith(STARTED_MARKER) else SSH_FAILED
        return rc, "", f"timed out after {timeout_s:.0f} s", time.monotonic() - started
    except OSError as err:
        return SSH_FAILED, "", f"cannot run ssh: {err.strerror}", time.monotonic() - started
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def sweep(
    nodes: Iterable[str],
    ssh_target: Callable[[str], str],
    *,
    timeout_s: float = 60.0,
    parallel: int = 32,
    remote_command: tuple[str, ...] = REMOTE_COMMAND,
    ssh_options: tuple[str, ...] = (),
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    baseline: str | None = None,
) -> list[NodeHealth]:
    """Run the checks on every node, at most ``parallel`` at once; results in input order.

    ``ssh_target(node)`` gives what ssh connects to ("root@198.18.0.12", or a Host alias).
    ``baseline`` is the site's dmesg baseline file's content: each node judges its kernel log against
    it (handed over on stdin) instead of its installed copy, which may be older.
    ``runner`` is ``subprocess.run``; tests pass a stand-in.
    """
    names = list(nodes)
    connect = max(1, min(10, int(timeout_s / 3)))
    remote = remote_command + (("--dmesg-baseline", "-") if baseline is not None else ())

    def one(node: str) -> NodeHealth:
        argv = ssh_argv(ssh_target(node), remote, connect_timeout_s=connect, options=ssh_options)
        rc, out, err, took = _run_one(node, argv, timeout_s, runner, baseline)
        result = parse_node_output(node, rc, out, err, round(took, 2))
        node_log(log, node).info("%s%s", result.verdict, f" ({result.reason})" if result.reason else "")
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names) or 1)), thread_name_prefix="health") as pool:
        return list(pool.map(one, names))


def decide_fleet(
    results: Iterable[NodeHealth], *, quarantine_verdicts: tuple[str, ...] = ("CRITICAL",)
) -> FleetDecision:
    """Fleet verdict (the worst node) and the nodes to quarantine, with the reason for each.

    Only nodes that answered with a quarantine verdict are quarantined: an unreachable node may
    be a network blip, and quarantining on silence would let one switch fault drain a rack.
    """
    results = list(results)
    counts = Counter(r.verdict for r in results)
    worst = max((r.verdict for r in results), key=rank, default="UNKNOWN")
    quarantine = tuple((r.node, r.reason) for r in results if r.verdict in quarantine_verdicts)
    unreachable = tuple(r.node for r in results if r.verdict == UNREACHABLE)
    return FleetDecision(worst, dict(sorted(counts.items())), quarantine, unreachable)


def to_rows(results: Iterable[NodeHealth]) -> list[dict[str, str]]:
    """Table-ready rows: node, verdict, the first problem and who fixes it."""
    rows = []
    for r in results:
        first = sorted(r.problems, key=lambda c: -rank(c.verdict))[:1]
        rows.append({
            "node": r.node,
            "verdict": r.verdict,
            "reason": r.reason,
            "fix": first[0].fix if first else "",
            "duration_s": f"{r.duration_s:.1f}",
        })  # fmt: skip
    return rows


def to_json(results: Iterable[NodeHealth], decision: FleetDecision) -> dict[str, Any]:
    """The sweep's JSON: fleet decision plus each node's own report (schema in healthcheck/README.md)."""
    return {
        "verdict": decision.verdict,
        "counts": dict(decision.counts),
        "quarantine": [{"node": n, "reason": why} for n, why in decision.quarantine],
        "unreachable": list(decision.unreachable),
        "nodes": [
            {"node": r.node, "verdict": r.verdict, "error": r.error, "duration_s": r.duration_s, "report": r.report}
            for r in results
        ],
    }


def fetch_templates(
    nodes: Iterable[str],
    ssh_target: Callable[[str], str],
    *,
    timeout_s: float = 30.0,
    parallel: int = 16,
    ssh_options: tuple[str, ...] = (),
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """Each node's kernel log templates, templated on the node: (templates by node, errors by node).

    The node reads its kernel log the way its checks do (the config's sources: dmesg, the journal, the
    lab's file), so the baseline is learned from exactly what it will be judged against; sending
    templates instead of the log keeps a 100k-line dmesg to a few hundred lines on the wire.
    """
    names = list(nodes)
    connect = max(1, min(10, int(timeout_s / 3)))

    def one(node: str) -> tuple[str, int, str, str]:
        argv = ssh_argv(ssh_target(node), TEMPLATES_COMMAND, connect_timeout_s=connect, options=ssh_options)
        rc, out, err, _ = _run_one(node, argv, timeout_s, runner)
        return node, rc, out, err

    found: dict[str, frozenset[str]] = {}
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names) or 1))) as pool:
        for node, rc, out, err in pool.map(one, names):
            try:
                if rc != 0:
                    raise ValueError((err.strip().splitlines() or [f"exit {rc}"])[-1])
                found[node] = frozenset(str(t) for t in json.loads(out)["templates"])
            except (ValueError, KeyError, TypeError) as why:
                errors[node] = f"cannot read its kernel log templates: {why}"
                node_log(log, node).warning("%s", errors[node])
    return found, errors
