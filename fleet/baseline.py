"""The day-one dmesg baseline: learned from a site's first validated nodes, kept in the state dir.

A new site has no baseline, and a kernel-log check without one can only say UNKNOWN. So the first
nodes that pass every other check contribute their kernel log's templates (healthcheck.kernlog);
once `health.baseline_min_nodes` of them have (default 3), the baseline is the templates seen on at
least that many of them, and never a line seen on only one node of the learning set. Until then the
nodes get a "learning" placeholder and their `dmesg_baseline` check says SKIPPED with that reason.

Pure decisions here, plus small file helpers for the state dir:
    <state>/dmesg/learning/<node>.json   one contributor's templates
    <state>/dmesg-baseline.json          the baseline (healthcheck.kernlog's file format)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from healthcheck.kernlog import Baseline, Templater, save_baseline

IGNORED_CHECK = "dmesg_baseline"
PASSING = ("OK", "SKIPPED")


def qualifies(report: Mapping) -> bool:
    """A node's health report (healthcheck --json) passes every check but the baseline one itself."""
    checks = report.get("checks") or []
    return bool(checks) and all(c.get("verdict") in PASSING for c in checks if c.get("check") != IGNORED_CHECK)


def templates_of(lines: Iterable[str]) -> frozenset[str]:
    templ = Templater()
    return frozenset(templ(line) for line in lines if line.strip())


@dataclass(frozen=True)
class Learned:
    """The outcome of a learning round: the baseline (None while still learning) and how far it is."""

    baseline: Baseline | None
    have: int
    need: int


def learn(contributions: Mapping[str, frozenset[str]], min_nodes: int) -> Learned:
    """The baseline once `min_nodes` nodes contributed: templates seen on at least `min_nodes` of them
    (and on at least two: one node's oddity is never learned)."""
    need = max(1, min_nodes)
    if len(contributions) < need:
        return Learned(None, len(contributions), need)
    floor = max(2, need) if len(contributions) >= 2 else 1
    seen_on: dict[str, int] = {}
    for templates in contributions.values():
        for template in templates:
            seen_on[template] = seen_on.get(template, 0) + 1
    keep = frozenset(t for t, n in seen_on.items() if n >= min(floor, len(contributions)))
    return Learned(Baseline(keep, tuple(sorted(contributions)), need), len(contributions), need)


def diff(old: frozenset[str], new: frozenset[str]) -> tuple[list[str], list[str]]:
    """(added, removed) templates, sorted: what a relearn changes."""
    return sorted(new - old), sorted(old - new)


def baseline_file(state_dir: Path) -> Path:
    return state_dir / "dmesg-baseline.json"


def _learning_dir(state_dir: Path) -> Path:
    return state_dir / "dmesg" / "learning"


def contributions(state_dir: Path) -> dict[str, frozenset[str]]:
    found = {}
    folder = _learning_dir(state_dir)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            found[path.stem] = frozenset(json.loads(path.read_text(encoding="utf-8")))
    return found


def contribute(state_dir: Path, node: str, templates: frozenset[str]) -> None:
    """Record one validated node's templates (atomically: a half-written file would skew the baseline)."""
    folder = _learning_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".node-")
    with os.fdopen(fd, "w") as out:
        json.dump(sorted(templates), out)
    os.replace(tmp, folder / f"{node}.json")


def save(state_dir: Path, baseline: Baseline) -> Path:
    path = baseline_file(state_dir)
    save_baseline(baseline, path)
    return path
