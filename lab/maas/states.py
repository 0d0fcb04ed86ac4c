"""MAAS's machine life cycle as pure functions: status codes, allowed transitions, actions, timers.

The simulator must fail where MAAS fails, or a client that works against the lab breaks against the
real thing. So the codes, display names and the transition table follow MAAS's own
`maasserver/enum.py` and `maasserver/node_status.py`; an action that would make a transition the
table forbids is refused with MAAS's message ("Invalid transition: Deployed -> Commissioning."),
which the API turns into 409 Conflict as MAAS's NodeStateViolation does.

Power goes through the machine's power driver as in MAAS: a machine registered with power type
`redfish` gets `power_request` set ("on": one-time PXE boot and power on; "off") and its operation
waits (`Pending.awaiting_power`) until the server has run the driver against the BMC and reported
back with `power_result`; a failed power-on fails the operation the way MAAS marks a node failed
("Power on for the node failed: ..."), with `power_state` "error". A machine without power control
(power type `manual`, the lab's pre-enlisted machines without BMCs) changes power after a delay, as
if someone pressed the button; one that enlisted itself by network boot (`waits_for_boot`: its BMC
is real, MAAS just cannot reach it) does what MAAS's manual driver leaves it to: MAAS's power
actions do nothing, and an operation that needs the machine running waits until the machine network-
boots (`network_booted`, fed by the lab's boot network; see `lab.maas.enlist`), and no longer than
MAAS lets it: MAAS sets a monitored operation's `status_expires` when it starts the operation, even
when it cannot power the machine itself (src/maasserver/models/node.py `_start`: `_set_status_expires`
after the power action, whatever the driver), pushes it back on every boot of the machine
(src/maasserver/rpc/boot.py `get_config`: `reset_status_expires`, "This allows a machine to take up to
the maximum timeout status to POST"), and its status monitor (src/maasserver/status_monitor.py
`mark_nodes_failed_after_expiring`) marks an expired one failed with "Node operation 'Commissioning'
timed out after 20 minutes." (Failed commissioning; Deploying: 40 minutes, Failed deployment; the
minutes are MAAS 2.x's NODE_FAILURE_MONITORED_STATUS_TIMEOUTS, newer MAAS reads them from its
`node_timeout` setting). So a manual machine that never network-boots fails its commissioning or
deployment on that deadline (`Pending.expires`, scaled by the lab's time factor). A machine the
inventory has but MAAS has not enlisted does not exist here at all: `enlist` (machines create)
brings it in, New, and MAAS starts commissioning it at once (an admin's API create does).
Commissioning runs MAAS's built-in scripts; the `maas_failed_commissioning` fault fails one
(`FAILING_SCRIPT`), which MAAS reports as the event "Script" - "<name> failed" and the node ends in
Failed commissioning. At the end of commissioning the ephemeral environment powers the machine off
itself (`power_request` "shutdown": no MAAS request, the machine's own OS). `test` (MAAS 2.2+'s
`machines/<id>/op=test`, "Begin testing process for a machine") powers the machine on into the
ephemeral environment, holds it in Testing while the hardware tests run, then returns it to the
status it was in, the environment powering itself off.

When a deployment becomes Deployed follows MAAS: curtin installs the OS from the ephemeral
environment, the machine reboots ("Rebooting", the last deployment event), and MAAS marks it Deployed
when cloud-init in the deployed OS, on that first boot, asks the metadata server for its user-data
(canonical/maas src/metadataserver/api.py, `UserDataHandler.read`: "MAAS currently considers a
machine 'Deployed' when the cloud-init user data is requested", which calls `Node.end_deployment`,
src/maasserver/models/node.py). cloud-init reads its datasource in its network stage, which systemd
orders before ssh.service (cloud-init's own units), and its `ssh` module makes the host keys there:
so by the time a client sees Deployed the machine is up on its address and its sshd follows within
seconds. An OS that never phones home stays Deploying until MAAS's monitor fails it after 40 minutes.
Here: when a deployment reaches "Rebooting" (the last sixth of its span) `advance` raises the lab
event `deployed` (the machine boots its OS: the lab's hook starts the node's lab host) and the
machine waits (`Pending.os_boot` "booting") until the server reports the OS up (`os_booted`); it is
Deployed at the end of its span once that happened, or Failed deployment at MAAS's 40-minute timeout
if it never does. A lab without such a hook reports the OS up at once.

Nothing here touches the clock, the network or the disk: `apply_action` and `advance` take the time
and the fault rates as arguments and return a new `MachineState`, so the state machine is unit-tested
without a server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from enum import IntEnum


class Status(IntEnum):
    """MAAS NODE_STATUS codes (the numbers are the API's, not ours to choose)."""

    NEW = 0
    COMMISSIONING = 1
    FAILED_COMMISSIONING = 2
    MISSING = 3
    READY = 4
    RESERVED = 5
    DEPLOYED = 6
    RETIRED = 7
    BROKEN = 8
    DEPLOYING = 9
    ALLOCATED = 10
    FAILED_DEPLOYMENT = 11
    RELEASING = 12
    FAILED_RELEASING = 13
    DISK_ERASING = 14
    FAILED_DISK_ERASING = 15
    RESCUE_MODE = 16
    ENTERING_RESCUE_MODE = 17
    FAILED_ENTERING_RESCUE_MODE = 18
    EXITING_RESCUE_MODE = 19
    FAILED_EXITING_RESCUE_MODE = 20
    TESTING = 21
    FAILED_TESTING = 22


S = Status

# MAAS's NODE_STATUS_CHOICES: what `status_name` says and what its error messages quote.
STATUS_NAMES: dict[Status, str] = {
    S.NEW: "New",
    S.COMMISSIONING: "Commissioning",
    S.FAILED_COMMISSIONING: "Failed commissioning",
    S.MISSING: "Missing",
    S.READY: "Ready",
    S.RESERVED: "Reserved",
    S.DEPLOYED: "Deployed",
    S.RETIRED: "Retired",
    S.BROKEN: "Broken",
    S.DEPLOYING: "Deploying",
    S.ALLOCATED: "Allocated",
    S.FAILED_DEPLOYMENT: "Failed deployment",
    S.RELEASING: "Releasing",
    S.FAILED_RELEASING: "Releasing failed",
    S.DISK_ERASING: "Disk erasing",
    S.FAILED_DISK_ERASING: "Failed disk erasing",
    S.RESCUE_MODE: "Rescue mode",
    S.ENTERING_RESCUE_MODE: "Entering rescue mode",
    S.FAILED_ENTERING_RESCUE_MODE: "Failed to enter rescue mode",
    S.EXITING_RESCUE_MODE: "Exiting rescue mode",
    S.FAILED_EXITING_RESCUE_MODE: "Failed to exit rescue mode",
    S.TESTING: "Testing",
    S.FAILED_TESTING: "Failed testing",
}

_TESTING_RESETS = {
    S.COMMISSIONING, S.FAILED_DEPLOYMENT, S.MISSING, S.RETIRED, S.BROKEN, S.FAILED_RELEASING,
    S.FAILED_DISK_ERASING, S.FAILED_ENTERING_RESCUE_MODE, S.FAILED_EXITING_RESCUE_MODE,
    S.FAILED_TESTING,
}

# MAAS's NODE_TRANSITIONS: old status -> the statuses it may move to.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    old: frozenset(new)
    for old, new in {
        S.NEW: {S.COMMISSIONING, S.MISSING, S.READY, S.RETIRED, S.BROKEN, S.ENTERING_RESCUE_MODE},
        S.COMMISSIONING: {
            S.FAILED_COMMISSIONING, S.READY, S.RETIRED, S.MISSING, S.NEW, S.BROKEN, S.TESTING,
        },
        S.FAILED_COMMISSIONING: {
            S.COMMISSIONING, S.MISSING, S.RETIRED, S.BROKEN, S.ENTERING_RESCUE_MODE, S.TESTING,
        },
        S.READY: {
            S.ENTERING_RESCUE_MODE, S.COMMISSIONING, S.ALLOCATED, S.RESERVED, S.RETIRED, S.MISSING,
            S.BROKEN, S.TESTING,
        },
        S.RESERVED: {
            S.READY, S.ALLOCATED, S.RETIRED, S.MISSING, S.BROKEN, S.DISK_ERASING, S.RELEASING,
            S.ENTERING_RESCUE_MODE, S.TESTING,
        },
        S.ALLOCATED: {
            S.READY, S.RETIRED, S.MISSING, S.BROKEN, S.DEPLOYING, S.DISK_ERASING, S.RELEASING,
            S.ENTERING_RESCUE_MODE, S.TESTING,
        },
        S.RELEASING: {
            S.ALLOCATED, S.RESERVED, S.DEPLOYED, S.READY, S.BROKEN, S.MISSING, S.FAILED_DEPLOYMENT,
            S.FAILED_DISK_ERASING, S.FAILED_RELEASING,
        },
        S.DEPLOYING: {
            S.ALLOCATED, S.MISSING, S.BROKEN, S.FAILED_DEPLOYMENT, S.DEPLOYED, S.READY,
            S.DISK_ERASING, S.RELEASING,
        },
        S.FAILED_DEPLOYMENT: {
            S.ALLOCATED, S.MISSING, S.BROKEN, S.READY, S.DISK_ERASING, S.RELEASING,
            S.ENTERING_RESCUE_MODE, S.TESTING,
        },
        S.DEPLOYED: {
            S.ALLOCATED, S.MISSING, S.BROKEN, S.READY, S.DISK_ERASING, S.RELEASING,
            S.ENTERING_RESCUE_MODE, S.TESTING,
        },
        S.MISSING: {
            S.NEW, S.READY, S.ALLOCATED, S.COMMISSIONING, S.BROKEN, S.ENTERING_RESCUE_MODE,
            S.TESTING,
        },
        S.RETIRED: {S.NEW, S.READY, S.MISSING, S.BROKEN, S.ENTERING_RESCUE_MODE, S.TESTING},
        S.BROKEN: {
            S.COMMISSIONING, S.READY, S.DISK_ERASING, S.RELEASING, S.ENTERING_RESCUE_MODE,
            S.TESTING,
        },
        S.FAILED_RELEASING: {S.RELEASING, S.DISK_ERASING, S.READY, S.BROKEN, S.TESTING},
        S.DISK_ERASING: {
            S.BROKEN, S.DISK_ERASING, S.FAILED_DISK_ERASING, S.READY, S.RELEASING,
        },
        S.FAILED_DISK_ERASING: {
            S.DISK_ERASING, S.RELEASING, S.BROKEN, S.ALLOCATED, S.READY, S.ENTERING_RESCUE_MODE,
            S.TESTING,
        },
        S.ENTERING_RESCUE_MODE: {
            S.READY, S.BROKEN, S.DEPLOYED, S.RESCUE_MODE, S.FAILED_ENTERING_RESCUE_MODE,
            S.EXITING_RESCUE_MODE,
        },
        S.FAILED_ENTERING_RESCUE_MODE: {
            S.BROKEN, S.ENTERING_RESCUE_MODE, S.EXITING_RESCUE_MODE, S.TESTING,
        },
        S.RESCUE_MODE: {S.BROKEN, S.EXITING_RESCUE_MODE, S.TESTING},
        S.EXITING_RESCUE_MODE: set(Status) - {
            S.COMMISSIONING, S.DEPLOYING, S.RELEASING, S.DISK_ERASING, S.ENTERING_RESCUE_MODE,
            S.EXITING_RESCUE_MODE, S.TESTING,
        },
        S.FAILED_EXITING_RESCUE_MODE: {S.BROKEN, S.EXITING_RESCUE_MODE, S.TESTING},
        S.TESTING: {
            S.BROKEN, S.NEW, S.READY, S.RESERVED, S.ALLOCATED, S.DEPLOYED, *_TESTING_RESETS,
        },
        S.FAILED_TESTING: {
            S.COMMISSIONING, S.BROKEN, S.MISSING, S.ENTERING_RESCUE_MODE, S.TESTING, S.READY,
            S.DEPLOYED,
        },
    }.items()
}

