"""`load_site(path)`: read the site file and its rack files, validate every section, report every problem.

Each top-level section is parsed by its concern's module (racks, credentials, services, control);
the cross-site checks run once every section is built. Nothing is contacted here. A section owned
outside fleet/ (the lab's `lab:`) is allowed and left alone; its owner loads the site with its own
parser (`sections=`), so its problems are reported with everyone else's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fleet.errors import InventoryError
from fleet.site.burnin import parse_burnin
from fleet.site.control import expand_path, parse_ansible, parse_before_run, parse_path_vars, parse_ssh, parse_timeouts
from fleet.site.credentials import parse_credentials
from fleet.site.crosscheck import cross_check
from fleet.site.dell import parse_bios, parse_firmware, parse_window
from fleet.site.fabric import parse_fabric
from fleet.site.kraken import parse_kraken
from fleet.site.model import Endpoint, Site
from fleet.site.racks import parse_defaults, parse_racks
from fleet.site.schema import Problems, read_yaml
from fleet.site.services import parse_endpoint, parse_maas_power, parse_os, parse_pins, parse_switches, parse_tls
from fleet.site.state import parse_state
from fleet.site.switching import parse_switch_config
from fleet.site.watch import parse_health, parse_watch, parse_workload

SITE_REQUIRED = {"site", "maas", "credentials", "racks"}
SITE_OPTIONAL = {"description", "ufm", "bmc_tls", "maas_tls", "os", "pins", "switches", "node_defaults", "lab",
                 "fabric", "state", "switch_config", "burnin", "kraken", "health", "watch", "workload",
                 "bios", "firmware", "maintenance_window", "path_vars", "state_dir", "before_run", "ssh", "ansible",
                 "timeouts"}
# A section parsed by its owner outside fleet/: (site file, the section, the site's node names, problems) -> value,
# stored in the Site field of the same name.
SectionParser = Callable[[Path, Any, set[str], Problems], Any]




def load_site(path: str | Path, *, sections: Mapping[str, SectionParser] | None = None) -> Site:
    """Load and validate a site; raise InventoryError listing every problem found."""
    site_file = Path(path).resolve()
    problems = Problems()
    if not site_file.is_file():
        problems.add(site_file, "-", "site file not found", "pass --site PATH to an existing site.yml")
        raise InventoryError(problems.problems)
    before = len(problems)
    raw = read_yaml(site_file, problems)
    if raw is None and len(problems) == before:
        problems.add(site_file, "-", "the site file is empty", "start from inventory/example-production/site.yml")
    site = _build_site(site_file, raw, problems) if raw is not None else None
    if site is not None and sections:
        parsed = {key: parse(site_file, raw[key], set(site.nodes), problems)
                  for key, parse in sections.items() if raw.get(key) is not None}
        site = dataclasses.replace(site, **parsed)
    if problems.problems or site is None:
        raise InventoryError(problems.problems)
    return site


def _build_site(file: Path, raw: Any, problems: Problems) -> Site | None:
    if not problems.keys(raw, file, "", SITE_REQUIRED, SITE_OPTIONAL):
        return None
    credentials = parse_credentials(file, raw.get("credentials"), problems)
    defaults = parse_defaults(file, raw.get("node_defaults") or {}, problems)
    racks, placed = parse_racks(file, raw.get("racks"), defaults, problems)
    switches = parse_switches(file, raw.get("switches") or {}, problems)
    maas = parse_endpoint(file, "maas", raw.get("maas"), problems)
    ufm = parse_endpoint(file, "ufm", raw["ufm"], problems) if raw.get("ufm") else None
    nodes = {node.hostname: node for rack in racks for node in rack.nodes}
    path_vars = parse_path_vars(file, raw.get("path_vars"), problems)
    state_dir = raw.get("state_dir")
    # names written under credentials:, valid or not: a broken entry is reported once, by itself
    declared = {str(name) for name in raw["credentials"]} if isinstance(raw.get("credentials"), dict) else set()
    kraken = (parse_kraken(file, raw["kraken"], set(nodes), path_vars, problems)
              if raw.get("kraken") is not None else None)
    cross_check(file, placed, switches, declared, {"maas": maas, "ufm": ufm}, problems)
    fabric = parse_fabric(file, raw["fabric"], list(nodes.values()), path_vars, problems) if raw.get("fabric") else None
    return Site(
        name=str(raw.get("site", "")),
        path=file,
        racks=tuple(racks),
        nodes=nodes,
        switches=switches,
        maas=maas or Endpoint("", ""),
        ufm=ufm,
        bmc_tls=parse_tls(file, "bmc_tls", raw.get("bmc_tls"), path_vars, problems),
        maas_tls=parse_tls(file, "maas_tls", raw.get("maas_tls"), path_vars, problems),
        credentials=credentials,
        os=parse_os(file, raw.get("os"), problems),
        pins=parse_pins(file, raw.get("pins") or {}, problems),
        fabric=fabric,
        state_url=parse_state(file, raw.get("state"), problems),
        switch_config=parse_switch_config(file, raw["switch_config"], problems) if raw.get("switch_config") else None,
        burnin=parse_burnin(file, raw.get("burnin"), problems),
        kraken=kraken,
        health=parse_health(file, raw.get("health"), problems),
        watch=parse_watch(file, raw.get("watch"), problems),
        workload=parse_workload(file, raw.get("workload"), path_vars, problems),
        bios=parse_bios(file, raw.get("bios"), window := parse_window(file, raw.get("maintenance_window"), problems),
                        problems),
        firmware=parse_firmware(file, raw.get("firmware"), problems),
        maintenance_window=window,
        path_vars=path_vars,
        state_dir=expand_path(file, str(state_dir), path_vars) if state_dir else None,
        before_run=parse_before_run(file, raw.get("before_run"), problems),
        ssh=parse_ssh(file, raw.get("ssh"), path_vars, problems),
        ansible=parse_ansible(file, raw.get("ansible"), problems),
        timeouts=parse_timeouts(file, raw.get("timeouts"), problems),
        maas_power=parse_maas_power(file, raw.get("maas"), problems),
    )
