"""hostkey stage: the key after a journaled deploy is recorded, a change without one quarantines the node."""

from __future__ import annotations

import pytest

from fleet import hostkeys
from fleet.hostkeys import HostKey, KnownHosts, Scan
from fleet.stages.hostkey import HostKey as HostKeyStage
from fleet.workflow import NodeContext

OLD = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOJuMIje1PXQbdY5fGZLqHlgKdr39VnhceML2CW0POCK")
NEW = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIJ0Ll2gWg0dxA7xmj1g0sKJ4i9Fh6P1qtd7m4X8gQaeB")


def presents(monkeypatch: pytest.MonkeyPatch, key: HostKey | None) -> list[list[str]]:
    """The node presents `key` (None: no answer); returns the ssh command lines the stage used."""
    seen: list[list[str]] = []

    def scan(address, argv, scratch_dir, timeout_s):
        seen.append(list(argv))
        return Scan(key, "" if key else "ssh: connect to host: No route to host")

    monkeypatch.setattr(hostkeys, "scan", scan)
    return seen


def test_first_key_after_a_deploy_is_recorded_then_known(site, db, monkeypatch):
    node = site.nodes["gpu-001-01"]
    db.journal(node.hostname, "os", "ensure_os:started", action="deploy")
    argv = presents(monkeypatch, NEW)
    result = HostKeyStage(site).run(node, NodeContext(node, db, 1, "hostkey"))
    assert result.ok and NEW.fingerprint in result.detail
    assert KnownHosts(hostkeys.known_hosts_file(site)).lookup(node.address) == NEW
    assert argv[0][-3:] == [node.address, "--", "true"]
    recorded = [e for e in db.entries(node.hostname) if e.event == hostkeys.RECORDED]
    assert recorded[0].detail["fingerprint"] == NEW.fingerprint
    assert HostKeyStage(site).run(node, NodeContext(node, db, 1, "hostkey")).evidence["verdict"] == "known"


def test_a_changed_key_without_a_deploy_quarantines_and_keeps_the_old_key(site, db, monkeypatch):
    node = site.nodes["gpu-001-01"]
    known = KnownHosts(hostkeys.known_hosts_file(site))
    known.record(node.address, OLD)
    db.journal(node.hostname, "hostkey", hostkeys.RECORDED, fingerprint=OLD.fingerprint)
    presents(monkeypatch, NEW)
    result = HostKeyStage(site).run(node, NodeContext(node, db, 1, "hostkey"))
    assert not result.ok and result.quarantine and not result.retryable
    assert OLD.fingerprint in result.detail and NEW.fingerprint in result.detail and node.hostname in result.detail
    assert known.lookup(node.address) == OLD
    assert [e.event for e in db.entries(node.hostname)][-1] == hostkeys.REFUSED


def test_no_answer_is_retried_not_trusted(site, db, monkeypatch):
    node = site.nodes["gpu-001-01"]
    presents(monkeypatch, None)
    result = HostKeyStage(site, ssh_up_s=0).run(node, NodeContext(node, db, 1, "hostkey"))
    assert not result.ok and result.retryable and "No route to host" in result.detail
    assert KnownHosts(hostkeys.known_hosts_file(site)).lookup(node.address) is None
