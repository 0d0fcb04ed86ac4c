"""The inventory model: the lab site, selections, credentials by reference and the lab state dir."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from fleet.errors import FleetError
from fleet.site import (
    Credentials,
    Site,
    load_site,
    parse_racks,
    resolve_credentials,
    select_nodes,
)
from lab.settings import LAB_DIR_ENV, load_lab_site
from lab.sitegen import SiteShape, write_site

REPO = Path(__file__).resolve().parents[3]
LAB_SITE = REPO / "inventory" / "lab" / "site.yml"
MINIMAL = REPO / "tests" / "fixtures" / "inventories" / "good" / "minimal.yml"


@pytest.fixture(scope="module")
def lab_site() -> Site:
    return load_site(LAB_SITE)


# --- the lab site -------------------------------------------------------------------------------


def test_lab_site_has_128_racks_of_4_nodes(lab_site: Site) -> None:
    assert [rack.number for rack in lab_site.racks] == list(range(1, 129))
    assert {len(rack.nodes) for rack in lab_site.racks} == {4}
    assert len(lab_site.nodes) == 512


def test_lab_hostnames_spell_rack_and_slot(lab_site: Site) -> None:
    for name, node in lab_site.nodes.items():
        match = re.fullmatch(r"gpu-(\d{3})-(\d{2})", name)
        assert match, name
        assert (int(match[1]), int(match[2])) == (node.rack, node.slot)


def test_every_lab_node_has_8_ndr_hcas_on_known_leaves(lab_site: Site) -> None:
    for node in lab_site.nodes.values():
        assert [hca.name for hca in node.hcas] == [f"mlx5_{rail}" for rail in range(8)]
        assert {hca.rate_gbps for hca in node.hcas} == {400}
        assert {hca.leaf for hca in node.hcas} <= set(lab_site.switches)
        assert node.gpu_count == 8
        assert node.role == "gpu"


def test_lab_node_fields_follow_the_address_plan(lab_site: Site) -> None:
    node = lab_site.nodes["gpu-012-03"]
    assert (node.address, node.pxe_mac, node.bmc.address) == ("198.18.12.13", "02:4c:00:0c:03:00", "127.0.0.1:20123")
    assert node.bmc.credentials in lab_site.credentials


def test_committed_lab_site_is_the_generators_output(tmp_path: Path) -> None:
    write_site(tmp_path, SiteShape())
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yml"))
    committed = sorted(p.relative_to(LAB_SITE.parent) for p in LAB_SITE.parent.rglob("*.yml") if p.name != "fleet.yml")
    assert generated == committed
    for rel in generated:
        assert (tmp_path / rel).read_text() == (LAB_SITE.parent / rel).read_text(), rel


# --- selections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "racks"),
    [("12", [12]), ("12-15", [12, 13, 14, 15]), (" 7 ", [7]), ("3-3", [3]), ("0", [0])],
)
def test_parse_racks_accepts_numbers_and_ranges(text: str, racks: list[int]) -> None:
    assert parse_racks(text) == racks


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("15-12", "ends before it starts"),
        ("twelve", "not a rack number or range"),
        ("12-", "not a rack number or range"),
        ("-3", "not a rack number or range"),
        ("1,2", "not a rack number or range"),
        ("", "not a rack number or range"),
    ],
)
def test_parse_racks_rejects_anything_else(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_racks(text)


def test_select_nodes_unites_racks_and_names_in_rack_slot_order(lab_site: Site) -> None:
    nodes = select_nodes(lab_site, racks=["13", "12-13"], names=["gpu-001-02", "gpu-012-01"])
    assert [n.hostname for n in nodes] == [
        "gpu-001-02",
        *(f"gpu-012-0{s}" for s in range(1, 5)),
        *(f"gpu-013-0{s}" for s in range(1, 5)),
    ]


def test_select_nodes_names_the_unknown_rack_and_the_sites_span(lab_site: Site) -> None:
    with pytest.raises(ValueError, match=r"rack 129 is not in site 'lab' \(racks 1-128\)"):
        select_nodes(lab_site, racks=["127-129"])


def test_select_nodes_suggests_the_nearest_node(lab_site: Site) -> None:
    with pytest.raises(ValueError, match=r"node 'gpu-012-3' is not in site 'lab'; did you mean gpu-012-0\d\?"):
        select_nodes(lab_site, names=["gpu-012-3"])


def test_select_nodes_with_nothing_selected_is_empty(lab_site: Site) -> None:
    assert select_nodes(lab_site) == []


# --- credentials --------------------------------------------------------------------------------


def _site_with_bmc_secret(tmp_path: Path, secret_yaml: str) -> Site:
    text = MINIMAL.read_text().replace("secret: {env: FLEET_BMC_PASSWORD}", f"secret: {secret_yaml}")
    site_file = tmp_path / "site.yml"
    site_file.write_text(text)
    return load_site(site_file)


def test_env_reference_is_read_only_when_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_BMC_PASSWORD", raising=False)
    site = load_site(MINIMAL)  # loading never needs the secret
    monkeypatch.setenv("FLEET_BMC_PASSWORD", "s3cret-env")
    assert resolve_credentials(site, "bmc") == Credentials("root", "s3cret-env")


def test_unset_env_reference_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_BMC_PASSWORD", raising=False)
    with pytest.raises(FleetError, match="environment variable FLEET_BMC_PASSWORD is not set") as err:
        resolve_credentials(load_site(MINIMAL), "bmc")
    assert "export FLEET_BMC_PASSWORD" in str(err.value)


def private(path: Path, text: str) -> Path:
    """A secret file as it must be: mode 0600, owned by the user running the tool."""
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_secret_file_others_can_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    secrets = private(tmp_path / "secrets.yml", "bmc_password: s3cret-file\n")
    secrets.chmod(mode)
    site = _site_with_bmc_secret(tmp_path, "{file: secrets.yml, key: bmc_password}")
    with pytest.raises(FleetError, match=f"mode {mode:04o}") as err:
        resolve_credentials(site, "bmc")
    assert f"chmod 600 {secrets}" in str(err.value) and "s3cret" not in str(err.value)


def test_a_secret_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    import os

    secrets = private(tmp_path / "secrets.yml", "bmc_password: s3cret-file\n")
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file away")  # CI and the dev machines run as root
    os.chown(secrets, 65534, 65534)
    site = _site_with_bmc_secret(tmp_path, "{file: secrets.yml, key: bmc_password}")
    with pytest.raises(FleetError, match="owned by uid 65534") as err:
        resolve_credentials(site, "bmc")
    assert "chown" in str(err.value)


def test_file_reference_reads_the_key_relative_to_the_site(tmp_path: Path) -> None:
    private(tmp_path / "secrets.yml", "bmc_password: s3cret-file\nother: x\n")
    site = _site_with_bmc_secret(tmp_path, "{file: secrets.yml, key: bmc_password}")
    assert resolve_credentials(site, "bmc").secret == "s3cret-file"


def test_a_secret_file_is_parsed_once_while_unchanged_and_again_once_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import fleet.site.credentials as credentials

    secrets = private(tmp_path / "secrets.yml", "bmc_password: s3cret-one\n")
    site = _site_with_bmc_secret(tmp_path, "{file: secrets.yml, key: bmc_password}")
    parses: list[str] = []
    real = credentials.yaml.safe_load
    monkeypatch.setattr(credentials.yaml, "safe_load", lambda text: parses.append(text) or real(text))
    assert [resolve_credentials(site, "bmc").secret for _ in range(3)] == ["s3cret-one"] * 3
    assert len(parses) == 1  # 1,280 BMC clients share the file: one parse
    secrets.write_text("bmc_password: s3cret-two\n")
    os.utime(secrets, ns=(1, 1))  # a new mtime even within the file system's timestamp granularity
    assert resolve_credentials(site, "bmc").secret == "s3cret-two" and len(parses) == 2
    secrets.chmod(0o644)  # the permission check still runs on every resolve
    with pytest.raises(FleetError, match="mode 0644"):
        resolve_credentials(site, "bmc")


def test_file_reference_with_a_missing_key_names_file_and_key(tmp_path: Path) -> None:
    private(tmp_path / "secrets.yml", "other: s3cret-file\n")
    site = _site_with_bmc_secret(tmp_path, "{file: secrets.yml, key: bmc_password}")
    with pytest.raises(FleetError, match=r"key 'bmc_password' not found in .*secrets\.yml") as err:
        resolve_credentials(site, "bmc")
    assert "s3cret-file" not in str(err.value)


def test_secret_file_that_is_not_yaml_is_not_quoted(tmp_path: Path) -> None:
    private(tmp_path / "secrets.yml", "bmc_password: [s3cret-unclosed\n")
    site = _site_with_bmc_secret(tmp_path, "{file: secrets.yml, key: bmc_password}")
    with pytest.raises(FleetError, match="is not valid YAML") as err:
        resolve_credentials(site, "bmc")
    assert "s3cret" not in str(err.value)


def _write_vault(path: Path, password: bytes, plain: str) -> None:
    path.write_bytes(VaultLib([("default", VaultSecret(password))]).encrypt(plain.encode()))


def test_vault_reference_is_decrypted_with_the_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_vault(tmp_path / "vault.yml", b"vault-pass", "bmc_password: s3cret-vault\n")
    private(tmp_path / "vault-password", "vault-pass\n")  # a trailing newline, as editors write it
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "vault-password"))
    site = _site_with_bmc_secret(tmp_path, "{vault: vault.yml, key: bmc_password}")
    assert b"s3cret-vault" not in (tmp_path / "vault.yml").read_bytes()
    assert resolve_credentials(site, "bmc") == Credentials("root", "s3cret-vault")


def test_vault_reference_without_a_password_file_says_what_to_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_vault(tmp_path / "vault.yml", b"vault-pass", "bmc_password: s3cret-vault\n")
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    site = _site_with_bmc_secret(tmp_path, "{vault: vault.yml, key: bmc_password}")
    with pytest.raises(FleetError, match="ANSIBLE_VAULT_PASSWORD_FILE is not set"):
        resolve_credentials(site, "bmc")


def test_vault_with_the_wrong_password_fails_without_leaking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_vault(tmp_path / "vault.yml", b"vault-pass", "bmc_password: s3cret-vault\n")
    private(tmp_path / "vault-password", "wrong-pass")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "vault-password"))
    site = _site_with_bmc_secret(tmp_path, "{vault: vault.yml, key: bmc_password}")
    with pytest.raises(FleetError, match="cannot decrypt") as err:
        resolve_credentials(site, "bmc")
    for secret in ("wrong-pass", "vault-pass", "s3cret-vault"):
        assert secret not in str(err.value)


def test_undefined_credentials_cannot_be_resolved() -> None:
    with pytest.raises(FleetError, match="credentials 'ipmi' are not defined"):
        resolve_credentials(load_site(MINIMAL), "ipmi")


def test_credentials_never_show_the_secret() -> None:
    creds = Credentials("root", "s3cret-value")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"bmc": creds})):
        assert "s3cret-value" not in text
        assert "root" in text


def test_the_model_holds_references_not_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_BMC_PASSWORD", "s3cret-env")
    site = load_site(MINIMAL)
    assert "s3cret-env" not in repr(site)
    assert repr(site.credentials["bmc"].secret) == "SecretRef(env:FLEET_BMC_PASSWORD)"


# --- the lab state dir --------------------------------------------------------------------------


def test_lab_state_dir_defaults_to_the_sites_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LAB_DIR_ENV, raising=False)
    site = load_lab_site(LAB_SITE)
    assert site.lab is not None
    assert site.lab.state_dir == REPO / ".lab"
    assert site.bmc_tls.ca_file == REPO / ".lab" / "tls" / "ca.pem"


def test_fleet_lab_dir_overrides_the_state_dir_and_the_paths_that_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LAB_DIR_ENV, str(tmp_path))
    site = load_lab_site(LAB_SITE)
    assert site.lab is not None
    assert site.lab.state_dir == tmp_path.resolve()
    assert site.bmc_tls.verify is True
    assert site.bmc_tls.ca_file == tmp_path.resolve() / "tls" / "ca.pem"
    private(tmp_path / "secrets.yml", "bmc_password: lab-bmc\nmaas_api_key: c:t:s\n")
    assert resolve_credentials(site, "bmc") == Credentials("root", "lab-bmc")
    assert resolve_credentials(site, "maas") == Credentials("", "c:t:s")


def test_a_relative_state_dir_is_relative_to_the_site_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LAB_DIR_ENV, raising=False)
    site_file = write_site(tmp_path / "site", SiteShape(racks=1, state_dir="state"))
    site = load_lab_site(site_file)
    assert site.lab is not None
    assert site.lab.state_dir == (tmp_path / "site" / "state").resolve()
    assert len(site.nodes) == 4


# --- the example production site ----------------------------------------------------------------


def test_example_production_site_loads_cleanly() -> None:
    site = load_site(REPO / "inventory" / "example-production" / "site.yml")
    assert [rack.number for rack in site.racks] == [1, 2]
    assert len(site.nodes) == 8
    assert all(len(node.hcas) == 8 for node in site.nodes.values())
    assert site.lab is None


def test_example_production_site_keeps_secrets_out_and_verifies_tls() -> None:
    site = load_site(REPO / "inventory" / "example-production" / "site.yml")
    assert {ref.secret.kind for ref in site.credentials.values()} == {"env", "vault"}
    for tls in (site.bmc_tls, site.maas_tls):
        assert tls.verify is True
        assert tls.ca_file is not None and tls.ca_file.is_absolute()
    assert site.maas.url.startswith("https://")
    for node in site.nodes.values():
        assert node.address.startswith("10.")
        assert node.bmc.address.startswith("10.")


def test_example_production_vault_reference_resolves_once_the_vault_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPO / "inventory" / "example-production", tmp_path / "site")
    _write_vault(tmp_path / "site" / "secrets" / "vault.yml", b"ops-pass",
                 "idrac_root_password: s3cret-idrac\nufm_admin_password: s3cret-ufm\n")
    private(tmp_path / "vault-password", "ops-pass")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "vault-password"))
    site = load_site(tmp_path / "site" / "site.yml")
    assert resolve_credentials(site, "idrac") == Credentials("root", "s3cret-idrac")
    assert resolve_credentials(site, "ufm") == Credentials("admin", "s3cret-ufm")
