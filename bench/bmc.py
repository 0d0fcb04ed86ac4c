"""Lab BMC micro bench: requests per second and lab CPU per Redfish request, by kind of request.

The bring-up bench's BMC wave (every node's discover and MAAS's commissioning power-on) goes through
the lab's BMCs with both cores full, so what one Redfish request costs the lab decides how long that
wave lasts. This bench starts only the lab BMCs of a `--racks` site (`lab.redfish.service`: the
processes `lab up` starts for them) and sends each kind of request the bring-up sends, spread over
every node, from `--clients` concurrent keep-alive HTTPS clients (as our BmcPool and the lab MAAS's
driver keep their connections), verified against the lab CA:

- GET System (discover's identity read, the power polls of both clients),
- GET EthernetInterfaces `$expand=*($levels=1)` (discover's NIC read, expanded by the front),
- PATCH Boot (a one-time PXE override: MAAS's driver before each power-on),
- POST Reset (ForceRestart: each one changes the power state, so the emulator writes it).

Printed per kind: requests, requests/s, and lab CPU milliseconds per request from /proc (every lab BMC
process, user + system, between the first and the last request of that kind). Every answer must be a
2xx, or the bench stops. Figures are the lab's own cost, so they move with the machine's other load
only a little (CPU time, not wall time); requests/s moves with it.

    .venv/bin/python -m bench.bmc --racks 128
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiohttp import ClientSession, TCPConnector

from fleet.site import Site
from lab.redfish.service import prepare, service, system_uuid
from lab.service import LabService
from lab.settings import load_lab_site
from lab.sitegen import NODES_PER_RACK, SiteShape, write_site
from tests.lab.conftest import bmc_span, free_port_block, free_ports

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-bmc-secret"  # a throwaway lab's BMC password, in its own private secrets file
SYSTEMS = "/redfish/v1/Systems"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Kind:
    name: str
    method: str
    path: str  # {id}: the node's system id
    body: dict | None = None


KINDS = (
    Kind("GET System", "GET", SYSTEMS + "/{id}"),
    Kind("GET EthernetInterfaces $expand", "GET", SYSTEMS + "/{id}/EthernetInterfaces?$expand=*($levels=1)"),
    Kind("PATCH Boot", "PATCH", SYSTEMS + "/{id}",
         {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}),
    Kind("POST Reset", "POST", SYSTEMS + "/{id}/Actions/ComputerSystem.Reset", {"ResetType": "ForceRestart"}),
)


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime


@contextmanager
def bmc_lab(racks: int, root: Path) -> Iterator[tuple[Site, dict[str, int]]]:
    """The lab BMCs of a fresh `racks`-rack site on free ports: (site, {service name: pid}); stopped after."""
    lab_dir = root / "lab"
    lab_dir.mkdir()
    (lab_dir / "secrets.yml").write_text(yaml.safe_dump({"bmc_password": PASSWORD}), encoding="utf-8")
    (lab_dir / "secrets.yml").chmod(0o600)
    bmc_first = free_port_block(bmc_span(racks))
    ports = free_ports(1, set(range(bmc_first, bmc_first + bmc_span(racks))))
    shape = SiteShape(racks=racks, name="bench", state_dir=str(lab_dir), bmc_first=bmc_first, sushy_port=ports[0],
                      max_hosts=0, fabric=racks <= 128)
    os.environ["FLEET_LAB_DIR"] = str(lab_dir)
    site = load_lab_site(write_site(root / "site", shape))
    prepare(site, lab_dir, power_delay_s=0.05)
    processes: dict[str, subprocess.Popen] = {}
    try:
        for svc in service(site, lab_dir):
            processes[svc.name] = start(svc, lab_dir)
        yield site, {name: process.pid for name, process in processes.items()}
    finally:
        for process in processes.values():
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


def start(svc: LabService, lab_dir: Path) -> subprocess.Popen:
    from lab.control import _is_ready

    with open(lab_dir / f"{svc.name}.log", "ab") as log:
        process = subprocess.Popen(svc.argv, cwd=REPO, env={**os.environ, **svc.env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _is_ready(svc.ready):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{svc.name} did not start: see {lab_dir / (svc.name + '.log')}")
        time.sleep(0.1)
    return process


async def send_all(site: Site, kind: Kind, rounds: int, clients: int, session: ClientSession) -> int:
    """`rounds` requests of `kind` to every node, `clients` at a time; returns how many were sent."""
    targets = [(node.bmc.address, system_uuid(site, node.hostname)) for node in site.nodes.values()] * rounds
    queue = iter(targets)

    async def worker() -> None:
        for address, system_id in queue:
            url = f"https://{address}{kind.path.format(id=system_id)}"
            async with session.request(kind.method, url, json=kind.body) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise SystemExit(f"{kind.name} {url}: HTTP {resp.status}")

    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(targets)


async def measure(site: Site, pids: dict[str, int], kinds: list[Kind], rounds: int, clients: int) -> None:
    assert site.bmc_tls.ca_file is not None
    context = ssl.create_default_context(cafile=str(site.bmc_tls.ca_file))
    connector = TCPConnector(ssl=context, limit=clients, limit_per_host=2)
    token = base64.b64encode(f"root:{PASSWORD}".encode()).decode()
    async with ClientSession(connector=connector, headers={"Authorization": f"Basic {token}"},
                             trust_env=False) as session:
        await send_all(site, Kind("warm-up: GET Systems", "GET", SYSTEMS), 1, clients, session)
        await send_all(site, KINDS[0], 1, clients, session)  # every node's Dell state and connection exist
        for kind in kinds:
            before = {name: process_cpu_s(pid) for name, pid in pids.items()}
            started = time.perf_counter()
            sent = await send_all(site, kind, rounds, clients, session)
            wall_s = time.perf_counter() - started
            spent = {name: process_cpu_s(pid) - before[name] for name, pid in pids.items()}
            split = ", ".join(f"{name} {1000 * s / sent:.2f}" for name, s in spent.items())
            print(f"  {kind.name:32s} {sent:6d} requests {sent / wall_s:7.0f}/s   lab CPU "
                  f"{1000 * sum(spent.values()) / sent:.2f} ms per request ({split})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racks", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=4, help="requests of each kind per node")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="measure only the kinds whose name contains TEXT (repeatable; e.g. Reset)")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "lab"], cwd=REPO,
                             capture_output=True, text=True, check=False).stdout.split()[1::2]
    commit += f" with local changes to {', '.join(changed)}" if changed else ""
    print(f"bench/bmc.py on {platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()}), "
          f"commit {commit}, load {os.getloadavg()[0]:.1f}: {args.racks * NODES_PER_RACK} BMCs, "
          f"{args.clients} clients, {args.rounds} requests of each kind per node", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-bmc-") as tmp, bmc_lab(args.racks, Path(tmp)) as (site, pids):
        print(f"  lab BMC processes: {json.dumps(sorted(pids))}", flush=True)
        kinds = [k for k in KINDS if not args.only or any(text in k.name for text in args.only)]
        asyncio.run(measure(site, pids, kinds, args.rounds, args.clients))
    print(f"  load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
