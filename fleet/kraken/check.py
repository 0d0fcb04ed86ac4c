"""`kraken check`: does each selected node's agent serve the registry API, the image, within its cache limit.

Per node (on the node, through fleet/kraken/node_probe.py): the agent answers `GET /v2/`; the named
image tag resolves, through the agent, to the digest the reference registry gives for it; the agent's
disk cache is under the site's limit, and its filesystem below the use at which Kraken's cleanup turns
aggressive (lib/store/cleanup.go `aggressive_threshold`). The verdict is a pure function of what the
probe saw (`decide`), so every failure mode is table-tested; `check_nodes` only runs probes in parallel.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fleet.kraken.remote import ProbeRun, Runner, run_probe, transport_error

log = logging.getLogger("fleet.kraken")


@dataclass(frozen=True)
class Limits:
    cache_limit_bytes: int | None  # the site's budget for the agent's cache
    aggressive_threshold_pct: int | None  # the agent's store.cache_cleanup.aggressive_threshold


@dataclass(frozen=True)
class NodeCheck:
    node: str
    ok: bool
    reasons: tuple[str, ...]
    digest: str | None = None
    cache_bytes: int | None = None
    seconds: float = 0.0


def decide(node: str, run: ProbeRun, expected_digest: str | None, limits: Limits) -> NodeCheck:
    """The verdict for one node from its probe run (pure)."""
    took = round(run.seconds, 2)
    why = transport_error(run)
    if why:
        return NodeCheck(node, False, (f"unreachable: {why}",), seconds=took)
    try:
        seen = json.loads(run.stdout)
    except json.JSONDecodeError:
        last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.rc}, no output"
        return NodeCheck(node, False, (f"probe failed on the node: {last}",), seconds=took)
    reasons: list[str] = []
    if seen.get("v2_status") is None:
        reasons.append(f"agent registry does not answer /v2/: {seen.get('v2_error') or 'no answer'}")
    elif seen["v2_status"] not in (200, 401):
        reasons.append(f"agent registry /v2/ answered HTTP {seen['v2_status']}")
    digest = seen.get("digest")
    if expected_digest and seen.get("v2_status") is not None:
        if not digest:
            reasons.append(f"image does not resolve through the agent: {seen.get('digest_error') or 'no digest'}")
        elif digest != expected_digest:
            reasons.append(f"image resolves to {digest} through the agent, "
                           f"the reference registry says {expected_digest}")
    cache = seen.get("cache_bytes")
    if not seen.get("cache_dir_exists", True):
        reasons.append("agent cache directory is missing")
    elif limits.cache_limit_bytes is not None and cache is not None and cache > limits.cache_limit_bytes:
        reasons.append(f"agent cache holds {cache / 1e9:.2f} GB, "
                       f"over its limit of {limits.cache_limit_bytes / 1e9:.2f} GB")
    used = seen.get("fs_used_pct")
    if limits.aggressive_threshold_pct is not None and used is not None and used >= limits.aggressive_threshold_pct:
        reasons.append(f"cache filesystem {used:.0f}% used, at or over the agent's aggressive-cleanup threshold "
                       f"{limits.aggressive_threshold_pct}%")
    return NodeCheck(node, not reasons, tuple(reasons), digest, cache, took)


def probe_args(port: int, image: str | None, cache_dir: str, timeout_s: float) -> list[str]:
    args = ["check", "--port", str(port), "--cache-dir", cache_dir, "--timeout-s", str(timeout_s)]
    return args + (["--image", image] if image else [])


def check_nodes(
    nodes: Iterable[str], ssh_target: Callable[[str], str], *, port: int, image: str | None,
    expected_digest: str | None, limits: Limits, cache_dir: str = "/var/cache/kraken/kraken-agent",
    parallel: int = 32, timeout_s: float = 30.0, ssh_options: tuple[str, ...] = (), runner: Runner = subprocess.run,
) -> list[NodeCheck]:
    """Probe every node, at most `parallel` at once; results in input order."""
    names = list(nodes)
    args = probe_args(port, image, cache_dir, timeout_s)

    def one(node: str) -> NodeCheck:
        run = run_probe(ssh_target(node), args, timeout_s=timeout_s + 15, ssh_options=ssh_options, runner=runner)
        result = decide(node, run, expected_digest, limits)
        log.info("node %s: kraken %s", node, "ok" if result.ok else f"FAILED ({'; '.join(result.reasons)})")
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names) or 1)), thread_name_prefix="kraken") as pool:
        return list(pool.map(one, names))


def redis_answers(address: str, timeout_s: float = 3.0) -> str | None:
    """None when the Redis at "host:port" answers PING with PONG, else why not.

    Three lines of RESP (redis.io/docs/reference/protocol-spec) rather than a client library.
    """
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            answer = conn.recv(64)
    except (OSError, ValueError) as err:
        return f"Redis {address} unreachable: {err}"
    if answer.startswith(b"+PONG"):
        return None
    return f"Redis {address} answered {answer[:60].decode('utf-8', 'replace').strip()!r} to PING"
