"""Lab lifecycle: up, down, status, reset, for every simulator of the lab site.

Each component describes its processes (`lab.<component>.service`); this module is the one place
that starts them detached in their own session (so they outlive the CLI), logs them, records their
pids and waits for them to answer. All state lives under one directory, so `reset` is one rmtree
and two labs (a developer's and a test's) never share anything but the machine.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import FleetError
from fleet.site import Site
from lab import faults as lab_faults
from lab.atomic import write_atomic
from lab.filelock import locked
from lab.hosts import light
from lab.hosts.proc import group_alive, log_tail, pid_alive
from lab.service import LabService, ReadyCheck
from lab.settings import FaultSpec

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
# Start order matters: BMCs before MAAS (MAAS's hook may power hosts), the apt repo before any host.
# The registry and Redis (Kraken's lab) start only for sites whose lab.ports name them; the UFM only for
# sites with a fabric plan, the switch simulators only for sites whose switches have a device_type.
COMPONENTS = ("lab.redfish.service", "lab.maas.service", "lab.apt.service", "lab.ufm.service", "lab.slurm.service",
              "lab.prometheus.service", "lab.registry.service", "lab.switches.service")
READY_TIMEOUT_S = 60.0
UP_STAMP = "up.json"  # what the last full `up` prepared: the site's files as they were, and the services it ran
STAMP_MAX_FILES = 2000  # a site file in a big tree (a home directory) gets no stamp: every `up` is a full one


class LabError(FleetError):
    """The lab could not be started or stopped."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    ready: bool
    detail: str


def lab_dir_of(site: Site) -> Path:
    if site.lab is None:
        raise LabError(f"site '{site.name}' has no lab: section", hint="use the lab site (inventory/lab/site.yml)")
    return site.lab.state_dir


def ensure_secrets(lab_dir: Path) -> Path:
    """Random lab credentials, created once per lab dir (mode 0600), read through the site's references."""
    path = lab_dir / "secrets.yml"
    if path.exists():
        return path
    lab_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "bmc_password": secrets.token_urlsafe(12),
        # MAAS API keys are consumer_key:token_key:token_secret (18, 18 and 32 characters).
        "maas_api_key": ":".join((secrets.token_hex(9), secrets.token_hex(9), secrets.token_hex(16))),
        "ufm_password": secrets.token_urlsafe(12),
        "switch_password": secrets.token_urlsafe(12),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(values, handle)
    return path


def _services(site: Site, lab_dir: Path,
              prepare_options: Mapping[str, Mapping[str, Any]] | None = None) -> list[LabService]:
    found: list[LabService] = []
    for name in COMPONENTS:
        module = importlib.import_module(name)
        module.prepare(site, lab_dir, **(prepare_options or {}).get(name, {}))
        described = module.service(site, lab_dir)
        found.extend(described if isinstance(described, list) else [described])
    return found


def up(site: Site, extra_faults: Iterable[FaultSpec] = (), *,
       prepare_options: Mapping[str, Mapping[str, Any]] | None = None) -> list[ServiceStatus]:
    """Start every lab service that is not already running; idempotent.

    `prepare_options` passes keyword arguments to a component's `prepare`, by component module:
    the benchmark starts the BMCs with a known power delay through
    `{"lab.redfish.service": {"power_delay_s": 5.0}}` (a service that is already running keeps its settings).
    """
    lab_dir = lab_dir_of(site)
    # Two provision.py runs of one lab (disjoint racks) each run the site's before_run `lab up`: prepare
    # rewrites every service's files (the MAAS config, TLS material, faults) and starts what is not
    # running, so concurrent ups take turns (a shared temporary name once broke the second one).
    with locked(lab_dir / "up.lock"):
        for sub in ("logs", "pids"):
            (lab_dir / sub).mkdir(parents=True, exist_ok=True)
        ensure_secrets(lab_dir)
        extra_faults = list(extra_faults)
        if extra_faults or not (lab_dir / lab_faults.FAULTS_FILE).exists():
            # An `up` of a lab that already has its faults (every `provision.py` run calls it) keeps the ones
            # `lab fault` injected since; `up --fault ...` replaces them, as before.
            lab_faults.write(lab_dir, lab_faults.resolve(site, extra_faults))
        (lab_dir / "site").write_text(str(site.path), encoding="utf-8")
        options = {**_default_options(site, lab_dir), **(prepare_options or {})}
        if site.lab and site.lab.hosts.max_hosts > 0:
            _ensure_host_image()
        (lab_dir / UP_STAMP).unlink(missing_ok=True)  # what follows may change what runs
        services = _services(site, lab_dir, options)
        for service in services:
            if pid_alive(_read_pid(lab_dir, service.name)):
                continue
            _check_port_free(site, service.ready)
            _start(service, lab_dir)
        light_hosts = bool(site.lab and site.lab.hosts.light)
        if light_hosts:
            light.prepare(site, lab_dir)  # the carrier boots before MAAS deploys anything onto it
        files = _site_files(site.path, lab_dir)
        if files is not None and not light_hosts:
            stamp = {"site": str(site.path), "files": files, "image": bool(site.lab and site.lab.hosts.max_hosts > 0),
                     "services": [{"name": s.name, "url": s.ready.url, "port": s.ready.port, "host": s.ready.host}
                                  for s in services]}
            write_atomic(lab_dir / UP_STAMP, json.dumps(stamp))
    return status(site)


