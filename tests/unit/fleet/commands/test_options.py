"""fleet.commands.options.confirm: the one question destructive verbs ask before acting."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fleet.commands import options
from fleet.errors import UsageError


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_run_without_a_terminal_is_refused_and_told_to_pass_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    with pytest.raises(UsageError, match="reimage needs confirmation") as refused:
        options.confirm("reimage", "Reimage n1?", Console(file=io.StringIO()))
    assert "--yes" in str(refused.value)


@pytest.mark.parametrize(("answer", "goes_on"), [("y", True), (" YES ", True), ("n", False), ("", False)])
def test_only_a_yes_goes_on_and_anything_else_says_nothing_done(monkeypatch: pytest.MonkeyPatch, answer: str,
                                                                 goes_on: bool) -> None:
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    out = io.StringIO()
    assert options.confirm("firmware apply", "Update firmware on 2 node(s)?", Console(file=out)) is goes_on
    assert asked == ["Update firmware on 2 node(s)? [y/N] "]
    assert ("nothing done" in out.getvalue()) is not goes_on
