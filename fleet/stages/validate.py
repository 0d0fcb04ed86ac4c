"""validate: the node's own health checks over SSH; the verdict becomes the stage's result (fleet/validate.py)."""

from __future__ import annotations

from fleet.stages.shared import Shared
from fleet.validate import ValidateStage


def make(shared: Shared) -> ValidateStage:
    return ValidateStage(shared.site)
