"""hostkey: the key the node presents after MAAS deployed it is judged against the journal and recorded.

Right after `os`, before anything logs in (configure, validate): the key is read over a fresh
connection into a scratch file (through the site's bastion), then `fleet.hostkeys.decide` says
whether it is the node's known key, the first key after a journaled deploy (recorded), or a change
nothing in the journal explains (refused: the node is quarantined with both fingerprints and the
next step, and nothing is sent to it). Every later connection checks the recorded key strictly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fleet import hostkeys, ssh
from fleet.hostkeys import KnownHosts, Verdict
from fleet.site import Node, Site
from fleet.stages.shared import Shared
from fleet.workflow import NodeContext, StageResult

# MAAS marks a machine Deployed once cloud-init's first boot reported in, so sshd is up; a slow network
# or a bastion may still take a moment. Polled for this long, then the stage is retried by the workflow.
SSH_UP_S = 60.0
POLL_S = 2.0


@dataclass
class HostKey:
    site: Site
    name: str = "hostkey"
    max_attempts: int = 3
    ssh_up_s: float = SSH_UP_S

    def run(self, node: Node, ctx: NodeContext) -> StageResult:
        file = hostkeys.known_hosts_file(self.site)
        argv = ssh.ssh_argv(node.address, ("true",), connect_timeout_s=ssh.CONNECT_TIMEOUT_S,
                            options=ssh.options(self.site))
        deadline = time.monotonic() + self.ssh_up_s
        while True:
            seen = hostkeys.scan(node.address, argv, file.parent, timeout_s=ssh.CONNECT_TIMEOUT_S * 3)
            if seen.key is not None or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        if seen.key is None:
            return StageResult(False, f"no host key read over SSH: {seen.error}")
        known = KnownHosts(file)
        recorded = known.lookup(node.address)
        facts = hostkeys.facts(ctx.db.entries(node.hostname))
        decision = hostkeys.decide(facts, recorded, seen.key)
        evidence = {"fingerprint": seen.key.fingerprint, "recorded": recorded.fingerprint if recorded else "",
                    "verdict": decision.verdict.value, "known_hosts": str(file)}
        if decision.verdict == Verdict.REFUSE:
            ctx.journal(hostkeys.REFUSED, **evidence, reason=decision.reason)
            message = hostkeys.refusal(node.hostname, node.address, file, decision.reason, evidence["recorded"],
                                       seen.key.fingerprint, seen.key.kind, recorded_at=facts.recorded_at)
            return StageResult(False, message, evidence, retryable=False, quarantine=True)
        if decision.verdict != Verdict.KNOWN:
            known.record(node.address, seen.key)
            ctx.journal(hostkeys.RECORDED, fingerprint=seen.key.fingerprint, kind=seen.key.kind,
                        replaced=evidence["recorded"], reason=decision.reason)
        return StageResult(True, f"host key {seen.key.fingerprint}: {decision.reason}", evidence)


def make(shared: Shared) -> HostKey:
    return HostKey(shared.site)
