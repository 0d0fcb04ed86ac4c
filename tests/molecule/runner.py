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
They run at a lower CPU priority (the site at nice 10, the role lanes at 15: the site run is the longest
chain of the session, the lanes have slack), so the tests beside them keep their timing and the scenarios
take the cycles those leave. All 12 role scenarios in two lanes on the quiet 2-core machine: 373 s wall,
435 s CPU (one after another in CI they took ~1,030 s).
"""

from __future__ import annotations

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
SITE_NICE = 10
ROLE_NICE = 15  # below the site run: it is the suite's longest chain, the role lanes have slack
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


@dataclass
class MoleculeRun:
    """`molecule test -s SCENARIO` of the project in the background, its output time-stamped into `log`."""

    project: Path
    scenario: str
    scratch: Path
    timeout_s: float
    nice: int
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    started: float = 0.0
    finished: float | None = None
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
    def start(cls, project: Path, scenario: str, timeout_s: float, nice: int,
              extra_env: dict[str, str] | None = None) -> MoleculeRun:
        scratch = Path(tempfile.mkdtemp(prefix=f"fleet-molecule-{project.name}-{scenario}-"))
        run = cls(project, scenario, scratch, timeout_s, nice, extra_env or {})
        run.started = time.monotonic()
        run.process = subprocess.Popen(
            ["nice", "-n", str(nice), str(BIN / "molecule"), "test", "-s", scenario],
            cwd=project, env=run._env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
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
        self.finished = self.finished or time.monotonic()
        return code

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
        self.finished = self.finished or time.monotonic()

    def remove(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def start_site() -> MoleculeRun:
    """The repository's own `site` scenario (its molecule.yml names its own apt port)."""
    return MoleculeRun.start(REPO, "site", SITE_TIMEOUT_S, SITE_NICE)


@dataclass
class RoleOutcome:
    """What a role scenario's test asserts on: the exit status and the run's time-stamped output."""

    code: int
    seconds: float
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
            run = MoleculeRun.start(project, scenario, ROLE_TIMEOUT_S, ROLE_NICE, env)
            with self._changed:
                self._runs.append(run)
            code = run.wait()
            outcome = RoleOutcome(code, run.seconds or 0.0, run.tail())
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
                    return self._done.get(key) or RoleOutcome(-1, 0.0, "the scenario never ran (the lanes stopped)")
                if not self._changed.wait(timeout=min(5.0, max(0.0, deadline - time.monotonic()))) \
                        and time.monotonic() >= deadline:
                    return RoleOutcome(-1, 0.0, f"no outcome within {timeout_s:.0f} s")
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
