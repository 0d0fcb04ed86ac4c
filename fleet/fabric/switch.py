"""Switch configuration through netmiko: render from the inventory, diff, apply with --apply, save, verify.

One jinja2 template per netmiko device type (fleet/fabric/templates/) and one small table of what
differs between them (the show, save and error strings): no vendor branches in the code, as
netmiko keeps its own vendor differences in one driver class each. The desired configuration is the
template's output; the diff is against the part of the running configuration the template owns
(its settings and interface blocks), so lines fleet does not manage never show as removals and are
never touched. Applying sends only what is missing, saves, and reads the running configuration back:
a line that did not take is an error, not a silent success.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from fleet.errors import SwitchError

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Dialect:
    """What one netmiko device type needs beyond its template."""

    show: str  # the running configuration
    save: str  # make the running configuration the startup one
    error: str  # a line the CLI prints when it rejects a command
    comments: tuple[str, ...]  # running-config lines that are not configuration
    config_mode: bool  # netmiko send_config_set (enter config mode) or plain commands (NVUE)
    hierarchical: bool = False  # indented child lines belong to the line above (OS10 interface blocks)
    after_save: str = ""  # a second command that persists the configuration


DIALECTS = {
    # Dell OS10 User Guide: `copy running-configuration startup-configuration`, errors start "% Error"
    "dell_os10": Dialect("show running-configuration", "copy running-configuration startup-configuration",
                         r"% Error:[^\r\n]*", ("!",), True, hierarchical=True),
    # MLNX-OS: `configuration write`; unknown commands answer "% Unrecognized command"
    "mellanox_mlnxos": Dialect("show running-config", "configuration write", r"% Unrecognized[^\r\n]*", ("#",),
                               True),
    # NVUE: stage with `nv set`, `nv config apply -y` (no question), `nv config save` to keep it
    "cumulus_linux": Dialect("nv config show -o commands", "nv config apply -y", r"Error:[^\r\n]*", ("#",), False,
                             after_save="nv config save"),
}


@dataclass(frozen=True)
class Port:
    name: str
    description: str


def interfaces(site: Any, switch: Any) -> list[Port]:
    """Port descriptions from the inventory: the switch's `ports:`; an IB leaf's from the fabric plan."""
    ports = [Port(name, _describe(site, target)) for name, target in switch.ports.items()]
    fabric = getattr(site, "fabric", None)
    if switch.device_type == "mellanox_mlnxos" and fabric is not None and switch.name in fabric.topology.switches:
        plan: dict[int, str] = {}
        for node in site.nodes.values():
            for hca in node.hcas:
                if hca.leaf == switch.name:
                    plan[hca.port] = f"{node.hostname} {hca.name}"
        for link in fabric.topology.links:
            for (here, port), (there, far) in (link.ends(), link.ends()[::-1]):
                if here == switch.name:
                    plan[port] = f"{there} port {far}"
        ports += [Port(f"1/{number}", plan[number]) for number in sorted(plan)]
    return ports


def _describe(site: Any, target: str) -> str:
    return f"{target} ({site.nodes[target].address})" if target in site.nodes else target


def render(site: Any, switch: Any) -> list[str]:
    """The switch's desired configuration lines, from its device type's template."""
    if switch.device_type not in DIALECTS:
        raise SwitchError(f"switch {switch.name} has no supported device_type ({switch.device_type or 'none'})",
                          hint=f"set switches.{switch.name}.device_type to one of {', '.join(DIALECTS)}")
    from fleet.site.switching import SwitchConfig

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)  # noqa: S701 - switch CLI, not HTML
    text = env.get_template(f"{switch.device_type}.j2").render(
        switch=switch, config=site.switch_config or SwitchConfig(), interfaces=interfaces(site, switch))
    return normalise(text, switch.device_type)


def normalise(text: str, device_type: str) -> list[str]:
    """Config text as comparable lines: no comments or blank lines; a child line (hierarchical
    dialects) indented by exactly one space whatever the device's own indentation, others stripped."""
    dialect = DIALECTS[device_type]
    lines = []
    for raw in text.replace("\r", "").splitlines():
        line = raw.strip()
        if not line or line.startswith(dialect.comments):
            continue
        lines.append(" " + line if dialect.hierarchical and raw[:1].isspace() else line)
    return lines


