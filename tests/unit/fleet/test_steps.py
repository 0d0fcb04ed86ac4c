"""nth_step: the journal names of an operation sent again in a generation."""

import pytest

from fleet.maas.manual import Boot, boot_step
from fleet.stages.commission import commission_name
from fleet.steps import nth_step


@pytest.mark.parametrize(("step", "sent", "name"), [
    ("commission", 0, "commission"),
    ("commission", 1, "commission"),
    ("commission", 2, "commission:2"),
    ("boot:deploy", 3, "boot:deploy:3"),
])
def test_nth_step(step: str, sent: int, name: str) -> None:
    assert nth_step(step, sent) == name


def test_commission_and_boot_names_share_the_rule() -> None:
    assert [commission_name(n) for n in (1, 2)] == ["commission", "commission:2"]
    assert [boot_step(Boot.COMMISSION, n) for n in (1, 2)] == ["boot:commission", "boot:commission:2"]
