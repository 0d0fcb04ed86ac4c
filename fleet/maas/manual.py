"""`maas.power: manual`: when MAAS is waiting for a machine to boot and we must start it (pure).

A site whose MAAS cannot reach the BMCs leaves the power button to someone: MAAS's manual power
driver (canonical/maas src/provisioningserver/drivers/power/manual.py) only logs "You need to power
on <id> manually" and answers a power query "unknown". Enlistment, commissioning and deployment all
need the machine to network-boot (MAAS's rack controller answers the PXE request with the
enlistment image for an unknown MAC, the commissioning image for a Commissioning machine, the
installer for a Deploying one: src/maasserver/api/pxeconfig.py), so on such a site the tool, which
does reach the BMCs, is that someone: one-time PXE boot and power on/cycle, once per MAAS operation.

The rule, one row per case in the unit tests:
- never on a site where MAAS powers the machines (`maas.power: redfish`), nor for a machine MAAS
  has a power driver for (its `power_type` is neither "" nor "manual"): that would race MAAS;
- enlistment: only a machine MAAS does not know;
- commissioning / deployment: only while MAAS says Commissioning / Deploying, only when that
  operation is ours (our journal says we sent it: a machine someone else is commissioning or
  deploying is theirs), and never a Deployed machine.

A boot MAAS never sees (the server does not power on, or its PXE NIC is on a network whose DHCP
MAAS does not serve) ends on MAAS's own deadline: its status monitor marks the operation failed,
"Node operation 'Commissioning' timed out after 20 minutes." (src/maasserver/status_monitor.py;
Deploying: 40 minutes). `no_boot_next_step` turns that into the next step for a person.

An interrupted boot (the run died after journaling it, before recording it done: see
`fleet.stages.pxe.network_boot_once`) counts as done when the server is On: a boot ends On.

An enlisted machine carries the name MAAS made up for it (src/maasserver/models/node.py
`set_random_hostname`: `petname.generate()`, two lowercase words joined by "-", e.g. "ample-hawk");
`decide_rename` says when the tool may give it the inventory's name (MachineHandler.update, what
python-libmaas's `Machine.save()` sends for a changed `hostname`): only a name MAAS generated, on a
machine nobody holds and nobody has deployed under that name. A name a person gave it is theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from maas.client.enum import NodeStatus

from fleet.maas.decide import Machine
from fleet.steps import nth_step

# MAAS power types that leave powering to someone else: unconfigured (an enlisted machine whose
# BMC MAAS could not read) and the manual driver.
POWERLESS = ("", "manual")


class Boot(StrEnum):
    """The MAAS operation a network boot is for; the value is the journaled step's name."""

    ENLIST = "enlist"
    COMMISSION = "commission"
    DEPLOY = "deploy"


# The status MAAS shows while it waits for the machine to boot for each operation.
_WAITING = {Boot.COMMISSION: NodeStatus.COMMISSIONING, Boot.DEPLOY: NodeStatus.DEPLOYING}


@dataclass(frozen=True)
class BootDecision:
    """Whether to network-boot the machine now, and why (the why goes into the stage's detail)."""

    boot: bool
    reason: str


def decide_boot(machine: Machine | None, maas_power: str, operation: Boot, *, ours: bool = False) -> BootDecision:
    """Network-boot the machine for `operation` now? `ours`: our journal says we started that operation."""
    if maas_power != "manual":
        return BootDecision(False, "MAAS powers it through its BMC")
    if operation == Boot.ENLIST:
        if machine is None:
            return BootDecision(True, "unknown to MAAS: network-boot it so MAAS enlists it")
        return BootDecision(False, f"MAAS knows it already ({machine.status_name})")
    if machine is None:
        return BootDecision(False, "MAAS does not know it")
    if machine.power_type not in POWERLESS:
        return BootDecision(False, f"MAAS has power type '{machine.power_type}' for it: MAAS powers it")
    if machine.status == NodeStatus.DEPLOYED:
        return BootDecision(False, "MAAS says Deployed: never powered by us")
    if machine.status != _WAITING[operation]:
        return BootDecision(False, f"MAAS says {machine.status_name}: it waits for no boot to {operation.value}")
    if not ours:
        holder = f" ({machine.owner})" if machine.owner else ""
        return BootDecision(False, f"MAAS says {machine.status_name}, not from our {operation.value}: "
                            f"someone else's{holder}")
    return BootDecision(True, f"MAAS says {machine.status_name} and cannot power it (maas.power: manual)")


