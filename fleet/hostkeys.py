"""Nodes' SSH host keys, tied to the journal: which key a node may present, and what to do when it changes.

A MAAS-deployed Ubuntu makes new host keys on its first boot (cloud-init), so every reimage brings a
new key. Accepting whatever key answers would defeat SSH's protection (someone in the middle, a disk
moved to another chassis, a swapped cable to another machine); refusing every new key would make each
reimage end in "unreachable". The journal says which changes are expected: the tool released and
redeployed the node itself. So:

- the tool keeps its own known_hosts file (`<state dir>/known_hosts`), apart from ~/.ssh, and every
  SSH path (fleet.ssh, the health sweep, Ansible) checks it strictly (StrictHostKeyChecking=yes);
- a node's key is removed when its release is journaled (`forget`, release stage);
- the first key seen after a journaled deploy of that node is accepted and recorded (the `hostkey`
  stage, right after `os`); so is the very first key of a node the tool never saw (trust on first
  use, as ssh's own accept-new does; journaled);
- any other change is refused, with both fingerprints and the next step.

`decide` is the whole policy, pure: journal entries and the recorded and seen keys in, a verdict out.
`KnownHosts` is the thin part: OpenSSH's own tools (`ssh-keygen -F/-R`) on our file, and `scan`
reads the key a node presents with the system ssh client (through the site's bastion, which
ssh-keyscan cannot use) into a scratch file before anything is trusted.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fleet.site import Site
from fleet.state import JournalEntry, production_state_dir

FILE_NAME = "known_hosts"
# Journal events this module writes (stage "hostkey", or the stage that released the node).
RECORDED = "hostkey:recorded"
FORGOTTEN = "hostkey:forgotten"
REFUSED = "hostkey:refused"
# MAAS actions the os stage journals as `ensure_os:started` that install a fresh OS (new host keys).
DEPLOY_ACTIONS = frozenset({"deploy", "redeploy", "retry"})


def known_hosts_file(site: Site) -> Path:
    """`<state dir>/known_hosts`, beside the state DB (the CLI resolves the state dir when it loads the site)."""
    return (site.state_dir or production_state_dir(site.name)) / FILE_NAME


# -- keys and fingerprints (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class HostKey:
    """One public host key as known_hosts holds it: its type and base64 blob."""

    kind: str  # ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa
    blob: str

    @property
    def fingerprint(self) -> str:
        """SHA256:... exactly as `ssh-keygen -l` and ssh's own warnings print it."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def line(self, address: str) -> str:
        return f"{address} {self.kind} {self.blob}\n"


def parse_known_hosts(text: str) -> list[tuple[str, HostKey]]:
    """(host field, key) for each key line; comments, markers (@revoked, @cert-authority) and junk skipped."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0].startswith(("#", "@")):
            continue
        try:
            base64.b64decode(words[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        found.append((words[0], HostKey(words[1], words[2])))
    return found


# -- the journal's facts (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFacts:
    """What the journal says about a node's host key, in journal order."""

    recorded_fingerprint: str = ""  # the last key recorded (empty: never, or forgotten since)
    recorded_at: float = 0.0
    deployed_at: float = 0.0  # the last journaled deploy (a fresh OS, so fresh host keys)
    deployed_since_record: bool = False  # a deploy journaled after the last record (or ever, if none)
    released_since_deploy: bool = False  # a release journaled after the last deploy
    ever_recorded: bool = False


def facts(entries: Iterable[JournalEntry]) -> KeyFacts:
    """Fold one node's journal (oldest first) into the facts `decide` needs."""
    recorded_fp, recorded_at, deployed_at = "", 0.0, 0.0
    deployed_since, released_since, ever = False, False, False
    for entry in entries:
        if entry.event == RECORDED:
            recorded_fp, recorded_at = str(entry.detail.get("fingerprint", "")), entry.ts
            deployed_since, ever = False, True
        elif entry.event == FORGOTTEN:
            recorded_fp = ""
            released_since = True
        elif entry.stage == "release" and entry.event == "release:started":  # its journaled step (ctx.once)
            released_since = True
        elif (entry.stage, entry.event) == ("os", "ensure_os:started") and entry.detail.get("action") in DEPLOY_ACTIONS:
            deployed_at, deployed_since, released_since = entry.ts, True, False
    return KeyFacts(recorded_fp, recorded_at, deployed_at, deployed_since or not ever, released_since, ever)


# -- the decision (pure) ----------------------------------------------------------------------------


