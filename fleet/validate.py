"""The validate stage and the site-aware sweep both `provision.py health` and the workflow use.

The node judges itself (`python3 -m healthcheck --json`); here a verdict becomes a stage result:
OK and WARNING pass (warnings kept as evidence), CRITICAL quarantines with the failing checks and
who fixes them, UNKNOWN fails (a node we cannot verify is not ready to train), and an unreachable
node is retried (SSH may simply not be up yet after the configure reboot window).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet import ssh
from fleet.health import UNREACHABLE, NodeHealth, sweep
from fleet.site import Node, Site
from fleet.workflow import NodeContext, StageResult

PASSING = ("OK", "WARNING")


def sweep_site(site: Site, nodes: Sequence[Node], *, timeout_s: float = 60.0, parallel: int = 32) -> list[NodeHealth]:
    """Health of the given nodes of a site, over SSH, at most `parallel` at once."""
    addresses = {node.hostname: node.address for node in nodes}
    return sweep(list(addresses), addresses.__getitem__, timeout_s=timeout_s, parallel=parallel,
                 ssh_options=ssh.options(site))


def verdict_result(health: NodeHealth) -> StageResult:
    """Map one node's health to the stage's result (pure)."""
    evidence = {"verdict": health.verdict, "problems": [
        {"check": c.name, "verdict": c.verdict, "summary": c.summary, "fix": c.fix} for c in health.problems]}
    if health.verdict in PASSING:
        detail = "healthy" if health.verdict == "OK" else f"healthy with warnings: {health.reason}"
        return StageResult(True, detail, evidence)
    if health.verdict == UNREACHABLE:
        return StageResult(False, f"health check could not run: {health.reason}", evidence)
    if health.verdict == "CRITICAL":
        return StageResult(False, f"CRITICAL: {health.reason}", evidence, quarantine=True)
    return StageResult(False, f"{health.verdict}: cannot verify the node: {health.reason}", evidence,
                       retryable=False)


class ValidateStage:
    name = "validate"
    max_attempts = 3

    def __init__(self, site: Site, timeout_s: float = 60.0) -> None:
        self.site = site
        self.timeout_s = timeout_s

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        [health] = sweep_site(self.site, [node], timeout_s=self.timeout_s, parallel=1)
        return verdict_result(health)
