"""The configure stage: `playbooks/site.yml` through ansible-runner, mapped back to nodes.

Nodes reach this stage at different times; one Ansible run per node would pay Ansible's start-up
(~2-3 s) and fact gathering hundreds of times, and one run for the whole rack would be a barrier.
So nodes arriving within a short window share a run (`Batcher`), and each node's thread gets its
own result back. Events are read as they stream (`HostResults.feed`, a pure reducer) to name the
failing task per node, to collect the hardware steps the roles skipped (and why), and to tell an
unreachable host (retried once by the workflow) from a failed one (quarantined with the task).

ansible-runner seeds the playbook's environment with the whole of ours and writes it, verbatim,
to `artifacts/<ident>/command`: the MAAS key or a cloud token in the operator's shell would land on
disk. So the runner is built from its documented pieces (`RunnerConfig`, `Runner`) and its
environment replaced by `runner_env`: a short allow-list of ours plus what the runner and we add.
Its private data dir carries our pid in the name; one left by a killed run (SIGKILL skips the
cleanup) is removed when the next run starts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet import hostkeys
from fleet.errors import ConfigureError
from fleet.proc import pid_alive
from fleet.site import Node, Site
from fleet.slots import Slots
from fleet.workflow import NodeContext, StageResult

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / "playbooks" / "site.yml"


@dataclass
class HostResult:
    """What one host did in one run, reduced from its events."""

    ok_tasks: int = 0
    changed: int = 0
    failed_task: str = ""
    failed_msg: str = ""
    unreachable: str = ""
    skipped_steps: list[str] = field(default_factory=list)
    reboot_required: list[str] = field(default_factory=list)  # why, per role that needs one and did not reboot

    @property
    def ok(self) -> bool:
        return not (self.failed_task or self.unreachable)


class HostResults:
    """Reduces ansible-runner events to a HostResult per host (pure: feed it recorded events)."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostResult] = {}

    def host(self, name: str) -> HostResult:
        return self.hosts.setdefault(name, HostResult())

    def feed(self, event: dict) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        name = data.get("host") or ""
        if kind == "runner_on_ok":
            result = self.host(name)
            res = data.get("res") or {}
            result.ok_tasks += 1
            result.changed += bool(res.get("changed"))
            # The roles record hardware steps they skipped with `set_stats: {data: {fleet_skipped: [...]}}`;
            # per-host stats never reach ansible-runner's summary, so they are read from the task's result.
            stats = (res.get("ansible_stats") or {}).get("data") or {}
            result.skipped_steps.extend(str(step) for step in stats.get("fleet_skipped") or [])
            result.reboot_required.extend(str(why) for why in stats.get("fleet_reboot_required") or [])
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            result = self.host(name)
            if not result.failed_task:  # the first failure is the cause; later ones are consequences
                result.failed_task = str(data.get("task") or "")
                result.failed_msg = _message(data.get("res") or {})
        elif kind == "runner_on_unreachable":
            self.host(name).unreachable = _message(data.get("res") or {})


def _message(res: dict) -> str:
    text = str(res.get("msg") or res.get("stderr") or res.get("reason") or "")
    return " ".join(text.split())[:400]


def role_versions(roles_dir: Path = REPO / "roles") -> dict[str, str]:
    """A content hash per role: exactly what was applied, committed or not."""
    versions = {}
    for role in sorted(p for p in roles_dir.iterdir() if (p / "tasks").is_dir()):
        digest = hashlib.sha256()
        for path in sorted(p for p in role.rglob("*") if p.is_file() and "molecule" not in p.parts):
            digest.update(str(path.relative_to(role)).encode() + b"\0" + path.read_bytes())
        versions[role.name] = digest.hexdigest()[:12]
    return versions


RunFn = Callable[[Sequence[str]], dict[str, HostResult]]

# What Ansible needs from the operator's environment; everything else (credentials first) stays out.
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "SSH_AUTH_SOCK")
RUNNER_DIR_PREFIX = "fleet-ansible-"
_RUNNER_DIR = re.compile(rf"^{RUNNER_DIR_PREFIX}(\d+)-")


def runner_env(prepared: Mapping[str, str], process: Mapping[str, str]) -> dict[str, str]:
    """The runner's prepared environment without what it copied from ours (`process`), except
    `PASSED_ENV` and `LC_*`; what the runner or our `envvars` set (a new key, or a changed value) stays."""
    return {key: value for key, value in prepared.items()
            if key not in process or process[key] != value or key in PASSED_ENV or key.startswith("LC_")}


def stale_runner_dirs(names: Iterable[str], alive: Callable[[int], bool]) -> list[str]:
    """Our runner dirs (`fleet-ansible-<pid>-...`) whose process is gone."""
    return [name for name in names if (m := _RUNNER_DIR.match(name)) and not alive(int(m.group(1)))]


