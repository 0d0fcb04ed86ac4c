"""`python -m lab up|down|status|reset|fault|fabric-fault` (also reached as `python provision.py lab ...`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fleet.errors import FleetError, InventoryError
from fleet.site.schema import Problems, read_yaml
from lab import control
from lab import faults as lab_faults
from lab.hosts import hardware
from lab.settings import LAB_DIR_ENV, lab_dir, load_lab_site

DEFAULT_SITE = Path(__file__).resolve().parent.parent / "inventory" / "lab" / "site.yml"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="provision.py lab", description="Run the simulated datacenter on 127.0.0.1.")
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE, help="lab site file (default: %(default)s)")
    sub = parser.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up", help="start every lab service in the background (idempotent)")
    up.add_argument("--fault", action="append", default=[], metavar="KIND:TARGET[:RATE]",
                    help="inject a fault: TARGET is node names joined by '+' or a fraction, e.g. bmc_5xx:0.05")
    sub.add_parser("down", help="stop the lab services and lab hosts (state is kept)")
    sub.add_parser("status", help="show each lab service")
    sub.add_parser("reset", help="stop everything and delete the lab's state")
    fault = sub.add_parser("fault", help="replace the injected faults of a running lab")
    fault.add_argument("specs", nargs="*", metavar="KIND:TARGET[:RATE]")
    fabric = sub.add_parser("fabric-fault", help="replace the lab UFM's fabric faults (lab/ufm/fabric.py)")
    fabric.add_argument("fabric_specs", nargs="*", metavar="KIND:TARGET[:NAME=VALUE,...]",
                        help="e.g. swapped_cables:gpu-012-03/mlx5_4+gpu-012-04/mlx5_4, hdr:gpu-012-02/mlx5_5, "
                             "symbol_errors:leaf-g01-r4/33:per_12min=20, event_burst:leaf-g00-r1:count=64; none clears")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if args.verb == "up" and not args.fault and (running := _up_unchanged(args.site)) is not None:
        _print(running)  # every provision.py run of a lab site lands here (its before_run), the site unchanged
        return 0
    try:
        site = load_lab_site(args.site)
        if site.lab is None:
            raise FleetError(f"{args.site} has no lab: section", hint="point --site at a lab site")
        texts = getattr(args, "fault", []) + getattr(args, "specs", [])
        specs = [lab_faults.parse_cli_fault(text) for text in texts]
        if args.verb == "fabric-fault":
            from lab.ufm.fabric import parse_fault_text

            if site.fabric is None:
                raise FleetError(f"{args.site} has no fabric: plan", hint="add fabric: {topology: fabric.yml}")
            specs = [parse_fault_text(text, site, site.fabric.topology) for text in args.fabric_specs]
    except InventoryError as err:
        print(err, file=sys.stderr)
        return 2
    except (FleetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return _run(args.verb, site, specs)
    except FleetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _up_unchanged(site_file: Path) -> list[control.ServiceStatus] | None:
    """`lab up`'s answer when the lab already runs this site as its files are now (control.up_unchanged);
    the lab directory comes from FLEET_LAB_DIR or the site file's own `lab.state_dir`, not the whole site."""
    path = site_file.resolve()
    if os.environ.get(LAB_DIR_ENV):
        raw: object = None
    else:
        top = read_yaml(path, Problems()) if path.is_file() else None
        if not isinstance(top, dict):
            return None  # the full load reports what is wrong with it
        raw = top.get("lab")
    return control.up_unchanged(path, lab_dir(path, raw))


def _run(verb: str, site, specs) -> int:
    if verb == "up":
        _print(control.up(site, specs))
    elif verb == "down":
        control.down(site)
        print(f"lab stopped (state kept in {control.lab_dir_of(site)})")
    elif verb == "reset":
        control.reset(site)
        print(f"lab stopped and {control.lab_dir_of(site)} deleted")
    elif verb == "fabric-fault":
        from lab.ufm.service import write_faults

        write_faults(control.lab_dir_of(site), specs)
        print(f"{len(specs)} UFM fault(s) written; the lab UFM applies them on its next request")
    elif verb == "fault":
        lab_dir = control.lab_dir_of(site)
        path = lab_faults.write(lab_dir, lab_faults.resolve(site, specs))
        print(f"faults written to {path}")
        for name, chosen in hardware.reselect_running(lab_dir).items():
            print(f"{name}: hardware now {chosen}")
    else:
        statuses = control.status(site)
        _print(statuses)
        return 0 if all(s.ready for s in statuses) else 1
    return 0


def _print(statuses: list[control.ServiceStatus]) -> None:
    for item in statuses:
        pid = f"pid {item.pid}" if item.pid else "-"
        print(f"{item.name:<16} {item.detail:<16} {pid}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
