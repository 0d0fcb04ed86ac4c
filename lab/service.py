"""What a lab component hands to `lab.control`: a subprocess to start and how to tell it is up.

Each simulator module describes itself with `service(site, lab_dir) -> LabService`; the lifecycle
code (start detached, log, pid file, wait for ready) lives in one place and knows no simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReadyCheck:
    """How to tell a started service is serving: an HTTP URL answering, or a TCP port accepting.

    Exactly one of `url` or `port` is set; a URL is preferred where the service has one, because an
    open port can precede a working application by a long way (Python imports, config parsing).
    """

    url: str | None = None
    port: int | None = None
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.port is None):
            raise ValueError("ReadyCheck needs exactly one of url or port")


@dataclass(frozen=True)
class LabService:
    """One lab subprocess: its name (log and pid file names), command line, extra environment, readiness."""

    name: str
    argv: list[str]
    ready: ReadyCheck
    env: dict[str, str] = field(default_factory=dict)
