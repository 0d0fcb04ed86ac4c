"""What to do about a machine, decided from what MAAS reports: pure, so every row is a unit test.

`Machine` is MAAS's machine JSON reduced to what the workflow decides on (MAAS's field names are
written once, in `Machine.from_api`); statuses are python-libmaas's `NodeStatus`, never raw numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from maas.client.enum import NodeStatus

from fleet.errors import MaasError
from fleet.site import Node, OsImage

MAX_DEPLOY_ATTEMPTS = 2  # the first deploy and one retry after a failed deployment


@dataclass(frozen=True)
class Machine:
    """What MAAS says about one machine, reduced to what the workflow decides on."""

    system_id: str
    hostname: str
    status: int
    status_name: str
    status_message: str
    distro_series: str
    tags: tuple[str, ...]
    hwe_kernel: str | None = None
    power_state: str = "unknown"
    macs: tuple[str, ...] = ()  # its interfaces' MACs, the boot interface's first

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Machine:
        """From MAAS's machine JSON (the field names are MAAS's, written once here)."""
        return cls(
            system_id=str(data["system_id"]),
            hostname=str(data["hostname"]),
            status=int(data["status"]),
            status_name=str(data.get("status_name") or ""),
            status_message=str(data.get("status_message") or ""),
            distro_series=str(data.get("distro_series") or ""),
            tags=tuple(data.get("tag_names") or ()),
            hwe_kernel=data.get("hwe_kernel") or None,
            power_state=str(data.get("power_state") or "unknown"),
            macs=_macs(data),
        )


def _macs(data: dict[str, Any]) -> tuple[str, ...]:
    boot = (data.get("boot_interface") or {}).get("mac_address")
    others = [str(i.get("mac_address")) for i in data.get("interface_set") or () if i.get("mac_address")]
    return tuple(dict.fromkeys([str(boot).lower()] * bool(boot) + [m.lower() for m in others]))


def pick_machine(node: Node, by_mac: list[dict[str, Any]], by_hostname: list[dict[str, Any]] | None) -> Machine:
    """The node's machine from MAAS's answers (pure): only a machine with the node's PXE MAC is it.

    A machine with the node's hostname but another MAC is a swapped chassis or a stale record of
    a replaced one: deploying it would install the wrong server, so it is an error that names both
    MACs. `by_hostname` is only read when nothing matched by MAC.
    """
    if len(by_mac) > 1:
        ids = ", ".join(sorted(str(m["system_id"]) for m in by_mac))
        raise MaasError(f"{len(by_mac)} MAAS machines match by PXE MAC: {ids}", node=node.hostname,
                        hint="delete the stale duplicates in MAAS")
    if by_mac:
        return Machine.from_api(by_mac[0])
    if by_hostname:
        other = Machine.from_api(by_hostname[0])
        macs = ", ".join(other.macs) or "none"
        raise MaasError(
            f"MAAS machine {other.system_id} is named {other.hostname} but has MAC(s) {macs}, "
            f"not the inventory's PXE MAC {node.pxe_mac}: a swapped chassis or a stale MAAS record; it is not used",
            node=node.hostname,
            hint=f"check the chassis' service tag ({node.service_tag}) on site; then fix pxe_mac in the inventory, "
                 f"or delete the stale machine {other.system_id} in MAAS so the server enlists afresh")
    raise MaasError("machine is not enlisted in MAAS", node=node.hostname,
                    hint=f"PXE-boot it once so MAAS enlists MAC {node.pxe_mac}, or check pxe_mac in the inventory")


class OsStep(StrEnum):
    NOTHING = "nothing"  # already Deployed with the wanted image
    DEPLOY = "deploy"  # Ready or Allocated: deploy now
    REDEPLOY = "redeploy"  # Deployed with another image: release, then deploy
    RETRY = "retry"  # a failed deployment/release with attempts left: release, then deploy
    COMMISSION = "commission"  # New: MAAS must commission it before it can deploy
    WAIT = "wait"  # MAAS is busy with it (deploying, releasing, erasing, ...): poll again
    QUARANTINE = "quarantine"  # broken, out of attempts, or someone else's: stop and report


@dataclass(frozen=True)
class OsAction:
    step: OsStep
    reason: str


_BUSY = {
    NodeStatus.DEPLOYING, NodeStatus.RELEASING, NodeStatus.DISK_ERASING, NodeStatus.COMMISSIONING,
    NodeStatus.TESTING, NodeStatus.ENTERING_RESCUE_MODE, NodeStatus.EXITING_RESCUE_MODE,
}
_RETRYABLE_FAILURES = {
    NodeStatus.FAILED_DEPLOYMENT, NodeStatus.FAILED_RELEASING, NodeStatus.FAILED_DISK_ERASING,
}
# Statuses an operator or another system owns: touching them would break someone's work.
_HANDS_OFF: dict[int, str] = {
    NodeStatus.BROKEN: "MAAS marks it Broken; an operator must mark it fixed",
    NodeStatus.RESCUE_MODE: "it is in rescue mode (someone is debugging it)",
    NodeStatus.RESERVED: "it is reserved",
    NodeStatus.RETIRED: "it is retired",
    NodeStatus.MISSING: "MAAS cannot reach it (Missing)",
    NodeStatus.FAILED_COMMISSIONING: "commissioning failed; its hardware needs a look",
    NodeStatus.FAILED_TESTING: "hardware testing failed",
    NodeStatus.FAILED_ENTERING_RESCUE_MODE: "it failed to enter rescue mode",
    NodeStatus.FAILED_EXITING_RESCUE_MODE: "it failed to exit rescue mode",
}


def image_matches(machine: Machine, image: OsImage) -> bool:
    """Deployed with the wanted release (and the wanted kernel, when the site pins one)."""
    if machine.distro_series != image.distro_series:
        return False
    return not image.hwe_kernel or (machine.hwe_kernel or "") == image.hwe_kernel


def decide_os_action(
    machine: Machine, image: OsImage, *, failed_attempts: int = 0, max_attempts: int = MAX_DEPLOY_ATTEMPTS
) -> OsAction:
    """The next OS step for a machine as MAAS reports it; pure, so every row is a unit test.

    `failed_attempts` counts deployments of this run that already ended in failure; a failed
    deployment is released and retried while `failed_attempts < max_attempts`, then quarantined.
    """
    status = machine.status
    name = machine.status_name or str(status)
    if status == NodeStatus.DEPLOYED:
        if image_matches(machine, image):
            return OsAction(OsStep.NOTHING, f"already Deployed with {machine.distro_series}")
        return OsAction(
            OsStep.REDEPLOY,
            f"Deployed with {machine.distro_series or 'an unknown image'}"
            f"{'/' + machine.hwe_kernel if machine.hwe_kernel else ''}, wanted {image.distro_series}"
            f"{'/' + image.hwe_kernel if image.hwe_kernel else ''}",
        )
    if status in (NodeStatus.READY, NodeStatus.ALLOCATED):
        return OsAction(OsStep.DEPLOY, f"{name}: deploy {image.distro_series}")
    if status == NodeStatus.NEW:
        return OsAction(OsStep.COMMISSION, "New: MAAS must commission it first")
    if status in _BUSY:
        return OsAction(OsStep.WAIT, f"MAAS is busy with it ({name})")
    if status in _RETRYABLE_FAILURES:
        detail = f"{name}: {machine.status_message}" if machine.status_message else name
        if failed_attempts < max_attempts:
            return OsAction(OsStep.RETRY, f"{detail}; release and deploy again")
        return OsAction(OsStep.QUARANTINE, f"{detail}; {failed_attempts} failed attempt(s), giving up")
    reason = _HANDS_OFF.get(status, f"status {name} is not one this tool acts on")
    return OsAction(OsStep.QUARANTINE, f"{name}: {reason}")


def node_tags(node: Node) -> tuple[str, ...]:
    """The MAAS tags a node carries: its rack and its role (MAAS tag names allow [a-zA-Z0-9_-])."""
    return (f"rack-{node.rack:03d}", f"role-{node.role}")
