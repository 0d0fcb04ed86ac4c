"""The import rules of docs/contracts.md, checked on the source: production never depends on the lab.

Production code (fleet/, healthcheck/, plugins/, provision.py) must run where lab/ does not exist,
and must behave the same against the lab as against a datacenter: so it never imports lab/ and
never reads the lab's section of a site (`site.lab`). healthcheck/ runs on the nodes with the
standard library only, so it imports nothing of fleet/ (fleet may import healthcheck's model).
Production code does no time scaling either: a site's `timeouts` are seconds used as written (the lab's
generator writes its shorter ones), so no factor of the lab's clock reaches a deadline.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from fleet.site import load_site
from fleet.site.control import Timeouts

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


def _timeouts(node: ast.expr) -> bool:
    """`timeouts` or `<anything>.timeouts`: the site's durations."""
    return (isinstance(node, ast.Name) and node.id == "timeouts") or \
        (isinstance(node, ast.Attribute) and node.attr == "timeouts")


def _scales(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
        return any(isinstance(side, ast.Attribute) and _timeouts(side.value) for side in (node.left, node.right))
    if isinstance(node, ast.Attribute):
        return node.attr == "time_factor" or (node.attr == "clock" and _timeouts(node.value))
    names = {ast.Name: "id", ast.arg: "arg", ast.keyword: "arg"}
    return type(node) in names and getattr(node, names[type(node)]) == "time_factor"


def _scalings(source: str) -> list[int]:
    """Lines that scale time: a site duration multiplied or divided, a `timeouts.clock`, any `time_factor`."""
    return sorted({node.lineno for node in ast.walk(ast.parse(source)) if _scales(node)})


def test_the_scaling_check_finds_scaling_where_there_is_some() -> None:
    assert _scalings("scale = site.timeouts.clock") == [1]
    assert _scalings("wait(deadline_s=self.site.timeouts.bios_job_s * k)") == [1]
    assert _scalings("def f(time_factor):\n    return 2") == [1]
    assert _scalings("wait(deadline_s=site.timeouts.bios_job_s, now=self.clock())") == []


@pytest.mark.parametrize("root", PRODUCTION)
def test_production_code_does_no_time_scaling(root: str) -> None:
    scaled = [f"{path.relative_to(REPO)}:{line}" for path in _sources(root)
              for line in _scalings(path.read_text(encoding="utf-8"))]
    assert scaled == []


def test_every_site_timeout_is_a_duration_in_seconds() -> None:
    assert [f.name for f in fields(Timeouts) if not f.name.endswith("_s")] == []


def test_production_loads_the_lab_site_without_its_lab_section() -> None:
    site = load_site(REPO / "inventory" / "lab" / "site.yml")

    assert site.lab is None
    assert site.before_run and site.ssh.config is not None
    assert site.timeouts.maas_deploy_s < Timeouts().maas_deploy_s / 10
    assert site.timeouts.bios_job_s < Timeouts().bios_job_s / 10  # the lab's own deadlines, written scaled
