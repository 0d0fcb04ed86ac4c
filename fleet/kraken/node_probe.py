"""Runs ON a node (sent over SSH as `python3 - check|pull ...`): talks to the local Kraken agent's registry.

Standard library only, imports nothing of fleet: the control plane pipes this file's source to the
node's python3, so nothing has to be installed there. It runs on the node because the agent serves
only loopback and docker's bridge (Kraken's config/agent/base.yaml `allowed_cidrs`) and because a
pre-pull must move the bytes peer to node, never through the ops host.

What a registry (the agent implements Docker's registry API v2, and so does the lab's stand-in,
distribution's `docker-registry`) does that this notices: `GET /v2/` answers 200 (or 401 with a
challenge when auth is on); a manifest GET by tag returns the manifest the Accept header allows,
with its digest in `Docker-Content-Digest` (distribution registry/handlers/manifests.go); an OCI image
index or Docker manifest list names per-platform manifests that must be fetched by digest; blobs are
content-addressed, so every byte fetched is checked against its sha256.

Prints one JSON object on stdout; exit 0 when the probe itself ran (the verdict is the caller's), 3 when
the agent could not be asked at all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
CHUNK = 1 << 20


def _request(url: str, timeout_s: float, accept: str | None = None) -> Any:
    # Only ever http://127.0.0.1:<port>/v2/... (built in main), so no file: or other schemes.
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})  # noqa: S310
    return urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310


def split_image(image: str) -> tuple[str, str]:
    """'team/trainer:2024.11' -> ('team/trainer', '2024.11'); a digest reference keeps its '@'."""
    if "@" in image:
        repo, _, ref = image.partition("@")
        return repo, ref
    repo, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, "latest"
    return repo, tag


def fetch_manifest(base: str, repo: str, ref: str, timeout_s: float) -> tuple[str, str, bytes]:
    """(digest, media type, body) of a manifest; the digest from the header, checked against the body."""
    with _request(f"{base}/v2/{repo}/manifests/{ref}", timeout_s, ", ".join(MANIFEST_TYPES)) as answer:
        body = answer.read()
        media = answer.headers.get("Content-Type", "").split(";")[0].strip()
        digest = answer.headers.get("Docker-Content-Digest") or ""
    computed = "sha256:" + hashlib.sha256(body).hexdigest()
    if digest and digest != computed:
        raise ValueError(f"manifest {repo}:{ref} digest {digest} does not match its content ({computed})")
    return digest or computed, media, body


def fetch_blob(base: str, repo: str, digest: str, timeout_s: float) -> int:
    """Stream one blob to nowhere (the agent keeps it in its cache), checking its sha256; returns bytes."""
    algorithm, _, expected = digest.partition(":")
    hasher = hashlib.new(algorithm)
    size = 0
    with _request(f"{base}/v2/{repo}/blobs/{digest}", timeout_s) as answer:
        while chunk := answer.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    if hasher.hexdigest() != expected:
        raise ValueError(f"blob {digest} arrived with sha256 {hasher.hexdigest()}")
    return size


def _platform_manifest(index: dict[str, Any], platform: str) -> str:
    os_name, _, arch = platform.partition("/")
    for entry in index.get("manifests", []):
        wanted = entry.get("platform", {})
        if wanted.get("os") == os_name and wanted.get("architecture") == arch:
            return str(entry["digest"])
    raise ValueError(f"the image index has no {platform} manifest")


def pull(base: str, image: str, platform: str, timeout_s: float) -> dict[str, Any]:
    started = time.monotonic()
    repo, ref = split_image(image)
    digest, media, body = fetch_manifest(base, repo, ref, timeout_s)
    size = len(body)
    manifest = json.loads(body)
    if media in INDEX_TYPES or "manifests" in manifest:
        _sub_digest, _media, body = fetch_manifest(base, repo, _platform_manifest(manifest, platform), timeout_s)
        size += len(body)
        manifest = json.loads(body)
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]
    size += sum(fetch_blob(base, repo, blob, timeout_s) for blob in blobs)
    return {"digest": digest, "bytes": size, "blobs": len(blobs), "seconds": round(time.monotonic() - started, 3)}


def disk_usage(path: str) -> dict[str, Any]:
    """Bytes under `path` (allocated blocks, like du) and the use of the filesystem it is on."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    try:
        fs = os.statvfs(path)
        used_pct = round(100.0 * (fs.f_blocks - fs.f_bfree) / fs.f_blocks, 1) if fs.f_blocks else 0.0
    except OSError:
        return {"cache_bytes": total, "cache_dir_exists": False, "fs_used_pct": None}
    return {"cache_bytes": total, "cache_dir_exists": True, "fs_used_pct": used_pct}


def check(base: str, image: str | None, cache_dir: str, timeout_s: float) -> dict[str, Any]:
    result: dict[str, Any] = {"v2_status": None, "v2_error": "", "digest": None, "digest_error": ""}
    try:
        with _request(f"{base}/v2/", timeout_s) as answer:
            result["v2_status"] = answer.status
    except urllib.error.HTTPError as err:
        result["v2_status"] = err.code
    except (OSError, ValueError) as err:
        result["v2_error"] = str(getattr(err, "reason", err))
    if image and result["v2_status"] is not None:
        try:
            result["digest"] = fetch_manifest(base, *split_image(image), timeout_s)[0]
        except urllib.error.HTTPError as err:
            result["digest_error"] = f"HTTP {err.code} {err.read(300).decode('utf-8', 'replace').strip()}"
        except (OSError, ValueError) as err:
            result["digest_error"] = str(getattr(err, "reason", err))
    result.update(disk_usage(cache_dir))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node_probe")
    parser.add_argument("action", choices=["check", "pull"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--image")
    parser.add_argument("--cache-dir", default="/var/cache/kraken/kraken-agent")
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--timeout-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    base = f"http://127.0.0.1:{args.port}"
    if args.action == "check":
        print(json.dumps(check(base, args.image, args.cache_dir, args.timeout_s)))
        return 0
    try:
        print(json.dumps(pull(base, args.image, args.platform, args.timeout_s)))
    except urllib.error.HTTPError as err:
        print(json.dumps({"error": f"{err.url}: HTTP {err.code} {err.read(300).decode('utf-8', 'replace').strip()}"}))
        return 3
    except (OSError, ValueError, KeyError) as err:
        print(json.dumps({"error": str(getattr(err, "reason", err))}))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
