"""What the stages of one run share: the clients, built on first use and closed when the run ends.

Sharing is what makes per-resource limits hold across the whole fleet: BMC requests in flight
(one pool), MAAS deployments at once (one semaphore), one MAAS client and its batched poller.
A new stage that needs a new client adds it here as a property, closed in `close`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fleet.site import Site, resolve_credentials
from fleet.slots import Slots
from fleet.workflow import ProgressFn

if TYPE_CHECKING:
    from fleet.dell.bios import RegistryCache
    from fleet.maas import MaasClient
    from fleet.redfish import BmcPool


@dataclass(frozen=True)
class RunLimits:
    """The operator's knobs for a run (command-line options)."""

    bmc_requests: int = 64
    maas_deploys: int = 128
    insecure_bmc: bool = False
    erase: bool = False
    named: frozenset[str] = frozenset()  # nodes the operator named with --nodes (may be rebooted for a job)
    force: bool = False  # reimage --force: in-use nodes and another MAAS user's machines are taken over

    @classmethod
    def of(cls, args: argparse.Namespace) -> RunLimits:
        return cls(args.bmc_requests, args.maas_deploys, args.insecure_bmc, getattr(args, "erase", False),
                   frozenset(getattr(args, "nodes", None) or ()), getattr(args, "force", False))


class Shared:
    def __init__(self, site: Site, limits: RunLimits, *, reimage: bool = False,
                 progress: ProgressFn | None = None, maas_user: str | None = None) -> None:
        self.site = site
        self.maas_user = maas_user
        self.limits = limits
        self.reimage = reimage
        self.progress = progress
        self.deploys = Slots(limits.maas_deploys)
        self.compliance: dict[str, Any] = {}  # discover's BIOS/firmware reads by node, for the bios stage

    @cached_property
    def maas(self) -> MaasClient:
        from fleet.maas import MaasClient

        site = self.site
        return MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls,
                          poll_interval_s=site.timeouts.maas_poll_s, me=self.maas_user)

    @cached_property
    def bmcs(self) -> BmcPool:
        from fleet.redfish import BmcPool, BmcSettings

        settings = BmcSettings(poll_interval_s=self.site.timeouts.bmc_poll_s)
        return BmcPool(self.site, max_requests=self.limits.bmc_requests, insecure=self.limits.insecure_bmc,
                       settings=settings)

    @cached_property
    def registries(self) -> RegistryCache:
        """BIOS attribute registries, read once per BIOS version for the whole run."""
        from fleet.dell.bios import RegistryCache

        return RegistryCache()

    def close(self) -> None:
        if "maas" in self.__dict__:
            self.maas.close()

    def __enter__(self) -> Shared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
