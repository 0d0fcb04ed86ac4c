"""Find the slow node among N by splitting groups: O(log N) rounds of group tests (pure).

A collective runs at the speed of its slowest member, so a group test (all-reduce bus bandwidth,
or any group measurement) below the threshold means the group holds a slow node. Each round splits
every suspect group in two and tests all halves at once (disjoint node sets run in parallel);
halves that pass are cleared. A half of one node cannot run a collective alone, so it is tested
together with a cleared node. When both halves of a slow group pass, the fault is between them
(links, a spine), not in a node: reported as such. Rounds: ceil(log2 N) for one slow node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Measure = Callable[[list[list[str]]], list[float]]


@dataclass(frozen=True)
class Test:
    round: int
    group: tuple[str, ...]
    suspects: tuple[str, ...]  # the members under test (the rest of ``group`` is a cleared helper)
    value: float
    slow: bool


@dataclass
class Search:
    slow_nodes: list[str] = field(default_factory=list)
    between: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)
    rounds: int = 0
    unresolved: list[tuple[str, ...]] = field(default_factory=list)  # singles never paired with a cleared node


def find_slow(nodes: Sequence[str], measure: Measure, threshold: float, *, known_good: Sequence[str] = (),
              max_rounds: int = 64) -> Search:
    """Search ``nodes`` (whose group test was already slow) for the members that make it slow.

    ``measure`` takes the groups of one round and returns one value each (higher is better,
    e.g. GB/s); a value below ``threshold`` is slow. ``known_good`` nodes (outside ``nodes``) may
    be paired with a single suspect before any of ``nodes`` is cleared (with two nodes, one is needed).
    """
    result = Search()
    cleared: list[str] = list(known_good)
    suspects: list[tuple[str, ...]] = [tuple(nodes)] if len(nodes) > 1 else []
    if len(nodes) == 1:
        result.slow_nodes.append(nodes[0])
        return result
    waiting: list[tuple[str, ...]] = []  # single suspects still without a cleared partner
    while (suspects or waiting) and result.rounds < max_rounds:
        halves: list[tuple[tuple[str, ...], tuple[str, ...]]] = [(w, w) for w in waiting]  # (members, parent)
        for group in suspects:
            mid = len(group) // 2
            halves += [(group[:mid], group), (group[mid:], group)]
        groups, members, parents, helpers_used, waiting = [], [], [], set(), []
        for half, parent in halves:
            if len(half) >= 2:
                groups.append(list(half))
            else:
                helper = next((n for n in cleared if n not in helpers_used and n not in half), None)
                if helper is None:
                    waiting.append(half)
                    continue
                helpers_used.add(helper)
                groups.append([*half, helper])
            members.append(half)
            parents.append(parent)
        if not groups:
            break
        result.rounds += 1
        values = measure(groups)
        slow_by_parent: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        next_suspects: list[tuple[str, ...]] = []
        for group, half, parent, value in zip(groups, members, parents, values, strict=True):
            slow = value < threshold
            result.tests.append(Test(result.rounds, tuple(group), half, value, slow))
            slow_by_parent.setdefault(parent, [])
            if slow:
                slow_by_parent[parent].append(half)
            else:
                cleared.extend(half)
        for parent, slow_halves in slow_by_parent.items():
            untested = any(set(w) <= set(parent) for w in waiting)
            if not slow_halves and not untested and len(parent) > 1:
                mid = len(parent) // 2
                result.between.append((parent[:mid], parent[mid:]))
            for half in slow_halves:
                if len(half) == 1:
                    result.slow_nodes.append(half[0])
                else:
                    next_suspects.append(half)
        suspects = next_suspects
    result.unresolved = waiting
    result.slow_nodes.sort()
    return result