# MAAS's RELEASABLE_STATUSES: where `release` starts releasing (Ready is accepted as a no-op).
RELEASABLE = frozenset({
    S.ALLOCATED, S.RESERVED, S.BROKEN, S.DEPLOYING, S.DEPLOYED, S.FAILED_DEPLOYMENT,
    S.FAILED_DISK_ERASING, S.FAILED_RELEASING,
})

# Real-world durations in seconds; the lab multiplies them by its time factor.
REAL_DURATIONS_S: dict[str, float] = {
    "deploy": 600.0,
    "release": 60.0,
    "erase": 300.0,
    "quick_erase": 30.0,
    "commission": 300.0,  # power on, PXE, the built-in scripts, power off
    "test": 8 * 3600.0,  # an operator's hardware tests of a GPU server (stress-ng, memtester, fio): a night
    "enter_rescue": 120.0,
    "exit_rescue": 60.0,
    "power": 5.0,
    "enlist": 180.0,  # PXE, the ephemeral image, the enlistment scripts, then MAAS has the machine (New)
}

# MAAS's NODE_FAILURE_MONITORED_STATUS_TIMEOUTS, in minutes: past these MAAS marks the node failed.
MONITORED_TIMEOUT_MIN: dict[Status, int] = {
    S.COMMISSIONING: 20,
    S.DEPLOYING: 40,
    S.RELEASING: 5,
    S.ENTERING_RESCUE_MODE: 20,
    S.EXITING_RESCUE_MODE: 5,
}

