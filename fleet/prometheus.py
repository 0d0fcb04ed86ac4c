"""What Prometheus needs from the control plane: file_sd target files and the fleet's own metrics.

Prometheus finds the nodes through file_sd (https://prometheus.io/docs/guides/file-sd/): JSON files of
`[{"targets": ["host:port"], "labels": {...}}]` that it re-reads when they change, so the inventory
stays the one list of nodes. Node exporter on each node serves both its own collectors (infiniband
among them) and the health agent's textfile metrics (healthcheck.prom), so one target per node
covers both; dcgm-exporter is a second job where the site runs it.

The fleet's own state (which nodes are out of service, since when, why) is written in the text
exposition format for the ops host's node exporter textfile collector, which is where
monitoring/rules/fleet.rules.yml expects `fleet_*` series.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

NODE_EXPORTER_PORT = 9100
DCGM_EXPORTER_PORT = 9400
FLEET_TEXTFILE = "fleet.prom"


class NodeLike(Protocol):
    hostname: str
    rack: int
    slot: int
    role: str
    address: str


@dataclass(frozen=True)
class Job:
    """One scrape job's target file: its name (the file is `<name>.json`) and the port on each node."""

    name: str
    port: int


DEFAULT_JOBS = (Job("node", NODE_EXPORTER_PORT), Job("dcgm", DCGM_EXPORTER_PORT))


def target_groups(nodes: Iterable[NodeLike], port: int, site: str) -> list[dict]:
    """One file_sd group per node (labels differ per node), in hostname order so the file is stable."""
    return [
        {"targets": [f"{node.address}:{port}"],
         "labels": {"node": node.hostname, "rack": str(node.rack), "slot": str(node.slot), "role": node.role,
                    "site": site}}
        for node in sorted(nodes, key=lambda n: n.hostname)
    ]


def _write_atomically(path: Path, text: str) -> bool:
    """Replace `path` only when its content changes (Prometheus reloads on every write); True if written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def write_targets(nodes: Iterable[NodeLike], out_dir: Path, site: str, jobs: Iterable[Job] = DEFAULT_JOBS
                  ) -> dict[str, bool]:
    """Write `<job>.json` for each job under `out_dir`; returns job -> whether the file changed."""
    nodes = list(nodes)
    return {
        job.name: _write_atomically(out_dir / f"{job.name}.json",
                                    json.dumps(target_groups(nodes, job.port, site), indent=1) + "\n")
        for job in jobs
    }


@dataclass(frozen=True)
class OutOfService:
    """A node the fleet took out of service: since when and why (the journal's quarantine entry)."""

    node: str
    since: float
    cause: str


_LABEL_UNSAFE = re.compile(r'[\\"\n]')


def _label(value: str) -> str:
    return _LABEL_UNSAFE.sub(lambda m: {"\\": "\\\\", '"': '\\"', "\n": " "}[m.group(0)], value)


def fleet_metrics(total_nodes: int, out: Iterable[OutOfService], in_remediation: Mapping[str, str]) -> str:
    """The text exposition of the fleet's state, for monitoring/rules/fleet.rules.yml."""
    lines = [
        "# HELP fleet_inventory_nodes Nodes in the site inventory.",
        "# TYPE fleet_inventory_nodes gauge",
        f"fleet_inventory_nodes {total_nodes}",
        "# HELP fleet_node_out_of_service_since_timestamp_seconds When the fleet took the node out of service.",
        "# TYPE fleet_node_out_of_service_since_timestamp_seconds gauge",
    ]
    for entry in sorted(out, key=lambda o: o.node):
        cause = _label(entry.cause.split(":", 1)[0][:60])
        lines.append(f'fleet_node_out_of_service_since_timestamp_seconds{{node="{_label(entry.node)}",'
                     f'cause="{cause}"}} {entry.since:.3f}')
    lines += ["# HELP fleet_node_remediation The fix the watch loop is applying to the node (1 while it runs).",
              "# TYPE fleet_node_remediation gauge"]
    for node, fix in sorted(in_remediation.items()):
        lines.append(f'fleet_node_remediation{{node="{_label(node)}",fix="{_label(fix)}"}} 1')
    return "\n".join(lines) + "\n"


def write_fleet_metrics(directory: Path, text: str) -> Path:
    path = directory / FLEET_TEXTFILE
    _write_atomically(path, text)
    return path
