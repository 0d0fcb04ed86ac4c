"""Every broken inventory in the corpus yields exactly its problems: file, key path, message and fix.

The corpus (tests/fixtures/inventories/broken/, README there) is the valid `good/minimal.yml` with one
stated change per case, so each row below is the whole difference the validator must see. Asserting
the exact set of (file, key) pairs also catches noise: a second, misleading problem for the same
mistake fails the test as surely as a missing one. Sites are loaded the way the lab loads them
(`lab.settings.load_lab_site`: production's loader plus the lab's own `lab:` section), so the lab's
problems are reported in the same list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import InventoryError
from fleet.site.control import renamed_timeouts
from lab.settings import load_lab_site

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "inventories"
BROKEN = FIXTURES / "broken"
SITE = ""  # the case's own site file

# case -> [(file relative to the case's directory or SITE, key path, message fragment, fix fragment)]
CASES: dict[str, list[tuple[str, str, str, str]]] = {
    "fabric_plan/": [
        ("fabric.yml", "links[1]", "rail mixing: leaf-b is rail 1, spine-a is rail 0", "same rail only"),
        ("fabric.yml", "links[2]", "link to unknown switch 'spine-c'", "did you mean"),
        ("fabric.yml", "links[3]", "leaf-a port 5 is used twice: by link leaf-a:5-spine-a:3 and by link "
                                   "leaf-a:5-spine-a:1", "its own switch port"),
        (SITE, "nodes.gpu-001-02.hcas[1]", "rail mixing: gpu-001-02 mlx5_1 is HCA 1 (rail 1) but leaf-a is rail 0",
         "rail-1 leaf"),
    ],
    "timeouts_renamed_twice": [
        (SITE, "timeouts.maas_deploy_verdict_s", "timeouts.maas_deploy_verdict_s and timeouts.maas_verdict_s are "
                                                 "both set", "keep only maas_verdict_s"),
    ],
    "duplicate_hostname/": [
        ("racks/rack-002.yml", "nodes[0].hostname", "duplicate hostname 'gpu-001-01' (also at ", "unique"),
    ],
    "duplicate_bmc_address": [
        (SITE, "racks[0].nodes[1].bmc.address", "duplicate BMC address '10.1.1.11:443'", "unique"),
    ],
    "duplicate_mac": [
        # written in upper case on purpose: MACs are compared after normalising
        (SITE, "racks[0].nodes[1].pxe_mac", "duplicate MAC '7c:c2:55:01:01:00'", "unique"),
    ],
    "duplicate_guid": [
        (SITE, "racks[0].nodes[1].hcas[1].guid", "duplicate GUID '0xb83fd20300010100'", "unique"),
    ],
    "duplicate_node_address": [
        (SITE, "racks[0].nodes[1].address", "duplicate node address '10.2.1.11'", "unique"),
    ],
    "duplicate_leaf_port": [
        (SITE, "racks[0].nodes[1].hcas[0]", "duplicate leaf switch port 'leaf-a port 1'", "unique"),
    ],
    "duplicate_service_tag": [
        (SITE, "racks[0].nodes[1].service_tag", "duplicate service tag 'TAG0101'", "unique"),
    ],
    "bad_dell_pins": [
        (SITE, "bios.apply_time", "InMaintenanceWindowOnReset needs a maintenance window", "maintenance_window"),
        (SITE, "bios.attributes.SriovGlobalEnable", "expected a string or an integer, got True", "Enabled, not true"),
        (SITE, "firmware.repository", "'repo.example.net/dell' is not an HTTP(S) URL", "download from it"),
        (SITE, "firmware.components.bios.sha256", "an image needs its SHA-256 checksum", "sha256sum"),
    ],
    "duplicate_slot": [
        (SITE, "racks[0].nodes[1].slot", "slot 1 of rack 1 is also gpu-001-01", "its own slot"),
    ],
    "duplicate_rack_number/": [
        ("racks/rack-002.yml", "rack", "rack 1 is also defined in ", "unique number"),
    ],
    "malformed_mac": [
        (SITE, "racks[0].nodes[1].pxe_mac", "'7c:c2:55:01:02' is not a MAC address", "six hex pairs"),
    ],
    "malformed_ip": [
        (SITE, "racks[0].nodes[1].address", "'10.2.1.300' is not an IP address", "IPv4 or IPv6"),
    ],
    "malformed_guid": [
        (SITE, "racks[0].nodes[1].hcas[0].guid", "'0xb83fd2030001020' is not a port GUID", "16 hex digits"),
    ],
    "malformed_host_port": [
        (SITE, "racks[0].nodes[0].bmc.address", "'10.1.1.311' is not an IP address", "IPv4 or IPv6"),
        (SITE, "racks[0].nodes[1].bmc.address", "'10.1.1.12' is not host:port", "10.0.12.3:443"),
        (SITE, "switches.leaf-b.address", "'10.0.0.12:99999' is not host:port", "10.0.12.3:443"),
    ],
    "unknown_key": [
        (SITE, "descripton", "unknown key", "did you mean 'description'?"),
        (SITE, "racks[0].nodes[1].pxe-mac", "unknown key", "did you mean 'pxe_mac'?"),
        (SITE, "racks[0].nodes[1].pxe_mac", "missing required field", "add 'pxe_mac' under racks[0].nodes[1]"),
    ],
    "missing_field": [
        (SITE, "racks[0].nodes[1].service_tag", "missing required field", "add 'service_tag'"),
    ],
    "rack_with_no_nodes": [
        (SITE, "racks[1].nodes", "rack 2 has no nodes", "list its nodes or remove the rack"),
    ],
    "empty_rack_file/": [
        ("racks/rack-002.yml", "-", "the rack is empty", "rack: <number>"),
    ],
    "inline_secret": [
        (SITE, "credentials.bmc.secret", "inline secret", "{env: VAR}"),
    ],
    "secret_ref_two_kinds": [
        (SITE, "credentials.bmc.secret", "exactly one of env, file, vault", "{env: BMC_PASSWORD}"),
    ],
    "file_ref_without_key": [
        (SITE, "credentials.bmc.secret.key", "a file reference needs the key to read", "add key:"),
    ],
    "undefined_credentials": [
        (SITE, "racks[0].nodes[0].bmc.credentials", "credentials 'idrac' are not defined (used in 1 more place(s))",
         "define idrac:"),
    ],
    "unknown_switch": [
        (SITE, "racks[0].nodes[1].hcas[1].leaf", "unknown switch 'leaf-c'", "did you mean 'leaf-"),
    ],
    "unknown_fault_kind": [
        (SITE, "lab.faults[0]", "unknown fault kind 'bmc_500' (did you mean 'bmc_5xx'?)", "kinds: bmc_5xx"),
    ],
    "fault_unknown_node": [
        (SITE, "lab.faults[0].nodes", "unknown node 'gpu-001-03'", "did you mean 'gpu-001-0"),
    ],
    "bad_port": [
        (SITE, "racks[0].nodes[1].hcas[0].port", "expected an integer >= 1, got 0", "plain number"),
        (SITE, "lab.ports.maas", "'70000' is not a TCP port", "1 to 65535"),
        (SITE, "lab.ports.sushy", "'8000' is not a TCP port", "1 to 65535"),
    ],
    "invalid_yaml": [
        (SITE, "line 29", "not valid YAML (mapping values are not allowed", "fix the YAML syntax"),
    ],
    "duplicate_key": [
        (SITE, "line 32", "not valid YAML (found duplicate key 'pxe_mac')", "keep only one of the two"),
    ],
    "missing_rack_files": [
        (SITE, "racks[0]", "no rack file matches 'racks/*.yml'", "fix the path or glob"),
    ],
    "wrong_types": [
        (SITE, "racks[0].rack", "rack number must be a non-negative integer, got 'one'", "rack: 12"),
        (SITE, "racks[1].nodes[1].slot", "expected an integer >= 1, got 'two'", "plain number"),
        (SITE, "racks[1].nodes[1].gpu_count", "expected an integer >= 0, got 'eight'", "plain number"),
        (SITE, "bmc_tls.verify", "expected true or false, got 'yes'", "verify: true"),
        (SITE, "pins", "expected a mapping of name -> version, got list", "pins: {"),
    ],
    "bad_model": [
        (SITE, "racks[0].nodes[1].model", "'PowerEdge <XE9680>' is not a server model", "PowerEdge XE9680"),
    ],
    "node_access": [
        (SITE, "ssh.user", "root logins are refused by MAAS-deployed Ubuntu", "user: ubuntu"),
        (SITE, "ssh.proxy_jump", "'bastion one' is not an ssh -J destination", "[user@]host[:port]"),
        (SITE, "maas.power", "'ipmi' is not a power mode", "redfish"),
    ],
    "bad_ansible_parallel": [
        (SITE, "ansible.max_parallel_playbooks", "expected a whole number of runs >= 1, got 0",
         "max_parallel_playbooks: 4"),
    ],
    "bad_url": [
        (SITE, "maas.url", "'maas.example.net:5240/MAAS/' is not an http(s) URL", "https://"),
    ],
    "plain_http_maas": [
        (SITE, "maas.url", "plain HTTP: MAAS's OAuth PLAINTEXT signature sends the API key in clear",
         "maas.insecure_http: true"),
    ],
    "insecure_http_not_bool": [
        (SITE, "maas.insecure_http", "expected true or false, got 'yes'", "insecure_http: true"),
    ],
    "bad_service_tag": [
        (SITE, "racks[0].nodes[1].service_tag", "'TAG' 0102' is not a service tag", "letters and digits"),
    ],
    "bad_role": [
        (SITE, "racks[0].nodes[0].role", "'gpu;reboot' is not a valid role", "lowercase letters, digits"),
    ],
    "state_url_with_password": [
        (SITE, "state.url", "holds a password", "~/.pgpass"),
    ],
    "state_url_not_postgres": [
        (SITE, "state.url", "'mysql://db.example.net/fleet' is not a PostgreSQL URL", "postgresql://"),
    ],
    "kraken_unpinned": [
        (SITE, "kraken.artifacts.agent.image", "'registry.example/kraken-agent:v0.1.4' is not pinned by digest",
         "REPOSITORY@sha256:<64 hex digits>"),
        (SITE, "kraken.artifacts.proxy", "missing required field", "add 'proxy' under kraken.artifacts"),
    ],
    "bad_watch": [
        (SITE, "health.interval_s", "expected a number >= 1, got '5m'", "plain number"),
        (SITE, "watch.max_nodes", "expected a number >= 1, got 0", "plain number"),
        (SITE, "watch.max_rack_percent", "150 is more than a whole rack", "0 to 100"),
        (SITE, "watch.cooldown", "unknown key", "cooldown_s"),
        (SITE, "watch.burnin", "expected true or false, got 'yes'", "burnin: true"),
        (SITE, "workload.kind", "unknown workload manager 'slurmm'", "slurm, none"),
    ],
}


def _site_file(case: str) -> Path:
    return BROKEN / case / "site.yml" if case.endswith("/") else BROKEN / f"{case}.yml"


def _problems(site_file: Path) -> list:
    with pytest.raises(InventoryError) as err:
        load_lab_site(site_file)
    return err.value.problems


def test_the_corpus_and_this_table_list_the_same_cases() -> None:
    on_disk = {p.name + "/" if p.is_dir() else p.stem for p in BROKEN.iterdir() if p.name != "README.md"}
    assert on_disk - {"several_problems"} == set(CASES)
    assert len(CASES) >= 20
    readme = (BROKEN / "README.md").read_text()
    assert all(f"`{case}`" in readme for case in on_disk)


def test_the_site_every_single_file_case_is_derived_from_is_valid() -> None:
    site = load_lab_site(FIXTURES / "good" / "minimal.yml")
    assert sorted(site.nodes) == ["gpu-001-01", "gpu-001-02"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_inventory_reports_exactly_its_problems(case: str) -> None:
    site_file = _site_file(case)
    problems = _problems(site_file)
    expected = CASES[case]
    got = {(Path(p.file), p.key): p for p in problems}
    want = {(site_file if rel == SITE else site_file.parent / rel, key) for rel, key, _, _ in expected}
    assert set(got) == want, [str(p) for p in problems]
    assert len(problems) == len(expected)
    for rel, key, message, fix in expected:
        problem = got[(site_file if rel == SITE else site_file.parent / rel, key)]
        assert message in problem.message
        assert fix in problem.fix


def test_duplicates_name_the_first_occurrence_with_its_file_and_key() -> None:
    site_file = _site_file("duplicate_hostname/")
    (problem,) = _problems(site_file)
    assert f"{site_file.parent / 'racks' / 'rack-001.yml'}: nodes[0].hostname" in problem.message


def test_a_file_with_several_problems_reports_all_of_them_in_one_error() -> None:
    site_file = BROKEN / "several_problems.yml"
    with pytest.raises(InventoryError) as err:
        load_lab_site(site_file)
    keys = {p.key: p.message for p in err.value.problems}
    assert set(keys) == {
        "switchs",
        "credentials.maas.secret",
        "racks[0].nodes[1].pxe_mac",
        # the node with the bad MAC still takes part in the uniqueness checks
        "racks[0].nodes[1].hcas[0].guid",
        "lab.ports.maas",
        "lab.faults[0]",
    }
    text = str(err.value)
    assert text.startswith("6 problem(s) in the site inventory:")
    assert all(str(site_file) in line for line in text.splitlines()[1:])
    # the inline secret is reported, never echoed
    assert "consumer:token:secret" not in text


def test_a_missing_site_file_is_one_problem_not_a_traceback(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path / "nowhere.yml")
    assert problem.message == "site file not found"


def test_an_empty_site_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("# nothing yet\n")
    (problem,) = _problems(tmp_path / "site.yml")
    assert problem.message == "the site file is empty"


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("node_defaults: {gpu_count: many}", "node_defaults.gpu_count", "expected an integer >= 0, got 'many'"),
        ("node_defaults: {hca_rate_gbps: 0}", "node_defaults.hca_rate_gbps", "expected an integer >= 1, got 0"),
        ("node_defaults: [gpu]", "node_defaults", "expected a mapping, got list"),
        ("pins: {cuda: {major: 12}}", "pins.cuda", "expected a version string"),
        ("lab: {seed: x}", "lab.seed", "expected an integer >= 0, got 'x'"),
        ("lab: {ports: [5240]}", "lab.ports", "expected a mapping of service -> port"),
        ("lab: {hosts: {max: lots}}", "lab.hosts.max", "expected an integer >= 0, got 'lots'"),
        ("lab: {faults: {kind: gpu_sick}}", "lab.faults", "expected a list of faults, got dict"),
        ("lab: {faults: [{kind: gpu_sick, fraction: half}]}", "lab.faults[0]", "fraction must be a number, got 'half'"),
        ("lab: {time_factor: 0}", "lab.time_factor", "expected a positive number, got 0"),
        ("timeouts: {maas_deploy_verdict_s: soon}", "timeouts.maas_deploy_verdict_s",
         "expected a positive number of seconds, got 'soon'"),
    ],
)
def test_wrong_types_in_optional_sections_are_problems_not_crashes(
    tmp_path: Path, section: str, key: str, message: str
) -> None:
    site_file = tmp_path / "site.yml"
    site_file.write_text((FIXTURES / "good" / "minimal.yml").read_text() + section + "\n")
    (problem,) = _problems(site_file)
    assert (problem.key, problem.message) == (key, message)


def test_the_old_verdict_name_is_read_as_the_new_one_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = (FIXTURES / "good" / "minimal.yml").read_text()
    site_file = tmp_path / "site.yml"
    site_file.write_text(text.replace("switches:", "timeouts:\n  maas_deploy_verdict_s: 45\nswitches:", 1))
    with caplog.at_level("WARNING", logger="fleet.site"):
        site = load_lab_site(site_file)
    assert site.timeouts.maas_verdict_s == 45.0
    (record,) = [r for r in caplog.records if r.name == "fleet.site"]
    assert "timeouts.maas_deploy_verdict_s is deprecated: rename it to timeouts.maas_verdict_s" in record.getMessage()


def test_renamed_timeouts_reads_old_names_as_new_and_drops_an_old_one_shadowed_by_its_new_name() -> None:
    values, written, both = renamed_timeouts({"maas_deploy_verdict_s": 45, "bmc_inventory_s": 3})
    assert values == {"maas_verdict_s": 45, "bmc_inventory_s": 3}
    assert written == {"maas_verdict_s": "maas_deploy_verdict_s", "bmc_inventory_s": "bmc_inventory_s"}
    assert both == []
    values, written, both = renamed_timeouts({"maas_deploy_verdict_s": 45, "maas_verdict_s": 60})
    assert (values, written, both) == ({"maas_verdict_s": 60}, {"maas_verdict_s": "maas_verdict_s"},
                                       [("maas_deploy_verdict_s", "maas_verdict_s")])
