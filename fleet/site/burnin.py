"""The `burnin:` section: how nodes are burned in (`provision.py burnin`, the optional `burnin` stage).

    burnin:
      duration_s: 600                  # GPU stress seconds (the run adds PCIe, memory and NCCL phases)
      python: python3                  # the node's interpreter with PyTorch (e.g. /opt/burnin/bin/python3)
      textfile_dir: /var/lib/prometheus/node-exporter   # where the node writes burnin.prom
      out_dir: /var/lib/healthcheck/burnin               # where the node keeps record.json + report.json
      tflops_floor: 600                # platform overrides (healthcheck/burnin/platform.py has the defaults)
      hbm_copy_gbps: 4000
      nccl_busbw_min_gbps: 400

Every key is optional; the section itself too (the defaults above, the platform's own floors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.site.schema import Problems

FLOORS = ("tflops_floor", "hbm_copy_gbps", "nccl_busbw_min_gbps", "pcie_copy_gbps_min")
TEXTS = ("python", "textfile_dir", "out_dir")


@dataclass(frozen=True)
class BurninSettings:
    duration_s: float = 600.0
    python: str = "python3"
    textfile_dir: str = "/var/lib/prometheus/node-exporter"
    out_dir: str = "/var/lib/healthcheck/burnin"
    tflops_floor: float | None = None
    hbm_copy_gbps: float | None = None
    nccl_busbw_min_gbps: float | None = None
    pcie_copy_gbps_min: float | None = None

    def remote_args(self, duration_s: float | None = None) -> tuple[str, ...]:
        """`python3 -m healthcheck.burnin run ...` as the node runs it."""
        args = [self.python, "-m", "healthcheck.burnin", "run", "--duration", f"{duration_s or self.duration_s:g}",
                "--json", "--out", self.out_dir, "--textfile", self.textfile_dir]
        flags = {"tflops_floor": "--tflops-floor", "hbm_copy_gbps": "--hbm-gbps",
                 "nccl_busbw_min_gbps": "--nccl-busbw-min", "pcie_copy_gbps_min": "--pcie-gbps-min"}
        for key, flag in flags.items():
            value = getattr(self, key)
            if value is not None:
                args += [flag, f"{value:g}"]
        return tuple(args)


def parse_burnin(file: Path, raw: Any, problems: Problems) -> BurninSettings:
    if raw is None or not problems.keys(raw, file, "burnin", set(), {"duration_s", *TEXTS, *FLOORS}):
        return BurninSettings()
    values: dict[str, Any] = {}
    for key in ("duration_s", *FLOORS):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.add(file, f"burnin.{key}", f"expected a positive number, got {value!r}",
                             f"{key}: {BurninSettings.duration_s:g}" if key == "duration_s" else f"{key}: 600")
                continue
            values[key] = float(value)
    for key in TEXTS:
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
                problems.add(file, f"burnin.{key}", f"expected a path or command without spaces, got {value!r}",
                             f"{key}: {getattr(BurninSettings, key)}")
                continue
            values[key] = value
    return BurninSettings(**values)
