"""Light lab hosts: one booted nspawn container carries every deployed node as its own address and sshd.

A full lab host (lab/hosts/nspawn.py, ~44 MiB and a systemd each) is right for Ansible, but a 512-node
soak to `validate` on a 2-core machine cannot boot 512 of them. A light host keeps what a client of a
MAAS-deployed Ubuntu node can notice, for the stages that log in without Ansible (hostkey, validate's
health checks, the configure stage's fact gathering):

- **Up when MAAS says Deployed, not before the install is done**: real MAAS marks a machine Deployed when,
  after curtin's install and the reboot, cloud-init in the deployed OS asks the metadata server for its
  user-data (canonical/maas src/metadataserver/api.py `UserDataHandler.read` -> `Node.end_deployment`);
  cloud-init does that in its network stage, which systemd orders before ssh.service, after the network is
  up and with the host keys made by its `ssh` module, so a client that sees Deployed finds the machine on
  its address and its sshd at most seconds later. The lab MAAS runs this hook when a deployment reboots into
  its OS ("Rebooting") and, because the hook file says `boots_os` (lab/control.py), reports Deployed only
  once the hook has finished: the node's address is on the carrier's bridge link and its sshd has told
  systemd it is ready (Type=notify), so no client sees Deployed before the node answers. Real machines
  boot in parallel, so the hook is a batch hook (`batch` in the hook file): one run boots every machine
  whose deployment rebooted since the last run began (up to `BATCH_MAX`, two runs at once: lab/maas/
  server.py), and each machine is Deployed as soon as its run has it up. A node the hook could not bring
  up stays Deploying until MAAS's 40-minute monitor (lab time) fails the deployment, as an OS that never
  phones home does. The
  address is removed when the machine finishes releasing; before the boot nothing answers ARP at it (ssh
  times out), as for a powered-off server.
- **Its own host key, new after every deploy** (cloud-init's `ssh` module deletes and regenerates host keys on
  first boot: cloudinit/config/cc_ssh.py, `ssh_deletekeys`): each deploy makes an ed25519 key for the node,
  recorded in the lab's known_hosts for its address (lab/hosts/keys.py) like a full host's; the tool must
  notice the change through its own journal (fleet/hostkeys.py).
- **Cloud-init's login** (`default_user` ubuntu with `NOPASSWD:ALL` sudo, root's key wrapped in
  `disable_root_opts`, password logins off: cloud-init's defaults, cloudinit/settings.py and
  cc_set_passwords): the carrier is booted with the same account files as a full host (lab/hosts/plan.py
  host_files), so `ubuntu` logs in with the lab key and `sudo -n` works, and root is told to log in as
  ubuntu and dropped (exit 142). Every node's sshd runs with `PasswordAuthentication no`.
- **Its own name and hardware**: each node's sshd runs in its own UTS and mount namespaces
  (`unshare --uts --mount`): `hostname` and /etc/hosts answer the node's name, the lab's hardware fixture set
  its injected faults call for (lab/hosts/hardware.py: sick GPU, link down, bad dmesg) is bind-mounted on
  /opt/fleet-lab/hardware/current, and the health checks' state dir (/var/lib/healthcheck: IB counter
  history) is the node's own. So `python3 -m healthcheck` over SSH judges that node's GPUs, HCAs and kernel
  log, read through the checks' configured sources exactly as on a full lab host; nothing in the checks knows.
  The set is chosen from faults.json at deploy: a fault injected later (`lab fault`) shows at the next deploy.

What a client could still tell apart, and why it does not matter for the stages run on light hosts:
the nodes share one kernel, /proc (one process table: every node's sshds, a shared uptime and boot id),
/etc/machine-id, /home/ubuntu and the package set; a write outside the per-node mounts is seen by every
node. So the Ansible roles (which install packages, write /etc and restart services) cannot run on light
hosts: a site with light hosts runs the configure stage with no role selected (the soak's site sets
Ansible's own `ANSIBLE_RUN_TAGS` to a tag no role has: fact gathering only), and the carrier carries what the
healthcheck_agent role would have installed: the healthcheck package on python3's path and
/etc/healthcheck/config.json (the lab-node fixture config: 8 GPUs at the site's driver pin, 8 HCAs at
400 Gb/s with their firmware, eth0 at 100 Gb/s, the kernel modules, no docker, no NVSwitch). That config has
no service tag and no IB cabling map (the role renders those per node from the inventory), so those two
expectations are not checked on light hosts; every other check runs.

Cost: one sshd listener per deployed node (plus two processes per open connection) in one container.
A hook run is one Python process for a batch of nodes of one MAAS event; it reads the nodes' addresses from
`lab_dir/light/plan.json` (written at `lab up`) instead of loading the site, makes their host keys in
process (`cryptography`, as ssh-keygen would: ed25519, OpenSSH format), and enters the carrier three times
per batch (`ip -batch` for the addresses, one `systemctl start` for every node's unit, `systemctl
is-active` only when that failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.atomic import write_atomic
from lab.hosts import hardware, keys, leases, nspawn
from lab.hosts.image import HostError
from lab.hosts.plan import LAB_NETWORK, LIGHT_CARRIER_RANGE, HostFile

if TYPE_CHECKING:
    from fleet.site import Site

log = logging.getLogger(__name__)

CARRIER = "light-carrier"
NODES_DIR = Path("srv/fleet-nodes")  # in the carrier: one directory per deployed node
HEALTHCHECK_CONFIG = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "lab-node" / "healthy" / "config.json"
HEALTHCHECK_SOURCE = Path(__file__).resolve().parents[2] / "healthcheck"
HARDWARE = "/" + str(hardware.TARGET)
INTERFACE = "host0"

# One node's sshd in its own UTS and mount namespaces (unshare without --fork execs, so systemd's main pid
# is sshd itself and Type=notify works): its name, its hardware set, its health state.
NODE_SCRIPT = r"""#!/bin/sh
# fleet-node-sshd NODE: lab node NODE's sshd (lab/hosts/light.py), in its own UTS and mount namespaces.
set -e
dir=/srv/fleet-nodes/$1
mkdir -p /run/sshd
exec unshare --uts --mount --propagation private /bin/sh -ec '
hostname "$1"
mount --bind "$2/hosts" /etc/hosts
mount --bind "$2/hostname" /etc/hostname
mount --bind "/opt/fleet-lab/hardware/$(cat "$2/hardware")" /opt/fleet-lab/hardware/current
mount --bind "$2/state" /var/lib/healthcheck
exec /usr/sbin/sshd -D -e -f "$2/sshd_config"
' sh "$1" "$dir"
"""
NODE_UNIT = """[Unit]
Description=Lab node %i (light host): its sshd at its own address
After=network.target

