"""What a lab iDRAC 9 holds when it leaves the factory: BIOS registry and values, firmware, messages.

The server is a Dell PowerEdge XE9680 (HGX H100, 8 GPUs, 8 ConnectX-7 NDR HCAs). Attribute names,
types and values are Dell's (`Bios/BiosRegistry` as GetSetBiosAttributesREDFISH.py and
dellemc.openmanage idrac_bios.py `validate_vs_registry` read it); only a working subset is listed.
Firmware members are named the way iDRAC names them (`Installed-<ComponentID>-<Version>__<FQDD>`,
DeviceFirmwareSimpleUpdateREDFISH.py keeps only members with "Installed" in the id).
"""

from __future__ import annotations

from dataclasses import dataclass

BIOS_VERSION = "2.3.5"

# (AttributeName, DisplayName, Type, allowed values or (lower, upper), factory value, read only)
BIOS_ATTRIBUTES: tuple[tuple[str, str, str, tuple, object, bool], ...] = (
    ("BootMode", "Boot Mode", "Enumeration", ("Uefi", "Bios"), "Uefi", False),
    ("LogicalProc", "Logical Processor", "Enumeration", ("Enabled", "Disabled"), "Enabled", False),
    ("ProcVirtualization", "Virtualization Technology", "Enumeration", ("Enabled", "Disabled"), "Enabled", False),
    ("SriovGlobalEnable", "SR-IOV Global Enable", "Enumeration", ("Enabled", "Disabled"), "Disabled", False),
    ("SysProfile", "System Profile", "Enumeration",
     ("PerfPerWattOptimizedDapc", "PerfPerWattOptimizedOs", "PerfOptimized", "PerfWorkstationOptimized", "Custom"),
     "PerfPerWattOptimizedDapc", False),
    ("ProcTurboMode", "Turbo Boost", "Enumeration", ("Enabled", "Disabled"), "Enabled", False),
    ("ProcCStates", "C States", "Enumeration", ("Enabled", "Disabled"), "Enabled", False),
    ("MemTest", "System Memory Testing", "Enumeration", ("Enabled", "Disabled"), "Disabled", False),
    ("ErrPrompt", "F1/F2 Prompt on Error", "Enumeration", ("Enabled", "Disabled"), "Enabled", False),
    ("AcPwrRcvry", "AC Power Recovery", "Enumeration", ("On", "Off", "Last"), "Last", False),
    ("AcPwrRcvryUserDelay", "User Defined Delay (60s to 600s)", "Integer", (60, 600), 60, False),
    ("OsWatchdogTimer", "OS Watchdog Timer", "Enumeration", ("Enabled", "Disabled"), "Disabled", False),
    ("SystemServiceTag", "System Service Tag", "String", (), "", True),
)


@dataclass(frozen=True)
class Firmware:
    """One FirmwareInventory member: `reboot` says the update is applied at POST (needs a host reset)."""

    component_id: str
    name: str
    version: str
    fqdd: str
    updateable: bool
    reboot: bool

    @property
    def member_id(self) -> str:
        suffix = f"__{self.fqdd}" if self.fqdd else ""
        return f"Installed-{self.component_id}-{self.version}{suffix}"


def factory_firmware() -> tuple[Firmware, ...]:
    """BIOS, iDRAC, CPLD, the Broadcom LOM, 8 ConnectX-7 HCAs, 8 H100 GPUs, 6 PSUs.

    The HCAs and GPUs on an HGX board are listed but `Updateable: false`: their firmware is NVIDIA's,
    applied from the host (mlxfwmanager, nvfwupd), not by the iDRAC.
    """
    items = [
        Firmware("159", "BIOS", BIOS_VERSION, "", True, True),
        Firmware("25227", "Integrated Dell Remote Access Controller", "7.10.70.00", "", True, False),
        Firmware("27763", "System CPLD", "1.0.6", "", True, True),
        Firmware("105152", "Broadcom Adv. Dual 25Gb Ethernet", "22.71.3", "NIC.Integrated.1-1-1", True, True),
    ]
    items += [Firmware("0", "Mellanox ConnectX-7 Single Port VPI NDR OSFP Adapter", "28.42.1000",
                       f"InfiniBand.Slot.{31 + slot}-1", False, False) for slot in range(8)]
    items += [Firmware("0", "NVIDIA H100 SXM5 80GB", "96.00.74.00.01", f"Video.Slot.{40 + slot}-1", False, False)
              for slot in range(8)]
    items += [Firmware("104200", "Power Supply.Slot", "00.1D.7D", f"PSU.Slot.{slot + 1}", True, True)
              for slot in range(6)]
    return tuple(items)


# DellJob messages seen in Dell's samples (dellemc.openmanage idrac_network_attributes.py: JCP001
# "Task successfully scheduled."; idrac_boot.py: PR19 "Job completed successfully."; the scripts poll
# for exactly these strings). The failure, download and progress wordings are the lab's own.
MSG_SCHEDULED = ("JCP001", "Task successfully scheduled.")
MSG_COMPLETED = ("PR19", "Job completed successfully.")
MSG_RUNNING = ("PR20", "Job in progress.")  # lab wording
MSG_NEW = ("JCP000", "Job created.")  # lab wording
MSG_DOWNLOADING = ("RED002", "Downloading the update package.")  # lab wording
MSG_DOWNLOADED = ("RED003", "Package successfully downloaded.")  # lab wording
MSG_BIOS_FAILED = ("SYS051", "Unable to apply the BIOS configuration: the BIOS rejected the pending values.")  # lab
MSG_FW_FAILED = ("RED007", "Unable to verify Update Package signature.")  # lab wording
MSG_TRANSFER_FAILED = ("RED004", "Unable to transfer the image from {uri}.")  # lab wording
MSG_BAD_PACKAGE = ("RED005", "The update package does not apply to any component of this system.")  # lab
MSG_CLEARED = ("SUP020", "Successfully deleted the job.")  # lab wording

# SEL texts for the two hardware faults (wording in Dell's style, the lab's own).
SEL_PSU = ("PSU0003", "Power supply 2 failed.", "PowerSupply", "Critical")
SEL_PSU_REDUNDANCY = ("RDU0012", "The power supplies are not redundant.", "PowerSupply", "Warning")
SEL_MEMORY = ("MEM0001", "Multi-bit memory errors detected on a memory device at location(s) DIMM_A3.",
              "Memory", "Critical")
SEL_MEMORY_CORRECTABLE = ("MEM0701", "Correctable memory error rate exceeded for DIMM_A3.", "Memory", "Warning")
