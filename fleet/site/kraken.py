"""The site's `kraken:` section: where the Kraken control plane runs and how agents and pulls behave.

    kraken:
      environment: prod                 # Kraken's per-environment config name (config/<component>/prod.yaml)
      control_hosts:                    # tracker, origin, build-index and proxy run on each
        - {name: kraken-01, address: 10.40.0.11}
      redis: [kraken-01]                # control hosts that run the tracker's Redis, or host:port of one's own
      artifacts:                        # each pinned: an image by digest, or a binary URL with its sha256
        agent: {image: "registry.example/kraken-agent@sha256:<64 hex>"}
        tracker: {url: "https://artifacts.example/kraken-tracker", sha256: "<64 hex>"}
        origin: ...; build-index: ...; proxy: ...
      backend: {registry: {address: "registry.example:5000"}}    # or {s3: {bucket, region, endpoint}}
      reference_registry: https://registry.example:5000          # what `kraken check` compares digests with
      reference_tls: {verify: true, ca_file: /etc/fleet/tls/ca.pem}
      ports: {agent_registry: 16000, ...}                        # Kraken's devcluster ports by default
      agent: {ingress_gbps: 100, egress_gbps: 100, cache_limit_gb: 500, cache_tti: 6h, cache_ttl: 24h,
              cache_aggressive_threshold_pct: 80}
      pull_concurrency: 64                                       # `image pull`: nodes pulling at once

The same settings reach the roles through the inventory plugin (`fleet_kraken`, `ansible_vars`), so
the control plane's checks and the rendered configs never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.site.model import TlsSettings
from fleet.site.schema import Problems, host_port, ip, join, positive_int
from fleet.site.services import parse_tls

COMPONENTS = ("agent", "tracker", "origin", "build-index", "proxy")
# Kraken's own devcluster ports (examples/devcluster/agent_one_param.sh, herd_param.sh).
DEFAULT_PORTS = {
    "agent_registry": 16000, "agent_peer": 16001, "agent_server": 16002,
    "proxy": 15000, "origin_peer": 15001, "origin_server": 15002, "tracker": 15003, "build_index": 15004,
    "redis": 14001,
}  # fmt: skip
AGENT_PORTS = ("agent_registry", "agent_peer", "agent_server")
KRAKEN_OPTIONAL = {"environment", "redis", "reference_registry", "reference_tls", "ports", "agent", "pull_concurrency"}
KRAKEN_REQUIRED = {"control_hosts", "artifacts", "backend"}
AGENT_KEYS = {"ingress_gbps", "egress_gbps", "cache_limit_gb", "cache_tti", "cache_ttl",
              "cache_aggressive_threshold_pct"}
_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^(\d+(ns|us|ms|s|m|h))+$")


@dataclass(frozen=True)
class Artifact:
    """How a component runs: an image pinned by digest, or a binary URL with its sha256."""

    image: str = ""
    url: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class ControlHost:
    name: str
    address: str


@dataclass(frozen=True)
class KrakenSettings:
    environment: str
    control_hosts: tuple[ControlHost, ...]
    redis: tuple[str, ...]  # host:port
    artifacts: dict[str, Artifact]
    backend: dict[str, Any]
    reference_registry: str
    reference_tls: TlsSettings
    ports: dict[str, int]
    ingress_bits_per_sec: int
    egress_bits_per_sec: int
    cache_limit_bytes: int | None
    cache_tti: str
    cache_ttl: str
    cache_aggressive_threshold_pct: int
    pull_concurrency: int

    def endpoints(self) -> dict[str, list[str]]:
        """Every control component's `host:port`s, and the Redis, as the configs name them."""
        hosts = [h.address for h in self.control_hosts]
        port = self.ports
        return {
            "tracker": [f"{a}:{port['tracker']}" for a in hosts],
            "origin": [f"{a}:{port['origin_server']}" for a in hosts],
            "build-index": [f"{a}:{port['build_index']}" for a in hosts],
            "proxy": [f"{a}:{port['proxy']}" for a in hosts],
            "redis": list(self.redis),
        }

    def ansible_vars(self) -> dict[str, Any]:
        """`fleet_kraken`: what roles/kraken_control and roles/kraken_agent read (see their READMEs)."""
        return {
            "environment": self.environment,
            "endpoints": self.endpoints(),
            "ports": dict(self.ports),
            "artifacts": {name: {k: v for k, v in vars(a).items() if v} for name, a in self.artifacts.items()},
            "backend": self.backend,
            "agent": {
                "ingress_bits_per_sec": self.ingress_bits_per_sec, "egress_bits_per_sec": self.egress_bits_per_sec,
                "cache_tti": self.cache_tti, "cache_ttl": self.cache_ttl,
                "cache_aggressive_threshold_pct": self.cache_aggressive_threshold_pct,
            },
        }  # fmt: skip


