"""Writes a lab site inventory: racks of four 8-GPU nodes on a rail-optimised fabric.

The committed lab site (`inventory/lab/`) is this generator's output, so a fresh checkout has a
512-node datacenter to run against; tests generate smaller sites with their own ports.
Addresses are deterministic functions of (rack, slot) so a reader can predict them:
BMC 127.0.0.1:<bmc_first + rack*10 + slot>, node 198.18.<rack>.<slot+10>, PXE MAC 02:4c:00:<rack>:<slot>:00.
Past rack 255 the rack number carries into the next octet (198.19.<rack-256>.x, 02:4c:01:<rack-256>:...),
inside the lab's 198.18.0.0/15, so a 320-rack bench site is as valid as the 128-rack one.
The fabric plan is a fat tree sized for up to 128 racks (8 cores per rail); larger bench sites are
generated without it (`SiteShape.fabric=False`), as a site without a fabric section is.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from fleet.site.control import Timeouts
from lab.maas.power import REQUEST_TIMEOUT_S
from lab.redfish.front import LAB_MODEL
from lab.settings import LAB_DIR_ENV, LabHosts

NODES_PER_RACK = 4
RAILS = 8
RACKS_PER_GROUP = 8  # 8 racks x 4 nodes = 32 downlinks per rail leaf (a 64-port NDR switch, half up)
SWITCH_PORTS = 64  # NDR QM9700: 64 ports of 400 Gb/s
DOWNLINKS = SWITCH_PORTS // 2  # a non-blocking fat tree: half of each leaf and spine goes up
GROUPS_PER_POD = 4  # leaves of one rail in a pod share that pod's spines
SPINES_PER_POD = 4  # per rail: each leaf sends 8 of its 32 uplinks to each
CORES_PER_RAIL = 8  # each spine sends 4 of its 32 uplinks to each core; 4 pods x 4 spines x 4 = 64 core ports


# Light hosts share one root (lab/hosts/light.py), so no role may change it: Ansible's own TAGS_RUN setting
# selects a tag no role has, and the configure stage gathers facts only (a login, sudo and python3 per node).
LIGHT_HOSTS_ANSIBLE_ENV = {"ANSIBLE_RUN_TAGS": "lab_light_hosts_run_no_role"}


@dataclass(frozen=True)
class SiteShape:
    """What to generate; ports chosen by the caller so parallel labs never clash."""

    racks: int = 128
    name: str = "lab"
    state_dir: str = "../../.lab"
    maas_port: int = 5240
    bmc_first: int = 20000
    sushy_port: int = 8000
    apt_port: int = 8081
    ufm_port: int = 8443
    slurmctld_port: int = 6817
    prometheus_port: int = 9090
    switch_first: int = 2200  # switch SSH ports: 8 leaves per group, then one per rack, then one per group
    time_factor: float = 0.005
    seed: int = 12
    max_hosts: int = 8
    light_hosts: bool = False  # lab.hosts.light: every deployed node a light host (lab/hosts/light.py)
    faults: list[dict] = field(default_factory=list)
    fabric: bool = True  # write fabric.yml and the site's fabric section (the plan holds up to 128 racks)


def switch_span(racks: int) -> int:
    """How many consecutive SSH ports the site's switches take from `switch_first`."""
    groups = (racks - 1) // RACKS_PER_GROUP + 1
    return groups * RAILS + racks + groups


def node_entry(rack: int, slot: int, shape: SiteShape) -> dict:
    group = (rack - 1) // RACKS_PER_GROUP
    port = ((rack - 1) % RACKS_PER_GROUP) * NODES_PER_RACK + slot
    return {
        "hostname": f"gpu-{rack:03d}-{slot:02d}",
        "slot": slot,
        "service_tag": f"L{rack:03d}{slot:02d}X",
        "address": f"198.{18 + rack // 256}.{rack % 256}.{slot + 10}",
        "pxe_mac": f"02:4c:{rack >> 8:02x}:{rack & 0xff:02x}:{slot:02x}:00",
        "bmc": {"address": f"127.0.0.1:{shape.bmc_first + rack * 10 + slot}", "credentials": "bmc"},
        "hcas": [
            {"name": f"mlx5_{rail}", "guid": f"0xb83fd203{rack:04x}{slot:02x}{rail:02x}",
             "leaf": f"leaf-g{group:02d}-r{rail}", "port": port}
            for rail in range(RAILS)
        ],
    }


