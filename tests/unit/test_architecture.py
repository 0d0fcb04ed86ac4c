"""The import rules of docs/contracts.md, checked on the source: production never depends on the lab.

Production code (fleet/, healthcheck/, plugins/, provision.py) must run where lab/ does not exist,
and must behave the same against the lab as against a datacenter: so it never imports lab/ and
never reads the lab's section of a site (`site.lab`). healthcheck/ runs on the nodes with the
standard library only, so it imports nothing of fleet/ (fleet may import healthcheck's model).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.site import load_site

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = ("fleet", "healthcheck", "plugins", "provision.py")


def _sources(*roots: str) -> Iterator[Path]:
    for root in roots:
        path = REPO / root
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _offences(roots: tuple[str, ...], package: str) -> list[str]:
    return [f"{path.relative_to(REPO)}:{line} imports {name}" for path in _sources(*roots)
            for line, name in _imports(path) if name == package or name.startswith(package + ".")]


def test_the_rules_see_the_code_they_guard() -> None:
    assert len(list(_sources(*PRODUCTION))) > 40
    assert _offences(("lab/__main__.py",), "fleet")  # the checker finds an import where there is one


def test_production_code_never_imports_the_lab() -> None:
    assert _offences(PRODUCTION, "lab") == []


def test_healthcheck_imports_nothing_of_fleet() -> None:
    assert _offences(("healthcheck",), "fleet") == []


@pytest.mark.parametrize("root", PRODUCTION)
def test_production_code_never_reads_the_lab_section_of_a_site(root: str) -> None:
    reads = [f"{path.relative_to(REPO)}:{node.lineno}" for path in _sources(root)
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Attribute) and node.attr == "lab"]
    assert reads == []


def test_production_loads_the_lab_site_without_its_lab_section() -> None:
    site = load_site(REPO / "inventory" / "lab" / "site.yml")

    assert site.lab is None
    assert site.before_run and site.ssh.config is not None and site.timeouts.maas_deploy_s < 60
