"""Kernel log reading, line templates and the dmesg baseline.

A template is a line with everything that varies between boots and nodes (timestamps,
addresses, PCI ids, MACs, GUIDs, UUIDs, serials, numbers) replaced by ``#``. The baseline is
the set of templates seen on known-good nodes; a line whose template is not in it is news.
Every line is templated the same way, whatever it starts with: a public tool once whitelisted
any line starting with a digit, which hid exactly the lines that matter.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from healthcheck.config import Config
from healthcheck.model import Finding, Result, Verdict, conclude, unknown
from healthcheck.probe import Missing, read_text, run
from healthcheck.readings import Readings

BASELINE_SCHEMA = 1

# "[  12.345678] ", "<6>[  12.3] ", "[Sun Nov 29 07:04:45 2026] ", journal "[  1.2] host kernel: ",
# syslog/journal "Nov 29 07:05:12 host kernel: ".
_PREFIX = re.compile(r"^(?:<\d+>)?(?:\[[^\]]*\]\s*|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\s+)(?:\S+ kernel: )?")
# Every alternative but the last starts at a word boundary, which fails fast inside words: this
# ordering is what keeps templating near 400k lines/s on one core.
_VOLATILE = re.compile(
    r"\b(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"  # UUID
    r"|0[xX][0-9a-fA-F]+"  # hex number or address
    r"|[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){2,}(?:\.[0-9a-fA-F]+)?\b"  # MAC, GUID, PCI id, IPv6, clock
    r"|(?=[a-fA-F]*\d)[0-9a-fA-F]{6,}\b)"  # bare hex (addresses, serials) holding a digit
    r"|\d+"  # any other number, also inside names (eth0, mlx5_3, nvme0n1)
)


def strip_prefix(line: str) -> str:
    """The message without its timestamp/host prefix."""
    return _PREFIX.sub("", line, count=1)


def template(line: str) -> str:
    """The line's template: prefix stripped, volatile tokens replaced by ``#``."""
    return _VOLATILE.sub("#", _PREFIX.sub("", line, count=1)).rstrip()


# The template regex looks at digits by class only, except the "0" of "0x": mapping 1-9 to 1
# keeps every template the same while making the same message with other numbers hit the cache.
_SAME_CLASS = str.maketrans("23456789", "11111111")


class Templater:
    """Templates lines with a cache keyed by the digit-folded body (exactly the same template).

    Kernel logs repeat a few hundred messages with different numbers; the fold turns most lines
    into a dictionary hit, which is what makes 200k lines/s possible in pure Python.
    """

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, line: str) -> str:
        key = _PREFIX.sub("", line, count=1).translate(_SAME_CLASS)
        cached = self._cache.get(key)
        if cached is None:
            cached = _VOLATILE.sub("#", key).rstrip()
            if len(self._cache) < 200_000:
                self._cache[key] = cached
        return cached


@dataclass(frozen=True)
class Novel:
    line_no: int
    line: str
    template: str


def novel_lines(lines: Iterable[str], known: frozenset[str] | set[str]) -> list[Novel]:
    """Lines whose template is not in ``known``, in log order."""
    templ = Templater()
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        t = templ(line)
        if t not in known:
            found.append(Novel(number, line, t))
    return found


@dataclass(frozen=True)
class Baseline:
    templates: frozenset[str]
    learned_from: tuple[str, ...]
    min_nodes: int


def learn_baseline(logs: Mapping[str, Iterable[str]], min_nodes: int = 1) -> Baseline:
    """Templates seen on at least ``min_nodes`` of the known-good nodes' kernel logs."""
    seen_on: dict[str, int] = {}
    for lines in logs.values():
        templ = Templater()
        for t in {templ(line) for line in lines if line.strip()}:
            seen_on[t] = seen_on.get(t, 0) + 1
    keep = frozenset(t for t, n in seen_on.items() if n >= min_nodes)
    return Baseline(keep, tuple(sorted(logs)), min_nodes)


def save_baseline(baseline: Baseline, path: Path) -> None:
    """Write the baseline atomically (a half-written baseline would flag every line)."""
    data = {
        "schema": BASELINE_SCHEMA,
        "learned_from": list(baseline.learned_from),
        "min_nodes": baseline.min_nodes,
        "templates": sorted(baseline.templates),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".baseline-")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=0)
        out.write("\n")
    os.replace(tmp, path)


def load_baseline(path: Path) -> frozenset[str] | Missing:
    text = read_text(path)
    if isinstance(text, Missing):
        return text
    try:
        data = json.loads(text)
        if data.get("schema") != BASELINE_SCHEMA:
            return Missing(f"{path}: schema {data.get('schema')!r}, expected {BASELINE_SCHEMA}")
        return frozenset(data["templates"])
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as err:
        return Missing(f"{path}: not a baseline file ({err})")


def gather_kernel_log(config: Config) -> tuple[str, ...] | Missing:
    """The kernel log from a file (lab), dmesg, or the journal, in that order of preference."""
    src = config.sources
    if src.kernel_log_file:
        text = read_text(Path(src.kernel_log_file))
    else:
        text = run(src.kernel_log_command, src.command_timeout_s)
        if isinstance(text, Missing) and src.kernel_log_fallback_command:
            fallback = run(src.kernel_log_fallback_command, src.command_timeout_s)
            text = fallback if isinstance(fallback, str) else Missing(f"{text.reason}; {fallback.reason}")
    return text if isinstance(text, Missing) else tuple(text.splitlines())


def kernel_log_unreadable(check: str, missing: Missing) -> Result:
    """The one UNKNOWN every kernel-log check gives when it cannot read the log."""
    return unknown(check, f"kernel log unreadable: {missing.reason}",
                   "node owner: make dmesg or journalctl -k readable for the healthcheck user")


class DmesgBaselineCheck:
    name = "dmesg_baseline"
    severity = Verdict.WARNING

    def evaluate(self, readings: Readings, config: Config) -> Result:
        if isinstance(readings.kernel_log, Missing):
            return kernel_log_unreadable(self.name, readings.kernel_log)
        if isinstance(readings.dmesg_baseline, Missing):
            return unknown(
                self.name,
                f"no dmesg baseline: {readings.dmesg_baseline.reason}",
                "ops: learn one from known-good nodes (provision.py health baseline --from ...) "
                "and let the healthcheck_agent role install it",
            )
        novel = novel_lines(readings.kernel_log, readings.dmesg_baseline)
        distinct = len({n.template for n in novel})
        findings = [
            Finding(
                Verdict.WARNING,
                f"line {n.line_no} never seen on known-good nodes: {strip_prefix(n.line)[:160]}",
                "node owner: read the line; if it is benign, relearn the baseline including this node",
            )
            for n in novel[: config.dmesg.max_listed]
        ]
        evidence = {"lines": len(readings.kernel_log), "novel_lines": len(novel), "novel_templates": distinct}
        return conclude(
            self.name, findings, evidence, f"all {len(readings.kernel_log)} kernel log lines match the baseline"
        )
