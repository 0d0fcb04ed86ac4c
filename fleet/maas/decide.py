"""What to do about a machine, decided from what MAAS reports: pure, so every row is a unit test.

`Machine` is MAAS's machine JSON reduced to what the workflow decides on (MAAS's field names are
written once, in `Machine.from_api`); statuses are python-libmaas's `NodeStatus`, never raw numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from maas.client.enum import NodeStatus

from fleet.errors import MaasError
from fleet.site import Node, OsImage

MAX_DEPLOY_ATTEMPTS = 2  # the first deploy and one retry after a failed deployment
MAX_REDEPLOYS = 1  # per run and generation: past it, a node Deployed with "another" image is quarantined


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
    owner: str = ""  # the MAAS user who allocated or deployed it ("" when nobody holds it: MAAS's null)
    power_type: str = ""  # MAAS's power driver for it ("" unconfigured, "manual": MAAS cannot power it)

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
            owner=str(data.get("owner") or ""),
            power_type=str(data.get("power_type") or ""),
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
                    hint=f"run the bring-up (its commission stage registers MAC {node.pxe_mac} with the BMC as "
                    "power control), or check pxe_mac in the inventory")


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
    NodeStatus.ENTERING_RESCUE_MODE, NodeStatus.EXITING_RESCUE_MODE,
}
_RETRYABLE_FAILURES = {
    NodeStatus.FAILED_DEPLOYMENT, NodeStatus.FAILED_RELEASING, NodeStatus.FAILED_DISK_ERASING,
}
# How MAAS words a failed operation when its power driver could not power the machine: the rack
# controller reports MarkNodeFailed with "Power on for the node failed: <driver error>"
# (src/provisioningserver/rpc/power.py, perform_power_driver_change). Deploying again would only ask
# the same sick BMC again (and count as another deployment): the node is quarantined on the first one.
_POWER_FAILED = re.compile(r"^Power (on|off|cycle) for the node failed")
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
    # Our own commissioning's tests are waited for by the commission stage; any other test run is an
    # operator's, and deploying when it ends would cut into it.
    NodeStatus.TESTING: "MAAS is running hardware tests on it (someone's)",
}
# Nobody's work is on these: no OS, no claim, no MAAS operation. Only here may the tool itself reset
# the machine (a BIOS job's reboot); every other status is MAAS's or someone's to power.
_NOBODYS = {NodeStatus.NEW, NodeStatus.READY}


def nobodys(machine: Machine | None) -> bool:
    """MAAS does not know the machine (None), or it is New or Ready: resetting it breaks nothing."""
    return machine is None or machine.status in _NOBODYS


# MAAS's names for a release's kernels: "ga-22.04" (the release's own), "hwe-22.04" (the newer
# hardware-enablement one), and the pre-2.x letter form "hwe-j"; any may carry "-edge" or "-lowlatency".
UBUNTU_VERSIONS = {"bionic": "18.04", "focal": "20.04", "jammy": "22.04", "noble": "24.04"}


def series_name(distro_series: str) -> str:
    """MAAS's release name: "ubuntu/jammy" and "jammy" are the same release ("jammy")."""
    return distro_series.split("/", 1)[1] if distro_series.startswith("ubuntu/") else distro_series


def kernel_name(kernel: str | None, distro_series: str) -> str:
    """One spelling of a MAAS kernel for a release: "" (MAAS's default, the GA kernel) -> "ga-22.04",
    "hwe-j" -> "hwe-22.04"; unknown spellings are kept as given (and then compared as given)."""
    series = series_name(distro_series)
    version = UBUNTU_VERSIONS.get(series, "")
    name = (kernel or "").strip()
    if not name:
        return f"ga-{version}" if version else ""
    flavour, _, rest = name.partition("-")
    head, _, suffix = rest.partition("-")
    if flavour == "hwe" and len(head) == 1 and version and series.startswith(head):
        head = version
    return "-".join(part for part in (flavour, head, suffix) if part)


def image_matches(machine: Machine, image: OsImage) -> bool:
    """Deployed with the wanted release and kernel, compared in MAAS's names: "jammy" = "ubuntu/jammy";
    no kernel in the site = MAAS's default (the GA kernel it reports as "ga-22.04")."""
    if series_name(machine.distro_series) != series_name(image.distro_series):
        return False
    wanted = kernel_name(image.hwe_kernel, image.distro_series)
    return kernel_name(machine.hwe_kernel, machine.distro_series) == wanted


def image_problem(image: OsImage, images: dict[str, tuple[str, ...]]) -> str:
    """Why MAAS cannot deploy the site's image ('' when it can): `images` is MAAS's boot resources
    (release -> kernels), as `MaasClient.boot_images` reads them."""
    series = series_name(image.distro_series)
    if series not in images:
        return (f"the site's os.distro_series '{image.distro_series}' is not among MAAS's boot images "
                f"({', '.join(sorted(images)) or 'none'}): import it in MAAS or write one of those in the site")
    if image.hwe_kernel:
        kernels = {kernel_name(k, series) for k in images[series]}
        if kernel_name(image.hwe_kernel, series) not in kernels:
            return (f"the site's os.hwe_kernel '{image.hwe_kernel}' is not a kernel MAAS has for {series} "
                    f"({', '.join(sorted(kernels))}): write one of those, or leave it out for MAAS's default")
    return ""


