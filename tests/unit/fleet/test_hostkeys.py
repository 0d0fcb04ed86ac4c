"""Host keys tied to the journal: the decision table, the journal's facts, our known_hosts file, ssh's refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleet import hostkeys
from fleet.hostkeys import HostKey, KeyFacts, KnownHosts, Verdict, decide, facts
from fleet.state import JournalEntry


def make_key(tmp_path: Path, name: str) -> tuple[HostKey, str]:
    """A fresh ed25519 key made by ssh-keygen, and ssh-keygen's own fingerprint of it."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    kind, blob = path.with_suffix(".pub").read_text().split()[:2]
    listed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True)
    return HostKey(kind, blob), listed.stdout.split()[1]


OLD = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOJuMIje1PXQbdY5fGZLqHlgKdr39VnhceML2CW0POCK")
NEW = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIJ0Ll2gWg0dxA7xmj1g0sKJ4i9Fh6P1qtd7m4X8gQaeB")


def entry(event: str, ts: float = 0.0, **detail: object) -> JournalEntry:
    stage = {"release:started": "release", "ensure_os:started": "os"}.get(event, "hostkey")
    return JournalEntry(ts, "run", "gpu-012-03", stage, event, detail)


RECORDED_OLD = entry(hostkeys.RECORDED, 10.0, fingerprint=OLD.fingerprint)
DEPLOY = entry("ensure_os:started", 20.0, action="deploy")
RELEASE = entry("release:started", 15.0)
FORGET = entry(hostkeys.FORGOTTEN, 15.0)


def test_fingerprint_is_ssh_keygens(tmp_path):
    key, listed = make_key(tmp_path, "k")
    assert key.fingerprint == listed and listed.startswith("SHA256:")


@pytest.mark.parametrize(("history", "recorded", "seen", "verdict"), [
    # a node the tool never saw: trust on first use, recorded (and journaled by the stage)
    ([], None, NEW, Verdict.RECORD),
    # bring-up: MAAS deployed it, the first key after that deploy is recorded
    ([DEPLOY], None, NEW, Verdict.RECORD),
    # the recorded key answers
    ([DEPLOY, RECORDED_OLD], OLD, OLD, Verdict.KNOWN),
    # reimage: released (key forgotten), deployed, the first key after the deploy is recorded
    ([RECORDED_OLD, RELEASE, FORGET, DEPLOY], None, NEW, Verdict.RECORD),
    # a redeploy by the os stage (release inside MAAS's ensure_os) left the old key: the deploy explains it
    ([RECORDED_OLD, entry("ensure_os:started", 20.0, action="redeploy")], OLD, NEW, Verdict.REPLACE),
    # a crash between the journaled release and the removal of the key: the deploy still explains the change
    ([RECORDED_OLD, RELEASE, DEPLOY], OLD, NEW, Verdict.REPLACE),
    # a key change with no deploy since the key was recorded: refused
    ([DEPLOY, RECORDED_OLD], OLD, NEW, Verdict.REFUSE),
    # a deploy before the record does not explain a later change
    ([RECORDED_OLD, DEPLOY, entry(hostkeys.RECORDED, 30.0, fingerprint=NEW.fingerprint)], NEW, OLD, Verdict.REFUSE),
    # released and not deployed since: no key is expected from it at all
    ([RECORDED_OLD, RELEASE, FORGET], None, NEW, Verdict.REFUSE),
    # an os stage that found the machine already deployed (nothing) is no deploy
    ([RECORDED_OLD, entry("ensure_os:started", 20.0, action="wait")], OLD, NEW, Verdict.REFUSE),
    # the operator removed the recorded key by hand (confirming a change): the next key is recorded
    ([DEPLOY, RECORDED_OLD], None, NEW, Verdict.RECORD),
])  # fmt: skip
def test_decide_from_the_journal(history, recorded, seen, verdict):
    assert decide(facts(history), recorded, seen).verdict == verdict


def test_facts_follow_the_journal_order():
    folded = facts([DEPLOY, RECORDED_OLD])
    assert folded == KeyFacts(OLD.fingerprint, 10.0, 20.0, False, False, True)
    assert facts([RECORDED_OLD, RELEASE, FORGET, DEPLOY]).deployed_since_record
    assert facts([RECORDED_OLD, RELEASE, FORGET]).released_since_deploy
    # only the stages' own events count: a step of another stage with the same name is no release
    assert not facts([RECORDED_OLD, JournalEntry(20.0, "run", "gpu-012-03", "bios", "release:started", {})]
                     ).released_since_deploy


