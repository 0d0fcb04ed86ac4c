"""Bad input, a corpus: every case is one paragraph naming what and where, exit 2 (1 for a runtime failure),
no traceback, and nothing written (no state created) when the input itself is wrong.

The cases: every broken inventory of tests/fixtures/inventories/broken/, CLI arguments, node names
with shell metacharacters, secrets that cannot be read (an undecryptable vault, a missing variable,
a world-readable secret file), and state that cannot be used (a state directory under a file, a
foreign state file). They run through `fleet.commands.main` as `provision.py` does; a traceback
would escape as an exception and fail the case.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.commands import main

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "inventories"
MINIMAL = FIXTURES / "good" / "minimal.yml"
# Cases wrong only in the lab's own section: production never reads it; the lab refuses them when the site's
# before_run starts it (exit 2 as well, tests/unit/fleet/test_inventory_broken.py has their messages).
LAB_ONLY = {"unknown_fault_kind", "fault_unknown_node"}
BROKEN = sorted(p for p in (FIXTURES / "broken").iterdir() if p.name != "README.md" and p.stem not in LAB_ONLY)


def _site_file(path: Path) -> Path:
    return path / "site.yml" if path.is_dir() else path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def one_paragraph(text: str) -> bool:
    body = text.strip()
    return bool(body) and "\n\n" not in body and "Traceback" not in body


@pytest.mark.parametrize("case", BROKEN, ids=lambda p: p.stem)
def test_every_broken_inventory_is_refused_with_exit_2_and_nothing_written(case: Path, tmp_path: Path, capsys):
    code, text = run(["--site", str(_site_file(case)), "--state-dir", str(tmp_path / "state"), "--rack", "1",
                      "--until", "os"], capsys)
    assert code == 2 and "problem(s) in the site inventory" in text and one_paragraph(text), text
    assert str(_site_file(case).parent) in text  # where: the file is named
    assert not (tmp_path / "state").exists()


CLI_CASES = [
    (["--rack", "x"], "rack"),
    (["--rack", "999"], "999"),
    (["--rack", "1", "--until", "bogus"], "bogus"),
    (["--rack", "1", "--bmc-requests", "0"], "--bmc-requests"),
    (["--rack", "1", "--maas-deploys", "-3"], "--maas-deploys"),
    (["--nodes", "gpu-999-01"], "gpu-999-01"),
    (["frobnicate", "--rack", "1"], "frobnicate"),
    (["--rack", "1", "--no-such-flag"], "--no-such-flag"),
    (["reimage"], "reimage needs the nodes named"),
    (["reimage", "--rack", "1"], "reimage needs the nodes named"),
    (["health"], "no nodes selected"),
    (["health", "baseline"], "no validated nodes"),
    (["hostkey", "accept", "gpu-001-01", "--fingerprint", "ab-cd-ef"], "--fingerprint 'ab-cd-ef'"),
    (["hostkey", "accept", "--rack", "1", "--fingerprint", "SHA256:" + "A" * 43], "exactly one node"),
    (["--nodes", "gpu-001-01;reboot"], "gpu-001-01;reboot"),
    (["--nodes", "$(id)"], "$(id)"),
    (["reimage", "gpu-001-01`touch /tmp/fleet-pwned`", "--yes"], "gpu-001-01`touch /tmp/fleet-pwned`"),
    (["--nodes", "../../etc/passwd"], "../../etc/passwd"),
    (["--nodes", "gpu-001-01 && rm -rf /"], "gpu-001-01 && rm -rf /"),
]


@pytest.mark.parametrize(("argv", "names"), CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_bad_arguments_and_hostile_node_names_exit_2_naming_them(argv: list[str], names: str, tmp_path: Path,
                                                                  capsys) -> None:
    code, text = run([*argv, "--site", str(MINIMAL), "--state-dir", str(tmp_path / "state")], capsys)
    assert code == 2 and names in text and one_paragraph(text.splitlines()[-1]), text
    assert "Traceback" not in text
    assert not (tmp_path / "state").exists() and not Path("/tmp/fleet-pwned").exists()


def _site_with(tmp_path: Path, old: str, new: str) -> Path:
    site = tmp_path / "site.yml"
    site.write_text(MINIMAL.read_text().replace(old, new))
    return site


def test_an_undecryptable_vault_is_a_runtime_error_naming_the_reference(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465666768\n")
    password = tmp_path / "vault-password"
    password.write_text("wrong\n")
    password.chmod(0o600)
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password))
    site = _site_with(tmp_path, "secret: {env: FLEET_MAAS_API_KEY}", "secret: {vault: vault.yml, key: maas_key}")
    code, text = run(["--site", str(site), "--state-dir", str(tmp_path / "state"), "--rack", "1", "--until", "os"],
                     capsys)
    assert code == 1 and "credentials.maas.secret" in text and "cannot decrypt" in text and one_paragraph(text), text


def test_a_secret_variable_not_set_is_a_runtime_error_with_the_export_to_run(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("FLEET_MAAS_API_KEY", raising=False)
    code, text = run(["--site", str(MINIMAL), "--state-dir", str(tmp_path / "state"), "--rack", "1", "--until",
                      "os"], capsys)
    assert code == 1 and "export FLEET_MAAS_API_KEY" in text and one_paragraph(text), text


def test_a_world_readable_secret_file_is_refused_with_the_chmod(tmp_path: Path, capsys):
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("maas_key: consumer:token:secret\n")
    secrets.chmod(0o644)
    site = _site_with(tmp_path, "secret: {env: FLEET_MAAS_API_KEY}", "secret: {file: secrets.yml, key: maas_key}")
    code, text = run(["--site", str(site), "--state-dir", str(tmp_path / "state"), "--rack", "1", "--until", "os"],
                     capsys)
    assert code == 1 and f"chmod 600 {secrets}" in text and "consumer:token" not in text and one_paragraph(text), text


def test_a_state_directory_that_cannot_exist_is_a_runtime_error(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("FLEET_MAAS_API_KEY", "consumer:token:secret")
    (tmp_path / "a-file").write_text("")
    code, text = run(["--site", str(MINIMAL), "--state-dir", str(tmp_path / "a-file" / "state"), "--rack", "1",
                      "--until", "os"], capsys)
    assert code == 1 and "state" in text and one_paragraph(text), text


def test_a_foreign_state_file_is_a_runtime_error_and_is_left_as_it_was(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("FLEET_MAAS_API_KEY", "consumer:token:secret")
    (tmp_path / "state").mkdir()
    foreign = tmp_path / "state" / "state.db"
    foreign.write_text("not a database\n" * 300)
    code, text = run(["--site", str(MINIMAL), "--state-dir", str(tmp_path / "state"), "--rack", "1", "--until",
                      "os"], capsys)
    assert code == 1 and str(foreign) in text and one_paragraph(text), text
    assert foreign.read_text() == "not a database\n" * 300


def test_the_corpus_has_at_least_forty_cases() -> None:
    assert len(BROKEN) + len(CLI_CASES) + 5 >= 40
