"""The lab's Dell iDRAC 9 layer: BIOS, firmware, the job queue, the Lifecycle Controller and the logs.

sushy-tools' fake driver answers 501 for BIOS and firmware and has no Dell OEM resources, so the BMC
front hands these paths to this layer (`routes.DellLayer`) and forwards everything else to the
emulator as before. Dell publishes no iDRAC mockup; the shapes here follow what Dell's own clients
send and parse, cited per shape in `catalog.py` and `model.py`:
- Dell's public Redfish scripts, github.com/dell/iDRAC-Redfish-Scripting ("Redfish Python/..."):
  GetSetBiosAttributesREDFISH.py, DeviceFirmwareSimpleUpdateREDFISH.py,
  DeviceFirmwareMultipartUploadREDFISH.py, DeleteJobQueueREDFISH.py,
  GetRemoteServicesAPIStatusREDFISH.py, GetIdracLcLogsREDFISH.py;
- Dell's Ansible collection dellemc.openmanage (shipped in the `ansible` package we install):
  plugins/modules/idrac_bios.py (registry validation, pending values, SettingsApplyTime, job ids from
  Location), plugins/module_utils/utils.py (`idrac_redfish_job_tracking`: the JobState list),
  idrac_boot.py / idrac_network_attributes.py (DellJob samples);
- sushy's Dell layer, openstack/sushy-oem-idrac: resources/manager/job_service.py
  (`#DellJobService.DeleteJobQueue`, `JobID: JID_CLEARALL`), lifecycle_service.py
  (`#DellLCService.GetRemoteServicesAPIStatus`, ready means HTTP 200 and `LCStatus: Ready`),
  tests/unit/json_samples/job_collection_expanded.json (the DellJobCollection).

What a real iDRAC 9 does that a client can notice, and the lab does too:
- BIOS lives at `Systems/System.Embedded.1/Bios` (`Attributes`, `@Redfish.Settings` naming the
  settings object and `SupportedApplyTimes`); pending values at `Bios/Settings`; the attribute
  registry at `Bios/BiosRegistry` (`RegistryEntries.Attributes[]` with `AttributeName`, `Type`,
  `Value[].ValueName`, `LowerBound`/`UpperBound`, `ReadOnly`). A PATCH of `Bios/Settings` with
  `@Redfish.SettingsApplyTime` answers 202 and names the new job only in the `Location` header
  (`.../Jobs/JID_...`); an unknown attribute, a value the registry does not allow or a read-only
  attribute is refused with 400 and nothing is staged; a second PATCH while a BIOS job is pending is
  refused (SYS011: pending values already committed) until the job runs or the queue is cleared.
- A BIOS configuration job (`JobType: BIOSConfiguration`, `Name: Configure: BIOS.Setup.1-1`) sits in
  `Scheduled` ("Task successfully scheduled.", JCP001) until the host resets; with
  `InMaintenanceWindowOnReset` only a reset inside the window starts it. It then runs during POST
  (`Running`) and ends `Completed` ("Job completed successfully.", PR19) with the values applied and
  nothing pending, or `Failed`.
- `UpdateService` names `HttpPushUri` (`UpdateService/FirmwareInventory`: a GET hands out an ETag,
  a multipart POST of `file` with `If-Match` answers 201 and an `Available-...` entry) and the
  `#UpdateService.SimpleUpdate` action (`ImageURI`: that entry, or an HTTP URL the iDRAC downloads
  itself; 202, `Location: /redfish/v1/TaskService/Tasks/JID_...`). The firmware job walks
  Downloading -> Downloaded -> Scheduled (components applied at POST: BIOS, NICs, PSUs, wait for a
  host reset) or Running (applied at once: iDRAC) -> Completed or Failed. FirmwareInventory lists
  `Installed-<ComponentID>-<Version>[__<FQDD>]` members (and `Previous-` ones) and expands them with
  `$expand=*($levels=1)`. Components the iDRAC cannot update list `Updateable: false`.
- The job queue is `Managers/iDRAC.Embedded.1/Jobs` (DellJobCollection, `$expand` too), each job at
  `Jobs/JID_...` (DellJob: `JobState`, `JobType`, `Message`, `MessageId`, `PercentComplete`,
  `StartTime`, `CompletionTime`), also visible as a Task at `TaskService/Tasks/JID_...`
  (`TaskState`, `Messages`, `Oem.Dell` = the DellJob). JobStates: New, Scheduled, Running,
  Completed, Downloading, Downloaded, Scheduling, ReadyForExecution, Waiting, Paused, Failed,
  CompletedWithErrors, RebootPending, RebootFailed, RebootCompleted, PendingActivation, Unknown.
- `Dell/Managers/iDRAC.Embedded.1/DellJobService/Actions/DellJobService.DeleteJobQueue` with
  `JobID` = one job, `JID_CLEARALL` (every job that is not running, and the pending BIOS values) or
  `JID_CLEARALL_FORCE` (everything, and the Lifecycle Controller restarts: not ready for a while).
- `Dell/Managers/iDRAC.Embedded.1/DellLCService/Actions/DellLCService.GetRemoteServicesAPIStatus`
  answers 200 with `LCStatus`, `RTStatus`, `ServerStatus`, `Status`, `TelemetryStatus`; while the
  LC is not ready, requests that would queue a job are refused with 503.
- `Managers/iDRAC.Embedded.1/LogServices/Sel/Entries` and `.../Lclog/Entries`: LogEntry members,
  newest first, 50 per page, `Members@odata.nextLink` with `$skip`; a `$skip` past the end answers
  400 (QueryParameterOutOfRange, as GetIdracLcLogsREDFISH.py expects); `$filter=Severity eq '...'`.
- Durations are real iDRAC orders of magnitude (a BIOS job runs minutes in POST, an update
  downloads for a minute and installs for minutes), scaled by the lab's time factor.

Where no public capture gives an exact message text (the failure and not-ready wordings, the SEL
texts), the lab's wording says what happened in Dell's style and is marked as the lab's own in
`catalog.py`. Faults (from `lab_dir/faults.json`, rate = probability per job or per read):
`idrac_job_fails` (the next job ends Failed), `idrac_bios_not_sticky` (a BIOS job completes but one
attribute keeps its old value), `idrac_firmware_timeout` (the update job never leaves Running),
`idrac_lc_not_ready` (the LC reports not ready for `LC_NOT_READY_S`, scaled, from first sight),
`idrac_sel_psu` and `idrac_sel_memory` (SEL + Lclog entries for a failed PSU / a memory error).
"""
