"""Journal step names for an operation sent more than once in a generation (pure).

A MAAS operation we send again after a person fixed what failed it (a second commissioning, a
retried deployment) is a new operation, so it is journaled under its own step: the first keeps the
plain name ("commission", "boot:deploy"), the n-th is "<step>:<n>" ("commission:2"). The first
keeps the plain name so journals written before retries existed still read as one send.
Its own module so stages and fleet.maas both import it without a cycle.
"""

from __future__ import annotations


def nth_step(step: str, sent: int) -> str:
    """The journaled name of the `sent`-th send of `step` in a generation (1 and below: `step` itself)."""
    return f"{step}:{sent}" if sent > 1 else step