def boot_step(operation: Boot, sent: int = 1) -> str:
    """The journaled step of the boot for the `sent`-th such MAAS operation of the generation.

    A retried deployment is a second MAAS operation that waits for a boot of its own."""
    return nth_step(f"boot:{operation.value}", sent)


# MAAS's generated names: petname.generate(), two lowercase words joined by "-".
_GENERATED = re.compile(r"^[a-z]+-[a-z]+$")
# Where a machine's MAAS name matters to nobody yet: no one holds it or deployed it under that name.
_UNCLAIMED = (NodeStatus.NEW, NodeStatus.COMMISSIONING, NodeStatus.FAILED_COMMISSIONING, NodeStatus.READY)


@dataclass(frozen=True)
class RenameDecision:
    """`rename`: give the machine the inventory's name now; `refuse`: a person must decide (quarantine)."""

    rename: bool
    reason: str
    refuse: bool = False


def maas_generated(hostname: str) -> bool:
    """Whether `hostname` has the shape of a name MAAS made up at enlistment (two words)."""
    return bool(_GENERATED.match(hostname))


def decide_rename(machine: Machine, hostname: str, *, me: str) -> RenameDecision:
    """Rename the enlisted machine to the inventory's `hostname`? `me`: our MAAS user."""
    if machine.hostname == hostname:
        return RenameDecision(False, f"MAAS calls it {hostname}")
    if machine.owner and machine.owner != me:
        return RenameDecision(False, f"MAAS calls it '{machine.hostname}', held by {machine.owner}: "
                              "its name is theirs, not renamed")
    if not maas_generated(machine.hostname):
        return RenameDecision(False, f"MAAS calls the machine with this node's PXE MAC '{machine.hostname}', a name "
                              f"someone gave it (MAAS generates two-word names): not renamed to {hostname}. If it "
                              f"is this node, rename it in MAAS to {hostname}; if the inventory is wrong, fix it; "
                              "then run again", refuse=True)
    if machine.status not in _UNCLAIMED:
        return RenameDecision(False, f"MAAS calls it '{machine.hostname}' and says {machine.status_name}: a "
                              "machine past commissioning keeps the name it was deployed under")
    return RenameDecision(True, f"MAAS named it '{machine.hostname}' at enlistment: renamed to {hostname}")


def no_boot_next_step(maas_power: str, maas_message: str, pxe_mac: str) -> str | None:
    """The next step when MAAS failed an operation on its deadline for a machine only we can boot."""
    if maas_power != "manual" or "timed out after" not in maas_message:
        return None
    return ("MAAS never saw the machine network-boot (maas.power: manual: MAAS cannot power it, the tool "
            "booted it through its BMC once): check that the server powers on (BMC, console) and that its PXE "
            f"NIC {pxe_mac} boots on a network whose DHCP MAAS serves, then run again with --retry-quarantined "
            "(the tool sends the operation again and boots it once more)")


def recommission(maas_power: str, maas_message: str, *, requeued: bool) -> bool:
    """Send commissioning again for a machine MAAS failed on its deadline for want of our boot?

    Only on a manual site (elsewhere MAAS powers it, and a person recommissions it in MAAS), only for
    MAAS's no-boot deadline (a failed script is the hardware's: read its results), and only when a
    person asked for it by requeueing the node after the failure (`--retry-quarantined`): a person
    recommissioning it in MAAS instead would wait for a boot nobody gives."""
    return requeued and no_boot_next_step(maas_power, maas_message, "") is not None