class Verdict(StrEnum):
    KNOWN = "known"  # the recorded key answered: nothing to do
    RECORD = "record"  # no key recorded for the node: record this one
    REPLACE = "replace"  # a deploy was journaled since the record: the old key goes, this one is recorded
    REFUSE = "refuse"  # a change nothing in the journal explains: trust nothing, tell the operator


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def decide(known: KeyFacts, recorded: HostKey | None, seen: HostKey) -> Decision:
    """Accept, record or refuse the key a node presents, from the journal's facts and our known_hosts."""
    if recorded is not None and recorded.fingerprint == seen.fingerprint:
        return Decision(Verdict.KNOWN, f"{seen.fingerprint} as recorded")
    if known.released_since_deploy:
        return Decision(Verdict.REFUSE, "the node was released and no deploy is journaled since, so no key "
                        "is expected from it")
    if known.deployed_since_record and known.deployed_at:
        why = "first key after the deploy journaled"
        return Decision(Verdict.REPLACE if recorded else Verdict.RECORD, why)
    if recorded is None:
        if known.ever_recorded and known.recorded_fingerprint:
            why = "no key left in our known_hosts (removed by hand since it was recorded)"
        elif known.ever_recorded:
            why = "no key recorded since the last one was forgotten"
        else:
            why = "first contact: no key recorded for this node yet"
        return Decision(Verdict.RECORD, why)
    return Decision(Verdict.REFUSE, "the host key changed and no deploy of the node is journaled since the "
                    "old key was recorded")


def refusal(node: str, address: str, file: Path, reason: str, recorded: str, seen: str, seen_kind: str,
            *, recorded_at: float = 0.0) -> str:
    """One paragraph: what changed, both fingerprints (`recorded` may be empty), why, and the next steps."""
    when = f" (recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(recorded_at))})" if recorded_at else ""
    old = f"{file} has {recorded}{when}" if recorded else f"{file} has no key for it"
    return (
        f"host key of {node} ({address}) refused: {old}, and the node now presents {seen}; {reason}. That may "
        f"be someone in the middle, a disk or cable moved to another machine, or an OS installed outside this "
        f"tool: nothing was sent to the node. Next step: if the node was reinstalled outside this tool, "
        f"reinstall it through it (`provision.py reimage {node} --force`: its in-use probe cannot log in past "
        f"the refused key); if you have checked on the node's console (through its BMC) that `ssh-keygen -lf "
        f"/etc/ssh/ssh_host_{_short(seen_kind)}_key.pub` shows {seen}, confirm the new key with "
        f"`provision.py hostkey accept {node} --fingerprint {seen}`"
    )


# What OpenSSH prints when StrictHostKeyChecking=yes refuses a host (sshconnect.c).
_CHANGED = re.compile(r"The fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/]+)")
_CHANGED_HOST = re.compile(r"Host key for (\S+) has changed and you have requested strict checking")
_FILE = re.compile(r"Add correct host key in (\S+) to get rid of this message")
_UNKNOWN = re.compile(r"No (\S+) host key is known for (\S+) and you have requested strict checking")


@dataclass(frozen=True)
class SshRefusal:
    """ssh's own refusal of a host key, read from its stderr."""

    host: str  # as ssh names it: the address, or [address]:port
    kind: str  # ED25519, ECDSA, RSA (ssh's words)
    seen: str  # the fingerprint of the key the node sent (empty when ssh did not print it)


def ssh_refusal(stderr: str) -> SshRefusal | None:
    """ssh refused the node's key (changed, or none known in our file), or None for any other failure."""
    changed, host = _CHANGED.search(stderr), _CHANGED_HOST.search(stderr)
    if changed and host:
        return SshRefusal(host.group(1), changed.group(1), changed.group(2))
    unknown = _UNKNOWN.search(stderr)
    return SshRefusal(unknown.group(2), unknown.group(1), "") if unknown else None


def explain(node: str, stderr: str) -> str | None:
    """Our paragraph for a connection ssh refused over the node's host key, or None when it was not that.

    ssh's own words name the host and, for a changed key, the file that holds the old one; the old
    fingerprint is read from that file."""
    refused = ssh_refusal(stderr)
    if refused is None:
        return None
    if not refused.seen:
        return (f"host key of {node} ({refused.host}) unknown: the tool's known_hosts has no key for it, and every "
                f"connection checks that file strictly (a node is recorded by its hostkey stage, after a deploy). "
                f"Next step: `provision.py hostkey accept {node} --fingerprint SHA256:...` with the fingerprint "
                f"you checked on the node's console (`ssh-keygen -lf "
                f"/etc/ssh/ssh_host_{_short(refused.kind)}_key.pub`), or `provision.py reimage {node}`")
    named = _FILE.search(stderr)
    file = Path(named.group(1)) if named else Path("known_hosts")
    recorded = KnownHosts(file).lookup(refused.host) if named else None
    return refusal(node, refused.host, file, "the host key changed, and only a deploy journaled by this tool "
                   "makes a new key expected", recorded.fingerprint if recorded else "", refused.seen,
                   refused.kind)