# The event descriptions MAAS shows as `status_message` while an operation runs, in order.
DEPLOY_PROGRESS = (
    "Powering on",
    "Performing PXE boot",
    "Loading ephemeral",
    "Installation started",
    "Configuring OS",
    "Rebooting",
)
INSTALL_FAILED_MESSAGE = "Installation failed (refer to the installation log for more information)."
# A real built-in commissioning script (MAAS 2.9+), the one the maas_failed_commissioning fault fails.
FAILING_SCRIPT = "20-maas-03-machine-resources"
# MAAS's SCRIPT_STATUS for a machine's commissioning script set (`commissioning_status` in its JSON).
SCRIPT_STATUS_NAMES = {-1: "Unknown", 0: "Pending", 1: "Running", 2: "Passed", 3: "Failed", 5: "Aborted"}
# Where a failed power-on leaves each operation (MAAS's mark_failed targets).
POWER_FAILED_STATUS = {
    Status.COMMISSIONING: Status.FAILED_COMMISSIONING,
    Status.DEPLOYING: Status.FAILED_DEPLOYMENT,
    Status.DISK_ERASING: Status.FAILED_DISK_ERASING,
    Status.RELEASING: Status.FAILED_RELEASING,
    Status.ENTERING_RESCUE_MODE: Status.FAILED_ENTERING_RESCUE_MODE,
}


