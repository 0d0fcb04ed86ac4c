"""`python -m lab.hosts image|start|stop|list|stop-all|hook`: the lab's Linux hosts by hand or from MAAS.

Exit codes: 0 done, 1 a host could not be built/started/stopped, 2 bad input.
The MAAS simulator's hook argv is `python -m lab.hosts hook --lab-dir DIR --site PATH`; it appends
`<hostname> <event>` (the event first is accepted too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from fleet.errors import FleetError, InventoryError
from lab.hosts import hook, image, leases, lifecycle, nspawn, vm
from lab.hosts.plan import PlanError, base_image_spec, vm_image_spec
from lab.settings import load_lab_site

REPO = Path(__file__).resolve().parents[2]


def _default_lab_dir() -> Path:
    return Path(os.environ.get("FLEET_LAB_DIR") or REPO / ".lab")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.hosts", description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, default=None,
                        help="lab state directory (default: $FLEET_LAB_DIR or <repo>/.lab)")
    sub = parser.add_subparsers(dest="verb", required=True)
    built = sub.add_parser("image", help="build the base image (or the VM image) if it is not cached; print its root")
    built.add_argument("--vm", action="store_true", help="the VM image (base + kernel) and its disk")
    start = sub.add_parser("start", help="boot a host at an address of the lab block and wait for SSH")
    start.add_argument("name")
    start.add_argument("address", help="an address of 198.18.0.0/15, or 'auto': the first free one of the "
                       "molecule range (198.19.100.0/24 for containers, 198.19.101.0/24 for VMs)")
    start.add_argument("--vm", action="store_true", help="a QEMU VM instead of a container")
    stop = sub.add_parser("stop", help="stop a host and throw its overlay away")
    stop.add_argument("name")
    listed = sub.add_parser("list", help="the hosts of this lab")
    listed.add_argument("--json", action="store_true")
    sub.add_parser("stop-all", help="stop every host of this lab")
    hooked = sub.add_parser("hook", help="the lab MAAS hook: <hostname> <event> (deployed|released)")
    hooked.add_argument("--site", type=Path, required=True)
    hooked.add_argument("words", nargs=2, metavar="HOSTNAME EVENT")
    return parser.parse_args(argv)


def _hook_words(words: list[str]) -> tuple[str, str]:
    """(event, hostname) from either order: an event is one of hook.EVENTS, never a valid node name."""
    first, second = words
    if first in hook.EVENTS:
        return first, second
    if second in hook.EVENTS:
        return second, first
    raise PlanError(f"hook needs an event ({' or '.join(hook.EVENTS)}) and a hostname, got {first!r} {second!r}")


def _address(args: argparse.Namespace, lab_dir: Path) -> str:
    """The address asked for; for 'auto', the host's current one if it runs, else a fresh molecule lease."""
    if args.address != "auto":
        return args.address
    running = nspawn.running_hosts(lab_dir)
    return running.get(args.name) or leases.allocate(lab_dir, args.name, vm=args.vm)


def _log_to_file(lab_dir: Path) -> None:
    """The hook's output is lost inside the MAAS simulator unless it is logged: lab_dir/logs/hosts.log."""
    (lab_dir / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(lab_dir / "logs" / "hosts.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    lab_dir = (args.lab_dir or _default_lab_dir()).resolve()
    try:
        return _run(args, lab_dir)
    except InventoryError as err:
        print(err, file=sys.stderr)
        return 2
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FleetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, lab_dir: Path) -> int:
    if args.verb == "image":
        if args.vm:
            kernel, _initrd, disk = vm.vm_files()
            print(f"{vm_image_spec().key} {disk} {kernel}")
        else:
            print(f"{base_image_spec().key} {image.ensure_base()}")
    elif args.verb == "start":
        starter = vm.start if args.vm else nspawn.start
        host = starter(args.name, _address(args, lab_dir), lab_dir)
        print(f"{host.name} {host.address} ssh -F {lab_dir / 'ssh_config'} {host.name}")
    elif args.verb == "stop":
        if not lifecycle.stop(args.name, lab_dir):
            print(f"{args.name}: no such lab host (nothing to do)")
    elif args.verb == "list":
        hosts = lifecycle.list_hosts(lab_dir)
        if args.json:
            print(json.dumps([asdict(h) for h in hosts], indent=2))
        for host in [] if args.json else hosts:
            print(f"{host.name:20} {host.address:16} {host.kind:7} {'running' if host.running else 'stopped'}")
    elif args.verb == "stop-all":
        for name in lifecycle.stop_all(lab_dir):
            print(f"{name} stopped")
    elif args.verb == "hook":
        _log_to_file(lab_dir)
        event, hostname = _hook_words(args.words)
        hook.handle(load_lab_site(args.site), lab_dir, event, hostname)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
