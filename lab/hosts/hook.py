"""The lab MAAS simulator's hook: a deployed node reboots into its OS -> boot its lab host; released -> throw it away.

The simulator runs `argv + [hostname, event]` for every machine whose deployment reboots into its OS
(`deployed`, at "Rebooting") or that finishes releasing, a few at once. Hook runs of one lab are
serialised by a lock file, so the cap on simultaneous hosts (`lab.hosts.max`) is counted exactly; a
deploy beyond the cap gets no host and says so at WARNING in `lab_dir/logs/hosts.log` (the node is
Deployed in MAAS, like a machine whose SSH never comes up, and the configure stage reports it unreachable).

Real MAAS says Deployed once the deployed OS's cloud-init asked for its user-data, so its sshd follows
within seconds (lab.maas.states). A full host boots in real time (a container's systemd, ~1-5 s, one at a
time under the lock), while the lab's deploy deadlines run on the lab clock (12 s at the lab site's
factor): gating Deployed on this hook would push 4 nodes' Deployed past the tool's deadline. So this
hook runs beside Deployed (its hook file has no `boots_os`) and the tool's hostkey stage waits for the
node's sshd; the light hosts' hook (lab.hosts.light, one sshd each) does gate Deployed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fleet.errors import FleetError
from fleet.site import Site
from lab import faults as lab_faults
from lab.filelock import locked
from lab.hosts import hardware, lifecycle, nspawn
from lab.hosts.plan import HookAction, decide_hook
from lab.slurm import node as slurm_node

log = logging.getLogger(__name__)

EVENTS = ("deployed", "released")


def handle(site: Site, lab_dir: Path, event: str, hostname: str) -> HookAction:
    """Apply one MAAS event to the node's lab host; returns what was decided (and done)."""
    node = site.nodes.get(hostname)
    if node is None:
        raise FleetError(f"MAAS hook for {hostname}, which is not in the site {site.path}", node=hostname)
    if site.lab is None:
        raise FleetError(f"site {site.path} has no lab: section, so it has no lab hosts", node=hostname)
    settings = site.lab.hosts
    lab_dir.mkdir(parents=True, exist_ok=True)
    with locked(lifecycle.hosts_lock(lab_dir)):
        running = frozenset(nspawn.running_hosts(lab_dir))
        action = decide_hook(event, hostname, running, settings.max_hosts)
        level = logging.WARNING if action.action == "skip" and event == "deployed" else logging.INFO
        log.log(level, "%s: %s", hostname, action.reason)
        if event == "released" and (cleared := lab_faults.clear_on_reimage(lab_dir, hostname)):
            log.info("%s: released, so the lab clears %s (a reinstall does)", hostname, ", ".join(cleared))
        if action.action == "stop":
            lifecycle.stop(hostname, lab_dir)
        elif action.action == "start":
            if hostname in running:
                lifecycle.stop(hostname, lab_dir)
            nspawn.start(hostname, node.address, lab_dir, bridge_name=settings.bridge, gateway=settings.gateway,
                         login_user=site.ssh.user)
            chosen = hardware.install(nspawn.hosts_dir(lab_dir) / hostname / "merged", site, hostname, lab_dir)
            log.info("%s: lab hardware set %s", hostname, chosen)
            if slurm_node.enrol_later(site, lab_dir, hostname):
                log.info("%s: joining the lab's Slurm in the background (logs/slurm-enrol.log)", hostname)
    return action
