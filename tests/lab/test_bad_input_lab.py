"""Bad input against a running lab: `provision.py` as a subprocess, the lab's own logs as the witness.

Every case is refused with one paragraph naming what is wrong and where, exit 2 for bad input or 1
for a runtime failure, no traceback, and nothing powered, deployed, released or tagged: the BMC
front's request log shows no write (POST, PATCH, PUT, DELETE: ours or MAAS's power driver's), the lab
MAAS's log no action it accepted and no tag changed. The cases share one lab (module fixture) so the
whole file costs one lab start; each case runs a site variant without `before_run` (the lab is up)
and its own state directory.

The corpus's other half, without a lab: tests/unit/fleet/commands/test_bad_input.py (inventories,
CLI arguments, secrets, state files) and tests/unit/fleet/test_inventory_broken.py (the messages).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lab import faults as lab_faults
from lab.hosts.proc import pid_alive
from lab.maas import service as maas_service
from lab.maas import states as maas_states
from lab.maas import store as maas_store
from lab.redfish.service import RedfishLabFiles
from tests.lab.conftest import REPO, LabSite, free_port, lab_environ, make_site

pytestmark = [pytest.mark.lab]

WRITES = ("POST", "PATCH", "PUT", "DELETE")
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
STAGE_STARTED = re.compile(r"^\d\d:\d\d:\d\d \S+ \w+ start$", re.MULTILINE)


def closed_port() -> int:
    """A port nothing listens on (the kernel just handed it out and it was closed again)."""
    return free_port()


@dataclass
class Witness:
    """The lab's logs and MAAS state before a case, to compare with after it."""

    bmc_at: int
    maas_at: int
    machines: dict[str, tuple[int, str] | None]


