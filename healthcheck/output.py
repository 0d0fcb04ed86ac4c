"""Renderings of a report: a table for people, JSON for the fleet sweep, Prometheus textfile."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from healthcheck import SCHEMA_VERSION
from healthcheck.model import Verdict
from healthcheck.runner import Report

TEXTFILE_NAME = "healthcheck.prom"
_PROM_VALUE = {Verdict.OK: 0, Verdict.WARNING: 1, Verdict.CRITICAL: 2, Verdict.UNKNOWN: 3}


def to_json(report: Report) -> dict[str, Any]:
    """The stable JSON shape documented in healthcheck/README.md."""
    return {
        "schema": SCHEMA_VERSION,
        "node": report.node,
        "verdict": report.verdict.value,
        "exit_code": report.verdict.exit_code,
        "started_at": dt.datetime.fromtimestamp(report.started_at, dt.UTC).isoformat(timespec="seconds"),
        "duration_s": report.duration_s,
        "gpu_source": report.gpu_source,
        "checks": [
            {
                "name": r.check,
                "verdict": r.verdict.value,
                "severity": report.severities.get(r.check, Verdict.CRITICAL).value,
                "summary": r.summary,
                "fix": r.fix,
                "evidence": dict(r.evidence),
                "findings": [{"verdict": f.verdict.value, "message": f.message, "fix": f.fix} for f in r.findings],
            }
            for r in report.results
        ],
    }


def to_table(report: Report) -> str:
    rows = [("CHECK", "VERDICT", "SUMMARY / FIX")]
    for r in report.results:
        rows.append((r.check, r.verdict.value, r.summary))
        if r.fix:
            rows.append(("", "", "-> " + r.fix))
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    lines.append(
        f"\nnode {report.node}: {report.verdict.value} (exit {report.verdict.exit_code}, "
        f"{report.duration_s:.2f} s, GPUs via {report.gpu_source})"
    )
    return "\n".join(lines)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


_METRIC_KEY = re.compile(r"[^a-zA-Z0-9_]")


def to_textfile(report: Report, prefix: str = "healthcheck") -> str:
    """Prometheus text format: one gauge per check and node, plus every numeric evidence value.

    ``prefix`` names the metrics: burn-in writes its own file with ``burnin`` so node_exporter never
    sees the same series twice.
    """
    node = _label(report.node)
    out = [
        f"# HELP {prefix}_check_verdict Verdict of one check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN "
        "(skipped checks are not exported).",
        f"# TYPE {prefix}_check_verdict gauge",
    ]
    for r in report.results:
        if r.verdict in _PROM_VALUE:
            out.append(f'{prefix}_check_verdict{{node="{node}",check="{r.check}"}} {_PROM_VALUE[r.verdict]}')
    out += [
        f"# HELP {prefix}_evidence Numeric evidence behind a check's verdict.",
        f"# TYPE {prefix}_evidence gauge",
    ]
    for r in report.results:
        for key, value in r.evidence.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                key = _METRIC_KEY.sub("_", key)
                out.append(f'{prefix}_evidence{{node="{node}",check="{r.check}",key="{key}"}} {value}')
    out += [
        f"# HELP {prefix}_node_verdict Worst verdict of the node: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        f"# TYPE {prefix}_node_verdict gauge",
        f'{prefix}_node_verdict{{node="{node}"}} {_PROM_VALUE.get(report.verdict, 0)}',
        f"# HELP {prefix}_last_run_timestamp_seconds When the checks ran.",
        f"# TYPE {prefix}_last_run_timestamp_seconds gauge",
        f'{prefix}_last_run_timestamp_seconds{{node="{node}"}} {report.started_at:.3f}',
        f"# HELP {prefix}_duration_seconds How long the checks took.",
        f"# TYPE {prefix}_duration_seconds gauge",
        f'{prefix}_duration_seconds{{node="{node}"}} {report.duration_s}',
    ]
    return "\n".join(out) + "\n"


def write_textfile(report: Report, directory: Path, name: str = TEXTFILE_NAME, prefix: str = "healthcheck") -> Path:
    """Write atomically (temp file + rename): node_exporter must never read half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{prefix}-", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        out.write(to_textfile(report, prefix))
    os.chmod(tmp, 0o644)
    target = directory / name
    os.replace(tmp, target)
    return target


def dumps(report: Report) -> str:
    return json.dumps(to_json(report), indent=2, sort_keys=False)