def clean_stale_runner_dirs(root: Path) -> list[Path]:
    """Remove runner dirs of dead runs under `root` (they may hold inventories and event data)."""
    try:
        names = [entry.name for entry in os.scandir(root) if entry.is_dir(follow_symlinks=False)
                 and entry.stat(follow_symlinks=False).st_uid == os.getuid()]
    except OSError:
        return []
    removed = []
    for name in stale_runner_dirs(names, pid_alive):
        shutil.rmtree(root / name, ignore_errors=True)
        removed.append(root / name)
        log.info("removed the runner directory %s left by a run that was killed", root / name)
    return removed


class Batcher:
    """Collects nodes that arrive within `window_s` (or up to `max_batch`) into one run of `run_fn`, at most
    `max_parallel` runs at once (the site's `ansible.max_parallel_playbooks`).

    A batch that waits for a run slot keeps taking nodes until it is full, so a 512-node wave becomes
    full batches run a few at a time, not 8 ansible-playbook processes at once on the ops host."""

    def __init__(self, run_fn: RunFn, window_s: float = 2.0, max_batch: int = 64, max_parallel: int = 4) -> None:
        self.run_fn = run_fn
        self.window_s = window_s
        self.max_batch = max_batch
        self._slots = Slots(max_parallel)
        self._lock = threading.Condition()
        self._pending: list[str] = []
        self._results: dict[str, HostResult | BaseException] = {}
        self._leader = False

    def submit(self, hostname: str) -> HostResult:
        with self._lock:
            self._pending.append(hostname)
            self._lock.notify_all()
            lead = not self._leader
            self._leader = True
        if lead:
            self._lead()
        with self._lock:
            while hostname not in self._results:
                self._lock.wait()
            outcome = self._results.pop(hostname)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _lead(self) -> None:
        """The first node of a batch waits out the window, then runs the batch for everyone in it."""
        deadline = time.monotonic() + self.window_s
        with self._lock:
            while len(self._pending) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
        self._slots.acquire()  # nodes arriving meanwhile still join this batch, up to max_batch
        try:
            with self._lock:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
                self._leader = False
                if self._pending:  # the overflow gets its own leader
                    threading.Thread(target=self._lead_overflow, daemon=True).start()
            try:
                results: dict[str, HostResult | BaseException] = dict(self.run_fn(batch))
            except Exception as err:  # noqa: BLE001 - every node of the batch gets the same failure
                results = dict.fromkeys(batch, err)
        finally:
            self._slots.release()
        with self._lock:
            for name in batch:
                self._results[name] = results.get(name) or HostResult(unreachable="no events for this host")
            self._lock.notify_all()

    def _lead_overflow(self) -> None:
        with self._lock:
            if self._leader or not self._pending:
                return
            self._leader = True
        self._lead()


def run_runner(runner: Any) -> None:
    """Run ansible-runner; its lost grip on the playbook's output is a retryable failure, not a crash.

    ansible-runner (pexpect mode) reads ansible-playbook's output through a pty and, once the child has
    exited, pumps it one last time with a fixed 5 s timeout (ansible_runner/runner.py, "fix for
    ansible-runner#1330"). On an ops host at load 80 that read can miss its deadline and raises
    pexpect's TIMEOUT out of `run()`: the playbook itself may have finished, but which hosts did is
    unknown. The roles are idempotent, so the batch is failed retryably and runs again.
    """
    import pexpect

    try:
        runner.run()
    except pexpect.ExceptionPexpect as err:
        raise ConfigureError(
            f"ansible-runner lost ansible-playbook's output ({type(err).__name__}): the run's outcome is unknown",
            service_message=str(err).splitlines()[0] if str(err) else None,
            hint="the ops host was likely overloaded; the batch is retried (the roles are idempotent)",
        ) from err