[Service]
Type=notify
ExecStart=/usr/local/sbin/fleet-node-sshd %i
KillMode=control-group
Restart=no
"""


# The carrier's own sshd binds only its address (ListenAddress): started before networkd has put that address
# on host0 (ssh.service is ordered after network.target, which does not wait for addresses), sshd exits 255,
# "Cannot bind any address", and Debian's unit never restarts it (RestartPreventExitStatus=255): the carrier
# then sits at its login prompt with no sshd for good. Seen in CI on a loaded machine (2026-12-03); replayed
# by removing the address and restarting ssh.service. So sshd starts once the address is there.
WAIT_ADDRESS_SCRIPT = r"""#!/bin/sh
# fleet-wait-address IFACE ADDRESS: wait for ADDRESS on IFACE (lab/hosts/light.py); 120 s at most, though
# ssh.service's start timeout (90 s) ends it first and Restart=on-failure starts it again
for _ in $(seq 1200); do
    ip -4 -o addr show dev "$1" | grep -qF " $2/" && exit 0
    sleep 0.1
done
echo "$2 never appeared on $1" >&2
exit 1
"""
CARRIER_SSH_DROPIN = """[Service]
# lab/hosts/light.py: sshd binds only the carrier's address; a failure here is restarted (Restart=on-failure)
ExecStartPre=/usr/local/sbin/fleet-wait-address {interface} {address}
"""


def sshd_config(name: str, address: str) -> str:
    """A node's sshd: only its address, only its key; Debian's and cloud-init's defaults otherwise."""
    folder = "/" + str(NODES_DIR / name)
    return (f"# lab node {name} (lab/hosts/light.py)\n"
            f"ListenAddress {address}:22\n"
            f"HostKey {folder}/ssh_host_ed25519_key\n"
            "PidFile none\n"
            "UsePAM yes\n"
            "KbdInteractiveAuthentication no\n"
            "PasswordAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "AcceptEnv LANG LC_*\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n")


def node_files(name: str, address: str, hardware_set: str) -> dict[str, str]:
    """The node's own files in its carrier directory (pure): sshd settings, name, hardware set."""
    return {
        "sshd_config": sshd_config(name, address),
        "hostname": f"{name}\n",
        "hosts": f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n{address}\t{name}\n",
        "hardware": f"{hardware_set}\n",
    }


def healthcheck_config(driver: str | None) -> str:
    """The lab-node fixture config with the carrier's absolute paths (what the role would render for the lab,
    playbooks/vars/lab.yml's sources) and the site's driver pin."""
    config = json.loads(HEALTHCHECK_CONFIG.read_text(encoding="utf-8"))
    current = f"{HARDWARE}/current"
    config["sources"] = {"use_nvml": False, "nvidia_smi": [f"{HARDWARE}/bin/nvidia-smi", f"{current}/"],
                         "kernel_log_file": f"{current}/dmesg.txt", "modules_file": f"{current}/proc-modules.txt",
                         "sysfs_root": f"{current}/sysfs"}
    if driver:
        config["gpu"]["driver_versions"] = [driver]
    config["dmesg"] = {"baseline": "/etc/healthcheck/dmesg-baseline.json"}
    return json.dumps(config, indent=2) + "\n"


def carrier_files(address: str, driver: str | None) -> list[HostFile]:
    """What the carrier has beyond a full host: its own sshd on its address only (the nodes' take :22 on
    theirs), started once that address is up, the node unit and script, and what the healthcheck_agent role
    would install."""
    files = [
        HostFile("etc/ssh/sshd_config.d/20-fleet-light-carrier.conf", f"ListenAddress {address}:22\n"),
        HostFile("etc/systemd/system/ssh.service.d/10-fleet-light-carrier.conf",
                 CARRIER_SSH_DROPIN.format(interface=INTERFACE, address=address)),
        HostFile("usr/local/sbin/fleet-node-sshd", NODE_SCRIPT, 0o755),
        HostFile("usr/local/sbin/fleet-wait-address", WAIT_ADDRESS_SCRIPT, 0o755),
        HostFile("etc/systemd/system/fleet-node@.service", NODE_UNIT),
        HostFile("etc/healthcheck/config.json", healthcheck_config(driver)),
        HostFile("usr/lib/python3/dist-packages/fleet-healthcheck.pth", "/opt/fleet\n"),
    ]
    for source in sorted(HEALTHCHECK_SOURCE.rglob("*.py")):
        files.append(HostFile(f"opt/fleet/healthcheck/{source.relative_to(HEALTHCHECK_SOURCE)}",
                              source.read_text(encoding="utf-8")))
    return files


@dataclass(frozen=True)
class LightPlan:
    """What the hook needs, written at `lab up` so no hook loads the site: node -> address, login, driver."""

    nodes: dict[str, str]
    login_user: str
    driver: str | None
    bridge: str
    gateway: str

    @staticmethod
    def path(lab_dir: Path) -> Path:
        return lab_dir / "light" / "plan.json"

    @classmethod
    def read(cls, lab_dir: Path) -> LightPlan:
        try:
            raw = json.loads(cls.path(lab_dir).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HostError(f"no light-host plan at {cls.path(lab_dir)}", hint="start the lab (lab up) first") from None
        return cls(raw["nodes"], raw["login_user"], raw["driver"], raw["bridge"], raw["gateway"])

    def write(self, lab_dir: Path) -> None:
        write_atomic(self.path(lab_dir), json.dumps(self.__dict__, sort_keys=True))


def prepare(site: Site, lab_dir: Path) -> None:
    """At `lab up`: the plan for the hook, and the carrier booted (idempotent: a running carrier is kept)."""
    settings = site.lab.hosts if site.lab else None
    if settings is None:
        raise HostError(f"site {site.path} has no lab: section, so it has no lab hosts")
    plan = LightPlan({name: node.address for name, node in site.nodes.items()}, site.ssh.user,
                     site.pins.get("nvidia_driver"), settings.bridge, settings.gateway)
    plan.write(lab_dir)
    ensure_carrier(lab_dir, plan)


def ensure_carrier(lab_dir: Path, plan: LightPlan) -> int:
    """The carrier running (booted now if not); returns the pid of its systemd (PID 1 inside)."""
    lab_dir = lab_dir.resolve()
    running = nspawn.running_hosts(lab_dir)
    if CARRIER not in running:
        address = leases.allocate(lab_dir, CARRIER, network=LIGHT_CARRIER_RANGE)
        nspawn.start(CARRIER, address, lab_dir, bridge_name=plan.bridge, gateway=plan.gateway,
                     login_user=plan.login_user, extra_files=carrier_files(address, plan.driver))
        root = carrier_root(lab_dir)
        (root / "var/lib/healthcheck").mkdir(parents=True, exist_ok=True)  # each node mounts its own state here
        sets = hardware.install_sets(root, plan.driver)
        current = sets / "current"
        current.unlink(missing_ok=True)  # a full host's `current` is a link; each node here mounts its set on it
        current.mkdir(exist_ok=True)
        log.info("light-host carrier up at %s", address)
    return container_pid(lab_dir)


def carrier_root(lab_dir: Path) -> Path:
    return nspawn.hosts_dir(lab_dir) / CARRIER / "merged"


def container_pid(lab_dir: Path) -> int:
    """The carrier's PID 1 (systemd-nspawn's child), whose namespaces the hook enters."""
    info = {h.name: h for h in nspawn.list_hosts(lab_dir)}.get(CARRIER)
    if info is None or not info.running or info.pid is None:
        raise HostError("the light-host carrier is not running", hint="start the lab (lab up)")
    init = nspawn.container_init(info.pid)
    if init is None:
        raise HostError("the light-host carrier has no PID 1 yet", hint="start the lab (lab up)")
    return init


def _inside(pid: int, *argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` in the carrier (nspawn.run_inside); with `check`, a failure is a HostError."""
    done = nspawn.run_inside(pid, *argv, stdin=stdin)
    if check and done.returncode != 0:
        raise HostError(f"in the light-host carrier, {' '.join(argv[:3])} ... failed",
                        service_message=done.stderr.strip()[-1500:])
    return done


def unit(name: str) -> str:
    return f"fleet-node@{name}.service"


def address_batch(verb: str, addresses: list[str]) -> str:
    """`ip -batch` input adding or deleting the nodes' addresses on the carrier's bridge link (pure)."""
    return "".join(f"addr {verb} {address}/{LAB_NETWORK.prefixlen} dev {INTERFACE}\n" for address in addresses)


def start(names: list[str], lab_dir: Path) -> dict[str, str]:
    """MAAS's deployments of `names` booted their OS: a fresh node each (new host key, its fault's hardware
    set) at its address. Returns node -> hardware set for the nodes whose sshd is up (told systemd it is
    ready); a node missing from it did not come up (the reason is logged). A node that runs already is
    replaced (a redeploy is a reinstall).

    One batch for every node: one `ip -batch` for the addresses and one `systemctl start` for the units
    (systemd starts them in parallel and returns once every one is ready or failed), host keys made in
    this process and recorded in one known_hosts rewrite. A 512-node deploy wave reboots into its OS
    within seconds; one process + ssh-keygen + two nsenters per node kept up with ~1.8 nodes a second."""
    lab_dir = lab_dir.resolve()
    plan = LightPlan.read(lab_dir)
    unknown = [name for name in names if name not in plan.nodes]
    for name in unknown:
        log.error("%s is not a node of this lab's light-host plan: no light host", name)
    names = [name for name in dict.fromkeys(names) if name in plan.nodes]
    if not names:
        return {}
    pid = ensure_carrier(lab_dir, plan)
    root = carrier_root(lab_dir)
    _stop_in(pid, [name for name in names if (root / NODES_DIR / name).exists()], plan, lab_dir)
    faults = hardware.all_faults(lab_dir)
    chosen: dict[str, str] = {}
    new_keys: dict[str, str | None] = {}
    for name in names:
        folder = root / NODES_DIR / name
        chosen[name] = hardware.choose_set(faults.get(name, {}))
        (folder / "state").mkdir(parents=True)
        for file, content in node_files(name, plan.nodes[name], chosen[name]).items():
            (folder / file).write_text(content, encoding="utf-8")
        _host_key, new_keys[plan.nodes[name]] = keys.new_host_key(folder / "ssh_host_ed25519_key")
    keys.update_host_keys(lab_dir, new_keys)
    added = _inside(pid, "ip", "-force", "-batch", "-", check=False,
                    stdin=address_batch("add", [plan.nodes[name] for name in names]))
    errors = [line for line in added.stderr.splitlines() if line.strip() and "File exists" not in line
              and not line.startswith("Command failed")]
    if errors:  # the node's sshd cannot bind then, so its unit fails below
        log.error("adding light-host addresses: %s", "; ".join(errors)[-1500:])
    started = _inside(pid, "systemctl", "start", *(unit(name) for name in names), check=False)
    if started.returncode == 0:
        return chosen
    log.error("systemctl start of %d light hosts: %s", len(names), started.stderr.strip()[-1500:])
    states = _inside(pid, "systemctl", "is-active", *(unit(name) for name in names), check=False).stdout.split()
    up = {name for name, state in zip(names, states, strict=False) if state == "active"}
    for name in names:
        if name not in up:
            log.error("%s: its light host's sshd did not come up (systemctl status %s in the carrier)", name,
                      unit(name))
    return {name: chosen[name] for name in names if name in up}


def stop(names: list[str], lab_dir: Path) -> list[str]:
    """MAAS released `names`: their sshds and sessions end, their addresses go, their files and host keys are
    thrown away. Returns the nodes that had a light host."""
    lab_dir = lab_dir.resolve()
    if CARRIER not in nspawn.running_hosts(lab_dir):
        return []
    plan = LightPlan.read(lab_dir)
    present = [name for name in dict.fromkeys(names) if (carrier_root(lab_dir) / NODES_DIR / name).exists()]
    _stop_in(container_pid(lab_dir), present, plan, lab_dir)
    return present


def _stop_in(pid: int, names: list[str], plan: LightPlan, lab_dir: Path) -> None:
    if not names:
        return
    _inside(pid, "systemctl", "stop", *(unit(name) for name in names), check=False)
    addresses = [plan.nodes[name] for name in names if name in plan.nodes]
    if addresses:
        _inside(pid, "ip", "-force", "-batch", "-", check=False, stdin=address_batch("del", addresses))
        keys.update_host_keys(lab_dir, dict.fromkeys(addresses))
    for name in names:
        shutil.rmtree(carrier_root(lab_dir) / NODES_DIR / name, ignore_errors=True)


def running_nodes(lab_dir: Path) -> list[str]:
    """The nodes the carrier carries now (a directory each)."""
    folder = carrier_root(lab_dir.resolve()) / NODES_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def hook(lab_dir: Path, event: str, hostnames: list[str]) -> list[str]:
    """The lab MAAS's batch hook for a site with light hosts: `deployed` starts the nodes, `released` stops
    them. Returns the nodes done (for `deployed`: those whose sshd is up)."""
    if event == "deployed":
        chosen = start(hostnames, lab_dir)
        for name, hardware_set in chosen.items():
            log.info("%s: deployed: light host up, lab hardware set %s", name, hardware_set)
        return list(chosen)
    if event == "released":
        from lab import faults as lab_faults  # only here: it loads the site model, which a deploy need not

        had = set(stop(hostnames, lab_dir))
        for name in hostnames:
            log.info("%s: released: %s", name, "light host thrown away" if name in had else "it had no light host")
            if cleared := lab_faults.clear_on_reimage(lab_dir, name):
                log.info("%s: released, so the lab clears %s (a reinstall does)", name, ", ".join(cleared))
        return list(hostnames)
    raise HostError(f"unknown hook event {event!r}; expected 'deployed' or 'released'")


def hook_argv(lab_dir: Path) -> list[str]:
    """The argv the lab MAAS runs as `argv + [event, hostname, ...]` (a batch hook: lab.maas.store.HookFile);
    it prints `done HOSTNAME` for every node it brought up or threw away."""
    return [sys.executable, "-m", "lab.hosts.light", "--lab-dir", str(lab_dir), "hook"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.hosts.light", description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    sub = parser.add_subparsers(dest="verb", required=True)
    hooked = sub.add_parser("hook", help="the lab MAAS batch hook: EVENT (deployed|released) HOSTNAME...")
    hooked.add_argument("event")
    hooked.add_argument("hostnames", nargs="+")
    sub.add_parser("list", help="the nodes the carrier carries now")
    args = parser.parse_args(argv)
    lab_dir = args.lab_dir.resolve()
    (lab_dir / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(lab_dir / "logs" / "hosts.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        if args.verb == "hook":
            done = hook(lab_dir, args.event, args.hostnames)
            print("".join(f"done {name}\n" for name in done), end="")
            if len(done) < len(set(args.hostnames)):
                return 1
        else:
            print("\n".join(running_nodes(lab_dir)))
    except HostError as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
