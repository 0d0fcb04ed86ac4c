"""Shared fixtures for lab tests: a generated lab site of its own, driven through the real CLI.

Every test that asks for `lab_site` (or builds one with `make_lab_site`) gets a freshly generated
site in `tmp_path` with ports nobody else holds, its own lab directory (FLEET_LAB_DIR) and state
directory (FLEET_STATE_DIR), and a lab that is torn down afterwards even when the test fails, so lab
tests can run next to a developer's lab and next to each other. The CLI runs as a subprocess
(`provision.py` from the repository root) so exit codes, stderr and signals are the real ones.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet.maas import MaasClient, Machine
from fleet.site import Site, resolve_credentials
from fleet.state import JournalEntry, NodeState, StateDB
from lab.hosts import lifecycle
from lab.redfish.service import RedfishLabFiles
from lab.settings import load_lab_site
from lab.sitegen import NODES_PER_RACK, SiteShape, switch_span, write_site

REPO = Path(__file__).resolve().parents[2]
LAB_TIME_FACTOR = 0.005  # a 10-minute MAAS deploy takes 3 s; BMC power changes land in 5-55 ms
CLI_TIMEOUT_S = 120.0


def free_port() -> int:
    """A port the kernel just handed out (bind to 0), so it is free now and not in anyone's fixed range."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_ports(count: int, taken: set[int]) -> list[int]:
    """`count` different free ports (free_port), none of them in `taken` (a block already chosen)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


def _port_free(port: int) -> bool:
    with closing(socket.socket()) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(span: int, *, attempts: int = 200) -> int:
    """The first port of `span` consecutive free ports, clear of the kernel's ephemeral range.

    Ephemeral ports are where outgoing connections land at random, so a block there can be taken
    between this check and the lab binding it; below that range only a listener could collide.
    """
    low, _high = _ephemeral_range()
    ceiling = min(low, 65535) - span - 1
    for _ in range(attempts):
        base = random.randrange(20000, ceiling)
        ports = range(base, base + span)
        if all(_port_free(port) for port in ports):
            return base
    raise RuntimeError(f"no block of {span} free ports below {low}")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="utf-8").split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def bmc_span(racks: int) -> int:
    """BMC ports run from bmc_first + 11 to bmc_first + racks*10 + NODES_PER_RACK (see lab.sitegen)."""
    return racks * 10 + NODES_PER_RACK + 1


@dataclass
class LabSite:
    """A generated lab site plus the environment every CLI call of the test uses."""

    site_file: Path
    lab_dir: Path
    state_dir: Path
    env: dict[str, str]
    shape: SiteShape
    _clients: list[MaasClient] = field(default_factory=list)

    # -- the CLI ---------------------------------------------------------------------------
    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "provision.py", *args, "--site", str(self.site_file)]

    def cli(self, *args: str, timeout_s: float = CLI_TIMEOUT_S,
            stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run `provision.py ARGS --site SITE` to completion; output captured as text."""
        return subprocess.run(self.argv(*args), cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout_s, input=stdin, check=False,
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    def start(self, *args: str) -> subprocess.Popen:
        """Start `provision.py ARGS` without waiting (for kill and lock tests); output to files in the lab dir."""
        stamp = f"{time.monotonic_ns()}"
        out = open(self.lab_dir.parent / f"cli-{stamp}.out", "w")  # noqa: SIM115 - handed to the child
        err = open(self.lab_dir.parent / f"cli-{stamp}.err", "w")  # noqa: SIM115
        with out, err:
            return subprocess.Popen(self.argv(*args), cwd=REPO, env=self.env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, text=True)

    def lab(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab", "--site", str(self.site_file), *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=60, check=False)

    # -- what the world looks like ---------------------------------------------------------
    @property
    def site(self) -> Site:
        return load_lab_site(self.site_file)

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    def states(self) -> dict[str, NodeState]:
        db = StateDB(self.state_db)
        try:
            return {state.hostname: state for state in db.nodes()}
        finally:
            db.close()

    def journal(self, hostname: str | None = None) -> list[JournalEntry]:
        db = StateDB(self.state_db)
        try:
            return db.entries(hostname)
        finally:
            db.close()

    def events(self, hostname: str) -> list[str]:
        """The node's journal as `stage/event` strings, in order."""
        return [f"{entry.stage}/{entry.event}" for entry in self.journal(hostname)]

    def maas(self) -> MaasClient:
        site = self.site
        client = MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls,
                            poll_interval_s=0.05, request_timeout_s=10)
        self._clients.append(client)
        return client

    def machine(self, hostname: str) -> Machine:
        site = self.site
        return self.maas().find_machine(site.nodes[hostname])

    def status_json(self, *args: str) -> dict:
        result = self.cli("status", "--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def make_site(root: Path, *, racks: int = 1, time_factor: float = LAB_TIME_FACTOR, seed: int = 12,
              faults: list[dict] | None = None, max_hosts: int = 1, light_hosts: bool = False) -> LabSite:
    """Generate a site under `root` with free ports; nothing is started. `light_hosts`: every deployed node
    gets a light lab host (lab/hosts/light.py), up to `max_hosts`."""
    bmc_first = free_port_block(bmc_span(racks))
    taken = set(range(bmc_first, bmc_first + bmc_span(racks)))
    while True:  # the switch simulators' SSH ports, clear of the BMC block
        switch_first = free_port_block(switch_span(racks))
        switch_ports = set(range(switch_first, switch_first + switch_span(racks)))
        if not switch_ports & taken:
            taken |= switch_ports
            break
    singles = free_ports(6, taken)
    lab_dir = root / "lab"
    state_dir = root / "state"
    shape = SiteShape(racks=racks, name="labtest", state_dir=str(lab_dir), maas_port=singles[0], bmc_first=bmc_first,
                      sushy_port=singles[1], apt_port=singles[2], ufm_port=singles[3], slurmctld_port=singles[4],
                      prometheus_port=singles[5], switch_first=switch_first, time_factor=time_factor,
                      seed=seed, max_hosts=max_hosts, light_hosts=light_hosts, faults=faults or [])
    site_file = write_site(root / "site", shape)
    env = {**os.environ, "FLEET_LAB_DIR": str(lab_dir), "FLEET_STATE_DIR": str(state_dir),
           "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return LabSite(site_file, lab_dir, state_dir, env, shape)


def bmc_log(lab: LabSite | Path, hostname: str, since: float = 0.0) -> list[dict]:
    """What `hostname`'s BMC was asked since `since` (epoch s), oldest first, from the lab BMC front's own
    request log (method, path, status, fault, reset, User-Agent as `agent`); `lab` is a LabSite or a lab dir."""
    lab_dir = lab if isinstance(lab, Path) else lab.lab_dir
    log = RedfishLabFiles.under(lab_dir).requests_log
    return [entry for entry in map(json.loads, filter(None, log.read_text(encoding="utf-8").splitlines()))
            if entry["node"] == hostname and entry["ts"] >= since]


@contextmanager
def restored_environ(*keys: str) -> Iterator[None]:
    """`keys` of os.environ as they were before the block, once it ends. For labs that outlive one test (a
    module's lab points FLEET_LAB_DIR at itself for in-process helpers), which monkeypatch, per test, cannot."""
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def lab_environ(lab: LabSite) -> Iterator[LabSite]:
    """In-process helpers (load_site, StateDB, MaasClient) resolve `lab`'s dirs, as its CLI does, in the block."""
    with restored_environ("FLEET_LAB_DIR", "FLEET_STATE_DIR"):
        os.environ.update(FLEET_LAB_DIR=str(lab.lab_dir), FLEET_STATE_DIR=str(lab.state_dir))
        yield lab


@pytest.fixture
def make_lab_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LabSite]]:
    """Factory: `make_lab_site(racks=2, faults=[...])`; every lab it made is stopped at teardown."""
    made: list[LabSite] = []

    def make(**kwargs: object) -> LabSite:
        lab = make_site(tmp_path / f"lab{len(made)}", **kwargs)  # type: ignore[arg-type]
        # In-process helpers (load_site, StateDB, MaasClient) resolve the same dirs as the CLI.
        monkeypatch.setenv("FLEET_LAB_DIR", str(lab.lab_dir))
        monkeypatch.setenv("FLEET_STATE_DIR", str(lab.state_dir))
        made.append(lab)
        return lab

    yield make
    with ExitStack() as stack:  # every lab is stopped even when another one's teardown fails
        for lab in made:
            stack.callback(_teardown, lab)


def _teardown(lab: LabSite) -> None:
    lab.close()
    if lab.lab_dir.exists():
        result = lab.lab("down")
        if result.returncode != 0:
            raise RuntimeError(f"lab down failed for {lab.site_file}: {result.stderr}")
        left = subprocess.run([sys.executable, "-m", "lab.hosts", "--lab-dir", str(lab.lab_dir), "list", "--json"],
                              cwd=REPO, env=lab.env, capture_output=True, text=True, check=True)
        if json.loads(left.stdout or "[]"):
            raise RuntimeError(f"lab down left lab hosts running: {left.stdout}")


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty lab dir for tests that start lab hosts themselves; every host left in it is stopped after."""
    folder = tmp_path / "lab"
    folder.mkdir()
    yield folder
    lifecycle.stop_all(folder)


@pytest.fixture
def lab_site(make_lab_site: Callable[..., LabSite]) -> LabSite:
    """A one-rack lab site (rack 1: gpu-001-01..04), not yet started: the CLI starts it on first use."""
    return make_lab_site(racks=1)
