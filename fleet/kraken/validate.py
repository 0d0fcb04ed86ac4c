"""Check a rendered Kraken cluster before anything runs: every file, every key, across hosts.

The roles render each host's files into a stage directory on the controller first, laid out as
they will be on the node, and this module reads that tree:

    <stage>/cluster.json                         the cluster the site declares (see `Cluster`)
    <stage>/<host>/etc/kraken/<component>/base.yaml    Kraken's base config (config/<component>/base.yaml)
    <stage>/<host>/etc/kraken/<component>/<env>.yaml   the per-environment override (`extends: base.yaml`)
    <stage>/<host>/etc/systemd/system/kraken-<component>.service   the unit: ports are flags there
    <stage>/<host>/etc/kraken/redis/redis.conf   the tracker's Redis (control hosts)

Kraken itself would start with most of these mistakes and fail later, or never: yaml.v2 drops
unknown keys, an empty tracker list makes every pull fall back to nothing, a hash ring naming a
non-origin sends blobs to a host that never stores them. Each problem names the file (as the path
on the node, prefixed with the host) and the key.

    python -m fleet.kraken.validate STAGE_DIR [--hosts a,b]   # exit 0 clean, 2 with every problem printed
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import Problem
from fleet.kraken.schema import COMPONENTS, PORT_FLAGS, walk

CLUSTER_FILE = "cluster.json"
REDIS_CONF = "etc/kraken/redis/redis.conf"


@dataclass(frozen=True)
class Cluster:
    """What the site declares: the environment name and each control component's endpoints ("host:port")."""

    environment: str
    endpoints: Mapping[str, tuple[str, ...]]  # tracker, origin (blob server), build-index, proxy, redis

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cluster:
        return cls(str(data["environment"]), {k: tuple(v) for k, v in dict(data["endpoints"]).items()})


@dataclass
class ComponentConfig:
    """One component on one host: its merged config, where each key came from, and its unit's flags."""

    host: str
    component: str
    merged: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # dotted key -> file that set it last
    override_file: str = ""
    unit_file: str = ""
    flags: dict[str, list[str]] = field(default_factory=dict)
    loaded: bool = False  # every file of the chain was there and parsed (else only its ports are checked)


def node_path(host: str, relative: str) -> str:
    return f"{host}:/{relative}"


def merge(into: dict[str, Any], other: Mapping[str, Any], source: dict[str, str], file: str, prefix: str = "") -> None:
    """Deep-merge like Kraken's loader: mappings merge key by key, lists and scalars replace.

    (utils/configutil/config.go unmarshals base then override into one struct; yaml.v2 keeps the
    fields the override does not name and replaces sequences whole.)
    """
    for key, value in other.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value, source, file, path)
        else:
            into[key] = value
            source[path] = file
            for sub in _leaf_paths(value, path):
                source[sub] = file


def _leaf_paths(value: Any, path: str) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}"
            yield from _leaf_paths(item, f"{path}.{key}")


def get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def parse_exec_flags(unit_text: str) -> dict[str, list[str]]:
    """`--name=value` / `--name value` flags of the unit's ExecStart (continuation lines joined)."""
    joined = unit_text.replace("\\\n", " ")
    for line in joined.splitlines():
        if line.strip().startswith("ExecStart="):
            argv = shlex.split(line.strip()[len("ExecStart="):].lstrip("-@+!:"))
            break
    else:
        return {}
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
                i += 1
            flags.setdefault(name, []).append(value)
        i += 1
    return flags


def parse_redis_port(text: str) -> tuple[str | None, int | None]:
    """(bind address, port) of a redis.conf (`bind a b`, `port N`; redis's own defaults otherwise)."""
    bind, port = None, 6379
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "port":
            port = int(words[1]) if words[1].isdigit() else None
        if len(words) >= 2 and words[0] == "bind":
            bind = words[1]
    return bind, port


