"""The two places the Dell resources meet the workflow: compliance in discover, log evidence on quarantine.

Kept as small functions the stages and the workflow call, so the stage modules only gain a line each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleet.dell import bios, compliance, logs
from fleet.errors import FleetError
from fleet.redfish import Bmc, BmcPool
from fleet.site import Node, Site


def discover_compliance(site: Site, bmc: Bmc, registries: bios.RegistryCache,
                        seen: dict[str, compliance.Compliance] | None = None) -> tuple[dict[str, Any], str, str]:
    """(evidence, summary for the stage detail, inventory problem or '') for a node against the site's pins.

    The result is also left in `seen` (by hostname) for the run's bios stage, which then needs no
    request of its own for a node whose BIOS is already at the pins.

    Nothing to read when the site pins nothing. A BIOS pin the node's registry refuses is an error in
    the inventory: named with its file and key, and the node stops there."""
    if not site.bios.attributes and not site.firmware.components:
        return {}, "", ""
    result = compliance.read(bmc, site.bios.attributes, site.firmware.components, registries)
    if seen is not None:
        seen[bmc.node.hostname] = result
    evidence = {"compliance": result.as_evidence(), "differences": result.differences()}
    if result.inventory_problems:
        problem = "; ".join(f"{site.path}: bios.attributes.{name}: the BIOS of {bmc.node.hostname} "
                            f"(version {result.bios_version or '?'}) {why}. Fix: pin a name and value its "
                            "attribute registry lists (Bios/BiosRegistry)"
                            for name, why in sorted(result.inventory_problems.items()))
        return evidence, "", problem
    differences = result.differences()
    summary = "BIOS and firmware at the pins" if not differences else \
        f"{len(differences)} difference(s) from the pins: {'; '.join(differences)}"
    return evidence, summary, ""


def quarantine_evidence(bmcs: BmcPool) -> Callable[[Node], dict[str, Any]]:
    """For the workflow: the newest critical/warning SEL and Lifecycle log entries of a quarantined node."""
    def attach(node: Node) -> dict[str, Any]:
        try:
            entries = logs.read_evidence(bmcs.client(node))
        except FleetError as err:
            return {"bmc_logs_unread": str(err)}
        return {"bmc_logs": [entry.as_dict() for entry in entries]}
    return attach
