"""One lab iDRAC's Dell state and its rules: BIOS values, the job queue, firmware, LC, SEL and Lclog.

Pure with respect to time and chance: every method takes `now` (wall seconds) and, where a fault can
fire, `hit(kind) -> bool`, so the rules are unit-tested without a server. `DellNode.answer_*`
methods return (status, headers, body) the way iDRAC would answer; `routes.py` only parses HTTP and
serialises. Shapes and where they come from are in the package docstring and `catalog.py`.
"""

from __future__ import annotations

import functools
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

from lab.redfish.dell import catalog

Hit = Callable[[str], bool]
Answer = tuple[int, dict[str, str], dict[str, Any]]

MANAGER = "/redfish/v1/Managers/iDRAC.Embedded.1"
JOBS = f"{MANAGER}/Jobs"
TASKS = "/redfish/v1/TaskService/Tasks"
UPDATE_SERVICE = "/redfish/v1/UpdateService"
FIRMWARE_INVENTORY = f"{UPDATE_SERVICE}/FirmwareInventory"
SIMPLE_UPDATE = f"{UPDATE_SERVICE}/Actions/UpdateService.SimpleUpdate"
DELL_MANAGER = "/redfish/v1/Dell/Managers/iDRAC.Embedded.1"
JOB_SERVICE = f"{DELL_MANAGER}/DellJobService"
DELETE_JOB_QUEUE = f"{JOB_SERVICE}/Actions/DellJobService.DeleteJobQueue"
LC_SERVICE = f"{DELL_MANAGER}/DellLCService"
LC_STATUS = f"{LC_SERVICE}/Actions/DellLCService.GetRemoteServicesAPIStatus"
LOG_SERVICES = f"{MANAGER}/LogServices"
PAGE_SIZE = 50  # iDRAC pages log entries by 50 (GetIdracLcLogsREDFISH.py steps $skip by 50)

BIOS_APPLY_TIMES = ("OnReset", "AtMaintenanceWindowStart", "InMaintenanceWindowOnReset")
# Real durations (seconds), scaled by the lab's time factor.
BIOS_JOB_RUN_S = 150.0  # the BIOS applies pending values during POST
FW_DOWNLOAD_S = 60.0
FW_INSTALL_S = 240.0
LC_NOT_READY_S = 600.0  # `idrac_lc_not_ready`: ten minutes
LC_RESTART_S = 120.0  # after JID_CLEARALL_FORCE
LCLOG_NOISE = 120  # a used iDRAC's LC log is mostly logins: enough for three pages


def _dataclass_fields(value: object) -> dict[str, Any]:
    """json.dumps' `default` for the node and its jobs: their fields in order, as `asdict` lists them."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _stamp(now: float) -> str:
    """iDRAC's LogEntry `Created`: local time with its offset (the lab's iDRACs run on UTC).

    time.strftime of gmtime writes what datetime's strftime writes, in half the CPU: a new node's LC log
    has 120 entries, and every node of a bring-up is new to the front."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))


@functools.cache
def _factory_firmware() -> tuple[dict[str, Any], ...]:
    """The factory firmware inventory as a node holds it (flat dicts of text and flags), made once."""
    return tuple(asdict(item) for item in catalog.factory_firmware())


