"""How the control plane works against this site: where its state lives, how it reaches nodes, how long it waits.

Every value here is an ordinary duration, path or command, the same for a production site and the
lab: the lab's generator (lab/sitegen.py) writes the lab site's values (its ssh_config, its apt
repository, its deadlines already on its clock), so production code never asks whether a site is the lab.

    path_vars:  {FLEET_LAB_DIR: ../../.lab}   defaults for $VARS in the site's paths (the environment wins)
    state_dir:  $FLEET_LAB_DIR/state           the state DB's directory (default /var/lib/fleet/<site> or XDG)
    before_run: ["{python}", -m, lab, --site, "{site}", up]   run before `up`/`reimage` (idempotent)
    ssh:        {config: PATH, user: ubuntu, proxy_jump: ops@bastion:22}
                the system ssh client's config file, the login user (MAAS's Ubuntu images take only
                `ubuntu`, cloud-init's default user; root work goes through sudo: Ansible become, the
                health sweep) and an optional bastion between the ops host and the nodes (ssh -J)
    ansible:    {vars: [lab], env: {NAME: value}, max_parallel_playbooks: 4}
                playbooks/vars/<name>.yml overlays, runner environment, ansible-playbook runs at once
    timeouts:   {maas_deploy_s: 2400, ...}     see `Timeouts`
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fleet.site.schema import Problems

PLAYBOOK_VARS = Path(__file__).resolve().parents[2] / "playbooks" / "vars"
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOP = r"(?:[a-z_][a-z0-9_-]*@)?[A-Za-z0-9.\-\[\]:]+"  # [user@]host[:port] (an IPv6 host in brackets)
_JUMP = re.compile(rf"^{_HOP}(?:,{_HOP})*$")
# Old timeouts names a site file may still use -> today's name (read as the new one, with a warning).
RENAMED_TIMEOUTS = {"maas_deploy_verdict_s": "maas_verdict_s"}
log = logging.getLogger("fleet.site")


@dataclass(frozen=True)
class Timeouts:
    """How long the control plane waits on real services (seconds), and how often it looks.

    The defaults are the real services' own durations. Production code uses these values as given and
    never scales them: a site that runs faster (the lab) writes its own, shorter ones."""

    maas_deploy_s: float = 40 * 60.0  # MAAS's own monitored timeout for Deploying (node_status.py)
    # Past a MAAS deadline (deploy or commission) a machine MAAS still calls Deploying/Commissioning waits
    # this long for MAAS's own verdict: its status monitor marks the operation failed on the timeout, checking
    # every 60 s (maasserver/status_monitor.py, StatusMonitorService); two of its passes, so our clock running
    # ahead of MAAS's does not redeploy it. Was `maas_deploy_verdict_s` (still read, with a warning).
    maas_verdict_s: float = 2 * 60.0
    maas_commission_s: float = 20 * 60.0  # ... and for Commissioning
    maas_release_s: float = 5 * 60.0
    maas_erase_s: float = 30 * 60.0
    maas_poll_s: float = 10.0
    bmc_poll_s: float = 2.0
    stage_backoff_s: float = 2.0  # a failed stage's first retry waits this, doubling each attempt (jittered)
    # iDRAC lists no NICs (and may report no service tag) until its inventory collection has run after the
    # server first gets power (Dell's "Collect System Inventory On Restart": minutes); discover re-reads this long.
    bmc_inventory_s: float = 5 * 60.0
    bmc_inventory_poll_s: float = 15.0
    # The iDRAC's Lifecycle Controller reloads for minutes after an iDRAC or host reset and refuses jobs
    # meanwhile; python-dracclient (Ironic's iDRAC client) gives it 16 minutes (96 polls, 10 s apart).
    lc_ready_s: float = 15 * 60.0
    lc_poll_s: float = 20.0
    # Dell's iDRAC-Redfish-Scripting gives a BIOS or update job 30 minutes ("Timeout of 30 minutes has been
    # hit") and polls it every 10 to 30 s.
    bios_job_s: float = 30 * 60.0
    firmware_job_s: float = 30 * 60.0
    idrac_job_poll_s: float = 10.0


@dataclass(frozen=True)
class SshSettings:
    """The system ssh client's settings for this site's nodes: a config file (keys, options), the login
    user and a bastion."""

    config: Path | None = None
    user: str = "ubuntu"
    proxy_jump: str = ""


# The configure stage's ansible-playbook runs at once (each a batch of up to 64 nodes with 10 forks): 40
# nodes configured at a time. Each run is a controller process plus a worker per fork; past what the ops
# host's cores carry they only share its CPUs (more than ~10 forks on 2 cores is slower, not faster), so
# later batches wait for a slot, and a 512-node wave does not start 8 runs at once.
MAX_PARALLEL_PLAYBOOKS = 4


@dataclass(frozen=True)
class AnsibleSettings:
    """Variable overlays (`playbooks/vars/<name>.yml`, passed as -e @file), environment for the runs, and how
    many configure runs (ansible-playbook processes) may run at once."""

    vars_files: tuple[Path, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    max_parallel_playbooks: int = MAX_PARALLEL_PLAYBOOKS


def expand_path(base: Path, text: str, path_vars: dict[str, Path]) -> Path:
    """A path from the site: $VARS from the environment, else from `path_vars`; relative to the site file."""
    for name, default in path_vars.items():
        if name not in os.environ:
            text = text.replace("${" + name + "}", str(default)).replace("$" + name, str(default))
    path = Path(os.path.expandvars(text)).expanduser()
    return path if path.is_absolute() else (base.parent / path).resolve()


def parse_path_vars(file: Path, raw: Any, problems: Problems) -> dict[str, Path]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or any(isinstance(v, (dict, list)) or v is None for v in raw.values()):
        problems.add(file, "path_vars", "expected a mapping of variable -> path", "path_vars: {DATA: ../data}")
        return {}
    return {str(name): (file.parent / str(value)).resolve() for name, value in raw.items()}


def parse_before_run(file: Path, raw: Any, problems: Problems) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(word, str) for word in raw):
        problems.add(file, "before_run", "expected a command as a list of words",
                     'before_run: ["{python}", "-m", "mytool", "--site", "{site}", "up"]')
        return ()
    return tuple(raw)


def parse_ssh(file: Path, raw: Any, path_vars: dict[str, Path], problems: Problems) -> SshSettings:
    if raw is None or not problems.keys(raw, file, "ssh", set(), {"config", "user", "proxy_jump"}):
        return SshSettings()
    config = raw.get("config")
    user = str(raw.get("user") or "ubuntu")
    if not _USER.match(user):
        problems.add(file, "ssh.user", f"'{user}' is not a login name",
                     "write the nodes' login user, e.g. user: ubuntu (MAAS's Ubuntu images)")
    if user == "root":
        problems.add(file, "ssh.user", "root logins are refused by MAAS-deployed Ubuntu",
                     "write user: ubuntu; the tool uses sudo where it needs root")
    jump = str(raw.get("proxy_jump") or "")
    if jump and not _JUMP.match(jump):
        problems.add(file, "ssh.proxy_jump", f"'{jump}' is not an ssh -J destination",
                     "write [user@]host[:port], several joined by commas")
    return SshSettings(expand_path(file, str(config), path_vars) if config else None, user, jump)


def parse_ansible(file: Path, raw: Any, problems: Problems) -> AnsibleSettings:
    if raw is None or not problems.keys(raw, file, "ansible", set(), {"vars", "env", "max_parallel_playbooks"}):
        return AnsibleSettings()
    parallel = raw.get("max_parallel_playbooks", MAX_PARALLEL_PLAYBOOKS)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        problems.add(file, "ansible.max_parallel_playbooks", f"expected a whole number of runs >= 1, got {parallel!r}",
                     f"max_parallel_playbooks: {MAX_PARALLEL_PLAYBOOKS} (ansible-playbook runs at once; "
                     "raise it on an ops host with more cores)")
        parallel = MAX_PARALLEL_PLAYBOOKS
    files = []
    for index, name in enumerate(raw.get("vars") or []):
        path = PLAYBOOK_VARS / f"{name}.yml"
        if not path.is_file():
            problems.add(file, f"ansible.vars[{index}]", f"no variables file {path}",
                         f"name a file of {PLAYBOOK_VARS} without .yml")
        else:
            files.append(path)
    env = raw.get("env") or {}
    if not isinstance(env, dict) or any(isinstance(v, (dict, list)) for v in env.values()):
        problems.add(file, "ansible.env", "expected a mapping of NAME -> value", "env: {HTTPS_PROXY: http://proxy:3128}")
        env = {}
    return AnsibleSettings(tuple(files), {str(k): str(v) for k, v in env.items()}, parallel)


def renamed_timeouts(raw: dict[Any, Any]) -> tuple[dict[Any, Any], dict[Any, Any], list[tuple[str, str]]]:
    """`raw` read under the current timeouts names (pure): (values, {current name: name as written}, [(old, new)
    both set]).

    A site file written before a rename keeps working, and a problem with its value names the key the
    person wrote. One that sets both names is ambiguous (which value did the person mean?): the old
    one is dropped here and the caller refuses the file rather than pick one."""
    values, written, both = dict(raw), {name: name for name in raw}, []
    for old, new in RENAMED_TIMEOUTS.items():
        if old not in raw:
            continue
        del written[old]
        if new in raw:
            both.append((old, new))
            del values[old]
        else:
            values[new], written[new] = values.pop(old), old
    return values, written, both


def parse_timeouts(file: Path, raw: Any, problems: Problems) -> Timeouts:
    names = {f.name for f in fields(Timeouts)}
    if raw is None or not problems.keys(raw, file, "timeouts", set(), names | set(RENAMED_TIMEOUTS)):
        return Timeouts()
    raw, written, both = renamed_timeouts(raw)
    for old, new in both:
        problems.add(file, f"timeouts.{old}", f"timeouts.{old} and timeouts.{new} are both set ({old} is the "
                     f"old name of {new})", f"keep only {new}: {raw[new]!r} (delete the {old} line)")
    for name, key in written.items():
        if key != name:
            log.warning("%s: timeouts.%s is deprecated: rename it to timeouts.%s", file, key, name)
    values = {}
    for name in names & set(raw):
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.add(file, f"timeouts.{written[name]}", f"expected a positive number of seconds, got {value!r}",
                         f"{name}: {getattr(Timeouts, name):g}")
        else:
            values[name] = float(value)
    return Timeouts(**values)
