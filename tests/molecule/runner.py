"""How the tests run `molecule test`: the environment, and scenarios as background runs.

The site scenario (one QEMU VM, every role) takes most of half an hour under software emulation, far
longer than anything else in the suite, while it mostly waits on the VM. The role scenarios (one nspawn
container each) take 50-130 s apiece, ~17 min one after another, of which the controller's own CPU is about
half (`base`: 64 s wall, 39 s user+sys): the rest is waiting on SSH, apt and the container. So the session
starts all of them as soon as collection has selected their tests (tests/molecule/conftest.py) and runs the
rest of the suite beside them: the site run on its own, the role scenarios in LANES lanes, each lane one
scenario after another. Their tests, ordered last, wait for their run and assert its result.

They can run beside the other tests because nothing they use is theirs: machine-wide address leases of
the molecule ranges (198.19.100.0/24 containers, 198.19.101.0/24 VMs), their own lab dirs and ephemeral
directories, their own apt server port (the site scenario's molecule.yml names 8082; each role lane's
environment names its own, LANE_APT_PORTS, so one lane's destroy never stops the server another lane's
converge is using), and no lab services (the site's Kraken endpoints are only rendered, never contacted).
Their CPU weight is a cgroup per run (CpuGroup), not a nice value: the kernel's autogroups make every
session one scheduling entity of the same weight, whatever its nice, and a run is many sessions (molecule's,
qemu's, each nspawn container's, its apt server's: each is started with setsid). The site run, the
session's longest chain, weighs as two sessions (SITE_CPU_SHARES), as its molecule and qemu sessions did;
each role scenario an eighth of one (ROLE_CPU_SHARES): the lanes have slack, and their containers, apt
servers and molecule sessions had weighed as four sessions or more beside the site and the foreground.
All 12 role scenarios in two lanes on the quiet 2-core machine: 373 s wall, 435 s CPU (one after another
in CI they took ~1,030 s).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SITE_TIMEOUT_S = 3600.0  # ~27 min alone on 2 cores; beside the suite it takes longer
ROLE_TIMEOUT_S = 1800.0  # one role scenario: 50-130 s alone
SITE_NICE = 10  # nice orders processes of one session only; the runs' weights are their cgroups' shares
ROLE_NICE = 15
SITE_CPU_SHARES = 2048  # a session of the foreground weighs 1024
ROLE_CPU_SHARES = 128
CGROUP_ROOT = Path("/sys/fs/cgroup")  # the v1 hierarchies cpu (weight) and cpuacct (CPU time)
LANE_APT_PORTS = (8083, 8084)  # one lab apt server per role lane (8081: by hand; 8082: the site scenario)


def molecule_env(scratch: Path) -> dict[str, str]:
    """The environment of one `molecule test`: the repository's tools, an ANSIBLE_HOME of its own."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_HOME"] = str(scratch / "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = str(scratch / "ansible-tmp")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_ROLES_PATH"] = str(REPO / "roles")
    env["PYTHONPATH"] = str(REPO)
    return env


@dataclass(frozen=True)
class CpuGroup:
    """One run's cgroup in the v1 `cpu` and `cpuacct` hierarchies: the whole run's CPU weight and CPU time.

    Every process of the run stays in it, also those that start sessions of their own (qemu, nspawn), so
    the kernel weighs the run as one entity of `shares` against each session outside (autogroups: 1024
    each); cpuacct counts the CPU of all of them, exited ones too. Where the hierarchies are missing or
    read-only (cgroup v2, no root) the run has no group and runs in the sessions it makes."""

    name: str
    shares: int
    root: Path = CGROUP_ROOT

    @property
    def dirs(self) -> tuple[Path, Path]:
        return self.root / "cpu" / self.name, self.root / "cpuacct" / self.name

    def create(self) -> list[Path]:
        """Make the group; the `cgroup.procs` files a process writes its pid to to join it ([] if none)."""
        try:
            for folder in self.dirs:
                folder.mkdir()
            (self.dirs[0] / "cpu.shares").write_text(str(self.shares), encoding="utf-8")
        except OSError:
            self.remove()
            return []
        return [folder / "cgroup.procs" for folder in self.dirs]

    def cpu_s(self) -> float | None:
        """CPU seconds of every process that was in the group, or None where there is no group."""
        try:
            return int((self.dirs[1] / "cpuacct.usage").read_text(encoding="utf-8")) / 1e9
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Remove the group if its processes are gone; one still in use (a lane's apt server that the lane's
        first scenario started serves its later ones) is removed with the run's scratch at the session's end."""
        for folder in self.dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()


# A shell that joins the cgroups named in FLEET_MOLECULE_CGROUPS and becomes the command: the run's first
# process is in its group before it starts anything (a preexec_fn would do the same, but is unsafe beside
# the session's threads).
JOIN_AND_EXEC = 'for procs in $FLEET_MOLECULE_CGROUPS; do echo $$ > "$procs"; done; exec "$@"'


@dataclass
class MoleculeRun:
    """`molecule test -s SCENARIO` of the project in the background, its output time-stamped into `log`."""

    project: Path
    scenario: str
    scratch: Path
    timeout_s: float
    nice: int
    cpu: CpuGroup
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    started: float = 0.0
    finished: float | None = None
    cpu_s: float | None = None  # the whole run's CPU (molecule, Ansible, ssh, qemu, the containers), once ended
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.scratch / "molecule.log"

    @property
    def ephemeral(self) -> Path:
        """molecule's ephemeral directory for the scenario (instance config, the lab dir under lab/)."""
        return self.scratch / "ephemeral"

    @property
    def seconds(self) -> float | None:
        """How long the run took, once it has ended."""
        return None if self.finished is None else self.finished - self.started

    def _env(self) -> dict[str, str]:
        env = molecule_env(self.scratch)
        env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(self.ephemeral)
        env.update(self.extra_env)
        return env

    @classmethod
    def start(cls, project: Path, scenario: str, timeout_s: float, nice: int, shares: int,
              extra_env: dict[str, str] | None = None) -> MoleculeRun:
        scratch = Path(tempfile.mkdtemp(prefix=f"fleet-molecule-{project.name}-{scenario}-"))
        run = cls(project, scenario, scratch, timeout_s, nice, CpuGroup(scratch.name, shares), extra_env or {})
        env = run._env()
        env["FLEET_MOLECULE_CGROUPS"] = " ".join(str(procs) for procs in run.cpu.create())
        run.started = time.monotonic()
        run.process = subprocess.Popen(
            ["sh", "-c", JOIN_AND_EXEC, "sh", "nice", "-n", str(nice), str(BIN / "molecule"), "test", "-s", scenario],
            cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        run._reader = threading.Thread(target=run._copy, name=f"molecule-{project.name}-{scenario}", daemon=True)
        run._reader.start()
        return run

    def _copy(self) -> None:
        """Time-stamp each line (seconds since the start), so the log shows where the time went."""
        assert self.process is not None and self.process.stdout is not None
        with open(self.log, "w", encoding="utf-8") as out:
            for line in self.process.stdout:
                out.write(f"{time.monotonic() - self.started:7.1f} {line}")
                out.flush()

    def wait(self) -> int:
        """The run's exit status; a run past its deadline is stopped (and its hosts destroyed) and fails."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=max(0.0, self.started + self.timeout_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            code = -1
        if self._reader is not None:
            self._reader.join(timeout=10)
        self._ended()
        return code

    def _ended(self) -> None:
        """Note when the run ended and what CPU it took, and give its cgroup back."""
        if self.finished is None:
            self.finished = time.monotonic()
            self.cpu_s = self.cpu.cpu_s()
            self.cpu.remove()

    def tail(self, chars: int = 20000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """Stop a run still going (the session ended early) and destroy its hosts."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            subprocess.run([str(BIN / "molecule"), "destroy", "-s", self.scenario], cwd=self.project,
                           env=self._env(), capture_output=True, timeout=300, check=False)
        self._ended()

    def remove(self) -> None:
        self.cpu.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)


