"""The MAAS preflight: which MAAS answers fail the whole run, and which are one node's business."""

from __future__ import annotations

import pytest

from fleet.errors import MaasError
from fleet.preflight import unusable


@pytest.mark.parametrize(("err", "run_wide"), [
    (MaasError("MAAS refused machines read mac_address", status=401), True),
    (MaasError("MAAS refused machines read mac_address", status=403), True),
    (MaasError("MAAS refused machines read mac_address", status=503), True),
    (MaasError("cannot reach MAAS for machines read mac_address"), True),
    (MaasError("MAAS did not answer machines read mac_address within 30 s"), True),
    (MaasError("MAAS did not describe its API at http://maas:5240/MAAS/"), True),
    (MaasError("machine is not enlisted in MAAS", node="gpu-001-01"), False),
    (MaasError("2 MAAS machines match by PXE MAC: a, b", node="gpu-001-01"), False),
    (MaasError("MAAS refused machines read hostname", status=404), False),
])
def test_maas_itself_unusable_fails_the_run_a_node_problem_does_not(err: MaasError, run_wide: bool) -> None:
    assert unusable(err) is run_wide
