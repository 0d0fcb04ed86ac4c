"""The day-one dmesg baseline: learned from a site's first validated nodes, kept in the state dir.

A new site has no baseline, and a kernel-log check without one can only say UNKNOWN (which would
quarantine every node of the first rack). So the first nodes that pass every other check contribute
their kernel log's templates (healthcheck.kernlog); once `health.baseline_min_nodes` of them have
(default 3), the baseline is the templates seen on at least that many of them, and never a line seen
on only one node of the learning set. Until then the state dir holds kernlog's "learning"
placeholder instead, and the nodes' `dmesg_baseline` check says SKIPPED with that reason.

The one file, `<state>/dmesg-baseline.json`, is what every node is judged against: the
healthcheck_agent role installs it (for the node's own timer), and the control plane's sweeps hand
its current content to the node (`python3 -m healthcheck --dmesg-baseline -`), so a node validated
while the baseline was learning is checked against it by the next sweep, and a relearn takes effect
at once. Pure decisions here, plus small file helpers for the state dir:

    <state>/dmesg-baseline.json          the baseline or the learning placeholder (kernlog's format)
    <state>/dmesg/learning/<node>.json   one contributor's templates
    <state>/dmesg/.lock                  held while contributions and the baseline change
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet.site import Site
from fleet.state import production_state_dir
from healthcheck.kernlog import (
    LEARNING_PREFIX,
    Baseline,
    Learning,
    load_baseline,
    save_baseline,
    save_learning,
)
from healthcheck.probe import Missing

CHECK = "dmesg_baseline"
PASSING = ("OK", "SKIPPED")


def qualifies(checks: Mapping[str, str]) -> bool:
    """A node passes every check (OK or SKIPPED) but the baseline one itself: it may contribute.

    `checks` is check name -> verdict, from the node's own report."""
    others = [verdict for name, verdict in checks.items() if name != CHECK]
    return bool(others) and all(verdict in PASSING for verdict in others)


def learning(checks: Mapping[str, tuple[str, str]]) -> bool:
    """The node judged its kernel log against the learning placeholder (check name -> (verdict, summary))."""
    verdict, summary = checks.get(CHECK, ("", ""))
    return verdict == "SKIPPED" and summary.startswith(LEARNING_PREFIX)


@dataclass(frozen=True)
class Learned:
    """The outcome of a learning round: the baseline (None while still learning) and how far it is."""

    baseline: Baseline | None
    have: int
    need: int


def nodes_needed(min_nodes: int) -> int:
    """Contributors needed: the site's `baseline_min_nodes`, and never fewer than two (a baseline from
    one node would learn that node's oddities as normal)."""
    return max(2, min_nodes)


def learn(contributions: Mapping[str, frozenset[str]], min_nodes: int) -> Learned:
    """The baseline once enough nodes contributed: the templates seen on at least `nodes_needed(min_nodes)`
    of them."""
    need = nodes_needed(min_nodes)
    if len(contributions) < need:
        return Learned(None, len(contributions), need)
    seen_on: dict[str, int] = {}
    for templates in contributions.values():
        for template in templates:
            seen_on[template] = seen_on.get(template, 0) + 1
    keep = frozenset(t for t, n in seen_on.items() if n >= need)
    return Learned(Baseline(keep, tuple(sorted(contributions)), need), len(contributions), need)


def diff(old: frozenset[str], new: frozenset[str]) -> tuple[list[str], list[str]]:
    """(added, removed) templates, sorted: what a relearn changes."""
    return sorted(new - old), sorted(old - new)


def baseline_file(state_dir: Path) -> Path:
    return state_dir / "dmesg-baseline.json"


def site_state_dir(site: Site) -> Path:
    """The site's state dir (the CLI resolves --state-dir, FLEET_STATE_DIR and the default into the site)."""
    return site.state_dir or production_state_dir(site.name)


def _learning_dir(state_dir: Path) -> Path:
    return state_dir / "dmesg" / "learning"


def current(state_dir: Path) -> frozenset[str] | Learning | Missing:
    """What the site's nodes are judged against now: the templates, the learning placeholder, or nothing."""
    return load_baseline(baseline_file(state_dir))


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Held while contributions and the baseline change: the validate stage's threads, and other runs on
    the same state dir (a second rack's bring-up, `health baseline`), take turns. The lab keeps its own
    copy (lab/filelock.py says why)."""
    path = state_dir / "dmesg" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(state_dir: Path, min_nodes: int) -> Path:
    """The baseline file exists: a site without one gets the learning placeholder (before the role
    installs it on the first nodes, so their check says SKIPPED "learning", not UNKNOWN)."""
    path = baseline_file(state_dir)
    with locked(state_dir):
        if isinstance(current(state_dir), Missing):
            save_learning(len(contributions(state_dir)), nodes_needed(min_nodes), path)
    return path


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


@dataclass(frozen=True)
class Contribution:
    """What one validated node's templates did: `learned` once they completed the baseline; `late` when
    the baseline already existed (the node is judged against it instead)."""

    have: int
    need: int
    learned: Baseline | None = None
    late: bool = False


def record(state_dir: Path, node: str, templates: frozenset[str], min_nodes: int) -> Contribution:
    """A qualifying node's templates join the learning set; the baseline is learned and saved once it is
    complete, else the placeholder counts the contributors so far."""
    with locked(state_dir):
        if isinstance(current(state_dir), frozenset):
            return Contribution(0, nodes_needed(min_nodes), late=True)
        contribute(state_dir, node, templates)
        outcome = learn(contributions(state_dir), min_nodes)
        if outcome.baseline is None:
            save_learning(outcome.have, outcome.need, baseline_file(state_dir))
            return Contribution(outcome.have, outcome.need)
        save_baseline(outcome.baseline, baseline_file(state_dir))
        return Contribution(outcome.have, outcome.need, learned=outcome.baseline)


def replace(state_dir: Path, found: Mapping[str, frozenset[str]], baseline: Baseline) -> Path:
    """A relearn: the learning set becomes `found` and the baseline the one learned from it."""
    with locked(state_dir):
        shutil.rmtree(_learning_dir(state_dir), ignore_errors=True)
        for node, templates in found.items():
            contribute(state_dir, node, templates)
        save_baseline(baseline, baseline_file(state_dir))
    return baseline_file(state_dir)
