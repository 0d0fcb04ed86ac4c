"""fabric: every HCA port of the node is ACTIVE at the planned rate and width, cabled to its planned
leaf port, and in the site's partitions (fleet/fabric/cabling.py over UFM's view).

Runs after configure (the driver is loaded, so the subnet manager has brought the ports up) and
before validate. Nodes share one UFM read of ports and pkeys (fleet/fabric/run.py SnapshotCache);
a node found wanting on a read older than its stage is checked once more on a fresh read. A finding
quarantines the node with the exact port, what was expected and found, and who acts; nothing is
changed (missing pkey GUIDs are added by `provision.py fabric check --apply`). A site without UFM
or a fabric plan passes the stage with that said.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

from fleet.fabric.cabling import check_nodes
from fleet.fabric.run import SnapshotCache, client_for
from fleet.site import Node, Site
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult


@dataclass
class FabricStage:
    site: Site
    name: str = "fabric"
    max_attempts: int = 3  # UFM errors (5xx, timeouts after the client's own retries) are worth a retry

    @cached_property
    def snapshots(self) -> SnapshotCache:
        return SnapshotCache(client_for(self.site))

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        if self.site.ufm is None or self.site.fabric is None:
            return StageResult(True, "skipped: the site has no ufm: endpoint or fabric: plan")
        started = time.monotonic()
        topology = self.site.fabric.topology
        before = self.snapshots.client.requests
        snapshot = self.snapshots.get()
        findings = check_nodes(topology, [node], snapshot.ports, snapshot.pkeys)
        if findings and snapshot.taken < started:
            snapshot = self.snapshots.get(newer_than=started)
            findings = check_nodes(topology, [node], snapshot.ports, snapshot.pkeys)
        ctx.count("ufm_requests", self.snapshots.client.requests - before)
        if not findings:
            return StageResult(True, f"{len(node.hcas)} HCA port(s) Active at {topology.rate_gbps} Gb/s "
                               f"{topology.width}, cabled as planned, in {len(topology.partitions)} pkey(s)")
        evidence = {"findings": [{"kind": f.kind, "message": f.message, "who": f.who, "port": f.port}
                                 for f in findings]}
        detail = "; ".join(f"{f.message} ({f.who})" for f in findings)
        if any(f.kind == "pkey" for f in findings):
            detail += f". Next step: provision.py fabric check --nodes {node.hostname} --apply adds the pkey GUIDs"
        return StageResult(False, detail, evidence, retryable=False, quarantine=True)


def make(shared: Shared) -> FabricStage:
    return FabricStage(shared.site)
