"""Resolves the lab's fault specs to concrete nodes, reproducibly.

A spec names nodes, a fraction of the fleet, or both; fractions are drawn with a generator seeded by
the site's `lab.seed` and the fault kind, so the same site and seed always break the same nodes (a
failing test can be rerun) while different kinds land on different nodes. The result is written to
`lab_dir/faults.json`, which every simulator re-reads when it changes: tests inject faults at run time
by rewriting that file, exactly as `provision.py lab up --fault ...` does at start.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

from fleet.site import Site
from lab.atomic import write_atomic
from lab.settings import FaultSpec, parse_fault

FAULTS_FILE = "faults.json"
# What a reinstall clears in the lab: the sick-GPU and bad-dmesg fixture sets stand for a driver/GSP state
# and a kernel log that a power cycle with a fresh OS does away with (so the remediation ladder's reimage
# rung can be seen to work). A down link (ib_link_down) is a cable: no reimage fixes it.
CLEARED_BY_REIMAGE = ("gpu_sick", "dmesg_bad")


def parse_cli_fault(text: str) -> FaultSpec:
    """`KIND:TARGET[:RATE]` where TARGET is node names joined by '+' or a fraction: `bmc_5xx:gpu-012-02:0.5`."""
    kind, _, rest = text.partition(":")
    target, _, rate = rest.partition(":")
    entry: dict = {"kind": kind, "rate": float(rate) if rate else 1.0}
    try:
        entry["fraction"] = float(target)
    except ValueError:
        entry["nodes"] = [name for name in target.split("+") if name]
    return parse_fault(entry)


def resolve(site: Site, extra: Iterable[FaultSpec] = ()) -> dict[str, dict[str, float]]:
    """Map hostname -> {fault kind: rate} for the site's faults plus `extra` (CLI overrides win)."""
    seed = site.lab.seed if site.lab else 0
    hostnames = sorted(site.nodes)
    result: dict[str, dict[str, float]] = {}
    for spec in [*(site.lab.faults if site.lab else ()), *extra]:
        unknown = [name for name in spec.nodes if name not in site.nodes]
        if unknown:
            raise ValueError(f"fault {spec.kind}: unknown node(s) {', '.join(unknown)}")
        chosen = set(spec.nodes)
        if spec.fraction:
            count = max(1, round(spec.fraction * len(hostnames)))
            chosen.update(random.Random(f"{seed}:{spec.kind}").sample(hostnames, count))
        for name in chosen:
            result.setdefault(name, {})[spec.kind] = spec.rate
    return result


def write(lab_dir: Path, faults: dict[str, dict[str, float]]) -> Path:
    """Atomically replace faults.json so a simulator never reads half a file."""
    path = lab_dir / FAULTS_FILE
    return write_atomic(path, json.dumps(faults, indent=1, sort_keys=True))


def clear_on_reimage(lab_dir: Path, hostname: str) -> list[str]:
    """MAAS released the machine: drop the faults a reinstall clears from faults.json; returns their kinds."""
    path = lab_dir / FAULTS_FILE
    try:
        faults = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return []
    node = faults.get(hostname, {})
    cleared = sorted(kind for kind in node if kind in CLEARED_BY_REIMAGE)
    if cleared:
        faults[hostname] = {kind: rate for kind, rate in node.items() if kind not in CLEARED_BY_REIMAGE}
        if not faults[hostname]:
            del faults[hostname]
        write(lab_dir, faults)
    return cleared