def test_the_refusal_names_the_node_both_fingerprints_and_the_next_step(tmp_path):
    decision = decide(facts([DEPLOY, RECORDED_OLD]), OLD, NEW)
    text = hostkeys.refusal("gpu-012-03", "198.18.12.3", tmp_path / "known_hosts", decision.reason,
                            OLD.fingerprint, NEW.fingerprint, NEW.kind, recorded_at=10.0)
    for part in ("gpu-012-03", "198.18.12.3", OLD.fingerprint, NEW.fingerprint, str(tmp_path / "known_hosts"),
                 "provision.py reimage gpu-012-03 --force",
                 f"provision.py hostkey accept gpu-012-03 --fingerprint {NEW.fingerprint}",
                 "/etc/ssh/ssh_host_ed25519_key.pub", "no deploy"):
        assert part in text


def test_known_hosts_records_replaces_and_forgets_with_ssh_keygen(tmp_path):
    file = tmp_path / "state" / "known_hosts"
    known = KnownHosts(file)
    assert known.lookup("198.18.12.3") is None
    known.record("198.18.12.3", OLD)
    known.record("198.18.12.4", OLD)
    known.record("198.18.12.3", NEW)
    assert known.lookup("198.18.12.3") == NEW and known.lookup("198.18.12.4") == OLD
    # ssh itself reads the file: ssh-keygen -F finds exactly one line for the host
    found = subprocess.run(["ssh-keygen", "-F", "198.18.12.3", "-f", str(file)], capture_output=True, text=True)
    assert [line for line in found.stdout.splitlines() if not line.startswith("#")] == [NEW.line("198.18.12.3").strip()]
    known.forget("198.18.12.3")
    assert known.lookup("198.18.12.3") is None and known.lookup("198.18.12.4") == OLD
    assert not file.with_name("known_hosts.old").exists()


# What OpenSSH 9.2 prints (sshconnect.c) when StrictHostKeyChecking=yes meets a changed key.
CHANGED_STDERR = f"""@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
{NEW.fingerprint}.
Please contact your system administrator.
Add correct host key in /state/known_hosts to get rid of this message.
Offending ED25519 key in /state/known_hosts:1
Host key for 198.18.12.3 has changed and you have requested strict checking.
Host key verification failed.
"""
UNKNOWN_STDERR = ("No ED25519 host key is known for 198.18.12.3 and you have requested strict checking.\r\n"
                  "Host key verification failed.\r\n")


def test_ssh_refusals_are_read_from_its_stderr():
    assert hostkeys.ssh_refusal(CHANGED_STDERR) == hostkeys.SshRefusal("198.18.12.3", "ED25519", NEW.fingerprint)
    assert hostkeys.ssh_refusal(UNKNOWN_STDERR) == hostkeys.SshRefusal("198.18.12.3", "ED25519", "")
    assert hostkeys.ssh_refusal("ssh: connect to host 198.18.12.3 port 22: No route to host") is None


def test_explain_a_changed_key_with_the_recorded_fingerprint(tmp_path):
    file = tmp_path / "known_hosts"
    KnownHosts(file).record("198.18.12.3", OLD)
    text = hostkeys.explain("gpu-012-03", CHANGED_STDERR.replace("/state/known_hosts", str(file)))
    assert text is not None and OLD.fingerprint in text and NEW.fingerprint in text and "gpu-012-03" in text
    assert "reimage gpu-012-03" in hostkeys.explain("gpu-012-03", UNKNOWN_STDERR)
    assert hostkeys.explain("gpu-012-03", "Permission denied (publickey).") is None


def test_check_options_come_first_and_are_strict(tmp_path):
    options = hostkeys.check_options(tmp_path / "known_hosts")
    assert "StrictHostKeyChecking=yes" in options and f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in options
    assert "StrictHostKeyChecking=accept-new" in hostkeys.scan_options(tmp_path / "scratch")
    assert "ControlMaster=no" in hostkeys.scan_options(tmp_path / "scratch")
