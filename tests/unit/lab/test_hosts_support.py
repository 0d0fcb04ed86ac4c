"""Lab host support code that needs no machine: mirror discovery, ssh_config, hook arguments, apt indexes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lab.apt.build import release_text, repo_key
from lab.hosts import __main__ as cli
from lab.hosts.image import debian_mirror, mirror_uris
from lab.hosts.keys import LabKeys, control_dir, render_ssh_config
from lab.hosts.plan import PlanError

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
"""
DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.example/debian
Suites: bookworm bookworm-updates
"""


def test_mirror_uris_reads_one_line_and_deb822_sources_and_skips_comments() -> None:
    assert mirror_uris(ONE_LINE) == ["http://mirror.example/debian", "http://security.example/debian-security"]
    assert mirror_uris(DEB822) == ["http://deb.example/debian"]


def test_debian_mirror_is_the_hosts_main_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_LAB_MIRROR", raising=False)
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "a-security.sources").write_text("URIs: http://sec.example/debian-security\n")
    (folder / "debian.sources").write_text(DEB822)
    (folder / "ignored.txt").write_text("deb http://wrong.example/debian bookworm main\n")
    assert debian_mirror((tmp_path / "missing.list", folder)) == "http://deb.example/debian"
    assert debian_mirror((tmp_path / "missing.list",)) == "http://deb.debian.org/debian"
    monkeypatch.setenv("FLEET_LAB_MIRROR", "http://override.example/debian")
    assert debian_mirror((folder,)) == "http://override.example/debian"


def test_ssh_config_names_each_running_host_and_keeps_control_sockets_short(tmp_path: Path) -> None:
    lab_dir = tmp_path / ("very-long-directory-name-" * 4) / "lab"
    keys = LabKeys(lab_dir / "ssh/id_ed25519", "pub", lab_dir / "ssh/known_hosts", lab_dir / "ssh_config")
    control = control_dir(lab_dir)
    text = render_ssh_config(keys, control, {"gpu-012-03": "198.18.12.13"})
    assert "Host gpu-012-03\n  HostName 198.18.12.13\n  User ubuntu\n" in text
    assert "Host 198.18.* 198.19.*\n" in text
    assert f"IdentityFile {lab_dir}/ssh/id_ed25519" in text
    assert "StrictHostKeyChecking yes" in text and "ControlMaster auto" in text
    # a unix socket path has 107 usable bytes; %C expands to 40 characters
    assert len(f"{control}/") + 40 < 100
    assert control_dir(lab_dir) == control and control_dir(tmp_path / "other") != control


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["gpu-012-03", "deployed"], ("deployed", "gpu-012-03")),
        (["released", "gpu-012-03"], ("released", "gpu-012-03")),
    ],
)
def test_hook_takes_hostname_and_event_in_either_order(words: list[str], expected: tuple[str, str]) -> None:
    assert cli._hook_words(words) == expected


def test_hook_without_an_event_is_bad_input() -> None:
    with pytest.raises(PlanError):
        cli._hook_words(["gpu-012-03", "gpu-012-04"])


def test_apt_repo_key_follows_control_file_names_and_contents(tmp_path: Path) -> None:
    first, second = tmp_path / "a.ctl", tmp_path / "b.ctl"
    first.write_text("Package: a\nVersion: 1\n")
    second.write_text("Package: b\nVersion: 1\n")
    key = repo_key([first, second])
    assert repo_key([second, first]) == key
    second.write_text("Package: b\nVersion: 2\n")
    assert repo_key([first, second]) != key
    assert repo_key([first]) != key


def test_apt_release_lists_every_index_with_size_and_hashes() -> None:
    files = {"Packages": b"Package: a\n", "Packages.gz": b"\x1f\x8bxyz"}
    text = release_text(files, "Sun, 29 Nov 2026 07:00:00 GMT")
    assert "Date: Sun, 29 Nov 2026 07:00:00 GMT\n" in text
    for name, content in files.items():
        assert f" {hashlib.md5(content, usedforsecurity=False).hexdigest()} {len(content)} {name}\n" in text
        assert f" {hashlib.sha256(content).hexdigest()} {len(content)} {name}\n" in text


def test_the_lab_records_one_key_per_address_and_forgets_it() -> None:
    from lab.hosts.keys import known_hosts_changed

    text = known_hosts_changed("", {"198.18.12.13": "ssh-ed25519 AAAAone host"})
    text = known_hosts_changed(text, {"198.18.12.14": "ssh-ed25519 AAAAtwo host"})
    text = known_hosts_changed(text, {"198.18.12.13": "ssh-ed25519 AAAAnew host"})
    assert text.splitlines() == ["198.18.12.14 ssh-ed25519 AAAAtwo", "198.18.12.13 ssh-ed25519 AAAAnew"]
    assert known_hosts_changed(text, {"198.18.12.14": None}) == "198.18.12.13 ssh-ed25519 AAAAnew\n"


def test_a_host_that_never_takes_a_login_is_reported_with_what_the_last_try_saw(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.hosts import nspawn
    from lab.hosts.image import HostError

    tries: list[str] = []
    monkeypatch.setattr(nspawn, "_banner", lambda address: tries.append(address) or "")
    monkeypatch.setattr(nspawn, "_login", lambda address, lab_dir: "ssh exited 255: Permission denied (publickey).")
    with pytest.raises(HostError) as caught:
        nspawn.wait_for_ssh("gpu-001-01", "198.19.110.9", tmp_path, 0.5)
    assert str(caught.value).startswith("the host did not accept SSH at 198.19.110.9 within 0 s; the last try: "
                                        "ssh exited 255: Permission denied (publickey).")
    assert len(tries) >= 2  # it kept trying until the budget was spent
    monkeypatch.setattr(nspawn, "_banner", lambda address: "port 22: Connection refused")
    with pytest.raises(HostError, match="the last try: port 22: Connection refused"):
        nspawn.wait_for_ssh("gpu-001-01", "198.19.110.9", tmp_path, 0.1)
