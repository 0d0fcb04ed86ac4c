"""Host keys tied to the journal, on real lab hosts (sshd in nspawn, a new host key on every deploy).

One lab for the module: two nodes brought up to the hostkey stage in one run. One is reimaged and
comes back with a new key, which the tool records; the other has its key changed on the host itself
(no deploy: what someone in the middle, or a swapped machine, looks like), which every SSH path
refuses with both fingerprints until the operator confirms the key checked on the console.
The keys asserted are read from the lab hosts' own filesystems, not from anything the tool wrote.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from fleet import hostkeys
from fleet.hostkeys import HostKey, KnownHosts
from lab.hosts import nspawn
from tests.lab.conftest import LabSite, _teardown, make_site

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REIMAGED, SWAPPED = "gpu-001-01", "gpu-001-02"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSite]:
    lab = make_site(tmp_path_factory.mktemp("hostkeys"), racks=1, max_hosts=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEET_LAB_DIR", str(lab.lab_dir))
        patch.setenv("FLEET_STATE_DIR", str(lab.state_dir))
        try:
            run = lab.cli("--nodes", f"{REIMAGED},{SWAPPED}", "--until", "hostkey", "--json", timeout_s=300)
            assert run.returncode == 0, run.stderr[-3000:]
            yield lab
        finally:
            _teardown(lab)


def real_key(lab: LabSite, hostname: str) -> HostKey:
    """The key the lab host's sshd serves, read from the host's own root filesystem."""
    pub = nspawn.hosts_dir(lab.lab_dir) / hostname / "merged" / "etc/ssh/ssh_host_ed25519_key.pub"
    kind, blob = pub.read_text(encoding="utf-8").split()[:2]
    return HostKey(kind, blob)


def recorded(lab: LabSite, hostname: str) -> HostKey | None:
    return KnownHosts(lab.state_dir / "known_hosts").lookup(lab.site.nodes[hostname].address)


def on_host(lab: LabSite, hostname: str, command: str) -> subprocess.CompletedProcess:
    """A command on the lab host through the lab's own ssh settings (its record of the host's key)."""
    address = lab.site.nodes[hostname].address
    return subprocess.run(["ssh", "-F", str(lab.lab_dir / "ssh_config"), "-o", "BatchMode=yes", address, command],
                          capture_output=True, text=True, timeout=60, check=False)


def test_reimage_with_a_new_host_key_succeeds_and_records_the_new_key(lab: LabSite) -> None:
    before = real_key(lab, REIMAGED)
    assert recorded(lab, REIMAGED) == before
    assert recorded(lab, SWAPPED) == real_key(lab, SWAPPED)  # each node has its own key

    run = lab.cli("reimage", REIMAGED, "--yes", "--force", "--until", "hostkey", "--json", timeout_s=300)
    assert run.returncode == 0, run.stderr[-3000:]
    after = real_key(lab, REIMAGED)
    assert after != before, "the lab host came back with the same key: nothing was proven"
    assert recorded(lab, REIMAGED) == after
    assert recorded(lab, SWAPPED) == real_key(lab, SWAPPED)  # the other node's key is untouched

    events = [(e.event, e.detail) for e in lab.journal(REIMAGED)]
    names = [name for name, _ in events]
    forgotten = names.index(hostkeys.FORGOTTEN)
    assert names.index("release:started") < forgotten < len(names) - 1 - names[::-1].index(hostkeys.RECORDED)
    last = [detail for name, detail in events if name == hostkeys.RECORDED][-1]
    assert last["fingerprint"] == after.fingerprint and last["replaced"] == ""
    assert "first key after the deploy" in last["reason"]


def test_a_changed_key_without_a_deploy_is_refused_until_confirmed(lab: LabSite) -> None:
    node = lab.site.nodes[SWAPPED]
    old = real_key(lab, SWAPPED)
    assert recorded(lab, SWAPPED) == old
    # The host's key changes under the tool, as a swapped machine or someone in the middle would show it.
    swapped = on_host(lab, SWAPPED, "sudo -n sh -c 'rm -f /etc/ssh/ssh_host_ed25519_key* && "
                      "ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh'")
    assert swapped.returncode == 0, swapped.stderr
    subprocess.run(["ssh", "-F", str(lab.lab_dir / "ssh_config"), "-O", "exit", node.address],
                   capture_output=True, check=False)  # a new connection, not the multiplexed old one
    new = real_key(lab, SWAPPED)
    assert new != old

    sweep = lab.cli("health", "--nodes", SWAPPED, "--json")
    assert sweep.returncode != 0
    error = json.loads(sweep.stdout)["nodes"][0]["error"]
    for part in (SWAPPED, node.address, old.fingerprint, new.fingerprint,
                 f"provision.py hostkey accept {SWAPPED} --fingerprint {new.fingerprint}",
                 f"provision.py reimage {SWAPPED}"):
        assert part in error, error
    assert recorded(lab, SWAPPED) == old  # nothing accepted behind the operator's back

    wrong = lab.cli("hostkey", "accept", SWAPPED, "--fingerprint", old.fingerprint)
    assert wrong.returncode == 2 and new.fingerprint in wrong.stderr
    assert recorded(lab, SWAPPED) == old

    confirmed = lab.cli("hostkey", "accept", SWAPPED, "--fingerprint", new.fingerprint)
    assert confirmed.returncode == 0, confirmed.stderr
    assert recorded(lab, SWAPPED) == new
    journaled = [e.detail for e in lab.journal(SWAPPED) if e.event == hostkeys.RECORDED][-1]
    assert journaled["fingerprint"] == new.fingerprint and journaled["replaced"] == old.fingerprint
    again = lab.cli("health", "--nodes", SWAPPED, "--json")
    assert "host key" not in json.loads(again.stdout)["nodes"][0]["error"]
