"""The lab site's deadlines (lab/sitegen.py lab_timeouts): production's durations on the lab clock, MAAS's
deadlines on a clock no faster than the lab MAAS's real-time driver waits allow."""

from __future__ import annotations

from dataclasses import fields

import pytest

from fleet.site.control import Timeouts
from lab.maas.power import ATTEMPTS, PAUSES_S, REQUEST_TIMEOUT_S
from lab.maas.states import REAL_DURATIONS_S
from lab.sitegen import MAAS_POWER_ACTION_S, MAAS_POWERED_DEADLINES, lab_timeouts, maas_deadline_factor

REAL = Timeouts()


@pytest.mark.parametrize("factor", [0.001, 0.005, 0.02])
def test_a_held_bmc_request_costs_the_lab_the_share_of_maas_deadlines_a_broken_bmc_costs_real_maas(
        factor: float) -> None:
    timeouts = lab_timeouts(factor)
    for name in MAAS_POWERED_DEADLINES:
        # real MAAS: 5 minutes of a power action against e.g. 40 of a deployment; the lab: 10 s against 80
        assert REQUEST_TIMEOUT_S / timeouts[name] == pytest.approx(MAAS_POWER_ACTION_S / getattr(REAL, name))
    # However many of the driver's attempts are held, MAAS's verdict comes well before our deadline: Deployed
    # (or Ready) after a held attempt or two and the operation's own lab time, or, all held, "Power on for the
    # node failed".
    pauses_s = sum(PAUSES_S) * factor
    for deadline, duration in (("maas_deploy_s", "deploy"), ("maas_commission_s", "commission")):
        worst_s = max(ATTEMPTS * REQUEST_TIMEOUT_S,
                      (ATTEMPTS - 1) * REQUEST_TIMEOUT_S + REAL_DURATIONS_S[duration] * factor) + pauses_s
        assert timeouts[deadline] >= worst_s + 5, deadline

def test_other_deadlines_and_a_slow_lab_are_on_the_plain_lab_clock() -> None:
    fast, slow = lab_timeouts(0.005), lab_timeouts(0.15)
    others = [f.name for f in fields(Timeouts)
              if f.name not in MAAS_POWERED_DEADLINES and not f.name.endswith("poll_s")]
    assert others and all(fast[name] == pytest.approx(getattr(REAL, name) * 0.005) for name in others)
    assert maas_deadline_factor(0.15) == 0.15  # a lab slower than the driver's ratio scales MAAS's deadlines itself
    assert slow["maas_deploy_s"] == pytest.approx(REAL.maas_deploy_s * 0.15)
    assert fast["maas_deploy_s"] < REAL.maas_deploy_s / 10  # still the lab's own, far below MAAS's 40 minutes
