"""The validation toolkit every site section uses: problems with file, key and fix, all of them at once.

An operator fixing a 512-node inventory one error per run would never finish, so parsers never
raise: they record a `Problem` (file, key path, what is wrong, the fix) and go on with what is
valid. Unknown keys get a did-you-mean. Messages here are what users read; tests pin them word
for word (tests/fixtures/inventories/broken/).

Why not pydantic or jsonschema: both stop a model at its first invalid field, so a node with a bad
MAC would drop out of the site-wide uniqueness checks (the `several_problems` case), and neither
knows which rack file a value came from; their messages would need a translation table as long as
these checks to keep the fix text and the did-you-mean.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import Problem

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

try:  # the C loader parses the 512-node lab site ~10x faster
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseLoader = yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe loader that rejects duplicate keys: YAML keeps the last one silently, which would
    hide a copy-pasted `pxe_mac:` line in a node."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key '{key_node.value}'", key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


class Problems:
    """Gathers problems so that loading reports all of them at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def __len__(self) -> int:
        return len(self.problems)

    def add(self, file: Path | str, key: str, message: str, fix: str) -> None:
        self.problems.append(Problem(str(file), key, message, fix))

    def keys(self, data: Any, file: Path, path: str, required: set[str], optional: set[str]) -> bool:
        """Check a mapping's keys; False when it is not a mapping at all."""
        if not isinstance(data, dict):
            self.add(file, path, f"expected a mapping, got {type(data).__name__}", "write key: value pairs here")
            return False
        allowed = required | optional
        for key in data:
            if key not in allowed:
                near = nearest(str(key), allowed)
                fix = f"did you mean '{near}'?" if near else f"allowed keys: {', '.join(sorted(allowed))}"
                self.add(file, join(path, key), "unknown key", fix)
        for key in sorted(required - set(data)):
            self.add(file, join(path, key), "missing required field", f"add '{key}' under {path or 'the top level'}")
        return True


def nearest(word: str, choices: set[str]) -> str | None:
    """The did-you-mean: the closest choice, or None when nothing is close."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def read_yaml(file: Path, problems: Problems) -> Any:
    """A YAML file's data, or None with the problem recorded (syntax, duplicate key, unreadable)."""
    try:
        with open(file, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Loader)  # noqa: S506 - Loader is a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        problem = str(getattr(err, "problem", err))
        fix = "keep only one of the two" if problem.startswith("found duplicate key") else "fix the YAML syntax"
        problems.add(file, where, f"not valid YAML ({problem})", fix)
    except OSError as err:
        problems.add(file, "-", f"cannot read file ({err.strerror})", "check the path and permissions")
    return None


def positive_int(file: Path, path: str, value: Any, problems: Problems, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.add(file, path, f"expected an integer >= {minimum}, got {value!r}", "write a plain number")
        return 0
    return value


def mac(file: Path, path: str, value: Any, problems: Problems) -> str:
    text = str(value or "").lower()
    if not MAC_RE.match(text):
        problems.add(file, path, f"'{value}' is not a MAC address", "write six hex pairs: 7c:c2:55:0a:12:34")
        return ""
    return text


def ip(file: Path, path: str, value: Any, problems: Problems) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        problems.add(file, path, f"'{value}' is not an IP address", "write an IPv4 or IPv6 address: 10.12.3.4")
        return ""


def host_port(file: Path, path: str, value: Any, problems: Problems) -> str:
    host, sep, port = str(value or "").rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        problems.add(file, path, f"'{value}' is not host:port", "write e.g. 10.0.12.3:443")
        return ""
    if (host[:1].isdigit() or host.startswith("[")) and not ip(file, path, host.strip("[]"), problems):
        return ""
    return str(value)

