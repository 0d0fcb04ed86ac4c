"""The cluster model: sites, racks, nodes, BMCs, IB HCAs and their expected cabling.

One YAML site file (plus the rack files it includes) is the single source of truth for the
control plane, the Ansible inventory plugin and the lab. Loading validates everything at once
and reports every problem with the file, the key path and the fix. By concern:

    model.py        the frozen dataclasses (Site, Node, ...)
    load.py         load_site: the top-level keys and which module parses each section
    schema.py       the validation toolkit: Problems (file, key, message, fix), did-you-mean, scalar checks
    racks.py        racks, nodes, BMCs, HCAs, node_defaults
    services.py     maas/ufm endpoints, TLS, os, pins, switches
    credentials.py  credential references (env, file, vault) and resolve_credentials
    crosscheck.py   uniqueness and references across the whole site
    selection.py    --rack 12-15 / --nodes a,b -> nodes

Add a section: write its dataclass and `parse_<section>(file, raw, problems)` in a module of its own
here (messages through `Problems`, never an exception), add its key to `SITE_OPTIONAL` and its
field to `Site`, and build it in `load._build_site`; add a broken case to tests/fixtures/inventories.
"""

from fleet.site.credentials import resolve_credentials
from fleet.site.load import load_site
from fleet.site.model import (
    Bmc,
    CredentialRef,
    Credentials,
    Endpoint,
    Hca,
    Node,
    OsImage,
    Rack,
    SecretRef,
    Site,
    Switch,
    TlsSettings,
)
from fleet.site.selection import parse_racks, select_nodes

__all__ = [
    "Bmc", "CredentialRef", "Credentials", "Endpoint", "Hca", "Node", "OsImage", "Rack", "SecretRef", "Site",
    "Switch", "TlsSettings", "load_site", "parse_racks", "resolve_credentials", "select_nodes",
]
