"""Repository signing keys are pinned by fingerprint: apt accepts only the pinned key from the fetched file."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
# (role, template, fingerprints variable, trusted variable, pinned by default)
REPOS = [
    ("cuda_repo", "apt.sources.j2", "cuda_repo_key_fingerprints", "cuda_repo_trusted",
     ["EB693B3035CD5710E231E123A4B469963BF863CC"]),
    ("container_runtime", "docker.sources.j2", "container_runtime_docker_repo_key_fingerprints",
     "container_runtime_docker_repo_trusted", ["9DC858229FC7DD38854AE2D88D81803C0EBFCD88"]),
    ("container_runtime", "nvidia-container-toolkit.sources.j2", "container_runtime_toolkit_repo_key_fingerprints",
     "container_runtime_toolkit_repo_trusted", ["C95B321B61E88C1809C4F759DDCAE044F796ECB0"]),
    ("doca_ofed", "apt.sources.j2", "doca_ofed_repo_key_fingerprints", "doca_ofed_repo_trusted", []),
]


def render(role: str, template: str, **values: object) -> str:
    # apt sources files rendered as Ansible renders them (no HTML, no escaping)
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701
    env.filters["comment"] = lambda text: f"# {text}"
    return env.from_string((ROLES / role / "templates" / template).read_text()).render(ansible_managed="x", **values)


def defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


@pytest.mark.parametrize(("role", "template", "fingerprints", "trusted", "pinned"), REPOS)
def test_the_sources_file_pins_the_key_by_fingerprint(role, template, fingerprints, trusted, pinned) -> None:
    assert defaults(role)[fingerprints] == pinned
    text = render(role, template, **{trusted: False, fingerprints: ["0123456789ABCDEF0123456789ABCDEF01234567"]})
    [signed_by] = [line for line in text.splitlines() if line.startswith("Signed-By:")]
    path, fingerprint = signed_by.split()[1:]
    assert path.startswith("/etc/apt/keyrings/") and fingerprint == "0123456789ABCDEF0123456789ABCDEF01234567"
    assert "Signed-By" not in render(role, template, **{trusted: True, fingerprints: pinned})


@pytest.mark.parametrize(("role", "template", "fingerprints", "trusted", "pinned"), REPOS)
def test_a_signed_repository_without_a_pinned_fingerprint_is_refused_by_the_role(role, template, fingerprints,
                                                                                 trusted, pinned) -> None:
    tasks = yaml.safe_load((ROLES / role / "tasks" / "repo.yml").read_text())
    asserts = [t for t in tasks if "ansible.builtin.assert" in t]
    assert any(fingerprints in " ".join(map(str, a["ansible.builtin.assert"]["that"])) for a in asserts)
    assert tasks.index(next(a for a in asserts if fingerprints in str(a))) < next(
        i for i, t in enumerate(tasks) if "ansible.builtin.get_url" in t)  # checked before anything is fetched
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    assert fingerprints in specs["argument_specs"]["main"]["options"]
