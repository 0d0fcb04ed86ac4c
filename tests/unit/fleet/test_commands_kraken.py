"""`kraken check` and `image pull`: bad input is exit 2 before any node or registry is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet import commands

REPO = Path(__file__).resolve().parents[3]
PRODUCTION = str(REPO / "inventory" / "example-production" / "site.yml")
LAB = str(REPO / "inventory" / "lab" / "site.yml")


@pytest.mark.parametrize(("argv", "says"), [
    (["kraken", "check", "--site", LAB, "--rack", "1"], "has no kraken: section"),
    (["kraken", "check", "--site", PRODUCTION], "no nodes selected"),
    (["kraken", "check", "--site", PRODUCTION, "--rack", "99"], "99"),
    (["kraken", "check", "--site", PRODUCTION, "--rack", "1", "--parallel", "0"], "--parallel must be at least 1"),
    (["image", "pull", "team/trainer:1", "--site", PRODUCTION], "no nodes selected"),
    (["image", "pull", "team/trainer:1", "--site", PRODUCTION, "--rack", "1", "--concurrency", "0"],
     "--concurrency must be at least 1"),
])  # fmt: skip
def test_bad_input_is_refused_with_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(argv) == 2
    assert says in capsys.readouterr().err


def test_a_dry_run_pull_prints_the_plan_with_the_sites_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(["image", "pull", "team/trainer:1", "--site", PRODUCTION, "--rack", "1", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "would pull team/trainer:1 on 4 node(s), 64 at a time" in err
    assert "port 16000" in err
