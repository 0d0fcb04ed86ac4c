"""The day-2 sections of a site: `health:` (how often the loop sweeps), `watch:` (its guards) and
`workload:` (the scheduler it drains nodes in).

    health:   {interval_s: 300}
    watch:    {max_nodes: 2, max_rack_percent: 25, cooldown_s: 1800, flap_transitions: 3, flap_window_s: 3600,
               drain_timeout_s: 3600, reboot_timeout_s: 900, escalation_window_s: 604800, burnin: true}
    workload: {kind: slurm, slurm_conf: /etc/slurm/slurm.conf, slurm_bin_dir: /usr/bin}

Every key is optional and every default errs on the side of doing less (see fleet.remediate.Guards).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.remediate import Guards
from fleet.site.control import expand_path
from fleet.site.schema import Problems, positive_int

WORKLOAD_KINDS = ("slurm", "none")
_GUARD_KEYS = {"max_nodes", "max_rack_percent", "cooldown_s", "flap_transitions", "flap_window_s",
               "escalation_window_s"}
_WATCH_KEYS = _GUARD_KEYS | {"drain_timeout_s", "reboot_timeout_s", "burnin"}


@dataclass(frozen=True)
class HealthSettings:
    interval_s: float = 300.0
    timeout_s: float = 60.0
    baseline_min_nodes: int = 3  # the day-one dmesg baseline keeps lines seen on at least this many nodes


@dataclass(frozen=True)
class WatchSettings:
    guards: Guards = field(default_factory=Guards)
    drain_timeout_s: float = 3600.0  # how long the loop waits for a drained node's jobs, then gives up and reports
    reboot_timeout_s: float = 900.0
    burnin: bool = True  # a fixed node passes the site's burn-in (fleet/burnin.py) before it returns


@dataclass(frozen=True)
class WorkloadSettings:
    kind: str = "none"
    slurm_conf: Path | None = None
    slurm_bin_dir: Path | None = None


def _number(file: Path, path: str, value: Any, problems: Problems, *, minimum: float = 0.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        problems.add(file, path, f"expected a number >= {minimum:g}, got {value!r}", "write a plain number")
        return None
    return float(value)


def parse_health(file: Path, raw: Any, problems: Problems) -> HealthSettings:
    if raw is None or not problems.keys(raw, file, "health", set(), {"interval_s", "timeout_s", "baseline_min_nodes"}):
        return HealthSettings()
    default = HealthSettings()
    interval = _number(file, "health.interval_s", raw.get("interval_s", default.interval_s), problems, minimum=1)
    timeout = _number(file, "health.timeout_s", raw.get("timeout_s", default.timeout_s), problems, minimum=1)
    min_nodes = positive_int(file, "health.baseline_min_nodes", raw.get("baseline_min_nodes", 3), problems)
    return HealthSettings(interval or default.interval_s, timeout or default.timeout_s, min_nodes or 3)


def parse_watch(file: Path, raw: Any, problems: Problems) -> WatchSettings:
    if raw is None or not problems.keys(raw, file, "watch", set(), _WATCH_KEYS):
        return WatchSettings()
    burnin = raw.get("burnin", True)
    if not isinstance(burnin, bool):
        problems.add(file, "watch.burnin", f"expected true or false, got {burnin!r}", "burnin: true")
        burnin = True
    values: dict[str, float] = {}
    for key in sorted((_WATCH_KEYS - {"burnin"}) & set(raw)):
        minimum = 1.0 if key in ("max_nodes", "flap_transitions") else 0.0
        number = _number(file, f"watch.{key}", raw[key], problems, minimum=minimum)
        if number is not None:
            values[key] = number
    if values.get("max_rack_percent", 0.0) > 100:
        problems.add(file, "watch.max_rack_percent", f"{values['max_rack_percent']:g} is more than a whole rack",
                     "write a percentage from 0 to 100")
    for whole in ("max_nodes", "flap_transitions"):
        if whole in values:
            values[whole] = int(values[whole])
    guards = Guards(**{k: v for k, v in values.items() if k in _GUARD_KEYS})
    default = WatchSettings()
    return WatchSettings(guards, values.get("drain_timeout_s", default.drain_timeout_s),
                         values.get("reboot_timeout_s", default.reboot_timeout_s), burnin)


def parse_workload(file: Path, raw: Any, path_vars: dict[str, Path], problems: Problems) -> WorkloadSettings:
    if raw is None or not problems.keys(raw, file, "workload", {"kind"}, {"slurm_conf", "slurm_bin_dir"}):
        return WorkloadSettings()
    kind = str(raw.get("kind"))
    if kind not in WORKLOAD_KINDS:
        problems.add(file, "workload.kind", f"unknown workload manager '{kind}'",
                     f"use one of {', '.join(WORKLOAD_KINDS)}")
        return WorkloadSettings()
    conf = raw.get("slurm_conf")
    bin_dir = raw.get("slurm_bin_dir")
    return WorkloadSettings(kind, expand_path(file, str(conf), path_vars) if conf else None,
                            expand_path(file, str(bin_dir), path_vars) if bin_dir else None)
