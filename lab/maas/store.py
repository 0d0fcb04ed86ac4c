"""The simulator's config, its persisted machine state, and the hook file it watches (faults: lab.faultfile).

State lives in one JSON file in the lab directory so `lab down` / `lab up` keeps every machine where
it was (a Deployed machine stays Deployed, an install under way finishes on the next start), and
`lab reset` clears it by deleting the directory. Writes go through a temporary file and a rename so a
killed simulator never leaves half a file behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from lab.atomic import write_atomic
from lab.maas.states import MachineState, Pending, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MachineSpec:
    """A machine as the inventory describes it: the part of MAAS's record that never changes."""

    hostname: str
    system_id: str
    macs: tuple[str, ...]
    initial_status: Status = Status.READY
    enlisted: bool = True  # False: MAAS does not know it until `machines create`
    power_type: str = "manual"
    power_parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything `prepare()` decided for one simulator process."""

    host: str
    port: int
    api_key: str
    time_factor: float
    seed: int
    state_file: Path
    faults_file: Path
    hook_file: Path
    machines: tuple[MachineSpec, ...]
    cert_file: Path | None = None
    key_file: Path | None = None
    bmc_ca_file: Path | None = None  # the CA the BMCs' certificates chain to (the power driver verifies)
    netboots_file: Path | None = None  # the lab's boot network (lab.redfish.front writes it)

    @classmethod
    def load(cls, path: Path) -> Config:
        raw = json.loads(path.read_text())
        return cls(
            host=raw["host"],
            port=int(raw["port"]),
            api_key=raw["api_key"],
            time_factor=float(raw["time_factor"]),
            seed=int(raw["seed"]),
            state_file=Path(raw["state_file"]),
            faults_file=Path(raw["faults_file"]),
            hook_file=Path(raw["hook_file"]),
            machines=tuple(
                MachineSpec(
                    hostname=m["hostname"],
                    system_id=m["system_id"],
                    macs=tuple(m["macs"]),
                    initial_status=Status(m.get("initial_status", Status.READY)),
                    enlisted=bool(m.get("enlisted", True)),
                    power_type=m.get("power_type", "manual"),
                    power_parameters=tuple((str(k), str(v)) for k, v in m.get("power_parameters", [])),
                )
                for m in raw["machines"]
            ),
            cert_file=Path(raw["cert_file"]) if raw.get("cert_file") else None,
            key_file=Path(raw["key_file"]) if raw.get("key_file") else None,
            bmc_ca_file=Path(raw["bmc_ca_file"]) if raw.get("bmc_ca_file") else None,
            netboots_file=Path(raw["netboots_file"]) if raw.get("netboots_file") else None,
        )

    def dump(self, path: Path) -> None:
        raw = {
            "host": self.host,
            "port": self.port,
            "api_key": self.api_key,
            "time_factor": self.time_factor,
            "seed": self.seed,
            "state_file": str(self.state_file),
            "faults_file": str(self.faults_file),
            "hook_file": str(self.hook_file),
            "cert_file": str(self.cert_file) if self.cert_file else None,
            "key_file": str(self.key_file) if self.key_file else None,
            "bmc_ca_file": str(self.bmc_ca_file) if self.bmc_ca_file else None,
            "netboots_file": str(self.netboots_file) if self.netboots_file else None,
            "machines": [
                {"hostname": m.hostname, "system_id": m.system_id, "macs": list(m.macs),
                 "initial_status": int(m.initial_status), "enlisted": m.enlisted, "power_type": m.power_type,
                 "power_parameters": [list(pair) for pair in m.power_parameters]}
                for m in self.machines
            ],
        }
        write_atomic(path, json.dumps(raw, indent=1), mode=0o600)  # it holds the API key


# MAAS's system ids: 6 characters of lower-case letters and digits with look-alikes left out.
SYSTEM_ID_ALPHABET = "abcdefghkmnpqrstwxy3456789"


def system_id_for(hostname: str, taken: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """A stable MAAS-looking system_id for a hostname; `taken` resolves the (rare) collision."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"{hostname}:{salt}".encode()).digest()
        candidate = "".join(SYSTEM_ID_ALPHABET[b % len(SYSTEM_ID_ALPHABET)] for b in digest[:6])
        if candidate not in taken:
            return candidate
        salt += 1


def _machine_to_json(m: MachineState) -> dict[str, object]:
    """The machine as JSON-ready data: `asdict` without its deep copy (the state is frozen tuples and scalars)."""
    raw: dict[str, object] = {f.name: getattr(m, f.name) for f in fields(m)}
    raw["status"] = int(m.status)
    raw["prior_status"] = None if m.prior_status is None else int(m.prior_status)
    raw["pending"] = None if m.pending is None else asdict(m.pending)
    return raw


def _machine_from_json(raw: dict) -> MachineState:
    pending = raw.get("pending")
    prior = raw.get("prior_status")
    return MachineState(
        **{
            **raw,
            "macs": tuple(raw["macs"]),
            "tags": tuple(raw.get("tags", ())),
            "events": tuple(raw.get("events", ())),
            "power_parameters": tuple(tuple(pair) for pair in raw.get("power_parameters", ())),
            "maas_events": tuple(tuple(event) for event in raw.get("maas_events", ())),
            "status": Status(raw["status"]),
            "prior_status": None if prior is None else Status(prior),
            "pending": None if pending is None else Pending(**pending),
        }
    )