def foreign_owner(machine: Machine | None, me: str) -> str:
    """Why the machine is another MAAS user's and so hands-off ('' when it is nobody's or ours); pure.

    MAAS records the user who allocated or deployed a machine as its `owner` (null when free). Our
    API key is normally an admin's, and MAAS lets an admin release, deploy and power any user's
    machine: MAAS would not stop us, so the tool must. `me` is our own MAAS user
    (`users/?op=whoami`, read once per run). Another user's machine, in any status (Deployed with
    our very image, Failed deployment, Deploying, Allocated, ...), is that user's work.
    """
    if machine is None or not machine.owner or machine.owner == me:
        return ""
    return (f"MAAS says {machine.status_name or machine.status} and owned by MAAS user '{machine.owner}', "
            f"not by this tool's user '{me}': not released, deployed or powered; ask {machine.owner} to release "
            "it in MAAS, then run again")


def decide_os_action(
    machine: Machine, image: OsImage, *, me: str, failed_attempts: int = 0,
    max_attempts: int = MAX_DEPLOY_ATTEMPTS, redeploys: int = 0, claimed: bool = False, overdue: bool = False,
) -> OsAction:
    """The next OS step for a machine as MAAS reports it; pure, so every row is a unit test.

    `failed_attempts` counts deployments of this run that already ended in failure; a failed
    deployment is released and retried while `failed_attempts < max_attempts`, then quarantined.
    `redeploys` counts redeploys of this node already done (this run and generation): past
    MAX_REDEPLOYS a node still Deployed with "another" image is quarantined with both names instead
    of going round release/deploy forever (a spelling mismatch between the site and MAAS).
    `claimed`: this node's deployment was started by us in this generation (journaled before the
    allocation), so an Allocated machine is our own claim, left by a crash, and is deployed; any other
    Allocated machine is someone's and is left alone.
    `me`: our MAAS user; a machine another user owns is quarantined whatever its status (`foreign_owner`).
    `overdue`: our deploy deadline and the grace for MAAS's own verdict have both passed while MAAS
    still says Deploying; only then is it given up (quarantined), never deployed over MAAS's head.
    """
    foreign = foreign_owner(machine, me)
    if foreign:
        return OsAction(OsStep.QUARANTINE, foreign)
    status = machine.status
    name = machine.status_name or str(status)
    if status == NodeStatus.DEPLOYED:
        if image_matches(machine, image):
            return OsAction(OsStep.NOTHING, f"already Deployed with {machine.distro_series}")
        names = (f"MAAS says {machine.distro_series or 'an unknown image'}/{machine.hwe_kernel or '-'}, "
                 f"the site wants {image.distro_series}/{image.hwe_kernel or '(default kernel)'}")
        if redeploys >= MAX_REDEPLOYS:
            return OsAction(OsStep.QUARANTINE, f"still not the site's image after {redeploys} redeploy(s): "
                            f"{names}; write os: in the site in MAAS's names, or fix the image in MAAS")
        return OsAction(OsStep.REDEPLOY, f"Deployed with another image: {names}")
    if status == NodeStatus.READY or (status == NodeStatus.ALLOCATED and claimed):
        return OsAction(OsStep.DEPLOY, f"{name}: deploy {image.distro_series}")
    if status == NodeStatus.ALLOCATED:
        return OsAction(OsStep.QUARANTINE, f"{name} to {machine.owner or me} but not by this tool's deployment "
                        "(no os/claim in this generation): another job of this MAAS user claimed it; release it in "
                        "MAAS if it is free, then run again")
    if status == NodeStatus.NEW:
        return OsAction(OsStep.COMMISSION, "New: MAAS must commission it first")
    if status == NodeStatus.DEPLOYING and overdue:
        return OsAction(OsStep.QUARANTINE, "MAAS still says Deploying past our deploy deadline and the grace for "
                        "MAAS's own verdict: not deployed again over MAAS's head; look at the machine's console, "
                        "abort or mark it failed in MAAS, then --retry-quarantined")
    if status in _BUSY:
        return OsAction(OsStep.WAIT, f"MAAS is busy with it ({name})")
    if status in _RETRYABLE_FAILURES:
        detail = f"{name}: {machine.status_message}" if machine.status_message else name
        if _POWER_FAILED.match(machine.status_message):
            return OsAction(OsStep.QUARANTINE, f"{detail}; MAAS cannot power it through its BMC, so it is not "
                            "deployed again: fix the BMC (or its power settings in MAAS), then --retry-quarantined")
        if failed_attempts < max_attempts:
            return OsAction(OsStep.RETRY, f"{detail}; release and deploy again")
        return OsAction(OsStep.QUARANTINE, f"{detail}; {failed_attempts} failed attempt(s), giving up")
    reason = _HANDS_OFF.get(status, f"status {name} is not one this tool acts on")
    return OsAction(OsStep.QUARANTINE, f"{name}: {reason}")


def node_tags(node: Node) -> tuple[str, ...]:
    """The MAAS tags a node carries: its rack and its role (MAAS tag names allow [a-zA-Z0-9_-])."""
    return (f"rack-{node.rack:03d}", f"role-{node.role}")
