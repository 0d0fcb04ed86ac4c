"""Burn-in over SSH: every selected node runs `python3 -m healthcheck.burnin run` at once; its report decides.

The node does the work and the judging (healthcheck/burnin/, the same JSON report shape as the
health checks), and writes its own Prometheus textfile (burnin.prom) and record; this module only
starts the runs in parallel through the health sweep's transport (fleet.health.sweep: one ssh per
node, a deadline, hung vs unreachable told apart), turns each report into a stage result with the
evidence (which GPU, which element, which check), and records the outcome in the state DB.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fleet import ssh
from fleet.health import STARTED_MARKER, NodeHealth, sweep
from fleet.site import Node, Site
from fleet.state import StateDB
from fleet.validate import verdict_result
from fleet.workflow import StageResult

# Beyond the stress itself: warm-up and the plain-rate yardstick, PCIe copies, HBM and pattern test
# per GPU, the NCCL sweep to 4 GiB (the device H200 took 25 s for all of it; 8 GPUs take longer).
OVERHEAD_S = 300.0


def remote_command(site: Site, duration_s: float | None = None) -> tuple[str, ...]:
    return ("echo", STARTED_MARKER, ";", *site.burnin.remote_args(duration_s))


def burnin_sweep(site: Site, nodes: Sequence[Node], *, duration_s: float | None = None, parallel: int = 32,
                 runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[NodeHealth]:
    """Burn in every node at once (at most ``parallel``); results in input order."""
    duration = duration_s or site.burnin.duration_s
    addresses = {node.hostname: node.address for node in nodes}
    return sweep(list(addresses), addresses.__getitem__, timeout_s=duration + OVERHEAD_S, parallel=parallel,
                 remote_command=remote_command(site, duration), ssh_options=ssh.options(site), runner=runner)


def findings(health: NodeHealth) -> list[dict[str, str]]:
    """Every finding of the node's report that is not OK: the evidence a quarantine carries."""
    out = []
    for check in (health.report or {}).get("checks", []):
        for finding in check.get("findings", []):
            if finding.get("verdict") not in ("OK", "SKIPPED"):
                out.append({"check": check["name"], "verdict": finding["verdict"], "message": finding["message"],
                            "fix": finding.get("fix", "")})
    return out


def stage_result(health: NodeHealth) -> StageResult:
    """As validate maps a health verdict (CRITICAL quarantines, UNKNOWN fails, unreachable retries), plus
    every finding and the run's figures as evidence."""
    result = verdict_result(health)
    evidence = dict(result.evidence)
    evidence["findings"] = findings(health)
    if health.report and "figures" in health.report:
        evidence["figures"] = health.report["figures"]
    return StageResult(result.ok, f"burn-in {result.detail}", evidence, result.retryable, result.quarantine)


def record(db: StateDB, results: Sequence[NodeHealth], reports_dir: Path, *, quarantine: bool) -> list[str]:
    """Journal every node's outcome and keep its report; quarantine CRITICAL nodes (journaled first).

    Returns the nodes quarantined. Unreachable and UNKNOWN nodes are recorded, never quarantined:
    silence is not evidence (the same rule as the health sweep).
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    quarantined = []
    for health in results:
        if health.report is not None:
            (reports_dir / f"{health.node}.json").write_text(json.dumps(health.report, indent=2))
        db.journal(health.node, "burnin", "result", verdict=health.verdict, reason=health.reason)
        if quarantine and health.verdict == "CRITICAL":
            quarantine_node(db, health.node, health.reason, {"findings": findings(health)})
            quarantined.append(health.node)
    return quarantined


def quarantine_node(db: StateDB, node: str, reason: str, evidence: dict[str, Any]) -> None:
    """Journal first, then the node's record: the reason and the evidence wherever an operator looks."""
    db.journal(node, "burnin", "quarantine", reason=reason, **evidence)
    db.update(node, status="quarantined", current="burnin", last_error=f"burnin: {reason}", evidence=evidence)


class BurninStage:
    """The optional `burnin` stage after validate (`provision.py --rack 12 --until burnin`)."""

    name = "burnin"
    max_attempts = 2  # an unreachable node gets one more try; a failed burn-in is not retried

    def __init__(self, site: Site) -> None:
        self.site = site

    def run(self, node: Node, ctx: Any) -> StageResult:
        [health] = burnin_sweep(self.site, [node], parallel=1)
        return stage_result(health)