# Real MAAS gives one power action 5 minutes ("to cope with broken BMCs": the Temporal activity's
# start_to_close_timeout, canonical/maas src/maastemporalworker/workflow/power.py); its driver sets no timeout per
# request. The lab MAAS's driver gives a BMC request REQUEST_TIMEOUT_S of network time whatever the lab's factor
# (lab/maas/power.py): the lab's BMCs answer in real time, seconds apart at 512 nodes on a loaded machine.
MAAS_POWER_ACTION_S = 5 * 60.0
# Our deadlines on MAAS operations that MAAS's power driver runs inside (a deployment, commissioning, a release
# and its erase, and the grace for MAAS's verdict after the deployment deadline).
MAAS_POWERED_DEADLINES = ("maas_deploy_s", "maas_verdict_s", "maas_commission_s", "maas_release_s",
                          "maas_erase_s")


def maas_deadline_factor(time_factor: float) -> float:
    """The lab clock for MAAS's deadlines: no faster than the lab MAAS's driver wait against real MAAS's
    (10 s against 5 minutes, 1/30), so a BMC request held past the driver's timeout costs the lab the share of a
    deployment's 40 minutes a broken BMC costs real MAAS (an eighth), not all of it. On the plain lab clock
    (0.005: a 12 s deployment deadline) one held request took 10 of the 12 s, and a timeout BMC ended by how
    loaded the machine was. The lab MAAS's own monitored timeouts stay on the lab clock: they start when the
    driver has done its part (lab/maas/states.py), so no driver wait is in them."""
    return max(time_factor, REQUEST_TIMEOUT_S / MAAS_POWER_ACTION_S)


def lab_timeouts(time_factor: float) -> dict[str, float]:
    """Production's deadlines and polls on the lab clock, written into the site as they are: production
    code uses them unscaled. MAAS's deadlines run on `maas_deadline_factor`'s clock; polling has floors so
    a big lab does not flood itself."""
    real = Timeouts()
    floors = {"maas_poll_s": 0.5, "bmc_poll_s": 0.2, "bmc_inventory_poll_s": 0.2, "lc_poll_s": 0.05,
              "idrac_job_poll_s": 0.05}
    maas_factor = maas_deadline_factor(time_factor)
    return {f.name: round(max(floors.get(f.name, 0.0), getattr(real, f.name)
                              * (maas_factor if f.name in MAAS_POWERED_DEADLINES else time_factor)), 6)
            for f in fields(Timeouts)}


