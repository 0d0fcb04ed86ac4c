"""The shapes every check shares: verdicts, results, and the check interface."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from healthcheck.config import Config
    from healthcheck.readings import Readings


class Verdict(enum.Enum):
    """Outcome of one check.

    ``exit_code`` follows the monitoring-plugin convention (0 OK, 1 warning, 2 critical,
    3 unknown). ``rank`` orders outcomes for the node verdict: a node we could not verify is
    worse than one with a known minor problem (it cannot be trusted with a job) but better than
    one known to be broken. SKIPPED means the check does not apply to this node (config or the
    hardware itself says the feature is absent); it never stands for "could not run".
    """

    SKIPPED = "SKIPPED"
    OK = "OK"
    WARNING = "WARNING"
    UNKNOWN = "UNKNOWN"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        return _EXIT[self]


_RANK = {
    Verdict.SKIPPED: 0,
    Verdict.OK: 1,
    Verdict.WARNING: 2,
    Verdict.UNKNOWN: 3,
    Verdict.CRITICAL: 4,
}
_EXIT = {
    Verdict.SKIPPED: 0,
    Verdict.OK: 0,
    Verdict.WARNING: 1,
    Verdict.UNKNOWN: 3,
    Verdict.CRITICAL: 2,
}

# `python3 -m healthcheck`'s status for a bad config or arguments: no verdict (the verdicts' codes are 0-3).
USAGE_EXIT = 4

Evidence = Mapping[str, float | int | str]


@dataclass(frozen=True)
class Finding:
    """One problem a check saw, with who fixes it; a check may report several."""

    verdict: Verdict
    message: str
    fix: str


@dataclass(frozen=True)
class Result:
    """What one check concluded, with the numbers that back it up."""

    check: str
    verdict: Verdict
    summary: str
    evidence: Evidence = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    @property
    def fix(self) -> str:
        """The fix of the worst finding: what the table shows in one line."""
        worst = worst_finding(self.findings)
        return worst.fix if worst else ""


def worst_finding(findings: tuple[Finding, ...]) -> Finding | None:
    """The first finding of the highest rank (findings keep the order they were seen)."""
    best: Finding | None = None
    for finding in findings:
        if best is None or finding.verdict.rank > best.verdict.rank:
            best = finding
    return best


def conclude(
    check: str,
    findings: list[Finding],
    evidence: Evidence,
    ok_summary: str,
) -> Result:
    """Fold findings into one result: the worst finding sets the verdict and leads the summary."""
    worst = worst_finding(tuple(findings))
    if worst is None:
        return Result(check, Verdict.OK, ok_summary, dict(evidence), ())
    others = len(findings) - 1
    summary = worst.message + (f" (+{others} more)" if others else "")
    return Result(check, worst.verdict, summary, dict(evidence), tuple(findings))


def unknown(check: str, why: str, fix: str, evidence: Evidence | None = None) -> Result:
    """A check that could not run: UNKNOWN with the reason, never OK."""
    return Result(check, Verdict.UNKNOWN, why, dict(evidence or {}), (Finding(Verdict.UNKNOWN, why, fix),))


def skipped(check: str, why: str) -> Result:
    """A check that does not apply to this node, with the reason."""
    return Result(check, Verdict.SKIPPED, why, {}, ())


def node_verdict(results: list[Result]) -> Verdict:
    """The worst verdict of all checks; a node with no results at all is UNKNOWN."""
    if not results:
        return Verdict.UNKNOWN
    worst = max((r.verdict for r in results), key=lambda v: v.rank)
    return Verdict.OK if worst is Verdict.SKIPPED else worst


class Check(Protocol):
    """A check: a name, the worst verdict it can give, and a pure evaluation of readings."""

    name: str
    severity: Verdict

    def evaluate(self, readings: Readings, config: Config) -> Result:
        """Decide from readings alone: no I/O here."""
        ...
