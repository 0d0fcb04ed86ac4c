"""The images the lab MAAS has synced, and how `deploy` names and checks a release and kernel.

What a client of real MAAS sees (MAAS 2.x `boot-resources/` read and the deploy form's
`distro_series` / `hwe_kernel` validation, `maasserver/utils/osystems.py`):
- `boot-resources/` lists one entry per image and kernel: `name` "ubuntu/jammy", `architecture`
  "amd64/ga-22.04" (the GA kernel), "amd64/hwe-22.04", "amd64/hwe-22.04-edge";
- `deploy` takes `distro_series` as "jammy" or "ubuntu/jammy" and stores "jammy" with `osystem`
  "ubuntu"; a release MAAS has no image for is 400
  `{"distro_series": ["'ubuntu/x' is not a valid distro_series.  It should be one of: ..."]}`;
- `hwe_kernel` must be one of the release's kernels (`ga-22.04`, `hwe-22.04`, ...), else 400
  `{"hwe_kernel": ["<kernel> is not available for ubuntu/jammy on amd64/generic."]}`; when none is
  given MAAS picks the release's GA kernel and the machine reports `hwe_kernel` "ga-22.04" once
  deployed. A client that compares its own spelling ("jammy", no kernel) with MAAS's must know
  these names, or it redeploys forever.
"""

from __future__ import annotations

import json

DEFAULT_SERIES = "jammy"
# series -> (version, kernels MAAS has synced for it, GA first)
SERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "jammy": ("22.04", ("ga-22.04", "hwe-22.04", "hwe-22.04-edge")),
    "noble": ("24.04", ("ga-24.04", "hwe-24.04")),
}
BOOT_RESOURCES: tuple[dict[str, object], ...] = tuple(
    {"id": index, "type": "Synced", "name": f"ubuntu/{series}", "architecture": f"amd64/{kernel}"}
    for index, (series, kernel) in enumerate(
        ((series, kernel) for series, (_, kernels) in SERIES.items() for kernel in kernels), start=1)
)


class ImageError(Exception):
    """A 400 with the deploy form's error body."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors


def check_deploy(params: dict[str, str], architecture: str) -> dict[str, str]:
    """The `distro_series` and `hwe_kernel` MAAS deploys for these form fields (its own names)."""
    requested = params.get("distro_series") or DEFAULT_SERIES
    series = requested.split("/", 1)[1] if requested.startswith("ubuntu/") else requested
    if series not in SERIES:
        choices = ", ".join(["''", *(f"'ubuntu/{s}'" for s in SERIES)])
        raise ImageError({"distro_series": [
            f"'{requested}' is not a valid distro_series.  It should be one of: {choices}."]})
    kernels = SERIES[series][1]
    kernel = params.get("hwe_kernel") or kernels[0]
    if kernel not in kernels:
        raise ImageError({"hwe_kernel": [f"{kernel} is not available for ubuntu/{series} on {architecture}."]})
    return {"distro_series": series, "hwe_kernel": kernel}
