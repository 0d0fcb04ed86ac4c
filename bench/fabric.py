"""Benchmark: `fabric check` on all 512 lab nodes (4,096 HCA ports) against the lab UFM.

A fresh 128-rack site on free ports, the lab UFM started on its own (no MAAS, no BMCs), two faults
planted so the check has something to find (a swapped pair and an HDR link). Printed:
- the in-process check (`fleet.fabric.run.check`: ports with cable info, pkeys, links page by page,
  then the pure checks): wall time, UFM requests, findings;
- the whole command, `provision.py fabric check --json` (interpreter start, site load with the
  8,192-link plan, the same check): wall time, from its own report the UFM requests;
- the same check of one rack, to show the request count does not grow with the selection.
Targets (issue 11): under 10 s, and O(1) UFM requests per check, not per port.

    .venv/bin/python bench/fabric.py [--racks 128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.fabric.run import check, client_for  # noqa: E402
from fleet.site import select_nodes  # noqa: E402
from tests.lab.fabric_lab import running_ufm  # noqa: E402

FAULTS = [{"kind": "swapped_cables", "a": "gpu-012-03/mlx5_4", "b": "gpu-012-04/mlx5_4"},
          {"kind": "hdr", "port": "gpu-100-02/mlx5_1"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--racks", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, running_ufm(Path(root), racks=args.racks) as lab:
        lab.faults(FAULTS)
        site = lab.site
        assert site.fabric is not None
        nodes = list(site.nodes.values())
        ports = sum(len(n.hcas) for n in nodes)
        print(f"site: {len(nodes)} nodes, {ports} HCA ports, {len(site.fabric.topology.switches)} switches, "
              f"{len(site.fabric.topology.links)} switch-to-switch links")
        walls, requests, found = [], 0, 0
        for _ in range(args.repeat):
            client = client_for(site)
            started = time.perf_counter()
            report = check(site.fabric.topology, nodes, client)
            walls.append(time.perf_counter() - started)
            requests, found = report.ufm_requests, len(report.findings) + len(report.link_findings)
        print(f"in-process check, all nodes: median {statistics.median(walls):.2f} s over {args.repeat} "
              f"(min {min(walls):.2f}, max {max(walls):.2f}), {requests} UFM requests, {found} findings, "
              f"{requests / ports:.4f} requests per HCA port")
        rack = select_nodes(site, ["12"])
        one = check(site.fabric.topology, rack, client_for(site))
        print(f"in-process check, rack 12 ({len(rack)} nodes): {one.ufm_requests} UFM requests, "
              f"{len(one.findings)} findings")
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "provision.py", "fabric", "check", "--json", "--site",
                                 str(lab.lab.site_file)], cwd=REPO, env=lab.lab.env, capture_output=True, text=True,
                                check=False)
        wall = time.perf_counter() - started
        body = json.loads(result.stdout) if result.stdout else {}
        print(f"provision.py fabric check --json (all nodes): {wall:.2f} s wall, exit {result.returncode}, "
              f"{body.get('ufm_requests')} UFM requests, {len(body.get('findings', []))} node findings")
        print(f"target < 10 s: {'met' if wall < 10 else 'NOT met'} ({wall / 10:.2f} of it); "
              f"requests per check independent of the selection: {'yes' if one.ufm_requests == requests else 'no'}")


if __name__ == "__main__":
    main()
