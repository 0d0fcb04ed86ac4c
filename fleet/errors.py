"""Our own error types: library exceptions are wrapped once, at the edge, into these.

A user reading a failure at 3 a.m. must learn what broke, where, what the service said and
what to do next, without a traceback. Every error renders as one paragraph; secrets never
appear in it because callers only ever pass names and addresses, never credentials.
"""

from __future__ import annotations

from dataclasses import dataclass


class FleetError(Exception):
    """Base error: a message plus the context that locates it."""

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        endpoint: str | None = None,
        status: int | str | None = None,
        service_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.endpoint = endpoint
        self.status = status
        self.service_message = service_message
        self.hint = hint

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"node {self.node}" if self.node else "",
                f"endpoint {self.endpoint}" if self.endpoint else "",
                f"status {self.status}" if self.status is not None else "",
            )
            if part
        )
        text = self.message
        if where:
            text += f" ({where})"
        if self.service_message:
            text += f": the service said: {self.service_message.strip()}"
        if self.hint:
            text += f". Next step: {self.hint}"
        return text


@dataclass(frozen=True)
class Problem:
    """One problem found while validating an input file."""

    file: str
    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}. Fix: {self.fix}"


class InventoryError(FleetError):
    """The site inventory is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the site inventory")

    def __str__(self) -> str:
        lines = [self.message + ":"] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class UsageError(FleetError):
    """Bad command-line input: exit code 2, nothing touched."""


class BmcError(FleetError):
    """A BMC (Redfish) request failed after the retries it deserved."""


class MaasError(FleetError):
    """A MAAS API call failed or MAAS reported a failed operation."""


class ConfigureError(FleetError):
    """An Ansible run failed for a node."""


class UfmError(FleetError):
    """A UFM REST call failed (after retries for 5xx and timeouts) or a UFM job did not complete."""


class SwitchError(FleetError):
    """A switch could not be reached, refused the login, or rejected a command."""


class LockError(FleetError):
    """Another run holds the lock on a node."""


class StateError(FleetError):
    """The state store cannot be used (a damaged or foreign state file, an unreachable database)."""
