"""OS installs through MAAS (python-libmaas), by concern:

    decide.py   Machine (MAAS's JSON, reduced), decide_os_action, MAAS's image names, node_tags: pure
    poller.py   StatusPoller: every waiter shares one batched `machines read` per interval
    session.py  python-libmaas sessions with the client's own TLS policy (no process-wide patching)
    client.py   MaasClient: blocking methods on its own event-loop thread; errors become MaasError once

Statuses are python-libmaas's `NodeStatus` (re-exported here), never raw numbers.
"""

from maas.client.enum import NodeStatus

from fleet.maas.client import DeploymentFailed, MaasClient, OsOutcome
from fleet.maas.decide import (
    MAX_DEPLOY_ATTEMPTS,
    MAX_REDEPLOYS,
    Machine,
    OsAction,
    OsStep,
    decide_os_action,
    foreign_owner,
    image_matches,
    image_problem,
    kernel_name,
    nobodys,
    node_tags,
    pick_machine,
    series_name,
)
from fleet.maas.poller import StatusPoller

__all__ = [
    "MAX_DEPLOY_ATTEMPTS", "MAX_REDEPLOYS", "DeploymentFailed", "MaasClient", "Machine", "NodeStatus", "OsAction",
    "OsOutcome", "OsStep", "StatusPoller", "decide_os_action", "foreign_owner", "image_matches", "image_problem",
    "kernel_name", "nobodys", "node_tags", "pick_machine", "series_name",
]
