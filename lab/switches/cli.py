"""The three switch command lines the lab imitates, as pure line-in, text-out interpreters.

What the real CLIs do that a client (netmiko) notices, and these do too:
- Dell OS10 (Dell EMC SmartFabric OS10 User Guide; netmiko/dell/dell_os10_ssh.py): the admin lands at
  `HOST#`; `configure terminal` gives `HOST(config)#`, an interface gives `HOST(conf-if-eth1/1/1)#`
  (netmiko checks config mode by ")#"); `terminal length 0` turns the `--more--` pager off,
  `terminal width 511` is accepted; `show running-configuration` starts with `! Version ...`;
  `copy running-configuration startup-configuration` (and `write memory`) saves; a bad command
  answers `% Error: Unrecognized command.`
- NVIDIA MLNX-OS (Onyx/MLNX-OS IB switch manual; netmiko/mellanox/mellanox_mlnxos_ssh.py): login lands
  at `HOST [standalone: master] >`, `enable` gives `#`, `configure terminal` gives `(config) #`, and
  `exit` leaves config mode one level at a time; `no cli session paging enable` turns the pager off;
  `show running-config` is flat lines under `##` headers; `configuration write` saves; a bad command
  answers `% Unrecognized command "...".`
- Cumulus Linux NVUE (NVIDIA Cumulus Linux user guide, NVUE; netmiko/cumulus/cumulus_linux_ssh.py,
  a Linux shell driver): a shell prompt `cumulus@HOST:mgmt:~$`; `nv set ...` stages a change,
  `nv config apply -y` applies it (`applied [rev_id: N]`), `nv config save` keeps it across reboots,
  `nv config show -o commands` lists the applied configuration as `nv set` lines; a bad path answers
  `Error: Invalid Command: ...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PAGE_LINES = 24


@dataclass
class SwitchState:
    """A switch's configuration: what runs, what is saved, what NVUE has staged."""

    hostname: str
    running: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    revision: int = 1


def _key(line: str) -> str:
    """What a config line sets: the line without its value (a quoted string or the last word)."""
    text = line.strip()
    if text.endswith('"') and text.count('"') >= 2:
        return text[:text.rindex('"', 0, len(text) - 1)].rstrip()
    head, _, _ = text.rpartition(" ")
    return head or text


def _set(lines: list[str], line: str, single: re.Pattern[str]) -> None:
    """Add a config line; a setting that holds one value (`single` matches it) replaces its old line."""
    if line in lines:
        return
    if single.match(line.strip()):
        key = _key(line)
        for index, old in enumerate(lines):
            if _key(old) == key:
                lines[index] = line
                return
    lines.append(line)


class Session:
    """One logged-in CLI session: modes, the pager, and the switch state it changes."""

    dialect = ""

    more = "--More--"

    def __init__(self, state: SwitchState) -> None:
        self.state = state
        self.paging = True
        self.closed = False  # the user logged out

    def prompt(self) -> str:  # pragma: no cover - every dialect overrides it
        raise NotImplementedError

    def handle(self, line: str) -> str:  # pragma: no cover - every dialect overrides it
        raise NotImplementedError

    def page(self, text: str) -> list[str]:
        """The output split into pages when the pager is on (each page but the last ends in a prompt)."""
        lines = text.split("\n")
        if not self.paging or len(lines) <= PAGE_LINES:
            return [text]
        return ["\n".join(lines[i:i + PAGE_LINES]) for i in range(0, len(lines), PAGE_LINES)]


class DellOs10(Session):
    dialect = "dell_os10"
    more = "--more--"
    SINGLE = re.compile(r"^(hostname|mtu|description|switchport access vlan) ")
    TOP = re.compile(r"^(hostname \S+|ntp server \S+|logging server \S+|lldp enable|no lldp enable|"
                     r"interface (vlan\d+|ethernet\d+/\d+/\d+))$")
    SUB = re.compile(r'^(description ".*"|description \S+|mtu \d+|switchport access vlan \d+|'
                     r"switchport mode (access|trunk)|no shutdown|shutdown)$")

    def __init__(self, state: SwitchState) -> None:
        super().__init__(state)
        self.mode = "exec"
        self.block = ""

    def prompt(self) -> str:
        host = self.state.hostname
        if self.mode == "exec":
            return f"{host}#"
        if self.block:
            kind = "vl-" + self.block[len("interface vlan"):] if "vlan" in self.block else \
                "eth" + self.block.split("ethernet")[1]
            return f"{host}(conf-if-{kind})#"
        return f"{host}(config)#"

    def _blocks(self) -> list[tuple[str, list[str]]]:
        blocks: list[tuple[str, list[str]]] = []
        for line in self.state.running:
            if line.startswith(" ") and blocks:
                blocks[-1][1].append(line)
            else:
                blocks.append((line, []))
        return blocks

    def _apply(self, header: str, child: str | None) -> None:
        blocks = self._blocks()
        for head, children in blocks:
            if head == header:
                if child is not None:
                    _set(children, " " + child, self.SINGLE)
                break
        else:
            if header.startswith(("hostname ",)):
                blocks = [(h, c) for h, c in blocks if not h.startswith("hostname ")]
                blocks.insert(0, (header, []))
                self.state.hostname = header.split()[1]
            else:
                blocks.append((header, [" " + child] if child else []))
        self.state.running = [line for head, children in blocks for line in (head, *children)]

    def handle(self, line: str) -> str:
        text = line.strip()
        if not text:
            return ""
        if text == "terminal length 0":
            self.paging = False
            return ""
        if text.startswith("terminal width"):
            return ""
        if self.mode == "exec":
            if text == "show running-configuration":
                return "! Version 10.5.4.0\n! Last configuration change by admin\n!\n" + "\n".join(self.state.running)
            if text in ("copy running-configuration startup-configuration", "write memory"):
                self.state.saved = list(self.state.running)
                return ""
            if text in ("configure terminal", "configure"):
                self.mode = "config"
                return ""
            if text in ("exit", "logout"):
                self.closed = True
                return ""
            return "% Error: Unrecognized command."
        if text == "end":
            self.mode, self.block = "exec", ""
            return ""
        if text == "exit":
            if self.block:
                self.block = ""
            else:
                self.mode = "exec"
            return ""
        if self.TOP.match(text):
            self.block = text if text.startswith("interface ") else ""
            self._apply(text, None)
            return ""
        if self.block and self.SUB.match(text):
            self._apply(self.block, text)
            return ""
        return "% Error: Unrecognized command."


