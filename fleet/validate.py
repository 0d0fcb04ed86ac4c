"""The validate stage and the site-aware sweep both `provision.py health` and the workflow use.

The node judges itself (`python3 -m healthcheck --json`); here a verdict becomes a stage result:
OK and WARNING pass (warnings kept as evidence), CRITICAL quarantines with the failing checks and
who fixes them, UNKNOWN fails (a node we cannot verify is not ready to train), and an unreachable
node is retried (SSH may simply not be up yet after the configure reboot window).

Day one (fleet/baseline.py): while the site's dmesg baseline is learning, a node that passes every
other check contributes its kernel log's templates; the node whose templates complete the baseline,
and any node validated after that, is judged against it before the stage passes. The sweeps hand
every node the state dir's current baseline file, so the nodes validated while it was learning are
checked against it by the next `health` or `watch` sweep.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet import baseline, ssh
from fleet.health import UNREACHABLE, NodeHealth, fetch_templates, sweep
from fleet.site import Node, Site
from fleet.workflow import NodeContext, StageResult
from healthcheck.kernlog import Learning

PASSING = ("OK", "WARNING")


def sweep_site(site: Site, nodes: Sequence[Node], *, timeout_s: float = 60.0, parallel: int = 32) -> list[NodeHealth]:
    """Health of the given nodes of a site, over SSH, at most `parallel` at once; each node is judged against
    the dmesg baseline file in the site's state dir (or its learning placeholder) when there is one."""
    addresses = {node.hostname: node.address for node in nodes}
    path = baseline.baseline_file(baseline.site_state_dir(site))
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    return sweep(list(addresses), addresses.__getitem__, timeout_s=timeout_s, parallel=parallel,
                 ssh_options=ssh.options(site), baseline=current)


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


def checks_of(health: NodeHealth) -> dict[str, tuple[str, str]]:
    return {c.name: (c.verdict, c.summary) for c in health.checks}


class ValidateStage:
    name = "validate"
    max_attempts = 3

    def __init__(self, site: Site, timeout_s: float = 60.0) -> None:
        self.site = site
        self.state_dir = baseline.site_state_dir(site)
        self.timeout_s = timeout_s

    def _sweep(self, node: Node) -> NodeHealth:
        [health] = sweep_site(self.site, [node], timeout_s=self.timeout_s, parallel=1)
        return health

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        health = self._sweep(node)
        if not baseline.learning(checks_of(health)):
            return verdict_result(health)
        checks = {name: verdict for name, (verdict, _summary) in checks_of(health).items()}
        if baseline.qualifies(checks):
            self._contribute(node, ctx)
        now = baseline.current(self.state_dir)
        if isinstance(now, frozenset):
            health = self._sweep(node)  # the baseline exists now: judged against it before passing
            ctx.journal("dmesg_baseline_checked", verdict=checks_of(health).get(baseline.CHECK, ("", ""))[0])
            return verdict_result(health)
        result = verdict_result(health)
        if result.ok:
            why = now.reason if isinstance(now, Learning) else checks_of(health)[baseline.CHECK][1]
            return StageResult(True, f"{result.detail}; dmesg_baseline SKIPPED ({why})", result.evidence)
        return result

    def _contribute(self, node: Node, ctx: NodeContext) -> None:
        """This node's templates join the learning set; a node whose templates cannot be read passes
        without contributing (the next qualifying node takes its place)."""
        found, errors = fetch_templates([node.hostname], lambda _name: node.address, timeout_s=self.timeout_s,
                                        ssh_options=ssh.options(self.site))
        if node.hostname not in found:
            ctx.journal("dmesg_baseline_not_contributed", reason=errors.get(node.hostname, "no templates"))
            return
        outcome = baseline.record(self.state_dir, node.hostname, found[node.hostname],
                                  self.site.health.baseline_min_nodes)
        if outcome.late:
            return
        ctx.journal("dmesg_baseline_contributed", templates=len(found[node.hostname]), have=outcome.have,
                    need=outcome.need)
        if outcome.learned is not None:
            ctx.log.info("dmesg baseline learned from %s: %d templates", ", ".join(outcome.learned.learned_from),
                         len(outcome.learned.templates))
            ctx.journal("dmesg_baseline_learned", learned_from=list(outcome.learned.learned_from),
                        templates=len(outcome.learned.templates),
                        file=str(baseline.baseline_file(self.state_dir)))