def _job_time(now: float) -> str:
    """DellJob times carry no offset (idrac_boot.py sample: "2019-06-19T00:57:24")."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def error(status: int, message_id: str, message: str, resolution: str = "",
          severity: str = "Critical") -> Answer:
    """The error body iDRAC sends: a general code plus @Message.ExtendedInfo (see front.redfish_error)."""
    return status, {}, {"error": {
        "code": "Base.1.12.GeneralError",
        "message": "A general error has occurred. See ExtendedInfo for more information.",
        "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message, "Resolution": resolution,
                                   "Severity": severity, "MessageArgs": []}]}}


@dataclass
class Job:
    """A DellJob plus what the lab needs to walk it: when it became ready, when it finishes, its fate."""

    id: str
    job_type: str  # BIOSConfiguration | FirmwareUpdate
    name: str
    created: float
    apply_time: str  # OnReset | Immediate | InMaintenanceWindowOnReset | AtMaintenanceWindowStart
    state: str = "New"
    message_id: str = catalog.MSG_NEW[0]
    message: str = catalog.MSG_NEW[1]
    percent: int = 0
    window: tuple[float, float] | None = None
    ready_at: float | None = None  # firmware: download done
    started: float | None = None  # Running since
    finish_at: float | None = None
    completed: float | None = None
    outcome: str = "ok"  # ok | fail | hang | not_sticky | bad_package | transfer_failed
    attributes: dict[str, Any] = field(default_factory=dict)
    component_id: str = ""
    version: str = ""
    reboot: bool = True
    source: str = ""

    def resource(self) -> dict[str, Any]:
        """The DellJob (shape: sushy-oem-idrac job_collection_expanded.json, dellemc.openmanage samples)."""
        return {
            "@odata.context": "/redfish/v1/$metadata#DellJob.DellJob",
            "@odata.id": f"{JOBS}/{self.id}",
            "@odata.type": "#DellJob.v1_5_0.DellJob",
            "ActualRunningStartTime": _job_time(self.started) if self.started else None,
            "ActualRunningStopTime": _job_time(self.completed) if self.completed else None,
            "CompletionTime": _job_time(self.completed) if self.completed else None,
            "Description": "Job Instance",
            "EndTime": _job_time(self.window[1]) if self.window else "TIME_NA",
            "Id": self.id,
            "JobState": self.state,
            "JobType": self.job_type,
            "Message": self.message,
            "MessageArgs": [],
            "MessageArgs@odata.count": 0,
            "MessageId": self.message_id,
            "Name": self.name,
            "PercentComplete": self.percent,
            "StartTime": _job_time(self.window[0]) if self.window else "TIME_NOW",
            "TargetSettingsURI": None,
        }

    def task(self) -> dict[str, Any]:
        """The same job as a Task (DeviceFirmwareSimpleUpdateREDFISH.py reads TaskState and Oem.Dell)."""
        state = {"Completed": "Completed", "Failed": "Exception", "Running": "Running", "Scheduled": "Pending",
                 "New": "New", "Downloading": "Running", "Downloaded": "Running"}.get(self.state, "Running")
        return {
            "@odata.id": f"{TASKS}/{self.id}", "@odata.type": "#Task.v1_4_3.Task", "Id": self.id,
            "Name": self.name, "TaskState": state,
            "TaskStatus": "Critical" if self.state == "Failed" else "OK",
            "PercentComplete": self.percent,
            "Messages": [{"Message": self.message, "MessageId": self.message_id, "MessageArgs": []}],
            "Oem": {"Dell": self.resource()},
        }

    def set(self, state: str, message: tuple[str, str], percent: int) -> None:
        self.state, (self.message_id, self.message), self.percent = state, message, percent

    @property
    def waits_for_reset(self) -> bool:
        return self.state == "Scheduled" and self.started is None


@dataclass
class DellNode:
    """Everything one lab iDRAC remembers; persisted as JSON by the routes after each change."""

    hostname: str
    service_tag: str
    seed: int
    bios: dict[str, Any]
    firmware: list[dict[str, Any]]
    previous: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[str, Any] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    available: dict[str, dict[str, Any]] = field(default_factory=dict)
    sel: list[dict[str, Any]] = field(default_factory=list)
    lclog: list[dict[str, Any]] = field(default_factory=list)
    job_counter: int = 0
    etag: int = 1
    lc_ready_at: float = 0.0
    lc_fault_seen: bool = False
    hardware_events: list[str] = field(default_factory=list)
    resets: int = 0

    # -- life cycle -------------------------------------------------------------------------
    @classmethod
    def factory(cls, hostname: str, service_tag: str, seed: int, now: float) -> DellNode:
        bios = {name: value for name, _, _, _, value, _ in catalog.BIOS_ATTRIBUTES}
        bios["SystemServiceTag"] = service_tag
        node = cls(hostname, service_tag, seed, bios, [dict(item) for item in _factory_firmware()])
        node._sel("SEL9901", "Log cleared.", "Event Log", "OK", now - 86400 * 3)
        for i in range(LCLOG_NOISE):
            node._lc("USR0030", "Successfully logged in using root, from 198.18.0.1 and GUI.", "OK",
                     now - 600.0 * (LCLOG_NOISE - i))
        return node

    def dump(self) -> str:
        """The same JSON as `json.dumps(asdict(self))`, without asdict's deep copy of the logs: the
        front dumps a node after every request it answers for it (a fifth of its CPU at 256 nodes)."""
        return json.dumps(self, default=_dataclass_fields)

    @classmethod
    def load(cls, text: str) -> DellNode:
        raw = json.loads(text)
        raw["jobs"] = [Job(**{**job, "window": tuple(job["window"]) if job["window"] else None})
                       for job in raw["jobs"]]
        return cls(**raw)

    # -- time -------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Walk every job to where `now` puts it."""
        for job in self.jobs:
            if job.state in ("New", "Downloading") and job.ready_at is not None and now >= job.ready_at:
                self._downloaded(job, now)
            if job.state == "Scheduled" and job.started is None and job.window and job.apply_time == \
                    "AtMaintenanceWindowStart" and job.window[0] <= now:
                job.started = job.window[0]  # iDRAC reboots the host itself at the window start
            if job.started is not None and job.state in ("Scheduled", "Running", "Downloaded"):
                job.set("Running", catalog.MSG_RUNNING, 50)
                if job.finish_at is None:
                    job.finish_at = job.started + self._run_s(job)
            if job.state == "Running" and job.finish_at is not None and now >= job.finish_at:
                self._finish(job, job.finish_at)

    def host_reset(self, now: float) -> None:
        """The host went through POST: jobs waiting for a reset (inside their window) start now."""
        self.advance(now)
        self.resets += 1
        for job in self.jobs:
            if job.waits_for_reset and (job.window is None or job.window[0] <= now <= job.window[1]):
                job.started = now
        self.advance(now)

    # -- BIOS ---------------------------------------------------------------------------------
    def bios_resource(self, system: str) -> dict[str, Any]:
        return {
            "@odata.context": "/redfish/v1/$metadata#Bios.Bios", "@odata.id": f"{system}/Bios",
            "@odata.type": "#Bios.v1_2_1.Bios", "AttributeRegistry": "BiosAttributeRegistry.v1_0_3",
            "Attributes": dict(self.bios), "Description": "BIOS Configuration Current Settings", "Id": "Bios",
            "Name": "BIOS Configuration Current Settings",
            "@Redfish.Settings": {"@odata.type": "#Settings.v1_3_1.Settings",
                                  "SettingsObject": {"@odata.id": f"{system}/Bios/Settings"},
                                  "SupportedApplyTimes": list(BIOS_APPLY_TIMES)},
            "Actions": {"#Bios.ResetBios": {"target": f"{system}/Bios/Actions/Bios.ResetBios"}},
        }

    def settings_resource(self, system: str) -> dict[str, Any]:
        return {"@odata.id": f"{system}/Bios/Settings", "@odata.type": "#Bios.v1_2_1.Bios", "Id": "Settings",
                "Name": "BIOS Configuration Pending Settings", "Attributes": dict(self.pending)}

    @staticmethod
    def registry_resource(system: str) -> dict[str, Any]:
        entries = []
        for order, (name, display, kind, allowed, _, read_only) in enumerate(catalog.BIOS_ATTRIBUTES):
            entry: dict[str, Any] = {"AttributeName": name, "CurrentValue": None, "DisplayName": display,
                                     "DisplayOrder": order * 100, "HelpText": f"{display}.", "Hidden": False,
                                     "Immutable": False, "MenuPath": "./SysSettingsRef", "ReadOnly": read_only,
                                     "ResetRequired": True, "Type": kind, "WriteOnly": False}
            if kind == "Enumeration":
                entry["Value"] = [{"ValueDisplayName": value, "ValueName": value} for value in allowed]
            elif kind == "Integer":
                entry |= {"LowerBound": allowed[0], "UpperBound": allowed[1], "ScalarIncrement": 0}
            entries.append(entry)
        return {"@odata.id": f"{system}/Bios/BiosRegistry",
                "@odata.type": "#AttributeRegistry.v1_1_0.AttributeRegistry",
                "Id": "BiosAttributeRegistry.v1_0_3", "Name": "BIOS Attribute Registry", "Language": "en",
                "OwningEntity": "Dell", "RegistryVersion": "v1_0_3",
                "RegistryEntries": {"Attributes": entries, "Dependencies": [], "Menus": []}}

    def answer_patch_settings(self, body: Any, now: float, hit: Hit) -> Answer:
        """PATCH Bios/Settings: validate against the registry, stage, and with an apply time queue a job."""
        self.advance(now)
        if not isinstance(body, dict) or not isinstance(body.get("Attributes"), dict):
            return error(400, "Base.1.12.PropertyMissing", "The property Attributes is a required property and "
                         "must be included in the request.", "Ensure that the property is in the request body.")
        attributes: dict[str, Any] = body["Attributes"]
        problems = self._invalid(attributes)
        if problems:
            status, headers, answer = error(400, "", "")
            answer["error"]["@Message.ExtendedInfo"] = problems
            return status, headers, answer
        if self._bios_job_pending():
            return error(400, "IDRAC.2.8.SYS011", "Pending configuration values are already committed, unable to "
                         "perform another set operation.", "Wait for the scheduled job to complete or delete "
                         "the configuration job before attempting more configuration operations.")
        apply = body.get("@Redfish.SettingsApplyTime")
        if apply is None:
            self.pending |= attributes
            return 200, {}, self._success()
        if not isinstance(apply, dict) or apply.get("ApplyTime") not in BIOS_APPLY_TIMES:
            return error(400, "Base.1.12.PropertyValueNotInList", f"The value {apply!r} for the property "
                         "@Redfish.SettingsApplyTime is not in the list of acceptable values.",
                         f"Use one of {', '.join(BIOS_APPLY_TIMES)}.")
        window = None
        if "Maintenance" in apply["ApplyTime"]:
            start = parse_time(str(apply.get("MaintenanceWindowStartTime")))
            duration = apply.get("MaintenanceWindowDurationInSeconds")
            if start is None or not isinstance(duration, int) or duration <= 0:
                return error(400, "Base.1.12.PropertyValueFormatError", "MaintenanceWindowStartTime must be "
                             "YYYY-MM-DDTHH:MM:SS(+/-)HH:MM and MaintenanceWindowDurationInSeconds a positive integer.")
            if start + duration < now:
                return error(400, "IDRAC.2.8.SYS426", "The maintenance window has already ended.",
                             "Give a start time in the future.")
            window = (start, start + duration)
        if not self.lc_ready(now, hit):
            return self._lc_busy()
        self.pending |= attributes
        job = self._new_job("BIOSConfiguration", "Configure: BIOS.Setup.1-1", apply["ApplyTime"], now, window)
        job.attributes = dict(self.pending)
        job.set("Scheduled", catalog.MSG_SCHEDULED, 0)
        job.outcome = "fail" if hit("idrac_job_fails") else "not_sticky" if hit("idrac_bios_not_sticky") else "ok"
        return 202, {"Location": f"{JOBS}/{job.id}"}, self._success()

    def answer_create_job(self, body: Any, system: str, now: float, hit: Hit) -> Answer:
        """POST Managers/iDRAC.Embedded.1/Jobs {TargetSettingsURI}: the older way to commit pending BIOS values."""
        self.advance(now)
        if not isinstance(body, dict) or body.get("TargetSettingsURI") != f"{system}/Bios/Settings":
            return error(400, "Base.1.12.PropertyValueNotInList", "The value for TargetSettingsURI is not in the "
                         "list of acceptable values.", f"Use {system}/Bios/Settings.")
        if not self.pending or self._bios_job_pending():
            return error(400, "IDRAC.2.8.SYS018", "Unable to create a configuration job because there are no "
                         "pending values or a job is already scheduled.")
        if not self.lc_ready(now, hit):
            return self._lc_busy()
        job = self._new_job("BIOSConfiguration", "Configure: BIOS.Setup.1-1", "OnReset", now, None)
        job.attributes = dict(self.pending)
        job.set("Scheduled", catalog.MSG_SCHEDULED, 0)
        job.outcome = "fail" if hit("idrac_job_fails") else "not_sticky" if hit("idrac_bios_not_sticky") else "ok"
        return 200, {"Location": f"{JOBS}/{job.id}"}, self._success()

    def _invalid(self, attributes: dict[str, Any]) -> list[dict[str, Any]]:
        table = {row[0]: row for row in catalog.BIOS_ATTRIBUTES}
        problems = []
        for name, value in attributes.items():
            row = table.get(name)
            if row is None:
                problems.append(self._info("Base.1.12.PropertyUnknown", f"The property {name} is not in the list "
                                           "of valid properties for the resource."))
            elif row[5]:
                problems.append(self._info("Base.1.12.PropertyNotWritable", f"The property {name} is a read only "
                                           "property and cannot be assigned a value."))
            elif row[2] == "Enumeration" and value not in row[3]:
                problems.append(self._info("Base.1.12.PropertyValueNotInList", f"The value {value} for the property "
                                           f"{name} is not in the list of acceptable values."))
            elif row[2] == "Integer" and (not isinstance(value, int) or not row[3][0] <= value <= row[3][1]):
                problems.append(self._info("Base.1.12.PropertyValueOutOfRange", f"The value {value} for the "
                                           f"property {name} is not in the supported range of acceptable values."))
        return problems

    @staticmethod
    def _info(message_id: str, message: str) -> dict[str, Any]:
        return {"MessageId": message_id, "Message": message, "Severity": "Warning", "MessageArgs": [],
                "Resolution": "Correct the value and resubmit the request."}

    @staticmethod
    def _success() -> dict[str, Any]:
        return {"@Message.ExtendedInfo": [{"MessageId": "Base.1.12.Success", "Severity": "OK", "MessageArgs": [],
                                           "Message": "Successfully Completed Request", "Resolution": "None"}]}

    def _bios_job_pending(self) -> bool:
        return any(job.job_type == "BIOSConfiguration" and job.state in ("Scheduled", "Running", "New")
                   for job in self.jobs)

    # -- jobs ---------------------------------------------------------------------------------
    def _new_job(self, job_type: str, name: str, apply_time: str, now: float,
                 window: tuple[float, float] | None) -> Job:
        self.job_counter += 1
        number = zlib.crc32(f"{self.hostname}:{self.seed}".encode()) % 10**6 * 10**6 + self.job_counter
        job = Job(f"JID_{number:012d}", job_type, name, now, apply_time, window=window)
        self.jobs.append(job)
        self._lc("JCP027", f"The (installation or configuration) job {job.id} is successfully created on "
                 "iDRAC.", "OK", now)
        return job

    def job(self, job_id: str, now: float) -> Job | None:
        self.advance(now)
        return next((job for job in self.jobs if job.id == job_id), None)

    def jobs_collection(self, now: float, expand: bool) -> dict[str, Any]:
        self.advance(now)
        members = [job.resource() if expand else {"@odata.id": f"{JOBS}/{job.id}"} for job in self.jobs]
        return {"@odata.context": "/redfish/v1/$metadata#DellJobCollection.DellJobCollection",
                "@odata.id": JOBS, "@odata.type": "#DellJobCollection.DellJobCollection",
                "Description": "Collection of Job Instances", "Id": "JobQueue", "Name": "JobQueue",
                "Members": members, "Members@odata.count": len(members)}

    def answer_delete_job_queue(self, body: Any, now: float) -> Answer:
        """DellJobService.DeleteJobQueue: one job, JID_CLEARALL (all but running ones, and pending BIOS
        values), or JID_CLEARALL_FORCE (everything; the LC restarts)."""
        self.advance(now)
        target = body.get("JobID") if isinstance(body, dict) else None
        if target == "JID_CLEARALL_FORCE":
            self.jobs, self.pending = [], {}
            self.lc_ready_at = max(self.lc_ready_at, now + LC_RESTART_S * self.scale)
        elif target == "JID_CLEARALL":
            self.jobs = [job for job in self.jobs if job.state == "Running"]
            self.pending = {}
        elif isinstance(target, str) and any(job.id == target for job in self.jobs):
            gone = next(job for job in self.jobs if job.id == target)
            if gone.state == "Running":
                return error(400, "IDRAC.2.8.SUP011", f"Unable to delete the job {target} because it is running.",
                             "Wait for the job to complete or use JID_CLEARALL_FORCE.")
            self.jobs.remove(gone)
            if gone.job_type == "BIOSConfiguration":
                self.pending = {}
        else:
            return error(400, "IDRAC.2.8.SUP018", f"Unable to find the job {target}.", "Enter a valid job ID.")
        self._lc("SUP020", f"Successfully deleted the job(s) {target}.", "OK", now)
        return 200, {}, self._success()

    scale: float = 1.0  # set by the routes from the lab time factor; not persisted state of the iDRAC

    def _run_s(self, job: Job) -> float:
        return (BIOS_JOB_RUN_S if job.job_type == "BIOSConfiguration" else FW_INSTALL_S) * self.scale

    def _downloaded(self, job: Job, now: float) -> None:
        if job.outcome in ("transfer_failed", "bad_package"):
            self._finish(job, job.ready_at or now)
            return
        job.set("Downloaded", catalog.MSG_DOWNLOADED, 10)
        if job.reboot and job.apply_time != "Immediate":
            job.set("Scheduled", catalog.MSG_SCHEDULED, 10)
        else:
            job.started = job.ready_at

    def _finish(self, job: Job, at: float) -> None:
        if job.outcome == "hang":
            return  # never leaves Running: the update timed out inside the iDRAC
        job.completed = at
        if job.outcome in ("fail", "transfer_failed", "bad_package"):
            failed = catalog.MSG_BIOS_FAILED if job.job_type == "BIOSConfiguration" else catalog.MSG_FW_FAILED
            message = {"fail": failed,
                       "transfer_failed": (catalog.MSG_TRANSFER_FAILED[0],
                                           catalog.MSG_TRANSFER_FAILED[1].format(uri=job.source)),
                       "bad_package": catalog.MSG_BAD_PACKAGE}[job.outcome]
            job.set("Failed", message, 100)
            if job.job_type == "BIOSConfiguration":
                self.pending = {}
            self._lc(message[0], f"{message[1]} (job {job.id})", "Critical", at)
            return
        job.set("Completed", catalog.MSG_COMPLETED, 100)
        if job.job_type == "BIOSConfiguration":
            applied = dict(job.attributes)
            if job.outcome == "not_sticky" and applied:
                applied.pop(sorted(applied)[0])  # the BIOS kept its old value for this one
            self.bios |= applied
            self.pending = {}
            self._lc("SYS053", f"Successfully applied the BIOS configuration (job {job.id}).", "OK", at)
        else:
            self._install(job, at)

    # -- firmware -----------------------------------------------------------------------------
    def inventory_members(self) -> list[dict[str, Any]]:
        rows = [(item, "Installed") for item in self.firmware] + [(item, "Previous") for item in self.previous]
        return [self._software(item, kind) for item, kind in rows]

    def _software(self, item: dict[str, Any], kind: str) -> dict[str, Any]:
        member = catalog.Firmware(**item).member_id.replace("Installed-", f"{kind}-", 1)
        return {"@odata.id": f"{FIRMWARE_INVENTORY}/{member}",
                "@odata.type": "#SoftwareInventory.v1_5_0.SoftwareInventory",
                "Id": member, "Name": item["name"], "Version": item["version"], "SoftwareId": item["component_id"],
                "Updateable": item["updateable"], "Status": {"Health": "OK", "State": "Enabled"},
                "Description": "Represents Firmware Inventory", "ReleaseDate": "00:00:00Z"}

    def inventory_member(self, member_id: str) -> dict[str, Any] | None:
        if member_id in self.available:
            package = self.available[member_id]
            return {"@odata.id": f"{FIRMWARE_INVENTORY}/{member_id}", "Id": member_id, "Name": package["name"],
                    "Version": package["Version"], "SoftwareId": package["ComponentID"], "Updateable": True,
                    "Status": {"Health": "OK", "State": "Enabled"}}
        return next((m for m in self.inventory_members() if m["Id"] == member_id), None)

    def answer_push(self, if_match: str | None, package: bytes | None, filename: str, now: float, hit: Hit) -> Answer:
        """POST HttpPushUri (multipart `file`, If-Match): the package becomes an Available- entry."""
        if if_match != self.etag_text:
            return error(412, "Base.1.12.PreconditionFailed", "The ETag supplied did not match the ETag required to "
                         "change this resource.", "Try the operation again using the appropriate ETag.")
        if not self.lc_ready(now, hit):
            return self._lc_busy()
        parsed = self.parse_package(package)
        if parsed is None:
            return error(400, "IDRAC.2.8.RED014", f"The file {filename} is not a valid update package.",
                         "Use a Dell Update Package for this system.")
        member = f"Available-{parsed['ComponentID']}-{parsed['Version']}"
        target = self._targets(parsed)
        self.available[member] = parsed | {"name": target[0]["name"] if target else filename}
        self.etag += 1
        return 201, {"Location": f"{FIRMWARE_INVENTORY}/{member}"}, self.inventory_member(member) or {}

    @property
    def etag_text(self) -> str:
        return f'W/"{self.etag}"'

    @staticmethod
    def parse_package(data: bytes | None) -> dict[str, Any] | None:
        """A lab update package is a JSON document {"ComponentID": "159", "Version": "2.3.6"}: where a
        real DUP embeds which devices it fits and the version it brings, this one says it plainly."""
        try:
            parsed = json.loads(data or b"")
        except ValueError:
            return None
        if not isinstance(parsed, dict) or not parsed.get("ComponentID") or not parsed.get("Version"):
            return None
        return {"ComponentID": str(parsed["ComponentID"]), "Version": str(parsed["Version"])}

    def _targets(self, package: dict[str, Any]) -> list[dict[str, Any]]:
        return [item for item in self.firmware if item["component_id"] == package["ComponentID"] and item["updateable"]]

    def answer_simple_update(self, body: Any, package: bytes | None, fetch_error: str | None,
                             now: float, hit: Hit) -> Answer:
        """SimpleUpdate: `ImageURI` is an Available- entry (pushed) or a URL the iDRAC downloaded (`package`)."""
        self.advance(now)
        if not isinstance(body, dict) or not isinstance(body.get("ImageURI"), str):
            return error(400, "Base.1.12.ActionParameterMissing", "The action SimpleUpdate requires the parameter "
                         "ImageURI to be present in the request body.")
        apply = body.get("@Redfish.OperationApplyTime", "Immediate")
        if apply not in ("Immediate", "OnReset"):
            return error(400, "Base.1.12.ActionParameterValueNotInList", f"The value {apply} for the parameter "
                         "@Redfish.OperationApplyTime is not in the list of acceptable values.")
        if not self.lc_ready(now, hit):
            return self._lc_busy()
        uri = body["ImageURI"]
        if uri.startswith(FIRMWARE_INVENTORY + "/"):
            parsed = self.available.pop(uri.rsplit("/", 1)[1], None)
            if parsed is None:
                return error(400, "Base.1.12.ResourceMissingAtURI", f"The resource at the URI {uri} was not found.")
        else:
            parsed = self.parse_package(package) if fetch_error is None else None
        targets = self._targets(parsed) if parsed else []
        name = targets[0]["name"] if targets else "Unknown"
        job = self._new_job("FirmwareUpdate", f"Firmware Update: {name}", apply, now, None)
        job.source = uri
        job.set("Downloading", catalog.MSG_DOWNLOADING, 0)
        job.ready_at = now + FW_DOWNLOAD_S * self.scale
        if fetch_error is not None:
            job.outcome = "transfer_failed"
        elif not targets:
            job.outcome = "bad_package"
        else:
            job.component_id, job.version = targets[0]["component_id"], parsed["Version"]  # type: ignore[index]
            job.reboot = any(item["reboot"] for item in targets)
            job.outcome = "fail" if hit("idrac_job_fails") else "hang" if hit("idrac_firmware_timeout") else "ok"
        return 202, {"Location": f"{TASKS}/{job.id}"}, self._success()

    def _install(self, job: Job, at: float) -> None:
        for item in self.firmware:
            if item["component_id"] == job.component_id and item["updateable"]:
                self.previous = [p for p in self.previous if p["fqdd"] != item["fqdd"]
                                 or p["component_id"] != item["component_id"]] + [dict(item)]
                item["version"] = job.version
        self._lc("SUP0518", f"Successfully updated the {job.name.split(': ', 1)[-1]} firmware to version "
                 f"{job.version}.", "OK", at)

    # -- Lifecycle Controller --------------------------------------------------------------------
    def lc_ready(self, now: float, hit: Hit) -> bool:
        if not self.lc_fault_seen and hit("idrac_lc_not_ready"):
            self.lc_fault_seen = True
            self.lc_ready_at = max(self.lc_ready_at, now + LC_NOT_READY_S * self.scale)
        return now >= self.lc_ready_at

    def lc_status(self, now: float, hit: Hit) -> dict[str, Any]:
        """GetRemoteServicesAPIStatus (fields as GetRemoteServicesAPIStatusREDFISH.py prints them)."""
        ready = self.lc_ready(now, hit)
        return {"@Message.ExtendedInfo": self._success()["@Message.ExtendedInfo"],
                "LCStatus": "Ready" if ready else "Reloading", "RTStatus": "Ready",
                "ServerStatus": "OutOfPOST", "Status": "Ready" if ready else "NotReady", "TelemetryStatus": "Ready"}

    @staticmethod
    def _lc_busy() -> Answer:
        return error(503, "IDRAC.2.8.LC068", "Lifecycle Controller is not ready; unable to process the request.",
                     "Wait until GetRemoteServicesAPIStatus reports LCStatus Ready and retry.")

    # -- logs -----------------------------------------------------------------------------------
    def hardware(self, now: float, hit: Hit) -> None:
        """The hardware faults leave their SEL entries (copied into the LC log, as iDRAC does) once."""
        for kind, rows in (("idrac_sel_psu", (catalog.SEL_PSU, catalog.SEL_PSU_REDUNDANCY)),
                           ("idrac_sel_memory", (catalog.SEL_MEMORY_CORRECTABLE, catalog.SEL_MEMORY))):
            if kind not in self.hardware_events and hit(kind):
                self.hardware_events.append(kind)
                for offset, (message_id, message, sensor, severity) in enumerate(rows):
                    self._sel(message_id, message, sensor, severity, now + offset * 0.001)
                    self._lc(message_id, message, severity, now + offset * 0.001)

    def _sel(self, message_id: str, message: str, sensor: str, severity: str, at: float) -> None:
        number = len(self.sel) + 1
        self.sel.append({"Id": str(number), "Created": _stamp(at), "EntryCode": "Assert", "EntryType": "SEL",
                         "GeneratorId": "0x0020", "Message": message, "MessageId": message_id,
                         "SensorType": sensor, "SensorNumber": 96 + number % 32, "Severity": severity,
                         "_t": at})

    def _lc(self, message_id: str, message: str, severity: str, at: float) -> None:
        self.lclog.append({"Id": str(len(self.lclog) + 1), "Created": _stamp(at), "EntryType": "Oem",
                           "OemRecordFormat": "Dell", "Message": message, "MessageId": message_id,
                           "Severity": severity, "_t": at})

    def log_page(self, log: str, skip: int, severity: str | None) -> Answer:
        """One page of Sel or Lclog entries, newest first, with the next page's link while one remains."""
        rows = self.sel if log == "Sel" else self.lclog
        rows = sorted(rows, key=lambda row: (row["_t"], int(row["Id"])), reverse=True)
        if severity:
            rows = [row for row in rows if row["Severity"] == severity]
        if skip and skip >= len(rows):
            return error(400, "Base.1.12.QueryParameterOutOfRange", f"The value {skip} for the query parameter "
                         f"$skip is out of range 0-{max(0, len(rows) - 1)}.", "Reduce the value for the query "
                         "parameter to a value that is within range.")
        base = f"{LOG_SERVICES}/{log}/Entries"
        members = [{k: v for k, v in row.items() if k != "_t"} | {
            "@odata.id": f"{base}/{row['Id']}", "@odata.type": "#LogEntry.v1_6_1.LogEntry",
            "Name": "Log Entry", "Description": f"Log Entry {row['Id']}"} for row in rows[skip:skip + PAGE_SIZE]]
        body: dict[str, Any] = {"@odata.id": base, "@odata.type": "#LogEntryCollection.LogEntryCollection",
                                "Name": "Log Entry Collection", "Members": members,
                                "Members@odata.count": len(rows)}
        if skip + PAGE_SIZE < len(rows):
            body["Members@odata.nextLink"] = f"{base}?$skip={skip + PAGE_SIZE}"
        return 200, {}, body