def _short(kind: str) -> str:
    """The host key file's name part for a key type (ssh_host_<short>_key): ssh-ed25519 or ED25519 -> ed25519."""
    kind = kind.lower()
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(kind, "ecdsa" if kind.startswith("ecdsa") else kind)


# -- ssh options (pure) -----------------------------------------------------------------------------


def check_options(file: Path) -> tuple[str, ...]:
    """ssh options for every connection to a node: our file only, strictly (ssh never writes to it).

    The global file is left out so that a stale system-wide entry cannot veto or vouch for a node;
    UpdateHostKeys is off (ssh would otherwise add keys the node offers to our file behind the journal).
    Given first on the command line, these win over any ssh_config (ssh takes the first value)."""
    return ("-o", f"UserKnownHostsFile={file}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no")


def scan_options(scratch: Path) -> tuple[str, ...]:
    """ssh options to read the key a node presents: into an empty scratch file, on a fresh connection.

    accept-new writes the key it was shown to the scratch file after the key exchange, whether or not
    the login then works; a multiplexed connection (ControlMaster) would skip the key exchange, so none."""
    return ("-o", f"UserKnownHostsFile={scratch}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "HashKnownHosts=no", "-o", "UpdateHostKeys=no",
            "-o", "ControlMaster=no", "-o", "ControlPath=none")


# -- acting: our known_hosts file -------------------------------------------------------------------


class KnownHosts:
    """The tool's own known_hosts file. Writes are serialized (threads of a run, and other runs)."""

    _threads = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def lookup(self, address: str) -> HostKey | None:
        """The recorded key for `address` (`ssh-keygen -F`, which also reads hashed and pattern lines)."""
        if not self.path.exists():
            return None
        done = subprocess.run(["ssh-keygen", "-F", address, "-f", str(self.path)], capture_output=True,
                              text=True, check=False)
        keys = parse_known_hosts(done.stdout) if done.returncode == 0 else []
        return keys[0][1] if keys else None

    def record(self, address: str, key: HostKey) -> None:
        """`address` now has exactly `key`: the old lines go (`ssh-keygen -R`), the new one is appended."""
        with self._locked():
            self._remove(address)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(key.line(address))

    def forget(self, address: str) -> None:
        with self._locked():
            self._remove(address)

    def _remove(self, address: str) -> None:
        if self.path.exists():
            subprocess.run(["ssh-keygen", "-R", address, "-f", str(self.path)], capture_output=True, check=False)
            self.path.with_name(self.path.name + ".old").unlink(missing_ok=True)  # ssh-keygen's backup

    def _locked(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return _FileLock(self.path.with_name(self.path.name + ".lock"), self._threads)


class _FileLock:
    def __init__(self, path: Path, threads: threading.Lock) -> None:
        self.path, self.threads = path, threads

    def __enter__(self) -> None:
        self.threads.acquire()
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)
        self.threads.release()


@dataclass(frozen=True)
class Scan:
    key: HostKey | None
    error: str  # why no key was read (ssh's own words), empty when one was


def scan(address: str, ssh_argv: Sequence[str], scratch_dir: Path, timeout_s: float) -> Scan:
    """The key the node at `address` presents, read by the system ssh client (`ssh_argv` without the
    scratch options: they are put first, so they win). Nothing is trusted here; `decide` judges."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch_dir, prefix=".scan-", suffix=".known_hosts") as scratch:
        argv = [ssh_argv[0], *scan_options(Path(scratch.name)), *ssh_argv[1:]]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False,
                                  stdin=subprocess.DEVNULL)
            error = done.stderr.strip()
        except subprocess.TimeoutExpired:
            error = f"no answer within {timeout_s:.0f} s"
        keys = parse_known_hosts(Path(scratch.name).read_text(encoding="utf-8"))
    ours = [key for host, key in keys if address in host.split(",")]
    return Scan(ours[0] if ours else None, "" if ours else error or "ssh recorded no host key")