def site_document(shape: SiteShape) -> dict:
    groups = (shape.racks - 1) // RACKS_PER_GROUP + 1
    # IB leaves are managed over MLNX-OS; a Dell OS10 management switch per rack and a Cumulus
    # front-end switch per group of 8 racks carry the nodes' Ethernet, their ports named after the node.
    first = shape.switch_first
    switches: dict[str, dict] = {
        f"leaf-g{group:02d}-r{rail}": {"kind": "leaf", "address": f"127.0.0.1:{first + group * RAILS + rail}",
                                       "credentials": "switch", "device_type": "mellanox_mlnxos"}
        for group in range(groups)
        for rail in range(RAILS)
    }
    for rack in range(1, shape.racks + 1):
        switches[f"mgmt-r{rack:03d}"] = {
            "kind": "mgmt", "address": f"127.0.0.1:{first + groups * RAILS + rack - 1}", "credentials": "switch",
            "device_type": "dell_os10",
            "ports": {f"ethernet1/1/{slot}": f"gpu-{rack:03d}-{slot:02d}" for slot in range(1, NODES_PER_RACK + 1)}}
    for group in range(groups):
        racks = range(group * RACKS_PER_GROUP + 1, min(shape.racks, (group + 1) * RACKS_PER_GROUP) + 1)
        switches[f"fe-g{group:02d}"] = {
            "kind": "frontend", "address": f"127.0.0.1:{first + groups * RAILS + shape.racks + group}",
            "credentials": "switch", "device_type": "cumulus_linux",
            "ports": {f"swp{(rack - 1) % RACKS_PER_GROUP * NODES_PER_RACK + slot}": f"gpu-{rack:03d}-{slot:02d}"
                      for rack in racks for slot in range(1, NODES_PER_RACK + 1)}}
    secrets = "$FLEET_LAB_DIR/secrets.yml"
    return {
        "site": shape.name,
        "description": "The built-in simulated datacenter: every service runs on 127.0.0.1 (see lab/).",
        # The lab MAAS speaks plain http on 127.0.0.1 only, like a dev MAAS: accepted by name, warned each run.
        "maas": {"url": f"http://127.0.0.1:{shape.maas_port}/MAAS/", "credentials": "maas", "insecure_http": True},
        "ufm": {"url": f"https://127.0.0.1:{shape.ufm_port}/", "credentials": "ufm"},
        "bmc_tls": {"verify": True, "ca_file": "$FLEET_LAB_DIR/tls/ca.pem"},
        "os": {"distro_series": "jammy", "hwe_kernel": "hwe-22.04"},
        "pins": {"nvidia_driver": "550.127.05", "cuda": "12.4", "nccl": "2.21.5", "doca_ofed": "2.9.1",
                 "hca_firmware": "28.42.1000"},
        # The lab iDRACs' factory BIOS and firmware (lab/redfish/dell/catalog.py): a fresh lab is compliant,
        # so discover reads compliance (3 requests) and the bios stage has nothing to do.
        "bios": {"attributes": {"BootMode": "Uefi", "LogicalProc": "Enabled", "ProcVirtualization": "Enabled"}},
        "firmware": {"max_parallel": 8, "components": {
            "idrac": {"version": "7.10.70.00"}, "bios": {"version": "2.3.5"},
            "hca": {"match": "ConnectX-7", "version": "28.42.1000", "apply": "node"},
            "psu": {"version": "00.1D.7D"}}},
        "credentials": {
            "bmc": {"username": "root", "secret": {"file": secrets, "key": "bmc_password"}},
            "maas": {"secret": {"file": secrets, "key": "maas_api_key"}},
            "ufm": {"username": "admin", "secret": {"file": secrets, "key": "ufm_password"}},
            "switch": {"username": "admin", "secret": {"file": secrets, "key": "switch_password"}},
        },
        "node_defaults": {"role": "gpu", "gpu_count": 8, "hca_rate_gbps": 400, "model": LAB_MODEL},
        "switches": switches,
        "switch_config": {"ntp": ["198.18.0.1"], "syslog": ["198.18.0.1"], "mtu": 9216, "lldp": True,
                          "vlans": {10: "mgmt", 20: "frontend"}, "access_vlans": {"mgmt": 10, "frontend": 20}},
        "fabric": {
            "topology": "fabric.yml",
            # two counter snapshots 750 s of UFM time apart (NVIDIA judges BER over >= 720 s), at the lab's clock
            "sample_s": round(750 * shape.time_factor, 3),
            "ufm_tls": {"verify": True, "ca_file": "$FLEET_LAB_DIR/tls/ca.pem"},
        },
        # The lab's Slurm (lab/slurm) is the scheduler the watch loop drains nodes in; the loop's waits are
        # the lab's (a sweep every 30 s, a 5 s cool-down), its caps the production defaults.
        "workload": {"kind": "slurm", "slurm_conf": "$FLEET_LAB_DIR/slurm/slurm.conf"},
        "health": {"interval_s": 30},
        # No burn-in before return: it is a GPU stress run, and the lab's GPUs are fixture files.
        "watch": {"cooldown_s": 5, "drain_timeout_s": 120, "reboot_timeout_s": 60, "burnin": False},
        "racks": ["racks/*.yml"],
        # What the control plane needs to know about the lab, as ordinary site settings: production code reads
        # these the way it reads any site's, and never the lab: section below.
        "path_vars": {LAB_DIR_ENV: shape.state_dir},
        "state_dir": f"${LAB_DIR_ENV}/state",
        "before_run": ["{python}", "-m", "lab", "--site", "{site}", "up"],
        "ssh": {"config": f"${LAB_DIR_ENV}/ssh_config", "user": "ubuntu"},
        # The lab runs on a 2-core machine beside its own simulators: 2 ansible-playbook runs at once (20 forks).
        "ansible": {"vars": ["lab"], "env": {"FLEET_LAB_APT_URL": f"http://{LabHosts().gateway}:{shape.apt_port}/",
                                             **(LIGHT_HOSTS_ANSIBLE_ENV if shape.light_hosts else {})},
                    "max_parallel_playbooks": 2},
        "timeouts": lab_timeouts(shape.time_factor),
        "lab": {
            "state_dir": shape.state_dir,
            "time_factor": shape.time_factor,
            "seed": shape.seed,
            "ports": {"maas": shape.maas_port, "sushy": shape.sushy_port, "apt": shape.apt_port,
                      "ufm": shape.ufm_port, "slurmctld": shape.slurmctld_port,
                      "prometheus": shape.prometheus_port},
            "hosts": {"max": shape.max_hosts, **({"light": True} if shape.light_hosts else {})},
            "faults": shape.faults,
        },
    }