class MellanoxMlnxos(Session):
    dialect = "mellanox_mlnxos"
    more = "lines 1-24 "
    SINGLE = re.compile(r"^(hostname|interface ib 1/\d+ description|interface mgmt0 mtu) ")
    CONFIG = re.compile(r'^(hostname \S+|ntp server \S+|ntp enable|logging \S+|lldp|no lldp|'
                        r'interface ib 1/\d+ description ".*"|interface ib 1/\d+ (no )?shutdown|'
                        r"interface mgmt0 mtu \d+)$")

    def __init__(self, state: SwitchState) -> None:
        super().__init__(state)
        self.mode = "user"

    def prompt(self) -> str:
        mark = {"user": ">", "enable": "#", "config": "(config) #"}[self.mode]
        return f"{self.state.hostname} [standalone: master] {mark} "

    def handle(self, line: str) -> str:
        text = line.strip()
        if not text:
            return ""
        if text == "no cli session paging enable":
            self.paging = False
            return ""
        if text.startswith("terminal width") or text == "terminal length 999":
            return ""
        if text == "enable":
            self.mode = "enable" if self.mode == "user" else self.mode
            return ""
        if self.mode != "user" and text in ("configure terminal", "config term"):
            self.mode = "config"
            return ""
        if text == "exit":
            self.closed = self.mode == "user"
            self.mode = {"config": "enable", "enable": "user", "user": "user"}[self.mode]
            return ""
        if self.mode != "user" and text == "show running-config":
            return (f'##\n## Running database "initial"\n## Generated for {self.state.hostname}\n##\n'
                    + "\n".join("   " + line for line in self.state.running))
        if self.mode == "config" and text == "configuration write":
            self.state.saved = list(self.state.running)
            return ""
        if self.mode == "config" and self.CONFIG.match(text):
            if text.startswith("hostname "):
                self.state.hostname = text.split()[1]
            _set(self.state.running, text, self.SINGLE)
            return ""
        return f'% Unrecognized command "{text.split()[0]}".\nType "?" for help.'


class CumulusNvue(Session):
    dialect = "cumulus_linux"
    PATH = re.compile(r"^nv set (system|service|interface|bridge) \S.*$")
    SINGLE = re.compile(r"^nv set (system hostname|interface \S+ (description|link mtu|bridge domain \S+ access)) ")

    def prompt(self) -> str:
        return f"cumulus@{self.state.hostname}:mgmt:~$ "

    def handle(self, line: str) -> str:
        text = line.strip()
        if not text:
            return ""
        if text.startswith("nv set "):
            if not self.PATH.match(text):
                return f"Error: Invalid Command: {text[3:]}"
            _set(self.state.pending, text, self.SINGLE)
            return ""
        if text in ("nv config apply -y", "nv config apply --assume-yes"):
            for pending in self.state.pending:
                _set(self.state.running, pending, self.SINGLE)
                if pending.startswith("nv set system hostname "):
                    self.state.hostname = pending.split()[-1]
            self.state.pending = []
            self.state.revision += 1
            return f"applied [rev_id: {self.state.revision}]"
        if text == "nv config apply":
            return "Warning: the command needs -y to run without a terminal question.\nAre you sure? [y/N] aborted"
        if text == "nv config save":
            self.state.saved = list(self.state.running)
            return "saved [rev_id: applied]"
        if text == "nv config show -o commands":
            return "\n".join(self.state.running)
        if text in ("exit", "logout"):
            self.closed = True
            return ""
        if text.startswith(("echo ", "export ")):
            return ""
        return f"-bash: {text.split()[0]}: command not found"


DIALECTS: dict[str, type[Session]] = {cls.dialect: cls for cls in (DellOs10, MellanoxMlnxos, CumulusNvue)}
