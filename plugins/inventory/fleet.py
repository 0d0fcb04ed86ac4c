"""Ansible inventory plugin over fleet.site: the site file is the one source of truth.

The control plane (`provision.py`) and Ansible must never disagree about which nodes exist, where
they are racked or how their HCAs are cabled, so this plugin does not parse the site itself: it
calls `fleet.site.load_site` and maps the validated model onto groups and host variables.
Secrets stay references and never become variables; playbooks that need one read it the way the
control plane does (environment or vault).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DOCUMENTATION = r"""
name: fleet
short_description: Hosts, groups and expected cabling from a fleet site inventory
description:
  - Loads a fleet site (C(site.yml) plus its rack files) with the same loader and validator as
    C(provision.py), so Ansible and the control plane see one model.
  - Creates one group per rack (C(rack_012)) and one per role (C(role_gpu)); every node is a host
    named by its hostname.
  - Host variables are C(ansible_host) (the node's address), C(fleet_rack), C(fleet_slot),
    C(fleet_role), C(fleet_service_tag), C(fleet_gpu_count), C(fleet_pxe_mac), C(fleet_bmc_address)
    and C(fleet_hcas) (a list of dicts with C(name), C(guid), C(leaf), C(port), C(rate_gbps)).
  - The group C(all) gets C(fleet_site) (the site's name) and C(fleet_pins) (the version pins),
    C(ansible_user) (the site's C(ssh.user), C(ubuntu) by default), C(ansible_ssh_common_args) with the
    bastion when the site names one (C(ssh.proxy_jump)), and with a
    C(fabric:) section C(fleet_fabric) (the plan's C(partitions) and C(ipoib_mode)).
  - A site with a C(kraken) section adds the groups C(kraken_control) (its control hosts, with C(ansible_host))
    and C(kraken_agent) (its GPU nodes; the group exists, empty, on every site), and C(fleet_kraken) on
    C(all) (environment, endpoints, ports, artifacts, backend, agent limits) for the kraken_control and
    kraken_agent roles.
  - No secret and no credential reference is ever exposed as a variable.
  - A site that does not validate fails the source with every problem listed (file, key path, fix).
    Set C(inventory.any_unparsed_is_failed) so that such a failure also fails the command.
  - The config file must be named C(fleet.yml), C(fleet.yaml), C(*.fleet.yml) or C(*.fleet.yaml).
options:
  plugin:
    description: The name of this plugin; marks the file as this plugin's configuration.
    required: true
    type: str
    choices: [fleet]
  site:
    description:
      - Path to the site file. A relative path is relative to the directory of this configuration file.
    required: true
    type: str
"""

EXAMPLES = r"""
# inventory/lab/fleet.yml
plugin: fleet
site: site.yml

# ansible-inventory -i inventory/lab/fleet.yml --graph rack_012
# ansible-inventory -i inventory/lab/fleet.yml --host gpu-012-03
"""

from ansible.errors import AnsibleParserError  # noqa: E402 - DOCUMENTATION first is Ansible's convention
from ansible.plugins.inventory import BaseInventoryPlugin  # noqa: E402

# Ansible loads this file by path, outside any package: make the repository's `fleet` importable.
_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from fleet.errors import InventoryError  # noqa: E402
from fleet.site import Node, Site, load_site  # noqa: E402

CONFIG_NAMES = ("fleet.yml", "fleet.yaml")


def rack_group(number: int) -> str:
    """rack 12 -> rack_012: zero-padded like the hostnames, so groups sort in rack order."""
    return f"rack_{number:03d}"


def role_group(role: str) -> str:
    """A role name made safe for an Ansible group name (letters, digits, underscores)."""
    return "role_" + "".join(c if c.isalnum() else "_" for c in role)


def host_vars(node: Node) -> dict[str, Any]:
    """The variables of one host: where it is and what it must look like, never how to log in."""
    return {
        "ansible_host": node.address,
        "fleet_rack": node.rack,
        "fleet_slot": node.slot,
        "fleet_role": node.role,
        "fleet_service_tag": node.service_tag,
        "fleet_gpu_count": node.gpu_count,
        "fleet_pxe_mac": node.pxe_mac,
        "fleet_bmc_address": node.bmc.address,
        "fleet_hcas": [
            {"name": h.name, "guid": h.guid, "leaf": h.leaf, "port": h.port, "rate_gbps": h.rate_gbps}
            for h in node.hcas
        ],
    }


def site_vars(site: Site) -> dict[str, Any]:
    """Variables of the group `all`."""
    # MAAS's Ubuntu logs in as `ubuntu` only; the plays use become for root work.
    result: dict[str, Any] = {"fleet_site": site.name, "fleet_pins": dict(site.pins), "ansible_user": site.ssh.user}
    if site.ssh.proxy_jump:
        result["ansible_ssh_common_args"] = f"-o ProxyJump={site.ssh.proxy_jump}"
    if site.fabric is not None:  # the doca_ofed role's IPoIB partition and mode, from the same plan UFM is held to
        result["fleet_fabric"] = {
            "partitions": [{"pkey": p.pkey, "name": p.name, "membership": p.membership, "index0": p.index0,
                            "ip_over_ib": p.ip_over_ib} for p in site.fabric.topology.partitions],
            "ipoib_mode": site.fabric.ipoib_mode,
        }
    if site.kraken is not None:  # the kraken_control and kraken_agent roles' cluster
        result["fleet_kraken"] = site.kraken.ansible_vars()
    return result


class InventoryModule(BaseInventoryPlugin):
    """Hosts and groups from a fleet site."""

    NAME = "fleet"

    def verify_file(self, path: str) -> bool:
        """Claim only our own config files, so a rack file or site.yml is never mistaken for one."""
        if not super().verify_file(path):
            return False
        name = Path(path).name
        return name in CONFIG_NAMES or name.endswith(tuple("." + n for n in CONFIG_NAMES))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        site_file = Path(path).resolve().parent / str(self.get_option("site"))
        try:
            site = load_site(site_file)
        except InventoryError as err:
            raise AnsibleParserError(f"fleet site {site_file} is invalid: {err}") from None
        self._populate(site)

    def _populate(self, site: Site) -> None:
        for name, value in site_vars(site).items():
            self.inventory.set_variable("all", name, value)
        for rack in site.racks:
            group = self.inventory.add_group(rack_group(rack.number))
            for node in rack.nodes:
                self.inventory.add_host(node.hostname, group=group)
                self.inventory.add_host(node.hostname, group=self.inventory.add_group(role_group(node.role)))
                for name, value in host_vars(node).items():
                    self.inventory.set_variable(node.hostname, name, value)
        if site.kraken is not None:
            group = self.inventory.add_group("kraken_control")
            for host in site.kraken.control_hosts:
                self.inventory.add_host(host.name, group=group)
                self.inventory.set_variable(host.name, "ansible_host", host.address)
                self.inventory.set_variable(host.name, "fleet_address", host.address)
        # Always there (empty without Kraken): playbooks/site.yml intersects with it.
        agents = self.inventory.add_group("kraken_agent")
        for node in site.nodes.values() if site.kraken is not None else ():
            if node.role == "gpu":
                self.inventory.add_host(node.hostname, group=agents)