def parse_kraken(
    file: Path, raw: Any, node_names: set[str], path_vars: dict[str, Path], problems: Problems
) -> KrakenSettings | None:
    if not problems.keys(raw, file, "kraken", KRAKEN_REQUIRED, KRAKEN_OPTIONAL):
        return None
    ports = _ports(file, raw.get("ports") or {}, problems)
    hosts = _control_hosts(file, raw.get("control_hosts"), node_names, problems)
    agent = raw.get("agent") or {}
    if not problems.keys(agent, file, "kraken.agent", set(), AGENT_KEYS):
        agent = {}
    ingress = _gbps(file, "kraken.agent.ingress_gbps", agent.get("ingress_gbps", 100), problems)
    egress = _gbps(file, "kraken.agent.egress_gbps", agent.get("egress_gbps", 100), problems)
    limit = agent.get("cache_limit_gb")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0):
        problems.add(file, "kraken.agent.cache_limit_gb", f"expected a positive number of GB, got {limit!r}",
                     "cache_limit_gb: 500")
        limit = None
    threshold = agent.get("cache_aggressive_threshold_pct", 80)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 100:
        problems.add(file, "kraken.agent.cache_aggressive_threshold_pct",
                     f"expected a percentage 1-100, got {threshold!r}", "cache_aggressive_threshold_pct: 80")
        threshold = 80
    reference = str(raw.get("reference_registry") or "")
    backend = _backend(file, raw.get("backend"), problems)
    if not reference and "registry" in backend:
        reference = f"https://{backend['registry'].get('address', '')}"
    if reference and not re.match(r"^https?://[^/]+", reference):
        problems.add(file, "kraken.reference_registry", f"'{reference}' is not an http(s) URL",
                     "write e.g. https://registry.example:5000")
    return KrakenSettings(
        environment=_name(file, raw.get("environment", "production"), problems),
        control_hosts=hosts,
        redis=_redis(file, raw.get("redis"), hosts, ports, problems),
        artifacts=_artifacts(file, raw.get("artifacts"), problems),
        backend=backend,
        reference_registry=reference,
        reference_tls=parse_tls(file, "kraken.reference_tls", raw.get("reference_tls"), path_vars, problems),
        ports=ports,
        ingress_bits_per_sec=int(ingress * 1e9),
        egress_bits_per_sec=int(egress * 1e9),
        cache_limit_bytes=int(limit * 1e9) if limit else None,
        cache_tti=_duration(file, "kraken.agent.cache_tti", agent.get("cache_tti", "6h"), problems),
        cache_ttl=_duration(file, "kraken.agent.cache_ttl", agent.get("cache_ttl", "24h"), problems),
        cache_aggressive_threshold_pct=threshold,
        pull_concurrency=positive_int(file, "kraken.pull_concurrency", raw.get("pull_concurrency", 32), problems) or 32,
    )


def _name(file: Path, value: Any, problems: Problems) -> str:
    text = str(value)
    if not re.match(r"^[a-z0-9][a-z0-9_-]*$", text):
        problems.add(file, "kraken.environment", f"'{text}' is not a config name", "lower case letters, digits, - or _")
    return text


def _ports(file: Path, raw: Any, problems: Problems) -> dict[str, int]:
    if not problems.keys(raw, file, "kraken.ports", set(), set(DEFAULT_PORTS)):
        return dict(DEFAULT_PORTS)
    ports = dict(DEFAULT_PORTS)
    for name, port in raw.items():
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            problems.add(file, f"kraken.ports.{name}", f"'{port}' is not a TCP port", "use a number from 1 to 65535")
        else:
            ports[str(name)] = port
    # Agents listen on the GPU nodes, everything else on the control hosts: clashes count within each.
    for group in (AGENT_PORTS, tuple(p for p in DEFAULT_PORTS if p not in AGENT_PORTS)):
        seen: dict[int, str] = {}
        for name in group:
            if ports[name] in seen:
                problems.add(file, f"kraken.ports.{name}",
                             f"port {ports[name]} is also kraken.ports.{seen[ports[name]]}",
                             "give each listener of a host its own port")
            seen.setdefault(ports[name], name)
    return ports


