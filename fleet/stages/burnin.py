"""burnin (optional, after validate): the node's burn-in over SSH (fleet/burnin.py, healthcheck/burnin/).

Not part of a default bring-up (`--until` defaults to validate): it takes the site's
`burnin.duration_s` (600 s) plus the memory and NCCL phases. `provision.py --rack 12 --until burnin`
runs it; a CRITICAL burn-in quarantines the node with every finding as evidence.
"""

from __future__ import annotations

from fleet.burnin import BurninStage
from fleet.stages.shared import Shared


def make(shared: Shared) -> BurninStage:
    return BurninStage(shared.site)
