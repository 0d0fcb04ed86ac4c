"""A test image built here as an OCI image layout, pushed to a registry with skopeo.

The layout is what `umoci`/`buildah` write (OCI image-spec image-layout.md): `oci-layout`, `index.json`
naming the manifest with the `org.opencontainers.image.ref.name` annotation, and content-addressed
blobs under `blobs/sha256/`. Layers are gzip'd tars of files with seeded random contents (so a pull
moves real, incompressible bytes), the config lists their uncompressed `diff_ids`. Pushing is skopeo's
job (`skopeo copy oci:DIR:TAG docker://HOST/REPO:TAG`), the standard client: nothing here speaks the
registry protocol itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    tag: str
    manifest_digest: str  # what a registry answers for the tag (skopeo copies OCI manifests unchanged)
    blob_bytes: int  # config + layers as stored (compressed)
    manifest_bytes: int


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def _layer(rng: random.Random, files: int, size: int) -> tuple[bytes, bytes]:
    """(tar, gzip'd tar) of `files` files of `size` random bytes each, with fixed metadata."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"opt/lab/data-{i:03d}.bin")
            info.size, info.mtime, info.mode = size, 0, 0o644
            tar.addfile(info, io.BytesIO(rng.randbytes(size)))
    return raw.getvalue(), gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def build(layout: Path, tag: str, *, layers: int = 2, layer_bytes: int = 2 << 20, seed: int = 1) -> BuiltImage:
    """Write an OCI image layout with `layers` layers of about `layer_bytes` each."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    descriptors, diff_ids = [], []
    for _ in range(layers):
        tar, compressed = _layer(rng, 4, layer_bytes // 4)
        digest, size = _blob(layout, compressed)
        descriptors.append({"mediaType": OCI_LAYER, "digest": digest, "size": size})
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    config = {"architecture": "amd64", "os": "linux", "created": "2026-12-01T00:00:00Z",
              "config": {"Cmd": ["/bin/true"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_digest, config_size = _blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
                "layers": descriptors}
    body = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest, manifest_size = _blob(layout, body)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}  # fmt: skip
    (layout / "index.json").write_text(json.dumps(index), encoding="utf-8")
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}), encoding="utf-8")
    blob_bytes = config_size + sum(d["size"] for d in descriptors)
    return BuiltImage(layout, tag, manifest_digest, blob_bytes, manifest_size)


def push(image: BuiltImage, registry: str, repository: str, policy_dir: Path) -> subprocess.CompletedProcess[str]:
    """skopeo copy to http://<registry>/<repository>:<tag> (the lab registry speaks plain HTTP on the bridge).

    skopeo checks a signature policy before copying; the lab's own policy accepts the locally built image.
    """
    policy = policy_dir / "skopeo-policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}), encoding="utf-8")
    return subprocess.run(
        ["skopeo", "--policy", str(policy), "copy", "--dest-tls-verify=false", "--preserve-digests",
         f"oci:{image.layout}:{image.tag}", f"docker://{registry}/{repository}:{image.tag}"],
        capture_output=True, text=True, timeout=120, check=False,
    )