class BadInputLab:
    """One running lab; cases run site variants against it and read its logs."""

    def __init__(self, lab: LabSite, root: Path) -> None:
        self.lab, self.root = lab, root
        self._n = 0

    # -- the lab's own records ----------------------------------------------------------------
    @property
    def bmc_log(self) -> Path:
        return RedfishLabFiles.under(self.lab.lab_dir).requests_log

    @property
    def maas_log(self) -> Path:
        return self.lab.lab_dir / "logs" / "maas.log"

    def machines(self) -> dict[str, tuple[int, str] | None]:
        """hostname -> (MAAS status, image) as the lab MAAS keeps them; None: MAAS does not know it.
        (Tag changes are read from the MAAS log, which has a line for each.)"""
        client = self.lab.maas()
        found: dict[str, tuple[int, str] | None] = {}
        for name, node in self.lab.site.nodes.items():
            machine = client.lookup(node)
            found[name] = None if machine is None else (machine.status, machine.distro_series)
        return found

    def witness(self) -> Witness:
        return Witness(_size(self.bmc_log), _size(self.maas_log), self.machines())

    def touched(self, before: Witness) -> list[str]:
        """Everything destructive the lab saw since `before`: BMC writes, MAAS actions, tag or status changes."""
        time.sleep(0.3)  # a power change MAAS queued lands in its log within a tick
        found = []
        for entry in map(json.loads, _tail(self.bmc_log, before.bmc_at).splitlines()):
            if entry["method"] in WRITES:
                found.append(f"BMC {entry['node']}: {entry['method']} {entry['path']} ({entry['agent']})")
        for line in _tail(self.maas_log, before.maas_at).splitlines():
            if any(op in line for op in (" accepted: ", ": allocated", ": power ", "created (", ": tag ")):
                found.append(f"MAAS: {line.split(': ', 1)[-1]}")
        after = self.machines()
        found += [f"MAAS {name}: {before.machines[name]} -> {now}" for name, now in after.items()
                  if now != before.machines[name]]
        return found

    # -- site variants ---------------------------------------------------------------------------
    def variant(self, site_edit: dict | None = None, rack_edit: dict | None = None) -> Path:
        """A copy of the lab site without before_run; `site_edit` merges into site.yml,
        `rack_edit` maps a hostname to keys merged into its rack entry."""
        self._n += 1
        target = self.root / f"variant{self._n}"
        shutil.copytree(self.lab.site_file.parent, target)
        site_file = target / "site.yml"
        raw = yaml.safe_load(site_file.read_text(encoding="utf-8"))
        raw.pop("before_run", None)
        _merge(raw, site_edit or {})
        site_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        for rack_file in (target / "racks").glob("*.yml"):
            rack = yaml.safe_load(rack_file.read_text(encoding="utf-8"))
            for node in rack["nodes"]:
                _merge(node, (rack_edit or {}).get(node["hostname"], {}))
            rack_file.write_text(yaml.safe_dump(rack, sort_keys=False), encoding="utf-8")
        return site_file

    def run(self, site_file: Path, *args: str, env: dict[str, str] | None = None,
            state_dir: Path | None = None) -> subprocess.CompletedProcess:
        self._n += 1
        state = state_dir or self.root / f"state{self._n}"
        return subprocess.run(
            [os.sys.executable, "provision.py", *args, "--site", str(site_file), "--state-dir", str(state)],
            cwd=REPO, env={**self.lab.env, **(env or {})}, capture_output=True, text=True, timeout=120,
            check=False, stdin=subprocess.DEVNULL)

    # -- MAAS machine states ---------------------------------------------------------------------
    def set_machines(self, changes: dict[str, dict]) -> None:
        """Stop the lab MAAS (it saves its state on SIGTERM), edit its machines, start it again."""
        pid = int((self.lab.lab_dir / "pids" / "maas.pid").read_text(encoding="utf-8"))
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        config = maas_store.Config.load(maas_service.lab_files(self.lab.lab_dir)["config"])
        machines, tags = maas_store.load_state(config)  # the lab MAAS's own reading of its state
        for spec in config.machines:  # the lab's machines start unknown to MAAS: these are registered ones
            if spec.hostname in changes:
                fields = {**changes[spec.hostname], "status": maas_states.Status(changes[spec.hostname]["status"])}
                machines[spec.system_id] = maas_states.MachineState(
                    system_id=spec.system_id, hostname=spec.hostname, macs=spec.macs, power_type=spec.power_type,
                    power_parameters=spec.power_parameters, **fields)
        maas_store.StateWriter(config.state_file).save(machines, tags)
        up = self.lab.lab("up")
        assert up.returncode == 0, up.stderr


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _tail(path: Path, offset: int) -> str:
    with open(path, encoding="utf-8") as handle:
        handle.seek(offset)
        return handle.read()