class IllegalTransition(Exception):
    """MAAS would refuse this action in the machine's current state (NodeStateViolation, 409)."""


@dataclass(frozen=True)
class Timing:
    """The lab's durations, already scaled by the time factor (seconds of lab time)."""

    time_factor: float

    def of(self, what: str) -> float:
        return REAL_DURATIONS_S[what] * self.time_factor

    def timeout(self, status: Status) -> float:
        return MONITORED_TIMEOUT_MIN[status] * 60.0 * self.time_factor


@dataclass(frozen=True)
class Pending:
    """An operation under way: when it ends and how (decided when it started, so faults are seeded)."""

    started: float
    until: float
    outcome: str = "ok"  # ok | fail | stuck
    erase_then_release: bool = False
    awaiting_power: bool = False  # the clock starts once the power driver has done its part
    expires: float | None = None  # manual power: MAAS's status_expires while it waits for the boot
    os_boot: str = ""  # a deployment's reboot into its OS: "" not yet, "booting", "up" (cloud-init phoned home)
    os_deadline: float = 0.0  # while booting: MAAS's monitored timeout for Deploying


@dataclass(frozen=True)
class MachineState:
    """One simulated machine: what MAAS would store for it, plus the operation under way."""

    system_id: str
    hostname: str
    macs: tuple[str, ...]
    status: Status = S.READY
    status_message: str = "Ready"
    owner: str | None = None
    osystem: str = ""
    distro_series: str = ""
    hwe_kernel: str | None = None
    user_data: str = ""
    power_state: str = "off"
    power_target: str | None = None
    power_at: float | None = None
    tags: tuple[str, ...] = ()
    pending: Pending | None = None
    prior_status: Status | None = None
    comment: str = ""
    events: tuple[str, ...] = field(default=())
    power_type: str = "manual"
    power_parameters: tuple[tuple[str, str], ...] = ()
    power_request: str | None = None  # on | off | shutdown: for the server to carry out
    architecture: str = "amd64/generic"
    commissioning_status: int = 2
    # MAAS's event log as the events API shows it: (created, type, level, description), oldest first.
    maas_events: tuple[tuple[float, str, str, str], ...] = ()
    waits_for_boot: bool = False  # manual power, real BMC: only a network boot moves an operation on

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]


