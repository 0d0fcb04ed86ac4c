"""Running a command on a node over SSH: the system `ssh` client, never a password, always a deadline.

The system client is what operators already configure (keys, agents, bastions, ControlMaster);
for the lab site the lab's own ssh_config is used. BatchMode makes a missing key fail at once
instead of hanging on a prompt at 3 a.m. The login is the site's `ssh.user` (a MAAS-deployed Ubuntu
takes only `ubuntu`; root work goes through `sudo -n`), through `ssh.proxy_jump` when the site
names a bastion.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from fleet import hostkeys
from fleet.site import Node, Site

CONNECT_TIMEOUT_S = 5
SSH_FAILED = 255  # ssh's own status when it cannot connect or log in; ours too when no answer came in time


@dataclass(frozen=True)
class SshResult:
    rc: int  # SSH_FAILED: ssh itself failed (unreachable, auth) or our deadline passed
    stdout: str
    stderr: str

    @property
    def reachable(self) -> bool:
        return self.rc != SSH_FAILED


def options(site: Site) -> tuple[str, ...]:
    """The site's ssh options: its ssh_config file (the lab's names its key and known_hosts), the login
    user and the bastion."""
    # The nodes' host keys first (ssh takes an option's first value, so no config file can loosen them):
    # the tool's own known_hosts, checked strictly (fleet/hostkeys.py: recorded after a journaled deploy).
    found = hostkeys.check_options(hostkeys.known_hosts_file(site))
    found += ("-F", str(site.ssh.config)) if site.ssh.config else ()
    found += ("-l", site.ssh.user)
    if site.ssh.proxy_jump:
        found += ("-J", site.ssh.proxy_jump)
    return found


def ssh_argv(
    target: str, remote: tuple[str, ...], *, connect_timeout_s: int, options: tuple[str, ...] = ()
) -> list[str]:
    """The system ssh client, never prompting: BatchMode, a connect timeout, keep-alives."""
    return [
        "ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout_s}",
        "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2", *options, target, "--", *remote,
    ]  # fmt: skip


def run(site: Site, node: Node, command: str, timeout_s: float) -> SshResult:
    try:
        argv = ssh_argv(node.address, (command,), connect_timeout_s=CONNECT_TIMEOUT_S, options=options(site))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return SshResult(SSH_FAILED, "", f"timed out after {timeout_s:.0f} s")
    refused = hostkeys.explain(node.hostname, done.stderr) if done.returncode == SSH_FAILED else None
    return SshResult(done.returncode, done.stdout, refused or done.stderr.strip())
