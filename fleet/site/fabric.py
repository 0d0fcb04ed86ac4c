"""The site's `fabric:` section: the InfiniBand plan file and how the fabric is checked and triaged.

    fabric:
      topology: fabric.yml          # the plan (switches, links, partitions), relative to the site file
      max_isolated: 25              # triage's isolation cap; default max(10, 0.5% of the fabric's ports)
      sample_s: 720                 # triage: seconds between the two counter snapshots (>= NVIDIA's 12 min)
      isolate_access_links: false   # isolate switch-to-host links too (NVIDIA's default: no)
      ufm_auth: basic               # basic (/ufmRest) or token (/ufmRestV3, token from app/tokens)
      ufm_tls: {verify: true, ca_file: /etc/fleet/ufm-ca.pem}
      ipoib_mode: datagram          # the doca_ofed role's IPoIB mode (datagram or connected)

The plan is loaded and checked together with the nodes (fleet.fabric.topology.validate): a port used
twice, a link to an unknown switch or a rail mixing is reported with the rest of the site's problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.fabric.topology import Topology, read_topology, validate
from fleet.site.control import expand_path
from fleet.site.model import Node, TlsSettings
from fleet.site.schema import Problems, positive_int
from fleet.site.services import parse_tls

OPTIONAL = {"max_isolated", "sample_s", "isolate_access_links", "ufm_auth", "ufm_tls", "ipoib_mode"}


@dataclass(frozen=True)
class FabricSettings:
    topology: Topology
    max_isolated: int | None = None
    sample_s: float = 720.0
    isolate_access_links: bool = False
    ufm_auth: str = "basic"
    ufm_tls: TlsSettings = field(default_factory=TlsSettings)
    ipoib_mode: str = "datagram"


def parse_fabric(file: Path, raw: Any, nodes: list[Node], path_vars: dict[str, Path],
                 problems: Problems) -> FabricSettings | None:
    if not problems.keys(raw, file, "fabric", {"topology"}, OPTIONAL):
        return None
    if "topology" not in raw:
        return None
    topology, found = read_topology(expand_path(file, str(raw["topology"]), path_vars))
    problems.problems.extend(found)
    if topology is None:
        return None
    problems.problems.extend(validate(topology, nodes, nodes_file=str(file)))
    cap = raw.get("max_isolated")
    if cap is not None:
        cap = positive_int(file, "fabric.max_isolated", cap, problems) or None
    sample = raw.get("sample_s", 720.0)
    if isinstance(sample, bool) or not isinstance(sample, (int, float)) or sample <= 0:
        problems.add(file, "fabric.sample_s", f"expected a positive number of seconds, got {sample!r}", "sample_s: 720")
        sample = 720.0
    access = raw.get("isolate_access_links", False)
    if not isinstance(access, bool):
        problems.add(file, "fabric.isolate_access_links", f"expected true or false, got {access!r}",
                     "isolate_access_links: false")
    auth = str(raw.get("ufm_auth", "basic"))
    if auth not in ("basic", "token"):
        problems.add(file, "fabric.ufm_auth", f"'{auth}' is not a UFM authentication", "write basic or token")
    mode = str(raw.get("ipoib_mode", "datagram"))
    if mode not in ("datagram", "connected"):
        problems.add(file, "fabric.ipoib_mode", f"'{mode}' is not an IPoIB mode", "write datagram or connected")
    return FabricSettings(topology, cap, float(sample), access is True, auth,
                          parse_tls(file, "fabric.ufm_tls", raw.get("ufm_tls"), path_vars, problems), mode)
