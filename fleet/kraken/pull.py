"""`image pull`: pre-pull an image on the selected nodes through their own Kraken agents, in parallel.

Each node fetches the manifest and every blob from its local agent (fleet/kraken/node_probe.py), which
pulls the pieces from its peers and the origins and keeps them in its cache: a later `docker pull`
through the agent is local. At most `concurrency` nodes pull at once (the site's setting); one node's
failure is its own result and never stops the others. Results carry digest, seconds and bytes.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

from fleet.kraken.remote import ProbeRun, Runner, run_probe, transport_error

log = logging.getLogger("fleet.kraken")


@dataclass(frozen=True)
class PullResult:
    node: str
    ok: bool
    digest: str | None = None
    seconds: float = 0.0
    bytes: int = 0
    error: str = ""


def parse_pull(node: str, run: ProbeRun) -> PullResult:
    """One node's result from its probe run (pure)."""
    took = round(run.seconds, 2)
    why = transport_error(run)
    if why:
        return PullResult(node, False, seconds=took, error=f"unreachable: {why}")
    try:
        seen = json.loads(run.stdout)
    except json.JSONDecodeError:
        last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.rc}, no output"
        return PullResult(node, False, seconds=took, error=f"probe failed on the node: {last}")
    if seen.get("error") or run.rc != 0:
        why = seen.get("error", f"exit {run.rc}")
        return PullResult(node, False, seconds=took, error=f"pull through the agent failed: {why}")
    return PullResult(node, True, str(seen["digest"]), float(seen["seconds"]), int(seen["bytes"]))


def pull_nodes(
    nodes: Iterable[str], ssh_target: Callable[[str], str], *, image: str, port: int, concurrency: int,
    platform: str = "linux/amd64", timeout_s: float = 1800.0, ssh_options: tuple[str, ...] = (),
    runner: Runner = subprocess.run, on_done: Callable[[PullResult], None] | None = None,
) -> list[PullResult]:
    """Pull on every node, `concurrency` at a time; results in input order, `on_done` as each finishes."""
    names = list(nodes)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    args = ["pull", "--port", str(port), "--image", image, "--platform", platform,
            "--timeout-s", str(min(timeout_s, 300))]

    def one(node: str) -> PullResult:
        result = parse_pull(node, run_probe(ssh_target(node), args, timeout_s=timeout_s, ssh_options=ssh_options,
                                            runner=runner))
        log.info("node %s: pull %s", node, f"{result.bytes} bytes in {result.seconds} s" if result.ok else result.error)
        return result

    results: dict[str, PullResult] = {}
    with ThreadPoolExecutor(max_workers=min(concurrency, len(names) or 1), thread_name_prefix="pull") as pool:
        futures = {pool.submit(one, node): node for node in names}
        for future in as_completed(futures):
            result = future.result()
            results[result.node] = result
            if on_done:
                on_done(result)
    return [results[node] for node in names]


def summarize(image: str, results: list[PullResult]) -> dict[str, Any]:
    """The stable JSON shape of a pull: counts, the digests seen, every node's result."""
    done = [r for r in results if r.ok]
    return {
        "image": image,
        "summary": {"pulled": len(done), "failed": len(results) - len(done)},
        "digests": sorted({r.digest for r in done if r.digest}),
        "bytes": sum(r.bytes for r in done),
        "nodes": [asdict(r) for r in results],
    }