def start_site() -> MoleculeRun:
    """The repository's own `site` scenario (its molecule.yml names its own apt port)."""
    return MoleculeRun.start(REPO, "site", SITE_TIMEOUT_S, SITE_NICE, SITE_CPU_SHARES)


@dataclass
class RoleOutcome:
    """What a role scenario's test asserts on: the exit status and the run's time-stamped output."""

    code: int
    seconds: float
    cpu_s: float | None
    tail: str


@dataclass
class RoleRuns:
    """The role scenarios in the background, in lanes of one scenario after another (see the module doc).

    A lane takes the next scenario from the shared queue (given longest first, so the lanes end together);
    each scenario's test waits for its outcome."""

    cases: list[tuple[Path, str]]
    lanes: int = len(LANE_APT_PORTS)
    _todo: queue.Queue[tuple[Path, str]] = field(default_factory=queue.Queue, repr=False)
    _done: dict[tuple[Path, str], RoleOutcome] = field(default_factory=dict, repr=False)
    _runs: list[MoleculeRun] = field(default_factory=list, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)

    @classmethod
    def start(cls, cases: list[tuple[Path, str]]) -> RoleRuns:
        runs = cls(cases)
        for case in cases:
            runs._todo.put(case)
        for port in LANE_APT_PORTS[:runs.lanes]:
            env = {"FLEET_LAB_APT_PORT": str(port), "FLEET_LAB_APT_URL": f"http://198.18.0.1:{port}/"}
            thread = threading.Thread(target=runs._lane, args=(env,), name=f"molecule-lane-{port}", daemon=True)
            thread.start()
            runs._threads.append(thread)
        return runs

    def _lane(self, env: dict[str, str]) -> None:
        while not self._stopping.is_set():
            try:
                project, scenario = self._todo.get_nowait()
            except queue.Empty:
                return
            run = MoleculeRun.start(project, scenario, ROLE_TIMEOUT_S, ROLE_NICE, ROLE_CPU_SHARES, env)
            with self._changed:
                self._runs.append(run)
            code = run.wait()
            outcome = RoleOutcome(code, run.seconds or 0.0, run.cpu_s, run.tail())
            with self._changed:
                self._done[(project, scenario)] = outcome
                self._changed.notify_all()
            if code == 0:
                run.remove()

    def outcome(self, project: Path, scenario: str, timeout_s: float) -> RoleOutcome:
        """The scenario's outcome, once its lane has run it (a lane that stopped first fails it)."""
        key = (project, scenario)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while key not in self._done:
                if self._stopping.is_set() or not any(t.is_alive() for t in self._threads):
                    never = RoleOutcome(-1, 0.0, None, "the scenario never ran (the lanes stopped)")
                    return self._done.get(key) or never
                if not self._changed.wait(timeout=min(5.0, max(0.0, deadline - time.monotonic()))) \
                        and time.monotonic() >= deadline:
                    return RoleOutcome(-1, 0.0, None, f"no outcome within {timeout_s:.0f} s")
            return self._done[key]

    def stop(self) -> None:
        """Stop the lanes (the session ended): the scenario each one runs is stopped and its hosts destroyed."""
        self._stopping.set()
        with self._changed:
            runs = list(self._runs)
        for run in runs:
            run.stop()
        for thread in self._threads:
            thread.join(timeout=60)
        for run in runs:
            run.remove()