def log_event(m: MachineState, now: float, kind: str, description: str, level: str = "INFO") -> MachineState:
    """Append to the machine's MAAS event log (the last 50 are kept, as a client pages them anyway)."""
    return replace(m, maas_events=(*m.maas_events, (now, kind, level, description))[-50:])


def _invalid(old: Status, new: Status) -> IllegalTransition:
    return IllegalTransition(f"Invalid transition: {STATUS_NAMES[old]} -> {STATUS_NAMES[new]}.")


def _move(m: MachineState, new: Status, message: str, **changes: object) -> MachineState:
    """Change status only where MAAS's table allows it (staying put is always allowed)."""
    if new != m.status and new not in TRANSITIONS[m.status]:
        raise _invalid(m.status, new)
    events = (*m.events, message)[-20:]
    return replace(m, status=new, status_message=message, events=events, **changes)


def _power(m: MachineState, target: str, now: float, timing: Timing) -> MachineState:
    if m.waits_for_boot and m.power_type != "redfish":
        # MAAS's manual driver only logs "You need to power on <id> manually": the operation waits
        # for the machine to network-boot; an off request is left to the operator (nothing waits).
        if target == "on" and m.pending is not None:
            expires = (m.pending.started + timing.timeout(m.status) if m.status in MONITORED_TIMEOUT_MIN
                       else None)
            return replace(m, pending=replace(m.pending, awaiting_power=True, expires=expires))
        return m
    if m.power_type == "redfish":
        # MAAS's driver PXE-boots on every power-on, even an already running machine: always ask.
        pending = replace(m.pending, awaiting_power=True) if m.pending is not None else None
        return replace(m, power_request=target, pending=pending)
    if m.power_state == target and m.power_target is None:
        return m
    return replace(m, power_target=target, power_at=now + timing.of("power"))


def power_result(m: MachineState, request: str, error: str | None, *, now: float,
                 timing: Timing) -> MachineState:
    """What MAAS records when the power driver finished `request` (error: MAAS's wording, or None)."""
    if m.power_request == request:
        m = replace(m, power_request=None)
    if request == "shutdown":  # MAAS sees it only through a driver that can query the BMC
        return replace(m, power_state="off") if error is None and not m.waits_for_boot else m
    if error is None:
        m = _running(replace(m, power_state=request), now)
        return log_event(m, now, f"Node powered {request}", "")
    m = log_event(replace(m, power_state="error"), now, "Failed to query node's BMC",
                  f"Power state could not be queried: {error}", "WARNING")
    message = f"Power {request} for the node failed: {error}"
    m = log_event(m, now, f"Failed to power {request} node", message, "ERROR")
    failed = POWER_FAILED_STATUS.get(m.status) if m.pending is not None and m.pending.awaiting_power else None
    if failed is None:
        return m
    changes: dict[str, object] = {"pending": None}
    if m.status == S.COMMISSIONING:
        changes["commissioning_status"] = 3
    return _move(m, failed, message, **changes)


def _running(m: MachineState, now: float) -> MachineState:
    """The machine is up for the operation that waited for it: its clock starts now."""
    if m.pending is not None and m.pending.awaiting_power:
        span = m.pending.until - m.pending.started
        m = replace(m, pending=replace(m.pending, started=now, until=now + span, awaiting_power=False))
        if m.status == S.COMMISSIONING:
            m = replace(m, status_message="Commissioning", commissioning_status=1)
    return m


# What MAAS's rack controller hands a known machine that network-boots (maasserver/api/pxeconfig.py,
# `get_boot_purpose`): the ephemeral image while commissioning or testing, the installer while
# deploying, else a local boot or power off. The "PXE Request" event names the purpose in MAAS's
# words (src/maasserver/rpc/boot.py `event_log_pxe_request`: "commissioning", "installation", ...).
_BOOT_PURPOSE = {S.COMMISSIONING: "commissioning", S.TESTING: "commissioning", S.DEPLOYING: "xinstall",
                 S.DISK_ERASING: "commissioning", S.ENTERING_RESCUE_MODE: "commissioning"}
PXE_REQUEST_WORDS = {"commissioning": "commissioning", "xinstall": "installation", "local": "local boot",
                     "poweroff": "power off"}


def network_booted(m: MachineState, at: float) -> MachineState:
    """The machine PXE-booted at `at`: MAAS logs the request, and an operation waiting for the
    machine (manual power) starts. A boot from before the operation began is not its boot."""
    purpose = _BOOT_PURPOSE.get(m.status, "local" if m.status == S.DEPLOYED else "poweroff")
    m = log_event(m, at, "PXE Request", PXE_REQUEST_WORDS[purpose])
    if m.pending is None or not m.pending.awaiting_power or at < m.pending.started:
        return m
    return _running(m, at)