def fabric_document(shape: SiteShape) -> dict:
    """The fabric plan (`fabric.yml`): 8 rails, each its own three-tier fat tree of 64-port switches.

    Per rail: one leaf per group of 8 racks (ports 1-32 to the nodes, 33-64 up), 4 spines per pod of
    4 groups (ports 1-32 down, 33-64 up), 8 cores. At 128 racks that is 128 leaves, 128 spines and
    64 cores, 8,192 switch-to-switch links beside the 4,096 node cables: ~12,000 cables.
    """
    groups = (shape.racks - 1) // RACKS_PER_GROUP + 1
    pods = (groups - 1) // GROUPS_PER_POD + 1
    switches: dict[str, dict] = {}
    links: list[list] = []

    def switch(name: str, tier: int, rail: int, a: int, b: int) -> str:
        switches[name] = {"tier": ("leaf", "spine", "core")[tier - 1], "rail": rail,
                          "guid": f"0xfc6a1c03{tier:02x}{a:02x}{rail:02x}{b:02x}", "ports": SWITCH_PORTS}
        return name

    per_spine = DOWNLINKS // SPINES_PER_POD  # leaf uplinks to each spine of its pod
    per_core = DOWNLINKS // CORES_PER_RAIL  # spine uplinks to each core of its rail
    for rail in range(RAILS):
        leaves = [switch(f"leaf-g{group:02d}-r{rail}", 1, rail, group, 0) for group in range(groups)]
        cores = [switch(f"core-r{rail}-c{core}", 3, rail, 0, core) for core in range(CORES_PER_RAIL)]
        for pod in range(pods):
            for s in range(SPINES_PER_POD):
                spine = switch(f"spine-p{pod:02d}-r{rail}-s{s}", 2, rail, pod, s)
                for position, leaf in enumerate(leaves[pod * GROUPS_PER_POD:(pod + 1) * GROUPS_PER_POD]):
                    for k in range(per_spine):
                        links.append([leaf, DOWNLINKS + 1 + s * per_spine + k, spine, position * per_spine + k + 1])
                for c, core in enumerate(cores):
                    for k in range(per_core):
                        core_port = ((pod * SPINES_PER_POD + s) * per_core + k) % SWITCH_PORTS + 1
                        links.append([spine, DOWNLINKS + 1 + c * per_core + k, core, core_port])
    partitions = [{"pkey": "0x0a12", "name": "compute", "membership": "full", "index0": True, "ip_over_ib": True}]
    return {"rails": RAILS, "rate_gbps": 400, "width": "4x", "partitions": partitions, "switches": switches,
            "links": links}


def write_site(directory: Path, shape: SiteShape) -> Path:
    """Write site.yml, the fabric plan and one file per rack; returns the site file."""
    (directory / "racks").mkdir(parents=True, exist_ok=True)
    for rack in range(1, shape.racks + 1):
        doc = {"rack": rack, "nodes": [node_entry(rack, slot, shape) for slot in range(1, NODES_PER_RACK + 1)]}
        _dump(directory / "racks" / f"rack-{rack:03d}.yml", doc)
    document = site_document(shape)
    if shape.fabric:
        _dump(directory / "fabric.yml", fabric_document(shape), flow_lists=True)
    else:
        del document["fabric"]
    site_file = directory / "site.yml"
    _dump(site_file, document)
    return site_file


def _dump(path: Path, doc: dict, *, flow_lists: bool = False) -> None:
    """`flow_lists` writes innermost lists and mappings on one line each (a link per line)."""
    header = "# Generated by `python -m lab.sitegen`; edit the generator, not this file.\n"
    text = yaml.safe_dump(doc, sort_keys=False, width=120, default_flow_style=None if flow_lists else False)
    path.write_text(header + text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--racks", type=int, default=128)
    args = parser.parse_args()
    print(write_site(args.directory, SiteShape(racks=args.racks)))


if __name__ == "__main__":
    main()