def _site_files(site_file: Path, lab_dir: Path) -> list[list[Any]] | None:
    """[path, mtime_ns, size] of every YAML file in the site file's directory tree (hidden directories and
    the lab's own skipped), or None past STAMP_MAX_FILES files: an edit of the site shows here."""
    found: list[list[Any]] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(site_file.parent):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != lab_dir)
        seen += len(filenames)
        if seen > STAMP_MAX_FILES:
            return None
        for name in sorted(filenames):
            if name.endswith((".yml", ".yaml")):
                info = (here / name).stat()
                found.append([str(here / name), info.st_mtime_ns, info.st_size])
    return found


def up_unchanged(site_file: Path, lab_dir: Path) -> list[ServiceStatus] | None:
    """The lab's status when an `up` without faults has nothing to do, found without loading the site:
    the last full `up` was of this site as its files are now, and every service it ran still runs and
    answers. None otherwise: then load the site and run `up`.

    A full `up` of a running lab only rewrites files its running services do not read again (they keep
    the settings they started with), except MAAS's hook, which follows the site file's `lab.hosts`:
    an unchanged site writes the same hook. Light hosts (whose carrier `up` checks) always take the full `up`.
    Every provision.py run of a lab site calls `up` (its before_run): at 512 nodes the full one loads
    the site again (~1.3 s) and prepares every component (~0.5 s) to find them all running."""
    try:
        stamp = json.loads((lab_dir / UP_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp.get("site") != str(site_file) or not (lab_dir / lab_faults.FAULTS_FILE).exists():
        return None
    if stamp.get("files") != _site_files(site_file, lab_dir):
        return None
    result = []
    for entry in stamp.get("services", []):
        pid = _read_pid(lab_dir, entry["name"])
        if not (pid_alive(pid) and _is_ready(ReadyCheck(url=entry["url"], port=entry["port"], host=entry["host"]))):
            return None
        result.append(ServiceStatus(entry["name"], pid, True, True, "serving"))
    if stamp.get("image"):
        _ensure_host_image()  # as every full `up` of a lab with hosts: the machine-wide cache may have been cleared
    return result


def _default_options(site: Site, lab_dir: Path) -> dict[str, dict[str, Any]]:
    """A new rack's machines are unknown to the lab MAAS (the bring-up registers them with Redfish power,
    and MAAS powers them through the lab BMCs), and its hook boots a real lab host when a node reaches
    Deployed (and throws it away on release)."""
    options: dict[str, Any] = {"bmc_power": True, "enlisted": False}
    if site.lab is not None and site.lab.hosts.light:  # one carrier for every node (lab/hosts/light.py)
        options["hook"] = light.hook_argv(lab_dir)
        options["hook_boots_os"] = True  # MAAS says Deployed once the node's sshd is up (lab/hosts/light.py)
        options["hook_batch"] = True  # one run boots every node whose deployment reboots meanwhile
    elif site.lab is not None and site.lab.hosts.max_hosts > 0:
        options["hook"] = [sys.executable, "-m", "lab.hosts", "--lab-dir", str(lab_dir), "hook", "--site",
                           str(site.path)]
    return {"lab.maas.service": options}


def _ensure_host_image() -> None:
    """Build (once, ~1 min, then cached machine-wide) the image lab hosts boot from, before any deploy needs it."""
    result = subprocess.run([sys.executable, "-m", "lab.hosts", "image"], cwd=REPO, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise LabError("the lab host image could not be built", service_message=result.stderr.strip()[-1500:],
                       hint="read the image log under the lab cache (FLEET_LAB_CACHE, default /var/cache/fleet-lab)")


def _start(service: LabService, lab_dir: Path) -> None:
    log_path = lab_dir / "logs" / f"{service.name}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), **service.env}
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            service.argv, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    (lab_dir / "pids" / f"{service.name}.pid").write_text(str(process.pid), encoding="utf-8")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(
                f"lab service {service.name} exited with code {process.returncode} while starting",
                service_message=log_tail(log_path), hint=f"read {log_path}",
            )
        if _is_ready(service.ready):
            log.info("lab service %s is up (pid %d)", service.name, process.pid)
            return
        time.sleep(0.1)
    raise LabError(f"lab service {service.name} did not answer within {READY_TIMEOUT_S:.0f} s",
                   service_message=log_tail(log_path), hint=f"read {log_path}")


def _check_port_free(site: Site, ready: ReadyCheck) -> None:
    port = ready.port if ready.port is not None else _url_port(ready.url or "")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ready.host, port))
        except OSError:
            names = [k for k, v in (site.lab.ports.items() if site.lab else []) if v == port]
            key = f"lab.ports.{names[0]}" if names else "the lab ports"
            raise LabError(
                f"port {ready.host}:{port} is already in use by another program",
                hint=f"stop that program or change {key} in {site.path}",
            ) from None


def _url_port(url: str) -> int:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _is_ready(ready: ReadyCheck) -> bool:
    if ready.url is None:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex((ready.host, ready.port or 0)) == 0
    try:
        # The lab's TLS endpoints use the lab CA; readiness only needs an answer, any status.
        urllib.request.urlopen(ready.url, timeout=1)  # noqa: S310 - lab URL on loopback
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


def _read_pid(lab_dir: Path, name: str) -> int | None:
    try:
        return int((lab_dir / "pids" / f"{name}.pid").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def status(site: Site) -> list[ServiceStatus]:
    lab_dir = lab_dir_of(site)
    result = []
    for service in _described(site, lab_dir):
        pid = _read_pid(lab_dir, service.name)
        running = pid_alive(pid)
        ready = running and _is_ready(service.ready)
        detail = "serving" if ready else ("starting or hung" if running else "stopped")
        result.append(ServiceStatus(service.name, pid if running else None, running, ready, detail))
    return result


def _described(site: Site, lab_dir: Path) -> list[LabService]:
    """The services of the lab without preparing anything (status must not write files)."""
    found: list[LabService] = []
    for name in COMPONENTS:
        described = importlib.import_module(name).service(site, lab_dir)
        found.extend(described if isinstance(described, list) else [described])
    return found


def is_up(site: Site) -> bool:
    return bool(site.lab) and all(s.ready for s in status(site))


def down(site: Site) -> None:
    """Stop every service (SIGTERM to each process group, SIGKILL after 5 s), then the lab hosts.

    Services go first: MAAS's hook may be booting a host right now, and a host stop that ran before it
    finished would leave that host (and its overlay mount) behind.
    """
    lab_dir = lab_dir_of(site)
    (lab_dir / UP_STAMP).unlink(missing_ok=True)
    pids_dir = lab_dir / "pids"
    for pid_file in sorted(pids_dir.glob("*.pid")) if pids_dir.exists() else []:
        pid = _read_pid(lab_dir, pid_file.stem)
        if pid and group_alive(pid):  # a leader that died may leave hook children behind: its group still runs
            _terminate(pid)
        pid_file.unlink(missing_ok=True)
    _stop_hosts(site, lab_dir)


def _terminate(pid: int) -> None:
    """Stop a service's whole process group and wait for every member, not only the leader: the lab MAAS's
    hook children boot lab hosts, and one left running past `lab down` leaves its host's overlay mounted."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not group_alive(pid):
                return
            time.sleep(0.05)


def _stop_hosts(site: Site, lab_dir: Path) -> None:
    """Lab hosts are containers, not services: stop them through their own module."""
    if not (lab_dir / "hosts").exists():
        return
    result = subprocess.run(
        [sys.executable, "-m", "lab.hosts", "--lab-dir", str(lab_dir), "stop-all"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        log.warning("stopping lab hosts failed: %s", result.stderr.strip()[-500:])


def reset(site: Site) -> None:
    """Stop everything and delete the lab's state (machines, power states, hosts, secrets)."""
    lab_dir = lab_dir_of(site)
    down(site)
    if lab_dir.exists():
        shutil.rmtree(lab_dir)


def describe(site: Site) -> dict:
    """A JSON-ready summary for `provision.py lab status --json`."""
    return {
        "lab_dir": str(lab_dir_of(site)),
        "services": [s.__dict__ for s in status(site)],
    }