def _fault_outcome(rates: dict[str, float], rng: random.Random, *kinds: tuple[str, str]) -> str:
    """Draw the fault outcome of an operation: the first kind whose rate fires wins."""
    for kind, outcome in kinds:
        rate = rates.get(kind, 0.0)
        if rate > 0 and rng.random() < rate:
            return outcome
    return "ok"


def allocate(m: MachineState, owner: str, now: float) -> MachineState:
    """Claim a Ready machine for `owner` (MAAS's acquire)."""
    if m.status != S.READY:
        raise _invalid(m.status, S.ALLOCATED)
    return _move(m, S.ALLOCATED, "Allocated", owner=owner)


def apply_action(
    m: MachineState,
    action: str,
    params: dict[str, str],
    *,
    now: float,
    timing: Timing,
    rates: dict[str, float],
    rng: random.Random,
    owner: str = "admin",
) -> MachineState:
    """Start `action` on the machine as MAAS would, or raise IllegalTransition with MAAS's message."""
    status = m.status
    if action == "deploy":
        if status == S.READY:
            # MAAS 2.x allocates a Ready machine on the caller's behalf before deploying it.
            m = allocate(m, owner, now)
        elif status != S.ALLOCATED:
            raise _invalid(status, S.DEPLOYING)
        outcome = _fault_outcome(
            rates, rng, ("maas_stuck_deploying", "stuck"), ("maas_failed_deployment", "fail")
        )
        until = now + (timing.timeout(S.DEPLOYING) if outcome == "stuck" else timing.of("deploy"))
        m = _move(
            m, S.DEPLOYING, DEPLOY_PROGRESS[0],
            osystem="ubuntu",
            distro_series=params.get("distro_series") or "jammy",
            hwe_kernel=params.get("hwe_kernel") or None,
            user_data=params.get("user_data", ""),
            pending=Pending(started=now, until=until, outcome=outcome),
        )
        return _power(m, "on", now, timing)
    if action == "release":
        if status == S.READY:
            return m  # MAAS accepts releasing a released machine and does nothing.
        if status not in RELEASABLE:
            raise _invalid(status, S.RELEASING)
        erase = _truthy(params.get("erase")) or _truthy(params.get("secure_erase"))
        quick = _truthy(params.get("quick_erase"))
        if erase or quick:
            until = now + timing.of("quick_erase" if quick and not erase else "erase")
            m = _move(m, S.DISK_ERASING, "Disk erasing",
                      pending=Pending(started=now, until=until, erase_then_release=True))
            return _power(m, "on", now, timing)
        return _start_release(m, now=now, timing=timing, rates=rates, rng=rng)
    if action == "abort":
        if status == S.DEPLOYING:
            m = _move(m, S.ALLOCATED, "Aborted deployment", pending=None)
            return _power(m, "off", now, timing)
        if status == S.DISK_ERASING:
            return _move(m, S.FAILED_DISK_ERASING, "Aborted disk erasing", pending=None)
        if status == S.COMMISSIONING:
            back = m.prior_status if m.prior_status is not None else S.NEW
            return _move(m, back, "Aborted commissioning", pending=None, prior_status=None)
        raise IllegalTransition(
            f"Cannot abort in current state: machine is {STATUS_NAMES[status]}, "
            "only Commissioning, Deploying and Disk erasing can be aborted."
        )
    if action == "commission":
        until = now + timing.of("commission")
        outcome = _fault_outcome(rates, rng, ("maas_failed_commissioning", "fail"))
        m = _move(m, S.COMMISSIONING, "Powering on" if m.power_type == "redfish" else "Commissioning",
                  prior_status=status, commissioning_status=0,
                  pending=Pending(started=now, until=until, outcome=outcome))
        return _power(m, "on", now, timing)
    if action == "test":
        until = now + timing.of("test")
        m = _move(m, S.TESTING, "Testing", prior_status=status, pending=Pending(started=now, until=until))
        return _power(m, "on", now, timing)
    if action == "mark_broken":
        comment = params.get("comment") or params.get("error_description") or ""
        return _move(m, S.BROKEN, comment or "Marked broken", pending=None, comment=comment,
                     prior_status=status)
    if action == "mark_fixed":
        if status != S.BROKEN:
            raise IllegalTransition("Can't mark a non-broken node as 'Ready'.")
        return _move(m, S.READY, "Ready", owner=None, comment="", prior_status=None)
    if action == "rescue_mode":
        until = now + timing.of("enter_rescue")
        m = _move(m, S.ENTERING_RESCUE_MODE, "Entering rescue mode", prior_status=status,
                  pending=Pending(started=now, until=until))
        return _power(m, "on", now, timing)
    if action == "exit_rescue_mode":
        if status != S.RESCUE_MODE:
            raise _invalid(status, S.EXITING_RESCUE_MODE)
        until = now + timing.of("exit_rescue")
        return _move(m, S.EXITING_RESCUE_MODE, "Exiting rescue mode",
                     pending=Pending(started=now, until=until))
    if action == "power_on":
        return _power(m, "on", now, timing)
    if action == "power_off":
        return _power(m, "off", now, timing)
    raise ValueError(f"unknown machine action {action!r}")


