"""What a platform is expected to reach: the floors burn-in judges against (settings, not constants).

Each figure says where it comes from. A run may override any of them (``--tflops-floor`` and
friends, or the site's burn-in settings on the fleet side); a GPU name no entry matches gets no
floors, and the checks that need one say so (UNKNOWN) instead of guessing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    """Expectations for one GPU model in one chassis type."""

    name: str
    match: str  # substring of the NVML GPU name
    # Dense bf16 matmul TFLOP/s below which a GPU is a straggler even when every GPU is as slow.
    tflops_floor: float | None = None
    # Device-to-device copy bandwidth (read + write bytes per second) expected, and the floor as a fraction.
    hbm_copy_gbps: float | None = None
    hbm_floor_fraction: float = 0.9
    # Host-to-device / device-to-host copies of pinned memory under load, GB/s per direction.
    pcie_copy_gbps_min: float | None = None
    # Single-node all-reduce bus bandwidth at the largest message, GB/s (nccl-tests' busbw).
    nccl_busbw_min_gbps: float | None = None
    # InfiniBand: per-port write bandwidth with GPUDirect and p99 write latency, between HCAs of one rail.
    ib_bw_min_gbps: float = 360.0
    ib_lat_p99_max_us: float = 4.2

    def with_overrides(self, **values: float | None) -> Platform:
        """A copy with the given settings replaced (``None`` leaves a setting as it is)."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})


# H100 SXM5: 989 TFLOP/s dense bf16 on paper, ~700-750 reached by cuBLAS on large squares; 3.35 TB/s
# HBM3 on paper. H200 SXM: same compute, 4.8 TB/s HBM3e on paper. The H200 figures are set from the
# device run kept in tests/fixtures/device-h200-burnin/ (see its README); the H100 ones scale them by
# the paper ratios until an H100 run replaces them. NCCL: 8-GPU NVLink4 all-reduce busbw on HGX H100
# is ~450-480 GB/s at large messages in NVIDIA's published nccl-tests results; 400 leaves margin.
PLATFORMS: tuple[Platform, ...] = (
    Platform("NVIDIA H200", "H200", tflops_floor=600.0, hbm_copy_gbps=4000.0, pcie_copy_gbps_min=40.0,
             nccl_busbw_min_gbps=400.0),
    Platform("NVIDIA H100 80GB HBM3", "H100", tflops_floor=600.0, hbm_copy_gbps=2800.0, pcie_copy_gbps_min=40.0,
             nccl_busbw_min_gbps=400.0),
)
UNKNOWN_PLATFORM = Platform("unknown", "")


def platform_for(gpu_name: str) -> Platform:
    """The first platform whose ``match`` is in the GPU's name; ``UNKNOWN_PLATFORM`` (no floors) otherwise."""
    for platform in PLATFORMS:
        if platform.match and platform.match in gpu_name:
            return platform
    return dataclasses.replace(UNKNOWN_PLATFORM, name=f"unknown ({gpu_name or 'no GPU name'})")
