"""slurmd on a lab host: installed from Debian's packages when the host boots, then registered.

The MAAS hook boots a host when its machine reaches Deployed (lab/hosts/hook.py) and then asks for
this in the background (`enrol_later`), the way a site's configuration management joins a freshly
deployed node to the cluster: the host gets the cluster's slurm.conf, the munge key and /etc/hosts
lines for the controller, and runs munge and slurmd under its own systemd.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from fleet.errors import FleetError
from fleet.site import Site
from lab.hosts import nspawn
from lab.hosts.proc import pid_alive
from lab.slurm import config
from lab.slurm.service import NAME, munge_dir, node_conf_path, plan, slurm_dir

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEBS_ON_HOST = Path("var/cache/fleet-lab-slurm")
INSTALL_TIMEOUT_S = 180.0


def installed(root: Path) -> dict[str, str]:
    """Package -> version installed in a host's root (its dpkg status file)."""
    found: dict[str, str] = {}
    try:
        text = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return found
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Status") == "install ok installed" and "Package" in fields:
            found[fields["Package"]] = fields.get("Version", "")
    return found


def missing_debs(debs: list[Path], have: dict[str, str]) -> list[Path]:
    """The .deb files whose package is not installed at that version (file names are name_version_arch.deb)."""
    wanted = []
    for deb in debs:
        name, version, _arch = deb.name[: -len(".deb")].split("_")
        if have.get(name) != version.replace("%3a", ":"):
            wanted.append(deb)
    return wanted


def enrol(site: Site, lab_dir: Path, hostname: str) -> None:
    """Install and start slurmd (and munge) on a running lab host; idempotent."""
    node = site.nodes[hostname]
    root = nspawn.hosts_dir(lab_dir) / hostname / "merged"
    if hostname not in nspawn.running_hosts(lab_dir):
        raise FleetError(f"lab host {hostname} is not running", node=hostname)
    cluster = plan(site, lab_dir)
    target = root / DEBS_ON_HOST
    target.mkdir(parents=True, exist_ok=True)
    for deb in missing_debs(sorted((slurm_dir(lab_dir) / "debs").glob("*.deb")), installed(root)):
        shutil.copyfile(deb, target / deb.name)
    (root / "etc/slurm").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(node_conf_path(lab_dir), root / "etc/slurm/slurm.conf")
    (root / "etc/munge").mkdir(parents=True, exist_ok=True)
    key = root / "etc/munge/munge.key"
    key.unlink(missing_ok=True)
    shutil.copyfile(munge_dir(lab_dir) / "munge.key", key)
    key.chmod(0o400)
    hosts = root / "etc/hosts"
    lines = config.hosts_lines(cluster, [hostname])
    current = hosts.read_text(encoding="utf-8") if hosts.exists() else ""
    if lines not in current:
        hosts.write_text(current.rstrip("\n") + "\n" + lines, encoding="utf-8")
    script = (f"set -e; if ls /{DEBS_ON_HOST}/*.deb >/dev/null 2>&1; then "
              f"DEBIAN_FRONTEND=noninteractive dpkg -i /{DEBS_ON_HOST}/*.deb >/var/log/fleet-lab-slurm.log 2>&1; "
              f"rm -f /{DEBS_ON_HOST}/*.deb; fi; chown munge:munge /etc/munge/munge.key; "
              "systemctl restart munge; systemctl enable -q slurmd; systemctl restart slurmd")
    # The host logs in like a MAAS-deployed Ubuntu (the lab's ssh_config names its user): root work goes through sudo.
    argv = ["ssh", "-F", str(lab_dir / "ssh_config"), "-o", "BatchMode=yes", node.address,
            f"sudo -n sh -c {shlex.quote(script)}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise FleetError(f"installing slurmd on lab host {hostname} failed (exit {done.returncode})", node=hostname,
                         service_message=(done.stderr.strip() or done.stdout.strip())[-600:],
                         hint=f"read /var/log/fleet-lab-slurm.log on the host ({lab_dir}/ssh_config)")
    log.info("%s: slurmd installed and started", hostname)


def controller_running(lab_dir: Path) -> bool:
    try:
        return pid_alive(int((lab_dir / "pids" / f"{NAME}.pid").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def enrol_later(site: Site, lab_dir: Path, hostname: str) -> bool:
    """From the MAAS hook: enrol the host in the background (the hook must not wait on dpkg); False if no Slurm."""
    if not controller_running(lab_dir):
        return False
    (lab_dir / "logs").mkdir(parents=True, exist_ok=True)
    with open(lab_dir / "logs" / "slurm-enrol.log", "ab") as out:
        subprocess.Popen([sys.executable, "-m", "lab.slurm", "--lab-dir", str(lab_dir), "enrol", "--site",
                          str(site.path), hostname], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    return True
