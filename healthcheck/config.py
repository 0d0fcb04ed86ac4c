"""Expectations for one node, read from a JSON file the healthcheck_agent role renders.

The agent must not guess what "healthy" means: GPU count, version pins, link rates and
thresholds are the site's decisions and come from the inventory through this file.
Where the readings come from (commands, sysfs root, fixture files) is configurable too, so
the lab can point the very same checks at fixture files instead of hardware.
Unknown keys are errors: a misspelt threshold must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path("/etc/healthcheck/config.json")


class ConfigError(Exception):
    """The config file is unreadable or has bad keys/values; carries every problem found."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


@dataclass(frozen=True)
class NodeInfo:
    """Who this node is, so fixes can name the RMA vendor and the service tag."""

    hostname: str = ""
    service_tag: str = ""
    vendor: str = "Dell"


@dataclass(frozen=True)
class Sources:
    """Where readings come from; the lab points these at fixture files."""

    use_nvml: bool = True
    nvidia_smi: tuple[str, ...] = ("nvidia-smi",)
    kernel_log_command: tuple[str, ...] = ("dmesg",)
    kernel_log_fallback_command: tuple[str, ...] = ("journalctl", "-k", "-b", "--no-pager", "-o", "short-monotonic")
    kernel_log_file: str = ""
    modules_file: str = ""  # empty: <proc_root>/modules; the lab names a fixture file
    sysfs_root: str = "/sys"
    proc_root: str = "/proc"
    dev_root: str = "/dev"
    os_release: str = "/etc/os-release"
    docker: tuple[str, ...] = ("docker",)
    systemctl: tuple[str, ...] = ("systemctl",)
    state_dir: str = "/var/lib/healthcheck"
    command_timeout_s: float = 10.0


@dataclass(frozen=True)
class GpuExpect:
    count: int = 8
    driver_versions: tuple[str, ...] = ()
    vbios_versions: tuple[str, ...] = ()
    nvlink: bool | None = None  # None: expected when more than one GPU is expected
    nvlink_error_threshold: int = 0
    nvlink_links: int = 18  # NVLink 4 on H100/H200 SXM: links each GPU must have; 0: not checked
    nvswitch: bool | None = None  # None: detect /dev/nvidia-nvswitch*
    max_temp_c: float | None = None  # None: the GPU's own max operating temperature
    power_over_limit_pct: float = 5.0


@dataclass(frozen=True)
class IbExpect:
    hca_count: int = 8
    rate_gbps: int = 400
    firmware_versions: tuple[str, ...] = ()
    counters: tuple[str, ...] = ("symbol_error", "link_downed", "link_error_recovery", "port_rcv_errors")
    cabling: dict[str, str] = field(default_factory=dict)  # hca name -> "leaf-03 port 17", for fix texts


@dataclass(frozen=True)
class DiskExpect:
    warn_pct: float = 85.0
    crit_pct: float = 95.0
    mounts: tuple[str, ...] = ("/",)


@dataclass(frozen=True)
class DockerExpect:
    required: bool = True
    gpu_container_image: str = ""  # empty: check daemon + runtime only (a container run costs seconds)


@dataclass(frozen=True)
class OsExpect:
    kernel_releases: tuple[str, ...] = ()
    version_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessExpect:
    patterns: tuple[str, ...] = ("sg_inq", "AnsiballZ_setup", "ansible-playbook")
    hung_after_s: float = 600.0


@dataclass(frozen=True)
class DmesgExpect:
    baseline: str = "/etc/healthcheck/dmesg-baseline.json"
    max_listed: int = 20


@dataclass(frozen=True)
class Config:
    node: NodeInfo = field(default_factory=NodeInfo)
    sources: Sources = field(default_factory=Sources)
    gpu: GpuExpect = field(default_factory=GpuExpect)
    ib: IbExpect = field(default_factory=IbExpect)
    ethernet: dict[str, int | None] = field(default_factory=dict)  # interface -> expected Mb/s (None: any)
    disk: DiskExpect = field(default_factory=DiskExpect)
    docker: DockerExpect = field(default_factory=DockerExpect)
    os: OsExpect = field(default_factory=OsExpect)
    modules: tuple[str, ...] = ("nvidia", "nvidia_uvm", "nvidia_peermem")
    processes: ProcessExpect = field(default_factory=ProcessExpect)
    dmesg: DmesgExpect = field(default_factory=DmesgExpect)
    disabled_checks: tuple[str, ...] = ()


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """Build a frozen dataclass from JSON, collecting every problem instead of stopping."""
    if not isinstance(data, dict):
        problems.append(f"{where or 'top level'}: expected an object, got {type(data).__name__}")
        return cls()
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in sorted(set(data) - set(known)):
        problems.append(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    defaults = cls()
    for name in known:
        if name not in data:
            continue
        value, default = data[name], getattr(defaults, name)
        path = f"{where}{name}"
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value, path + ".", problems)
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{path}: expected a list of strings")
            else:
                values[name] = tuple(value)
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                problems.append(f"{path}: expected an object")
            else:
                values[name] = dict(value)
        elif isinstance(default, bool) or (default is None and name in ("nvlink", "nvswitch")):
            if value is not None and not isinstance(value, bool):
                problems.append(f"{path}: expected true, false or null")
            else:
                values[name] = value
        elif isinstance(default, (int, float)) or default is None:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                problems.append(f"{path}: expected a number")
            else:
                values[name] = value
        elif isinstance(default, str):
            if not isinstance(value, str):
                problems.append(f"{path}: expected a string")
            else:
                values[name] = value
    return cls(**values)


def parse_config(data: Any, path: str = "<config>") -> Config:
    """Validate and build a Config; raise ConfigError listing every problem."""
    problems: list[str] = []
    config = _build(Config, data, "", problems)
    for name, speed in (config.ethernet or {}).items():
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int)):
            problems.append(f"ethernet.{name}: expected a speed in Mb/s or null")
    if problems:
        raise ConfigError(path, problems)
    return config


def _relative_to(base: Path, value: str) -> str:
    """A value written "./x" or "../x" is relative to the config file: fixture sets stay copyable."""
    return str((base / value).resolve()) if value.startswith(("./", "../")) else value


def resolve_paths(config: Config, base: Path) -> Config:
    """Resolve "./" and "../" paths (and command words) against the config file's directory."""
    src = config.sources
    sources = dataclasses.replace(
        src,
        nvidia_smi=tuple(_relative_to(base, w) for w in src.nvidia_smi),
        kernel_log_command=tuple(_relative_to(base, w) for w in src.kernel_log_command),
        kernel_log_file=_relative_to(base, src.kernel_log_file),
        modules_file=_relative_to(base, src.modules_file),
        sysfs_root=_relative_to(base, src.sysfs_root),
        proc_root=_relative_to(base, src.proc_root),
        dev_root=_relative_to(base, src.dev_root),
        os_release=_relative_to(base, src.os_release),
        state_dir=_relative_to(base, src.state_dir),
    )
    dmesg = dataclasses.replace(config.dmesg, baseline=_relative_to(base, config.dmesg.baseline))
    return dataclasses.replace(config, sources=sources, dmesg=dmesg)


def load_config(path: Path) -> Config:
    """Read the config file; a missing default file means defaults (a bare node still gets checked)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if path == DEFAULT_PATH:
            return Config()
        raise ConfigError(str(path), ["file not found"]) from None
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read: {err.strerror}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(str(path), [f"not valid JSON: {err}"]) from None
    return resolve_paths(parse_config(data, str(path)), path.parent)