def _start_release(
    m: MachineState, *, now: float, timing: Timing, rates: dict[str, float], rng: random.Random
) -> MachineState:
    outcome = _fault_outcome(rates, rng, ("maas_failed_release", "fail"))
    # A release that fails does so the way MAAS notices it: when its monitored timeout expires.
    until = now + (timing.timeout(S.RELEASING) if outcome == "fail" else timing.of("release"))
    m = _move(m, S.RELEASING, "Releasing", pending=Pending(started=now, until=until, outcome=outcome))
    return _power(m, "off", now, timing)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def _timed_out(status: Status) -> str:
    return f"Node operation '{STATUS_NAMES[status]}' timed out after {MONITORED_TIMEOUT_MIN[status]} minutes."


def _expired(m: MachineState, at: float) -> MachineState:
    """MAAS's status monitor at `status_expires`: the operation never got its boot (mark_failed, the
    commissioning scripts aborted)."""
    message = _timed_out(m.status)
    m = log_event(m, at, "Marking node failed", message, "ERROR")
    changes: dict[str, object] = {"pending": None}
    if m.status == S.COMMISSIONING:
        changes.update(commissioning_status=5, prior_status=None)
    return _move(m, POWER_FAILED_STATUS[m.status], message, **changes)


def _boots_os(m: MachineState) -> bool:
    """A deployment that installed: it reboots into its OS, which must phone home before Deployed."""
    return m.status == S.DEPLOYING and m.pending is not None and m.pending.outcome == "ok"


def _due_at(m: MachineState) -> float | None:
    """When the pending operation next needs the clock (None: it waits for power or for the OS)."""
    p = m.pending
    if p is None or p.awaiting_power:
        return None
    if _boots_os(m):
        if p.os_boot == "":
            return p.until - (p.until - p.started) / len(DEPLOY_PROGRESS)  # "Rebooting": the OS boots
        if p.os_boot == "booting":
            return p.os_deadline
    return p.until


def os_booted(m: MachineState, started: float) -> MachineState:
    """The deployed OS of the deployment that began at `started` is up and asked MAAS for its user-data
    (the lab's hook brought the node's host up); it is Deployed at the end of its span. Anything else
    (released meanwhile, another deployment since) is left alone."""
    p = m.pending
    if not _boots_os(m) or p is None or p.os_boot != "booting" or p.started != started:
        return m
    return replace(m, pending=replace(p, os_boot="up"))