def _merge(into: dict, changes: dict) -> None:
    """Nested mappings merge, except a secret reference: that is replaced whole."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "secret":
            _merge(into[key], value)
        else:
            into[key] = value


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadInputLab]:
    root = tmp_path_factory.mktemp("badinput")
    lab = make_site(root, racks=3, max_hosts=0)
    with lab_environ(lab):
        up = lab.lab("up")
        assert up.returncode == 0, up.stderr
        try:
            yield BadInputLab(lab, root)
        finally:
            lab.close()
            lab.lab("down")


def one_paragraph(text: str) -> bool:
    body = text.strip()
    return bool(body) and "\n\n" not in body and "Traceback" not in body


def refused(result: subprocess.CompletedProcess, code: int, *words: str, node: str | None = None) -> str:
    """The case's error, after checking the exit code, no traceback, one paragraph naming `words`.

    A run-wide error is the whole of stderr; a node's is its line in the run's summary
    (`NODE (quarantined at STAGE): ...`), below the table."""
    text = (result.stderr + result.stdout).strip()
    assert result.returncode == code, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    if node is None:  # run-wide: no stage started; the error is stderr less the log records (warnings)
        assert not STAGE_STARTED.search(text), text[-3000:]
        error = "\n".join(line for line in result.stderr.splitlines() if not LOG_RECORD.match(line))
    else:
        lines = [line for line in text.splitlines() if line.startswith(f"{node} (")]
        assert lines, text[-3000:]
        error = lines[-1]
    assert one_paragraph(error), error[-3000:]
    missing = [word for word in words if word not in error]
    assert not missing, (missing, text[-3000:])
    return text


# -- MAAS ---------------------------------------------------------------------------------------

def test_a_wrong_maas_key_is_refused_before_anything_is_powered(bad: BadInputLab) -> None:
    # Real MAAS answers a request signed with a key it does not know with 401 (maas/maas
    # src/maasserver/api/auth.py: OAuthUnauthorized, a maasserver.exceptions.Unauthorized, whose
    # api_error is 401); the lab MAAS does the same (lab/maas/server.py, `authenticated`).
    secrets = bad.root / "wrong-maas-key.yml"
    secrets.write_text("maas_api_key: aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc\n")
    secrets.chmod(0o600)
    site = bad.variant({"credentials": {"maas": {"secret": {"file": str(secrets), "key": "maas_api_key"}}}})
    before = bad.witness()
    result = bad.run(site, "--rack", "1", "--until", "os")
    text = refused(result, 1, "MAAS cannot be used", "401", f"127.0.0.1:{bad.lab.shape.maas_port}", "maas credential")
    assert "cccccccc" not in text
    assert bad.touched(before) == []


def test_maas_unreachable_is_a_runtime_error_naming_its_url(bad: BadInputLab) -> None:
    port = closed_port()
    site = bad.variant({"maas": {"url": f"http://127.0.0.1:{port}/MAAS/"}})
    before = bad.witness()
    result = bad.run(site, "--rack", "1", "--until", "os")
    refused(result, 1, "MAAS cannot be used", f"127.0.0.1:{port}")
    assert bad.touched(before) == []


# -- BMCs ---------------------------------------------------------------------------------------

def test_a_bmc_unreachable_fails_its_node_at_discover_naming_the_address(bad: BadInputLab) -> None:
    port = closed_port()
    site = bad.variant(rack_edit={"gpu-001-01": {"bmc": {"address": f"127.0.0.1:{port}"}}})
    before = bad.witness()
    result = bad.run(site, "--nodes", "gpu-001-01", "--until", "os")
    refused(result, 1, f"127.0.0.1:{port}", "discover", node="gpu-001-01")
    assert bad.touched(before) == []


def test_a_bmc_answering_html_fails_its_node_at_discover(bad: BadInputLab) -> None:
    lab_faults.write(bad.lab.lab_dir, {"gpu-001-02": {"bmc_html": 1.0}})
    try:
        site = bad.variant()
        before = bad.witness()
        result = bad.run(site, "--nodes", "gpu-001-02", "--until", "os")
        refused(result, 1, "not JSON", "discover", node="gpu-001-02")
        assert bad.touched(before) == []
    finally:
        lab_faults.write(bad.lab.lab_dir, {})


# -- UFM ----------------------------------------------------------------------------------------

def test_ufm_unreachable_is_a_runtime_error_of_the_fabric_verb(bad: BadInputLab) -> None:
    port = closed_port()
    site = bad.variant({"ufm": {"url": f"https://127.0.0.1:{port}/"}})
    before = bad.witness()
    result = bad.run(site, "fabric", "check", "--rack", "1")
    refused(result, 1, f"127.0.0.1:{port}", "UFM")
    assert bad.touched(before) == []


# -- secrets, names, the state directory -------------------------------------------------------

def test_an_undecryptable_vault_is_refused_before_anything_is_powered(bad: BadInputLab) -> None:
    vault = bad.root / "vault.yml"
    vault.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465666768\n")
    password = bad.root / "vault-password"
    password.write_text("wrong\n")
    password.chmod(0o600)
    site = bad.variant({"credentials": {"bmc": {"secret": {"vault": str(vault), "key": "bmc_password"}}}})
    before = bad.witness()
    result = bad.run(site, "--rack", "1", "--until", "os", env={"ANSIBLE_VAULT_PASSWORD_FILE": str(password)})
    refused(result, 1, "credentials.bmc.secret", "cannot decrypt")
    assert bad.touched(before) == []


@pytest.mark.parametrize("name", ["gpu-001-01;reboot", "gpu-001-01$(touch /tmp/fleet-pwned)", "gpu 001 01",
                                  "gpu-001-01`id`"])
def test_shell_metacharacters_in_an_inventory_node_name_are_bad_input(bad: BadInputLab, name: str) -> None:
    site = bad.variant(rack_edit={"gpu-001-01": {"hostname": name}})
    before = bad.witness()
    result = bad.run(site, "--rack", "1", "--until", "os")
    refused(result, 2, "hostname", "rack-001.yml")
    assert not Path("/tmp/fleet-pwned").exists()
    assert bad.touched(before) == []


def test_shell_metacharacters_in_a_cli_node_name_are_bad_input(bad: BadInputLab) -> None:
    before = bad.witness()
    result = bad.run(bad.variant(), "--nodes", "gpu-001-01;$(touch /tmp/fleet-pwned)", "--until", "os")
    refused(result, 2, "gpu-001-01;$(touch /tmp/fleet-pwned)")
    assert not Path("/tmp/fleet-pwned").exists()
    assert bad.touched(before) == []


def test_a_full_disk_under_the_state_directory_is_a_runtime_error_naming_it(bad: BadInputLab) -> None:
    full = bad.root / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"a tiny tmpfs cannot be mounted here: {mounted.stderr.strip()}")
    try:
        try:  # fill it: the next write gets ENOSPC
            with open(full / "filler", "wb", buffering=0) as filler:
                while True:
                    filler.write(b"\0" * 4096)
        except OSError:
            pass
        before = bad.witness()
        result = bad.run(bad.variant(), "--rack", "1", "--until", "os", state_dir=full / "state")
        refused(result, 1, f"the disk under the state file {full}", "is full")
        assert bad.touched(before) == []
    finally:
        subprocess.run(["umount", str(full)], check=False)


# -- MAAS machines in states a bring-up must not touch ------------------------------------------

# Deployed with another kernel, Allocated, Rescue mode, Broken and Testing (someone's machines) are
# tests/lab/test_maas_owned_lab.py's; these are the other states a datacenter hands over. Reserved has no
# API that puts a machine there, so the lab MAAS's stored state is written directly (as for all of them).
UNEXPECTED = {
    # hostname: (machine fields as the lab MAAS stores them, words the node's detail must hold)
    "gpu-002-01": ({"status": 5, "owner": "alice", "status_message": "Reserved"}, "Reserved"),
    "gpu-002-02": ({"status": 22, "status_message": "Failed testing"}, "Failed testing"),
    "gpu-002-03": ({"status": 2, "status_message": "Failed commissioning"}, "Failed commissioning"),
    "gpu-002-04": ({"status": 7, "status_message": "Retired"}, "Retired"),
    "gpu-003-01": ({"status": 3, "status_message": "Missing"}, "Missing"),
    "gpu-003-02": ({"status": 18, "owner": "alice", "status_message": "Failed to enter rescue mode"},
                   "Failed to enter rescue mode"),
    "gpu-003-03": ({"status": 20, "owner": "alice", "status_message": "Failed to exit rescue mode"},
                   "Failed to exit rescue mode"),
}


def test_machines_in_unexpected_maas_states_are_quarantined_untouched(bad: BadInputLab, tmp_path: Path) -> None:
    bad.set_machines({name: fields for name, (fields, _) in UNEXPECTED.items()})
    before = bad.witness()
    report = tmp_path / "report.json"
    result = bad.run(bad.variant(), "--nodes", ",".join(UNEXPECTED), "--until", "os", "--json-report", str(report))
    text = result.stderr + result.stdout
    assert result.returncode == 1 and "Traceback" not in text, text[-3000:]
    rows = {row["hostname"]: row for row in json.loads(report.read_text(encoding="utf-8"))["nodes"]}
    wrong = {name: (row["status"], row["detail"]) for name, row in rows.items()
             if row["status"] != "quarantined" or UNEXPECTED[name][1] not in row["detail"]
             or "\n" in row["detail"]}
    assert wrong == {}
    assert bad.touched(before) == []
