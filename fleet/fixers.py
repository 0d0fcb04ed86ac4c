"""The fixes the watch loop applies to a drained node, each through the tool an operator would use.

- reset GPU: `nvidia-smi -r -i <bus id>` per GPU the findings name, only after
  `nvidia-smi --query-compute-apps` shows no process on it (a reset under a process fails, and would
  kill the process if it did not); NVIDIA: https://docs.nvidia.com/deploy/nvidia-smi/ (-r, --gpu-reset).
- restart the fabric manager: `systemctl restart nvidia-fabricmanager`.
- reboot: `systemctl reboot` over SSH, then wait for SSH to answer with a new boot id.
- reimage: the same path as `provision.py reimage NODE --yes --force` (release, deploy, configure,
  validate), in this process. `--force` because the loop has already drained the node and seen its
  scheduler report no jobs, which is a better answer to "in use?" than a process listing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from fleet import ssh
from fleet.remediate import FindingRef, Fix
from fleet.site import Site
from fleet.watch import gpu_bus_ids

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 120.0
BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


def busy_pids(query_output: str) -> list[str]:
    """PIDs from `nvidia-smi --query-compute-apps=pid --format=csv,noheader` (pure)."""
    return [line.strip() for line in query_output.splitlines() if line.strip().isdigit()]


class SshFixer:
    """Applies fixes to one site's nodes over SSH; a reimage goes through `reimage(node) -> (ok, detail)`."""

    def __init__(self, site: Site, *, reimage: Callable[[str], tuple[bool, str]], reboot_timeout_s: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.site = site
        self.reimage = reimage
        self.reboot_timeout_s = reboot_timeout_s
        self.sleep = sleep

    def _run(self, node: str, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> ssh.SshResult:
        return ssh.run(self.site, self.site.nodes[node], command, timeout_s)

    def apply(self, node: str, fix: Fix, findings: Sequence[FindingRef]) -> tuple[bool, str]:
        if fix is Fix.RESET_GPU:
            return self.reset_gpus(node, gpu_bus_ids(findings))
        if fix is Fix.RESTART_FABRIC_MANAGER:
            done = self._run(node, "systemctl restart nvidia-fabricmanager")
            return done.rc == 0, "nvidia-fabricmanager restarted" if done.rc == 0 else done.stderr[-300:]
        if fix is Fix.REBOOT:
            return self.reboot(node)
        if fix is Fix.REIMAGE:
            return self.reimage(node)
        return False, f"{fix.value} is not a fix the loop applies"

    def reset_gpus(self, node: str, bus_ids: list[str]) -> tuple[bool, str]:
        if not bus_ids:
            return False, "the findings name no GPU to reset"
        done = []
        for bus in bus_ids:
            query = self._run(node, f"nvidia-smi --query-compute-apps=pid --format=csv,noheader -i {bus}")
            if query.rc != 0:
                return False, f"cannot ask GPU {bus} for its processes: {(query.stderr or query.stdout)[-200:]}"
            if pids := busy_pids(query.stdout):
                return False, f"GPU {bus} is not idle (pids {', '.join(pids[:5])}): not reset"
            reset = self._run(node, f"nvidia-smi -r -i {bus}")
            if reset.rc != 0:
                return False, f"nvidia-smi -r -i {bus} failed: {(reset.stderr or reset.stdout)[-200:]}"
            done.append(bus)
        return True, f"reset GPU(s) {', '.join(done)}"

    def reboot(self, node: str) -> tuple[bool, str]:
        before = self._run(node, BOOT_ID, 30)
        if before.rc != 0:
            return False, f"cannot read the boot id before rebooting: {before.stderr[-200:]}"
        self._run(node, "systemctl reboot", 30)  # the connection drops as the node goes down
        deadline = time.monotonic() + self.reboot_timeout_s
        while time.monotonic() < deadline:
            self.sleep(5)
            after = self._run(node, BOOT_ID, 15)
            if after.rc == 0 and after.stdout.strip() and after.stdout.strip() != before.stdout.strip():
                return True, "rebooted (new boot id)"
        return False, f"no new boot id within {self.reboot_timeout_s:.0f} s"
