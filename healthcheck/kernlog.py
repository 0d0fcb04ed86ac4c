"""Kernel log reading, line templates and the dmesg baseline.

A template is a line with everything that varies between boots and nodes (timestamps,
addresses, PCI ids, MACs, GUIDs, UUIDs, serials, numbers, hex-like names such as docker's
veth and bridge ids, oops code bytes) replaced by ``#``. The baseline is
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
from healthcheck.model import Finding, Result, Verdict, conclude, skipped, unknown
from healthcheck.probe import Missing, read_text, run
from healthcheck.readings import Readings

BASELINE_SCHEMA = 1

# "[  12.345678] ", "<6>[  12.3] ", "[Sun Nov 29 07:04:45 2026] ", journal "[  1.2] host kernel: ",
# syslog/journal "Nov 29 07:05:12 host kernel: ".
_PREFIX = re.compile(r"^(?:<\d+>)?(?:\[[^\]]*\]\s*|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\s+)(?:\S+ kernel: )?")
# What else varies from node to node and boot to boot, besides numbers: hex-like tokens. docker
# names its interfaces and bridges after random hex ids (`vethe7d4e83`, `br-68cd35923155`), and
# left alone every container start prints a line no baseline has seen. A hex-like token is a run of
# hex characters ending a token that holds a digit or is 7+ hex letters long, so `veth5de9f99`
# folds to `veth#` while words (`added`, `face`, `be`) stay words.
#
# Every alternative starts with the one character class below, which lets the regex engine skip in
# C to the next hex character instead of trying each alternative at every position (2x faster);
# the lookbehinds then look at the character before that first one: `_WORD_START` is `\b` before it,
# `_NOT_AFTER_HEX` says the run starts there.
_HEX = "[0-9a-fA-F]"
_WORD_START = r"(?<![0-9A-Za-z_].)"
_NOT_AFTER_HEX = r"(?<![0-9a-fA-F].)"
_RUN_END = r"(?![0-9A-Za-z])"
_VOLATILE = re.compile(
    _HEX + "(?:" + _WORD_START + "(?:"
    + _HEX + "{7}-" + _HEX + "{4}-" + _HEX + "{4}-" + _HEX + "{4}-" + _HEX + "{12}"  # UUID
    + r"|(?<=0)[xX]" + _HEX + "+"  # hex number or address
    + "|" + _HEX + "{0,3}(?::" + _HEX + r"{1,4}){2,}(?:\." + _HEX + r"+)?\b"  # MAC, GUID, PCI id, IPv6
    + "|" + _HEX + r"{7,}\b"  # a long hex word (a register value, a serial), digits or not
    + ")|" + _NOT_AFTER_HEX + "(?:"
    + r"(?:(?<=\d)|(?=[a-fA-F]*\d))" + _HEX + "*" + _RUN_END  # hex tail holding a digit: veth#, br-#
    + r"|(?<=[a-fA-F])[a-fA-F]{6,}" + _RUN_END  # hex tail of letters only (vethabcdeff)
    + r")|(?<=\d)\d*"  # any other number, also inside names (eth0, mlx5_3, nvme0n1)
    + ")"
)
# An oops prints the code bytes around the faulting instruction: the same fault elsewhere has other
# bytes, so the whole dump is one token.
_CODE_DUMP = "Code: "


def strip_prefix(line: str) -> str:
    """The message without its timestamp/host prefix (what `_PREFIX` matches, dmesg's case in str ops)."""
    if line.startswith("["):
        end = line.find("]")
        if end > 0:
            body = line[end + 1 :].lstrip()
            host_end = body.find(" kernel: ")
            if host_end > 0 and len(body[:host_end].split()) == 1:
                return body[host_end + 9 :]
            return body
    return _PREFIX.sub("", line, count=1)


def _fold(body: str) -> str:
    at = body.find(_CODE_DUMP)
    if at >= 0:
        body = body[: at + len(_CODE_DUMP)] + "#"
    return _VOLATILE.sub("#", body).rstrip()


def template(line: str) -> str:
    """The line's template: prefix stripped, volatile tokens replaced by ``#``."""
    return _fold(strip_prefix(line))


# The template regex looks at digits by class only, except the "0" of "0x": mapping 1-9 to 1
# keeps every template the same while making the same message with other numbers hit the cache.
# bytes.translate is a C table lookup, ten times faster than str.translate; UTF-8 never has an
# ASCII digit byte inside a multi-byte character, so the fold is safe on any line.
_SAME_CLASS = bytes.maketrans(b"23456789", b"11111111")


class Templater:
    """Templates lines with a cache keyed by the digit-folded body (exactly the same template).

    Kernel logs repeat a few hundred messages with different numbers; the fold turns most lines
    into a dictionary hit, which is what makes 300k lines/s possible in pure Python.
    """

    def __init__(self) -> None:
        self._cache: dict[bytes, str] = {}

    def __call__(self, line: str) -> str:
        key = strip_prefix(line).encode().translate(_SAME_CLASS)
        cached = self._cache.get(key)
        if cached is None:
            cached = _fold(key.decode())
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


# How a SKIPPED dmesg_baseline says the site is still learning (the control plane looks for it).
LEARNING_PREFIX = "learning:"


@dataclass(frozen=True)
class Learning:
    """The site's baseline is still being learned from its first validated nodes (day one)."""

    have: int
    need: int

    @property
    def reason(self) -> str:
        return (f"{LEARNING_PREFIX} the site's dmesg baseline is learned from its first {self.need} validated "
                f"nodes ({self.have} so far)")


def save_learning(have: int, need: int, path: Path) -> None:
    """The placeholder the control plane installs while the baseline is learned (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".baseline-")
    with os.fdopen(fd, "w") as out:
        json.dump({"schema": BASELINE_SCHEMA, "learning": {"have": have, "need": need}}, out)
        out.write("\n")
    os.replace(tmp, path)


def load_baseline(path: Path) -> frozenset[str] | Learning | Missing:
    text = read_text(path)
    return text if isinstance(text, Missing) else parse_baseline(text, str(path))


def parse_baseline(text: str, where: str) -> frozenset[str] | Learning | Missing:
    """A baseline file's content (the templates, or the learning placeholder); `where` names it in errors."""
    try:
        data = json.loads(text)
        if data.get("schema") != BASELINE_SCHEMA:
            return Missing(f"{where}: schema {data.get('schema')!r}, expected {BASELINE_SCHEMA}")
        if "learning" in data:
            return Learning(int(data["learning"]["have"]), int(data["learning"]["need"]))
        return frozenset(data["templates"])
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError, ValueError) as err:
        return Missing(f"{where}: not a baseline file ({err})")


def templates_of(lines: Iterable[str]) -> frozenset[str]:
    """The distinct templates of a kernel log: what a node contributes to its site's baseline."""
    templ = Templater()
    return frozenset(templ(line) for line in lines if line.strip())


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
        if isinstance(readings.dmesg_baseline, Learning):
            return skipped(self.name, readings.dmesg_baseline.reason)
        if isinstance(readings.dmesg_baseline, Missing):
            return unknown(
                self.name,
                f"no dmesg baseline: {readings.dmesg_baseline.reason}",
                "ops: learn one from the validated nodes (provision.py health baseline) "
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
