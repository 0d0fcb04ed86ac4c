"""How the tests run `molecule test`: the environment, and the site scenario as a background run.

The site scenario (one QEMU VM, every role) takes most of half an hour under software emulation, far
longer than anything else in the suite, while it mostly waits on the VM. So the session starts it as
soon as collection has selected it (tests/molecule/conftest.py) and runs the rest of the suite beside it;
its test, ordered last, waits for the run and asserts its result. It can run beside the other tests
because nothing it uses is theirs: its own address lease (198.19.101.0/24), its own lab dir and
ephemeral directory, its own apt server port (molecule/site/molecule.yml), and no lab services (its
Kraken endpoints are only rendered, never contacted). It runs at a lower CPU priority (nice 10), so the
tests beside it keep their timing and the VM takes the cycles they leave.
"""

from __future__ import annotations

import os
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
NICE = 10


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
class SiteRun:
    """`molecule test -s site` in the background, its output time-stamped into `log`."""

    scratch: Path
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

    def _env(self) -> dict[str, str]:
        env = molecule_env(self.scratch)
        env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(self.ephemeral)
        return env

    @classmethod
    def start(cls) -> SiteRun:
        run = cls(Path(tempfile.mkdtemp(prefix="fleet-site-")))
        run.started = time.monotonic()
        run.process = subprocess.Popen(
            ["nice", "-n", str(NICE), str(BIN / "molecule"), "test", "-s", "site"],
            cwd=REPO, env=run._env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        run._reader = threading.Thread(target=run._copy, name="site-scenario-log", daemon=True)
        run._reader.start()
        return run

    def _copy(self) -> None:
        """Time-stamp each line (seconds since the start), so the log shows where the time went."""
        assert self.process is not None and self.process.stdout is not None
        with open(self.log, "w", encoding="utf-8") as out:
            for line in self.process.stdout:
                out.write(f"{time.monotonic() - self.started:7.1f} {line}")
                out.flush()

    def wait(self, timeout_s: float = SITE_TIMEOUT_S) -> int:
        """The run's exit status; a run past the deadline is stopped (and its VM destroyed) and fails."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=max(0.0, self.started + timeout_s - time.monotonic()))
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
        """Stop a run still going (the session ended early) and destroy its VM; then drop the scratch dir."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            subprocess.run([str(BIN / "molecule"), "destroy", "-s", "site"], cwd=REPO, env=self._env(),
                           capture_output=True, timeout=300, check=False)
        self.finished = self.finished or time.monotonic()

    def remove(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