def _complete(
    m: MachineState, *, now: float, timing: Timing, rates: dict[str, float], rng: random.Random
) -> tuple[MachineState, str | None]:
    """Finish the pending operation; returns the new state and the lab event it raised, if any."""
    assert m.pending is not None
    p, at = m.pending, m.pending.until
    if m.status == S.DEPLOYING:
        if p.outcome == "stuck":
            return _move(m, S.FAILED_DEPLOYMENT, _timed_out(S.DEPLOYING), pending=None), None
        if p.outcome == "fail":
            return _move(m, S.FAILED_DEPLOYMENT, INSTALL_FAILED_MESSAGE, pending=None), None
        if p.os_boot == "":  # curtin is done: the machine reboots into the deployed OS
            deadline = max(p.started + timing.timeout(S.DEPLOYING), p.until)
            return replace(m, pending=replace(p, os_boot="booting", os_deadline=deadline)), "deployed"
        if p.os_boot == "booting":  # its OS never phoned home
            return _move(m, S.FAILED_DEPLOYMENT, _timed_out(S.DEPLOYING), pending=None), None
        m = _move(m, S.DEPLOYED, "Deployed", pending=None)
        return replace(m, power_state="on", power_target=None, power_at=None), None
    if m.status == S.DISK_ERASING:
        return _start_release(replace(m, pending=None), now=at, timing=timing, rates=rates, rng=rng), None
    if m.status == S.RELEASING:
        if p.outcome == "fail":
            return _move(m, S.FAILED_RELEASING, _timed_out(S.RELEASING), pending=None), None
        m = _move(m, S.READY, "Released", pending=None, owner=None, osystem="", distro_series="",
                  hwe_kernel=None, user_data="")
        return replace(m, power_state="off", power_target=None, power_at=None), "released"
    if m.status == S.COMMISSIONING:
        if p.outcome == "fail":
            m = log_event(m, at, "Script", f"{FAILING_SCRIPT} failed", "WARNING")
            return _move(m, S.FAILED_COMMISSIONING, f"{FAILING_SCRIPT} failed", pending=None,
                         prior_status=None, commissioning_status=3), None
        m = _move(m, S.READY, "Ready", pending=None, prior_status=None, commissioning_status=2)
        if m.power_type == "redfish" or m.waits_for_boot:  # its OS powers it off
            return replace(m, power_request="shutdown"), None
        return _power(m, "off", at, timing), None
    if m.status == S.ENTERING_RESCUE_MODE:
        return _move(m, S.RESCUE_MODE, "Rescue mode", pending=None), None
    if m.status == S.TESTING:
        back = m.prior_status if m.prior_status is not None else S.READY
        m = _move(m, back, STATUS_NAMES[back], pending=None, prior_status=None)
        if m.power_type == "redfish" or m.waits_for_boot:  # its OS powers it off
            return replace(m, power_request="shutdown"), None
        return _power(m, "off", at, timing), None
    if m.status == S.EXITING_RESCUE_MODE:
        back = m.prior_status if m.prior_status is not None else S.READY
        return _move(m, back, f"Exited rescue mode ({STATUS_NAMES[back]})", pending=None,
                     prior_status=None), None
    return replace(m, pending=None), None


def _progress_message(m: MachineState, now: float) -> str:
    """Walk `status_message` through MAAS's deployment events as lab time passes."""
    p = m.pending
    assert p is not None
    if p.outcome == "stuck":
        # A stuck install sits on its last event until MAAS's monitor gives up on it.
        return DEPLOY_PROGRESS[3]
    span = max(p.until - p.started, 1e-9)
    step = int((now - p.started) / span * len(DEPLOY_PROGRESS))
    return DEPLOY_PROGRESS[min(max(step, 0), len(DEPLOY_PROGRESS) - 1)]


def due(m: MachineState, now: float) -> bool:
    """Whether `advance` would do more than walk a deployment's progress message: an operation
    ends, a power change lands, or a power request waits for the driver.

    The simulator's clock tick advances only these; a read advances what it returns, so what a
    client sees is the same, and 1,280 deploying machines cost the tick nothing between events.
    """
    p, at = m.pending, _due_at(m)
    return (m.power_request is not None
            or (at is not None and now >= at)
            or (p is not None and p.awaiting_power and p.expires is not None and now >= p.expires)
            or (m.power_target is not None and m.power_at is not None and now >= m.power_at))


def advance(
    m: MachineState, *, now: float, timing: Timing, rates: dict[str, float], rng: random.Random
) -> tuple[MachineState, list[str]]:
    """Bring the machine up to `now`: finish due operations and power changes; return lab events."""
    events: list[str] = []
    p = m.pending
    if p is not None and p.awaiting_power and p.expires is not None and now >= p.expires:
        m = _expired(m, p.expires)
    while (at := _due_at(m)) is not None and now >= at:
        m, event = _complete(m, now=now, timing=timing, rates=rates, rng=rng)
        if event:
            events.append(event)
    if m.pending is not None and not m.pending.awaiting_power and m.status == S.DEPLOYING:
        message = _progress_message(m, now)
        if message != m.status_message:
            m = replace(m, status_message=message)
    if m.power_target is not None and m.power_at is not None and now >= m.power_at:
        m = replace(m, power_state=m.power_target, power_target=None, power_at=None)
    return m, events