def initial_machines(config: Config) -> dict[str, MachineState]:
    """Fresh machines from the inventory, as MAAS shows them after enlistment (or commissioning).

    Machines not enlisted are absent: MAAS learns of them only through `machines create`."""
    return {
        spec.system_id: MachineState(
            system_id=spec.system_id,
            hostname=spec.hostname,
            macs=spec.macs,
            status=spec.initial_status,
            status_message="Ready" if spec.initial_status == Status.READY else "New",
            power_type=spec.power_type,
            power_parameters=spec.power_parameters,
            commissioning_status=2 if spec.initial_status == Status.READY else -1,
        )
        for spec in config.machines
        if spec.enlisted
    }


def load_state(config: Config) -> tuple[dict[str, MachineState], dict[str, dict[str, str]]]:
    """Machines and tags from the state file, reconciled with the inventory in the config.

    Machines the inventory no longer lists are dropped; new ones start fresh; a machine whose MACs
    changed in the inventory takes the new MACs but keeps its life-cycle state. A machine a client
    registered (`machines create`) is kept as MAAS stored it, as long as the inventory has its host.
    """
    machines = initial_machines(config)
    tags: dict[str, dict[str, str]] = {}
    if not config.state_file.exists():
        return machines, tags
    try:
        raw = json.loads(config.state_file.read_text())
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable MAAS lab state %s: %s", config.state_file, err)
        return machines, tags
    inventory = {spec.hostname for spec in config.machines}
    inventory_macs = {mac for spec in config.machines for mac in spec.macs}
    for system_id, saved in raw.get("machines", {}).items():
        # A machine that enlisted itself carries MAAS's generated name: its MAC says it is ours.
        ours = saved.get("hostname") in inventory or inventory_macs.intersection(saved.get("macs", ()))
        if system_id not in machines and ours:
            machines[system_id] = _machine_from_json(saved)
        elif system_id in machines:
            fresh = machines[system_id]
            state = _machine_from_json(saved)
            machines[system_id] = MachineState(**{**state.__dict__, "macs": fresh.macs,
                                                  "hostname": fresh.hostname})
    tags = {name: dict(tag) for name, tag in raw.get("tags", {}).items()}
    return machines, tags


class StateWriter:
    """Writes the state file, re-encoding only the machines that changed since the last write.

    A machine's state is a frozen object replaced on every change, so the same object means the
    same JSON: at 1,280 machines a full encode cost ~250 ms of CPU, every half second while they
    deployed. The file is the same text `json.dumps` of the whole state gives.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._encoded: dict[str, tuple[MachineState, str]] = {}

    def save(self, machines: dict[str, MachineState], tags: dict[str, dict[str, str]]) -> None:
        encoded: dict[str, tuple[MachineState, str]] = {}
        for system_id, m in machines.items():
            known = self._encoded.get(system_id)
            encoded[system_id] = (m, known[1] if known is not None and known[0] is m
                                  else json.dumps(_machine_to_json(m)))
        self._encoded = encoded
        body = ", ".join(f"{json.dumps(system_id)}: {text}" for system_id, (_m, text) in encoded.items())
        # it holds the machines' BMC passwords
        write_atomic(self.path, f'{{"machines": {{{body}}}, "tags": {json.dumps(tags)}}}', mode=0o600)


class HookFile:
    """`lab_dir/maas/hook.json` ({"argv": [...], "boots_os": bool, "batch": bool}), re-read when it changes;
    missing means no hook. `boots_os`: the hook's `deployed` run is the machine booting its deployed OS, so the
    lab MAAS reports Deployed only once it finished (lab.maas.states, `os_booted`). `batch`: the hook takes
    one event and several machines (`argv + [event, hostname, ...]`) and prints `done HOSTNAME` for each one
    it finished; without it, one run per machine (`argv + [hostname, event]`, exit 0: done)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._argv: tuple[str, ...] = ()
        self._boots_os = False
        self._batch = False

    def argv(self) -> tuple[str, ...]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._argv, self._boots_os, self._batch = None, (), False, False
            return ()
        if mtime != self._mtime:
            try:
                raw = json.loads(self.path.read_text())
                self._argv = tuple(str(arg) for arg in raw.get("argv", []))
                self._boots_os = bool(raw.get("boots_os", False))
                self._batch = bool(raw.get("batch", False))
                self._mtime = mtime
                log.info("hook: %s%s", " ".join(self._argv) or "(none)", " (boots the OS)" if self._boots_os else "")
            except (OSError, ValueError, AttributeError) as err:
                log.warning("hook file %s unreadable, keeping the previous hook: %s", self.path, err)
        return self._argv

    def boots_os(self) -> bool:
        """Whether Deployed waits for the hook's `deployed` run (with the hook file re-read first)."""
        return bool(self.argv()) and self._boots_os

    def batch(self) -> bool:
        """Whether one run takes several machines (with the hook file re-read first)."""
        return bool(self.argv()) and self._batch
