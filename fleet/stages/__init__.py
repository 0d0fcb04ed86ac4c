"""The stages a node walks, one module each, and the one table that orders them.

    release    (reimage only) release the machine in MAAS, optionally erasing its disks   release.py
    discover   BMC reachable, service tag, PXE MAC and model match the inventory           discover.py
    bios       BIOS attributes to the site's pins through the iDRAC job queue (fleet/dell)  bios.py
    pxe        enlistment by network boot, only where MAAS has no BMC access (maas.power: manual) pxe.py
    commission MAAS knows the machine (registered with Redfish power) and commissioned it  commission.py
    os         MAAS deploy, wait for Deployed, retry a failed deployment once              deploy.py
    hostkey    the node's SSH host key judged against the journal, recorded (fleet/hostkeys) hostkey.py
    configure  the Ansible roles, in batches (fleet/configure.py)                          configure.py
    fabric     HCA ports Active at rate, cabled as planned, in the pkeys (fleet/fabric/)   fabric.py
    validate   the node's health checks (fleet/validate.py)                                validate.py
    burnin     (optional) verified GPU stress, memory, PCIe, NCCL on the node (fleet/burnin)  burnin.py

A stage module has `make(shared: Shared) -> Stage` (see `fleet.workflow.Stage`); the clients it
needs come from `shared`, built once per run so per-resource limits hold fleet-wide. Adding a
stage is adding its module and its row to `TABLE`. Modules are imported when a run builds its
stages, so `provision.py -h` does not load the clients.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fleet.site import Node, Site
from fleet.stages.shared import RunLimits, Shared
from fleet.workflow import ProgressFn, Stage


@dataclass(frozen=True)
class StageSpec:
    name: str  # as in --until, the state DB and reports
    module: str  # fleet/stages/<module>.py
    reimage_only: bool = False
    optional: bool = False  # run only when --until names it (or a later stage)


TABLE = (
    StageSpec("release", "release", reimage_only=True),
    StageSpec("discover", "discover"),
    StageSpec("bios", "bios"),
    StageSpec("pxe", "pxe"),
    StageSpec("commission", "commission"),
    StageSpec("os", "deploy"),
    StageSpec("hostkey", "hostkey"),
    StageSpec("configure", "configure"),
    StageSpec("fabric", "fabric"),
    StageSpec("validate", "validate"),
    StageSpec("burnin", "burnin", optional=True),
)
NAMES = tuple(spec.name for spec in TABLE if not spec.reimage_only)  # a bring-up, in order
DEFAULT_UNTIL = [spec.name for spec in TABLE if not spec.reimage_only and not spec.optional][-1]


def order(*, reimage: bool = False, until: str | None = None) -> list[str]:
    """The stages a run walks, in order; an optional stage only when `until` is it or comes after it."""
    names = [spec.name for spec in TABLE if reimage or not spec.reimage_only]
    target = names.index(until or DEFAULT_UNTIL)
    return [spec.name for spec in TABLE if (reimage or not spec.reimage_only)
            and (not spec.optional or names.index(spec.name) <= target)]


class Pipeline(list[Stage]):
    """The run's stages in order, plus what the workflow attaches when any of them quarantines a node."""

    on_quarantine: Callable[[Node], dict[str, Any]] | None = None


@contextmanager
def build(site: Site, limits: RunLimits, *, reimage: bool = False, progress: ProgressFn | None = None,
          maas_user: str | None = None) -> Iterator[Pipeline]:
    """The run's stages with their shared clients; the clients are closed when the run ends.

    `maas_user`: our MAAS user as the preflight read it (None: the MAAS client asks `whoami` itself)."""
    with Shared(site, limits, reimage=reimage, progress=progress, maas_user=maas_user) as shared:
        pipeline = Pipeline(importlib.import_module(f"fleet.stages.{spec.module}").make(shared)
                            for spec in TABLE if reimage or not spec.reimage_only)
        from fleet.dell.hooks import quarantine_evidence

        pipeline.on_quarantine = quarantine_evidence(shared.bmcs)  # the BMC's newest critical/warning logs
        yield pipeline


__all__ = ["DEFAULT_UNTIL", "NAMES", "TABLE", "RunLimits", "Shared", "StageSpec", "build", "order"]