def load_component(
    stage: Path, host: str, component: str, environment: str, problems: list[Problem]
) -> ComponentConfig:
    """Read one component's unit and the config files it names, checking each file's keys."""
    unit_rel = f"etc/systemd/system/kraken-{component}.service"
    found = ComponentConfig(host, component, unit_file=node_path(host, unit_rel))
    found.flags = parse_exec_flags((stage / host / unit_rel).read_text(encoding="utf-8"))
    config_flag = (found.flags.get("config") or [f"/etc/kraken/{component}/{environment}.yaml"])[-1]
    chain: list[tuple[str, Any]] = []  # (path relative to the host root, parsed YAML), base first
    relative = config_flag.lstrip("/")
    while relative:
        if relative in (r for r, _ in chain):
            problems.append(Problem(node_path(host, relative), "extends", "files extend each other in a cycle",
                                    "make base.yaml extend nothing"))
            return found
        path = stage / host / relative
        if not path.is_file():
            named_by = node_path(host, chain[0][0]) if chain else found.unit_file
            problems.append(Problem(named_by, "extends" if chain else "ExecStart --config",
                                    f"names /{relative}, which was not rendered",
                                    "render the file or correct the path"))
            return found
        data = _read_yaml(path, node_path(host, relative), problems)
        if data is None:
            return found
        chain.insert(0, (relative, data))
        extends = data.get("extends") if isinstance(data, dict) else None
        relative = str(Path(relative).parent / extends) if extends else ""
    found.override_file = node_path(host, chain[-1][0])
    for relative, data in chain:
        file = node_path(host, relative)
        for key, why in walk(COMPONENTS[component], data, ""):
            problems.append(Problem(file, key, why, "remove the key or spell it as Kraken's struct does"))
        if isinstance(data, dict):
            merge(found.merged, {k: v for k, v in data.items() if k != "extends"}, found.source, file)
    found.loaded = True
    return found


def _read_yaml(path: Path, file: str, problems: list[Problem]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        problems.append(Problem(file, "(file)", f"is not YAML: {err}", "fix the template or override that wrote it"))
        return None


def load_stage(
    stage: Path, only: Collection[str] | None = None
) -> tuple[Cluster, dict[str, list[ComponentConfig]], dict[str, str], list[Problem]]:
    """Every host's components and Redis config under `stage` (or only the hosts named), with the per-file problems.

    A stage outlives a run, so hosts since removed from the site are still there: the roles name the
    hosts of the play, and only those are read.
    """
    problems: list[Problem] = []
    cluster = Cluster.from_json(json.loads((stage / CLUSTER_FILE).read_text(encoding="utf-8")))
    hosts: dict[str, list[ComponentConfig]] = {}
    redis: dict[str, str] = {}
    dirs = (p for p in stage.iterdir() if p.is_dir() and (only is None or p.name in only))
    for host_dir in sorted(dirs):
        units = host_dir / "etc/systemd/system"
        for unit in sorted(units.glob("kraken-*.service")) if units.is_dir() else []:
            component = unit.name[len("kraken-"):-len(".service")]
            if component == "redis":
                continue
            if component not in COMPONENTS:
                problems.append(Problem(node_path(host_dir.name, f"etc/systemd/system/{unit.name}"), "(unit)",
                                        f"{component!r} is no Kraken component", f"use one of {sorted(COMPONENTS)}"))
                continue
            hosts.setdefault(host_dir.name, []).append(
                load_component(stage, host_dir.name, component, cluster.environment, problems))
        if (host_dir / REDIS_CONF).is_file():
            redis[host_dir.name] = (host_dir / REDIS_CONF).read_text(encoding="utf-8")
    return cluster, hosts, redis, problems


# Which upstream lists of which component must name which declared endpoints.
UPSTREAMS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "agent": (("tracker.hosts.static", "tracker"), ("build_index.hosts.static", "build-index")),
    "origin": (("cluster.static", "origin"),),
    "tracker": (("origin.hosts.static", "origin"),),
    "build-index": (("origin.hosts.static", "origin"), ("cluster.hosts.static", "build-index")),
    "proxy": (("origin.hosts.static", "origin"), ("build_index.hosts.static", "build-index")),
}


def check_cluster(
    cluster: Cluster, hosts: Mapping[str, list[ComponentConfig]], redis: Mapping[str, str]
) -> list[Problem]:
    """The cross-host rules: hosts named exist, no port is taken twice, trackers have Redis, rings are origins."""
    problems: list[Problem] = []
    for configs in hosts.values():
        for cfg in (c for c in configs if c.loaded):
            problems.extend(_check_upstreams(cluster, cfg))
            if cfg.component == "tracker":
                problems.extend(_check_tracker_redis(cluster, cfg))
    problems.extend(_check_ports(hosts, redis))
    return problems


def _where(cfg: ComponentConfig, key: str) -> str:
    return cfg.source.get(key) or cfg.override_file or cfg.unit_file