def _control_hosts(file: Path, raw: Any, node_names: set[str], problems: Problems) -> tuple[ControlHost, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add(file, "kraken.control_hosts", "expected a list of {name, address}",
                     "control_hosts: [{name: kraken-01, address: 10.40.0.11}]")
        return ()
    hosts: list[ControlHost] = []
    for i, entry in enumerate(raw):
        path = f"kraken.control_hosts[{i}]"
        if not problems.keys(entry, file, path, {"name", "address"}, set()):
            continue
        name = str(entry["name"])
        if name in node_names:
            problems.add(file, f"{path}.name", f"'{name}' is also a GPU node of the site",
                         "run the control plane on hosts of their own")
        if name in {h.name for h in hosts}:
            problems.add(file, f"{path}.name", f"duplicate control host '{name}'", "name each host once")
        address = ip(file, f"{path}.address", entry["address"], problems)
        hosts.append(ControlHost(name, address))
    return tuple(hosts)


def _redis(
    file: Path, raw: Any, hosts: tuple[ControlHost, ...], ports: dict[str, int], problems: Problems
) -> tuple[str, ...]:
    """Control host names run a Redis of the role's; `host:port` names a Redis of the site's own."""
    if raw is None:
        return (f"{hosts[0].address}:{ports['redis']}",) if hosts else ()
    if not isinstance(raw, list) or not raw:
        problems.add(file, "kraken.redis", "expected a list of control host names or host:port",
                     "redis: [kraken-01]")
        return ()
    by_name = {h.name: h.address for h in hosts}
    found = []
    for i, entry in enumerate(raw):
        text = str(entry)
        if text in by_name:
            found.append(f"{by_name[text]}:{ports['redis']}")
        elif ":" in text:
            if host_port(file, f"kraken.redis[{i}]", text, problems):
                found.append(text)
        else:
            problems.add(file, f"kraken.redis[{i}]", f"'{text}' is neither a control host nor host:port",
                         f"use one of {sorted(by_name)} or an address like 10.40.0.20:6379")
    return tuple(found)


def _artifacts(file: Path, raw: Any, problems: Problems) -> dict[str, Artifact]:
    if not problems.keys(raw, file, "kraken.artifacts", set(COMPONENTS), set()):
        return {}
    result = {}
    for name in COMPONENTS:
        entry, path = raw.get(name), f"kraken.artifacts.{name}"
        if entry is None or not problems.keys(entry, file, path, set(), {"image", "url", "sha256"}):
            continue
        if "image" in entry:
            if not _DIGEST.match(str(entry["image"])):
                problems.add(file, f"{path}.image", f"'{entry['image']}' is not pinned by digest",
                             "write REPOSITORY@sha256:<64 hex digits> (a tag can move under you)")
            result[name] = Artifact(image=str(entry["image"]))
        elif "url" in entry:
            if not str(entry["url"]).startswith(("https://", "http://")):
                problems.add(file, f"{path}.url", f"'{entry['url']}' is not an http(s) URL", "write https://...")
            if not _SHA256.match(str(entry.get("sha256", ""))):
                problems.add(file, join(path, "sha256"), "a binary URL needs its sha256 (64 hex digits)",
                             "add sha256: <the binary's sha256sum>")
            result[name] = Artifact(url=str(entry["url"]), sha256=str(entry.get("sha256", "")))
        else:
            problems.add(file, path, "expected image or url", "image: REPO@sha256:... or url: + sha256:")
    return result


def _backend(file: Path, raw: Any, problems: Problems) -> dict[str, Any]:
    """The origin's storage: an upstream registry or an S3 bucket (lib/backend/registrybackend, s3backend)."""
    if not problems.keys(raw, file, "kraken.backend", set(), {"registry", "s3", "namespace"}):
        return {}
    kinds = [k for k in ("registry", "s3") if k in raw]
    if len(kinds) != 1:
        problems.add(file, "kraken.backend", "expected exactly one of registry or s3",
                     "backend: {registry: {address: registry.example:5000}}")
        return {}
    result: dict[str, Any] = {"namespace": str(raw["namespace"])} if "namespace" in raw else {}
    if kinds == ["registry"]:
        entry = raw["registry"]
        if problems.keys(entry, file, "kraken.backend.registry", {"address"}, set()):
            result["registry"] = {"address": host_port(file, "kraken.backend.registry.address", entry["address"],
                                                       problems)}
    else:
        entry = raw["s3"]
        if problems.keys(entry, file, "kraken.backend.s3", {"bucket", "region"}, {"endpoint", "root_directory"}):
            result["s3"] = {k: str(v) for k, v in entry.items()}
    return result


def _gbps(file: Path, path: str, value: Any, problems: Problems) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.add(file, path, f"expected a positive number of Gb/s, got {value!r}", "e.g. 100 for a 100 Gb/s link")
        return 100.0
    return float(value)


def _duration(file: Path, path: str, value: Any, problems: Problems) -> str:
    text = str(value)
    if not _DURATION.match(text):
        problems.add(file, path, f"'{text}' is not a Go duration", 'write e.g. "6h" or "30m"')
    return text
