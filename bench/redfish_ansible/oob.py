"""Runs oob.yml (power cycle + one-time PXE through community.general.redfish_command) for a site's nodes.

`bench/bringup.py` times fleet.redfish against this: the same steps for the same nodes, the way
many teams do it today (one Ansible host per BMC, a module invocation per step, `until` polling).
The inventory is generated from the site so both sides talk to exactly the same BMCs; the BMC
password travels in the environment of the ansible-runner process only, never in a file.

    python -m bench.redfish_ansible.oob --site inventory/lab/site.yml --nodes 8
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import ansible_runner
import yaml

from fleet.errors import FleetError
from fleet.site import Node, Site, load_site, resolve_credentials

PLAYBOOK = Path(__file__).with_name("oob.yml")
PASSWORD_ENV = "FLEET_BMC_PASSWORD"

log = logging.getLogger(__name__)


def write_inventory(site: Site, nodes: Sequence[Node], path: Path, *, poll_delay_s: float,
                    power_timeout_s: float, request_timeout_s: int) -> Path:
    """A YAML inventory with one host per node, in group `bmcs`, carrying its BMC address and username."""
    if site.bmc_tls.ca_file is None:
        raise FleetError("the Ansible baseline verifies BMC certificates and needs bmc_tls.ca_file in the site",
                         endpoint=str(site.path), hint="set bmc_tls.ca_file")
    users = {node.hostname: site.credentials[node.bmc.credentials].username for node in nodes}
    inventory = {"bmcs": {
        "hosts": {node.hostname: {"bmc_address": node.bmc.address, "bmc_username": users[node.hostname]}
                  for node in nodes},
        "vars": {
            "ansible_python_interpreter": sys.executable,
            "bmc_ca_file": str(site.bmc_tls.ca_file),
            "oob_poll_delay_s": poll_delay_s,
            "oob_poll_retries": max(1, int(power_timeout_s / poll_delay_s)),
            "oob_request_timeout_s": request_timeout_s,
        },
    }}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
    return path


def run_oob_playbook(site: Site, nodes: Sequence[Node], *, forks: int = 8, poll_delay_s: float = 1.0,
                     power_timeout_s: float = 120.0, request_timeout_s: int = 10,
                     work_dir: Path | None = None) -> float:
    """Run oob.yml for `nodes` through ansible-runner; wall seconds from start to the last host done.

    Every node's BMC must use the same credentials (the password is passed once, in the environment).
    Raises FleetError naming the hosts that failed.
    """
    names = {node.bmc.credentials for node in nodes}
    if len(names) != 1:
        raise FleetError(f"the Ansible baseline needs one BMC credential for all nodes, got {sorted(names)}")
    secret = resolve_credentials(site, names.pop()).secret
    with tempfile.TemporaryDirectory(prefix="oob-ansible-", dir=work_dir) as tmp:
        private = Path(tmp)
        inventory = write_inventory(site, nodes, private / "inventory.yml", poll_delay_s=poll_delay_s,
                                    power_timeout_s=power_timeout_s, request_timeout_s=request_timeout_s)
        env = {
            PASSWORD_ENV: secret,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
        }
        started = time.monotonic()
        result = ansible_runner.run(private_data_dir=str(private), playbook=str(PLAYBOOK), inventory=str(inventory),
                                    forks=forks, envvars=env, quiet=True)
        elapsed_s = time.monotonic() - started
        failed = sorted({e["event_data"].get("host", "?") for e in result.events
                         if e.get("event") in ("runner_on_failed", "runner_on_unreachable")
                         and not e["event_data"].get("ignore_errors")})
        if result.status != "successful" or failed:
            raise FleetError(f"the Ansible OOB playbook ended '{result.status}' (rc {result.rc})",
                             service_message=f"failed hosts: {', '.join(failed) or 'none reported'}",
                             hint=f"rerun with the inventory in {private} to see the task output")
    log.info("Ansible OOB playbook: %d nodes in %.2f s with %d forks", len(nodes), elapsed_s, forks)
    return elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=Path("inventory/lab/site.yml"))
    parser.add_argument("--nodes", type=int, default=8, help="the first N nodes of the site")
    parser.add_argument("--forks", type=int, default=8)
    parser.add_argument("--poll-delay-s", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    site = load_site(args.site)
    nodes = list(site.nodes.values())[: args.nodes]
    elapsed_s = run_oob_playbook(site, nodes, forks=args.forks, poll_delay_s=args.poll_delay_s)
    log.info("%d nodes: %.2f s (%.2f s per node)", len(nodes), elapsed_s, elapsed_s / len(nodes))


if __name__ == "__main__":
    main()