def _check_upstreams(cluster: Cluster, cfg: ComponentConfig) -> list[Problem]:
    problems = []
    for key, wanted in UPSTREAMS[cfg.component]:
        listed = get(cfg.merged, key) or []
        dns = get(cfg.merged, key.rsplit(".", 1)[0] + ".dns")
        declared = set(cluster.endpoints.get(wanted, ()))
        if not listed and not dns:
            what = f"an {cfg.component} without {wanted}s" if cfg.component == "agent" else f"no {wanted} hosts"
            named = sorted(declared) or "(the site declares none)"
            problems.append(Problem(_where(cfg, key.rsplit(".", 1)[0]), key, f"{what}: the list is empty",
                                    f"name the site's {wanted} endpoints {named}"))
            continue
        for i, address in enumerate(listed):
            if address in declared:
                continue
            if cfg.component == "origin" and key == "cluster.static":
                message = (f"the origin hash ring names {address}, which is no origin of the site: blobs hashed to it "
                           "are never stored")
            else:
                message = f"names {address}, which is no {wanted} endpoint of the site (missing host)"
            problems.append(Problem(_where(cfg, key), f"{key}[{i}]", message,
                                    f"use the site's {wanted} endpoints {sorted(declared)}"))
    return problems


def _check_tracker_redis(cluster: Cluster, cfg: ComponentConfig) -> list[Problem]:
    enabled = get(cfg.merged, "peerstore.redis.enabled")
    addr = get(cfg.merged, "peerstore.redis.addr")
    if enabled is not True or not addr:
        return [Problem(_where(cfg, "peerstore.redis"), "peerstore.redis",
                        "a tracker without Redis: peers announced to one tracker are unknown to the others and lost "
                        "on restart (tracker/peerstore/config.go falls back to an in-memory store)",
                        "set peerstore.redis.enabled: true and peerstore.redis.addr to the site's Redis")]
    if addr not in cluster.endpoints.get("redis", ()):
        return [Problem(_where(cfg, "peerstore.redis.addr"), "peerstore.redis.addr",
                        f"names {addr}, which is no Redis of the site (missing host)",
                        f"use one of {sorted(cluster.endpoints.get('redis', ()))}")]
    return []


def _check_ports(hosts: Mapping[str, list[ComponentConfig]], redis: Mapping[str, str]) -> list[Problem]:
    problems = []
    for host in sorted(set(hosts) | set(redis)):
        owners: list[tuple[int, str, str]] = []  # port, file, key
        for cfg in hosts.get(host, []):
            for flag in PORT_FLAGS[cfg.component]:
                for value in cfg.flags.get(flag, []):
                    if not value.isdigit():
                        problems.append(Problem(cfg.unit_file, f"ExecStart --{flag}", f"{value!r} is not a port",
                                                "give a number from 1 to 65535"))
                        continue
                    owners.append((int(value), cfg.unit_file, f"ExecStart --{flag}"))
            for flag in PORT_FLAGS[cfg.component]:
                if not cfg.flags.get(flag):
                    problems.append(Problem(cfg.unit_file, f"ExecStart --{flag}", "is missing: Kraken panics at start "
                                            f"without it ({cfg.component}/cmd/cmd.go)", "pass the port"))
        if host in redis:
            _bind, port = parse_redis_port(redis[host])
            if port:
                owners.append((port, node_path(host, REDIS_CONF), "port"))
        by_port: dict[int, list[tuple[str, str]]] = {}
        for port, file, key in owners:
            by_port.setdefault(port, []).append((file, key))
        for port, claims in sorted(by_port.items()):
            for file, key in claims if len(claims) > 1 else ():
                others = "; ".join(f"{f} {k}" for f, k in claims if (f, k) != (file, key))
                problems.append(Problem(file, key, f"port {port} is also taken by {others} on host {host}",
                                        "give each listener on a host its own port"))
    return problems


def validate_stage(stage: Path, only: Collection[str] | None = None) -> list[Problem]:
    """Every problem of the rendered tree: per-file keys first, then the cross-host rules."""
    cluster, hosts, redis, problems = load_stage(stage, only)
    return problems + check_cluster(cluster, hosts, redis)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.kraken.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", type=Path, help="the stage directory the roles rendered into")
    parser.add_argument("--hosts", type=lambda text: [h for h in text.split(",") if h],
                        help="only these hosts' directories (the play's hosts; default: every one)")
    args = parser.parse_args(argv)
    if not (args.stage / CLUSTER_FILE).is_file():
        print(f"{args.stage}: no {CLUSTER_FILE}: render the configs first (playbooks/kraken.yml does)", file=sys.stderr)
        return 2
    problems = validate_stage(args.stage, args.hosts)
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in the Kraken configs under {args.stage}; nothing was changed",
              file=sys.stderr)
        return 2
    components = sum(len(list((d / "etc/systemd/system").glob("kraken-*.service")))
                     for d in args.stage.iterdir()
                     if (d / "etc/systemd/system").is_dir() and (args.hosts is None or d.name in args.hosts))
    print(f"Kraken configs valid: {components} unit(s) under {args.stage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