class AnsibleRun:
    """One ansible-runner run of site.yml against some hosts of the site."""

    def __init__(self, site: Site, playbook: Path = PLAYBOOK, progress: Callable[[str, str], None] | None = None,
                 forks: int = 10, extravars: Mapping[str, str] | None = None) -> None:
        self.site = site
        self.playbook = playbook
        self.progress = progress or (lambda *_: None)
        self.forks = forks
        self.extravars = dict(extravars or {})  # the run's own role variables (the state dir's dmesg baseline)
        clean_stale_runner_dirs(Path(tempfile.gettempdir()))

    def __call__(self, hosts: Sequence[str]) -> dict[str, HostResult]:
        import ansible_runner

        results = HostResults()
        with tempfile.TemporaryDirectory(prefix=f"{RUNNER_DIR_PREFIX}{os.getpid()}-") as tmp:
            data_dir = Path(tmp)
            inventory = self._inventory(data_dir)

            def on_event(event: dict) -> bool:
                results.feed(event)
                data = event.get("event_data") or {}
                if event.get("event") == "runner_on_start" and data.get("host"):
                    self.progress(data["host"], str(data.get("task", "")))
                return False  # runner need not keep events on disk: we reduced them already

            log.info("ansible: %s on %d host(s): %s", self.playbook.name, len(hosts), ",".join(hosts))
            config = ansible_runner.RunnerConfig(
                private_data_dir=str(data_dir), project_dir=str(REPO), playbook=str(self.playbook),
                inventory=str(inventory), limit=",".join(hosts), forks=self.forks, quiet=True,
                envvars=self._env(data_dir), extravars={**self.extravars, "fleet_configure_hosts": "all"},
                cmdline=self._cmdline(),
            )
            config.prepare()
            config.env = runner_env(config.env, os.environ)
            runner = ansible_runner.Runner(config, event_handler=on_event)
            run_runner(runner)
            if runner.rc != 0 and not any(not r.ok for r in results.hosts.values()):
                stdout = runner.stdout.read()[-1500:] if runner.stdout else ""
                raise ConfigureError(f"ansible-runner ended with {runner.status} (rc {runner.rc})",
                                     service_message=stdout.strip(), hint="run the playbook by hand with -vvv")
        return results.hosts

    def _inventory(self, data_dir: Path) -> Path:
        path = data_dir / "inventory" / "fleet.yml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump({"plugin": "fleet", "site": str(self.site.path)}), encoding="utf-8")
        return path

    def _cmdline(self) -> str:
        """The site's variable overlays (the lab's: its apt repository instead of NVIDIA's, no NTP outside)."""
        return " ".join(f"-e @{path}" for path in self.site.ansible.vars_files)

    def _env(self, data_dir: Path) -> dict[str, str]:
        env = {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_HOME": str(data_dir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(data_dir / "tmp"),
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_INVENTORY_PLUGINS": str(REPO / "plugins" / "inventory"),
            "ANSIBLE_INVENTORY_ENABLED": "fleet",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
            # ansible-playbook lives beside this interpreter (the virtualenv), which need not be on PATH.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        # ansible.cfg's connection sharing, the nodes' host keys checked strictly against the tool's own
        # known_hosts (recorded by the hostkey stage), then the site's ssh_config (user, key, bastion):
        # ssh takes the first value of an option, so the host key settings win over any config file.
        ssh_args = ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
                    *hostkeys.check_options(hostkeys.known_hosts_file(self.site))]
        if self.site.ssh.config:
            ssh_args += ["-F", str(self.site.ssh.config)]
        env["ANSIBLE_SSH_ARGS"] = shlex.join(ssh_args)
        env.update(self.site.ansible.env)
        return env


class ConfigureStage:
    """Workflow stage: configure the node with the roles, in batches shared with its neighbours."""

    name = "configure"
    max_attempts = 2  # an unreachable host is retried once; a failed task is not (it would fail again)

    def __init__(self, site: Site, run_fn: RunFn | None = None, window_s: float = 2.0,
                 progress: Callable[[str, str], None] | None = None, extravars: Mapping[str, str] | None = None,
                 max_parallel: int | None = None) -> None:
        parallel = max_parallel or site.ansible.max_parallel_playbooks  # the site's, unless the caller says
        self.batcher = Batcher(run_fn or AnsibleRun(site, progress=progress, extravars=extravars), window_s,
                               max_parallel=parallel)
        self.versions = role_versions()

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        result = self.batcher.submit(node.hostname)
        evidence = {"roles": self.versions, "changed": result.changed, "skipped_hardware_steps": result.skipped_steps}
        if result.unreachable:
            refused = hostkeys.explain(node.hostname, result.unreachable)  # ssh refused the node's host key
            if refused:
                return StageResult(False, refused, evidence, retryable=False, quarantine=True)
            return StageResult(False, f"unreachable over SSH: {result.unreachable}", evidence)
        if result.failed_task:
            return StageResult(False, f"task '{result.failed_task}' failed: {result.failed_msg}", evidence,
                               retryable=False)
        if result.reboot_required:
            # The node still runs what the role replaced (the old NVIDIA module): checks would pass
            # against the old driver, so it is not configured until it reboots.
            return StageResult(False, f"reboot required: {'; '.join(result.reboot_required)}; reboot the node "
                               "(or set nvidia_driver_reboot: true to let the role do it), then run again",
                               {**evidence, "reboot_required": result.reboot_required}, retryable=False)
        for step in result.skipped_steps:
            ctx.journal("hardware_step_skipped", step=step)
        detail = f"{result.ok_tasks} tasks ok, {result.changed} changed"
        if result.skipped_steps:
            detail += f"; {len(result.skipped_steps)} hardware step(s) skipped (no GPU/HCA here)"
        return StageResult(True, detail, evidence)
