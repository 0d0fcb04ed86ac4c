"""Running a command on a node over SSH: the system `ssh` client, never a password, always a deadline.

The system client is what operators already configure (keys, agents, bastions, ControlMaster);
for the lab site the lab's own ssh_config is used. BatchMode makes a missing key fail at once
instead of hanging on a prompt at 3 a.m.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from fleet.inventory import Node, Site

CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class SshResult:
    rc: int  # 255: ssh itself failed (unreachable, auth); -1: our deadline passed
    stdout: str
    stderr: str

    @property
    def reachable(self) -> bool:
        return self.rc not in (255, -1)


def options(site: Site) -> tuple[str, ...]:
    """Site-specific ssh options: the lab's own ssh_config (user, key, known_hosts); none in production."""
    if site.lab is None:
        return ()
    return ("-F", str(site.lab.state_dir / "ssh_config"), "-l", "root")


def ssh_argv(site: Site, node: Node, command: str) -> list[str]:
    return ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", *options(site),
            node.address, command]


def run(site: Site, node: Node, command: str, timeout_s: float) -> SshResult:
    try:
        done = subprocess.run(ssh_argv(site, node, command), capture_output=True, text=True, timeout=timeout_s,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return SshResult(-1, "", f"no answer within {timeout_s:.0f} s")
    return SshResult(done.returncode, done.stdout, done.stderr.strip())
