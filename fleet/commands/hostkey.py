"""`provision.py hostkey list|accept`: the nodes' SSH host keys as the tool recorded them.

    provision.py hostkey list [--rack 12 | --nodes a,b]
    provision.py hostkey accept gpu-012-03 --fingerprint SHA256:...

The tool keeps its own known_hosts (`<state dir>/known_hosts`) and records a new key by itself
only after a deploy it journaled (the `hostkey` stage). Any other change is refused. `accept` is
how an operator confirms a known-good change: read the fingerprint on the node's console (through
its BMC: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then pass it here. The node's key is
read again now and recorded only if it is that fingerprint; the confirmation is journaled.
"""

from __future__ import annotations

import argparse
import re

from rich.console import Console

from fleet.commands import options
from fleet.errors import UsageError

HELP = "list the recorded SSH host keys, or accept a node's new key you checked on its console"
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "accept"), help="list the keys, or accept a node's new key")
    options.add_selection(parser)
    parser.add_argument("names", nargs="*", metavar="NODE", help="the node whose key to accept")
    parser.add_argument("--fingerprint", default="", help="SHA256:... as the node's console shows it (accept)")


def run(args: argparse.Namespace, console: Console) -> int:
    from fleet import hostkeys, ssh

    site = options.load(args)
    known = hostkeys.KnownHosts(hostkeys.known_hosts_file(site))
    if args.action == "list":
        nodes = options.select(args, site, args.names)
        for node in nodes:
            key = known.lookup(node.address)
            console.print(f"{node.hostname} {node.address} {key.fingerprint if key else '(none recorded)'}")
        return options.EXIT_OK
    names = list(args.nodes or []) + list(args.names)
    if len(names) != 1 or args.rack:
        raise UsageError("hostkey accept takes exactly one node, named",
                         hint="provision.py hostkey accept gpu-012-03 --fingerprint SHA256:...")
    if not _FINGERPRINT.match(args.fingerprint):
        raise UsageError(f"--fingerprint '{args.fingerprint}' is not a SHA256 fingerprint",
                         hint="copy it from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node's "
                         "console: SHA256: and 43 characters")
    node = options.select(args, site, names)[0]
    argv = ssh.ssh_argv(node.address, ("true",), connect_timeout_s=ssh.CONNECT_TIMEOUT_S, options=ssh.options(site))
    seen = hostkeys.scan(node.address, argv, known.path.parent, timeout_s=ssh.CONNECT_TIMEOUT_S * 3)
    if seen.key is None:
        console.print(f"{node.hostname}: no host key read over SSH: {seen.error}; nothing recorded")
        return options.EXIT_FAILED
    if seen.key.fingerprint != args.fingerprint:
        raise UsageError(f"{node.hostname} ({node.address}) presents {seen.key.fingerprint}, not the "
                         f"{args.fingerprint} you checked: nothing recorded",
                         hint="if the console shows the other fingerprint, someone may be in the middle; "
                         f"otherwise reinstall it: provision.py reimage {node.hostname} --force")
    old = known.lookup(node.address)
    db = options.open_state(args, site)
    try:
        db.journal(node.hostname, "hostkey", hostkeys.RECORDED, fingerprint=seen.key.fingerprint,
                   kind=seen.key.kind, replaced=old.fingerprint if old else "",
                   reason="confirmed by the operator (fingerprint checked on the console)")
        known.record(node.address, seen.key)
    finally:
        db.close()
    console.print(f"{node.hostname}: recorded {seen.key.fingerprint}"
                  + (f" (replaces {old.fingerprint})" if old and old != seen.key else ""))
    return options.EXIT_OK
