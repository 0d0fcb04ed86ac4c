"""`kraken check` and `image pull` for real: Debian's docker-registry as the origin's upstream and on every
lab host's agent port, a real redis-server as the tracker's Redis, a test image built as an OCI layout and
pushed with skopeo. Rack 3 of a generated site (its own addresses, 198.18.3.11-14); gpu-003-04's registry
is down. Asserts come from the CLI's JSON and from the registries themselves (their storage on the nodes,
the upstream's access log).

Needs root (nspawn lab hosts), docker-registry, redis-server and skopeo (scripts/install.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml

from lab.hosts import nspawn
from lab.registry import agents, image
from tests.lab.conftest import REPO, LabSite, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (nspawn, overlayfs, bridge)"),
    pytest.mark.skipif(not all(shutil.which(b) for b in ("docker-registry", "redis-server", "skopeo")),
                       reason="needs docker-registry, redis-server and skopeo (scripts/install.sh)"),
]

RACK = 3
NODES = [f"gpu-003-{slot:02d}" for slot in range(1, 5)]
DOWN = "gpu-003-04"
REPOSITORY = "lab/trainer"
PIN = "@sha256:" + "0" * 64


def _with_kraken(lab: LabSite, registry_port: int, redis_port: int, cache_limit_gb: float) -> None:
    raw = yaml.safe_load(lab.site_file.read_text(encoding="utf-8"))
    raw["lab"]["ports"].update({"registry": registry_port, "redis": redis_port})
    gateway = "198.18.0.1"
    raw["kraken"] = {
        "environment": "lab",
        # The control plane is not run here (Kraken's binaries are not installable); the check and the pull
        # talk to the agents and the Redis only.
        "control_hosts": [{"name": "kraken-ctl-01", "address": "198.18.0.201"}],
        "redis": [f"{gateway}:{redis_port}"],
        "artifacts": {name: {"image": f"lab.invalid/kraken-{name}{PIN}"}
                      for name in ("agent", "tracker", "origin", "build-index", "proxy")},
        "backend": {"registry": {"address": f"{gateway}:{registry_port}"}},
        "reference_registry": f"http://{gateway}:{registry_port}",
        "agent": {"cache_limit_gb": cache_limit_gb, "cache_aggressive_threshold_pct": 100},
    }
    lab.site_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def _start_hosts(lab: LabSite) -> dict[str, str]:
    addresses = {name: lab.site.nodes[name].address for name in NODES}
    for name, address in addresses.items():
        argv = [sys.executable, "-m", "lab.hosts", "--lab-dir", str(lab.lab_dir), "start", name, address]
        done = subprocess.run(argv, cwd=REPO, env=lab.env, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stderr
        # Started by hand, not deployed by the tool: its key is confirmed as an operator would, with the
        # fingerprint read on the host itself (the tool checks every node's key against its own known_hosts).
        pub = nspawn.hosts_dir(lab.lab_dir) / name / "merged" / "etc/ssh/ssh_host_ed25519_key.pub"
        listed = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True)
        accepted = lab.cli("hostkey", "accept", name, "--fingerprint", listed.stdout.split()[1])
        assert accepted.returncode == 0, accepted.stderr
    return addresses


def test_kraken_check_and_image_pull_over_real_registries(make_lab_site: Callable[..., LabSite]) -> None:
    lab = make_lab_site(racks=RACK)
    registry_port, redis_port = free_port(), free_port()
    _with_kraken(lab, registry_port, redis_port, cache_limit_gb=1.0)
    up = lab.lab("up")
    assert up.returncode == 0, up.stderr

    built = image.build(lab.lab_dir.parent / "oci", "2026.12", layers=2, layer_bytes=3 << 20)
    pushed = image.push(built, f"198.18.0.1:{registry_port}", REPOSITORY, lab.lab_dir)
    assert pushed.returncode == 0, pushed.stderr
    tag = f"{REPOSITORY}:{built.tag}"

    _start_hosts(lab)
    port = lab.site.kraken.ports["agent_registry"]
    for name in NODES:
        if name != DOWN:
            agents.start(lab.lab_dir, name, f"http://198.18.0.1:{registry_port}", port)

    checked = lab.cli("kraken", "check", "--rack", str(RACK), "--image", tag, "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["digest"] == built.manifest_digest  # skopeo kept the OCI manifest, so the registry's digest is ours
    assert report["redis"] == [{"address": f"198.18.0.1:{redis_port}", "ok": True, "error": ""}]
    by_node = {n["node"]: n for n in report["nodes"]}
    assert [n for n in NODES if not by_node[n]["ok"]] == [DOWN]
    assert "agent registry does not answer /v2/" in by_node[DOWN]["reasons"][0]
    assert all(by_node[n]["digest"] == built.manifest_digest for n in NODES if n != DOWN)

    pulled = lab.cli("image", "pull", tag, "--rack", str(RACK), "--concurrency", "2", "--json", timeout_s=300)
    assert pulled.returncode == 1, pulled.stderr
    result = json.loads(pulled.stdout)
    assert result["summary"] == {"pulled": 3, "failed": 1}
    assert result["digests"] == [built.manifest_digest]
    rows = {r["node"]: r for r in result["nodes"]}
    assert "Connection refused" in rows[DOWN]["error"]
    for name in NODES:
        if name != DOWN:
            assert rows[name]["bytes"] == built.blob_bytes + built.manifest_bytes
            assert rows[name]["seconds"] > 0
    # The bytes are on each node, in the agent's cache (the stand-in's storage), blob by blob.
    blobs = sorted(p.name for p in (built.layout / "blobs" / "sha256").iterdir())
    for name in NODES:
        listing = subprocess.run(
            ["ssh", "-F", str(lab.lab_dir / "ssh_config"), "-o", "BatchMode=yes", name,
             f"sudo -n sh -c 'ls {agents.CACHE_DIR}/docker/registry/v2/blobs/sha256/*/ 2>/dev/null'"],
            capture_output=True, text=True, timeout=30, check=False)
        held = set(listing.stdout.split())
        if name == DOWN:
            assert held == set()
        else:
            layer_blobs = {b for b in blobs if b != built.manifest_digest.split(":")[1]}
            assert layer_blobs <= held, (name, layer_blobs - held)
    # ... and the upstream served each of them from its own storage (its access log names every node).
    log_text = (lab.lab_dir / "logs" / "registry.log").read_text(encoding="utf-8")
    for name in NODES:
        address = lab.site.nodes[name].address
        assert (f"{address}:" in log_text) is (name != DOWN), name

    # Over the limit: a cache budget smaller than what the nodes now hold fails them, with the numbers.
    _with_kraken(lab, registry_port, redis_port, cache_limit_gb=0.001)
    again = lab.cli("kraken", "check", "--rack", str(RACK), "--json")
    report = json.loads(again.stdout)
    for row in report["nodes"]:
        if row["node"] != DOWN:
            assert row["cache_bytes"] >= built.blob_bytes
            assert any("over its limit of 0.00 GB" in why for why in row["reasons"]), row