def _blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(top-level line, its indented children); flat dialects have no children."""
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith(" ") and blocks:
            blocks[-1][1].append(line)
        else:
            blocks.append((line, []))
    return blocks


def _key(line: str) -> str:
    """What a line sets, without its value: `interface ib 1/5 description`, `ntp server`."""
    text = line.strip()
    if text.endswith('"') and text.count('"') >= 2:
        return text[:text.rindex('"', 0, len(text) - 1)].rstrip()
    return text.rpartition(" ")[0] or text


def owned(running: list[str], desired: list[str]) -> list[str]:
    """The part of the running configuration the template manages: its blocks, and lines that set
    what a desired line sets (so a changed value shows as - old + new)."""
    headers = {head for head, _ in _blocks(desired)}
    keys = {_key(head) for head, children in _blocks(desired) if not children}
    result = []
    for head, children in _blocks(running):
        if head in headers or (not children and _key(head) in keys):
            result.append(head)
            result.extend(children)
    return result


def unified_diff(name: str, running: list[str], desired: list[str]) -> str:
    return "".join(difflib.unified_diff([line + "\n" for line in owned(running, desired)],
                                        [line + "\n" for line in desired],
                                        fromfile=f"{name} running", tofile=f"{name} desired"))


def missing(running: list[str], desired: list[str]) -> list[str]:
    """The commands that bring the running configuration to the desired one (block headers re-entered)."""
    have = {head: set(children) for head, children in _blocks(running)}
    commands: list[str] = []
    for head, children in _blocks(desired):
        if head not in have:
            commands += [head, *(c.strip() for c in children)] + (["exit"] if children else [])
        else:
            todo = [c.strip() for c in children if c not in have[head]]
            if todo:
                commands += [head, *todo, "exit"]
    return commands


@dataclass
class SwitchOutcome:
    name: str
    diff: str
    sent: list[str]
    applied: bool


Connect = Callable[..., Any]


def configure(site: Any, switch: Any, username: str, password: str, *, apply: bool,
              connect: Connect | None = None, timeout_s: float = 20.0) -> SwitchOutcome:
    """Diff the switch against its template; with `apply`, send what is missing, save, read back."""
    from netmiko import ConnectHandler
    from netmiko.exceptions import ConfigInvalidException, NetmikoAuthenticationException, NetmikoTimeoutException

    desired = render(site, switch)
    dialect = DIALECTS[switch.device_type]
    host, _, port = switch.address.rpartition(":")
    where = f"{switch.name} ({switch.address})"
    try:
        conn = (connect or ConnectHandler)(device_type=switch.device_type, host=host, port=int(port),
                                           username=username, password=password, secret=password,
                                           timeout=timeout_s, conn_timeout=timeout_s, auth_timeout=timeout_s,
                                           fast_cli=True)
    except NetmikoAuthenticationException:
        raise SwitchError(f"switch {where} refused the login of {username}",
                          hint=f"check the credentials of switches.{switch.name}") from None
    except (NetmikoTimeoutException, OSError) as err:
        raise SwitchError(f"switch {where} is unreachable", service_message=str(err).splitlines()[0][:200],
                          hint="check its management address and that it is powered") from None
    try:
        if dialect.config_mode:
            conn.enable()
        running = normalise(conn.send_command(dialect.show), switch.device_type)
        diff = unified_diff(switch.name, running, desired)
        todo = missing(running, desired)
        if not apply or not todo:
            return SwitchOutcome(switch.name, diff, [], False)
        _send(conn, dialect, todo, where)
        conn.save_config(cmd=dialect.save)
        if dialect.after_save:
            conn.send_command(dialect.after_save)
        after = normalise(conn.send_command(dialect.show), switch.device_type)
        left = missing(after, desired)
        if left:
            raise SwitchError(f"switch {where} does not run what was sent: {'; '.join(left[:5])}",
                              hint="read the switch's log; the command may need a different form on this release")
        return SwitchOutcome(switch.name, diff, todo, True)
    except ConfigInvalidException as err:
        raise SwitchError(f"switch {where} rejected a command", service_message=str(err)[-300:],
                          hint="fix the template line it names (fleet/fabric/templates/)") from None
    finally:
        conn.disconnect()


def _send(conn: Any, dialect: Dialect, commands: list[str], where: str) -> None:
    if dialect.config_mode:
        conn.send_config_set(commands, error_pattern=dialect.error, exit_config_mode=True)
        return
    for command in commands:  # NVUE: each `nv set` is a shell command
        if command == "exit":
            continue
        output = conn.send_command(command)
        if re.search(dialect.error, output):
            raise SwitchError(f"switch {where} rejected a command: {command}", service_message=output.strip()[:300],
                              hint="fix the template line (fleet/fabric/templates/)")
