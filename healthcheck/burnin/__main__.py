"""``python3 -m healthcheck.burnin``: burn in this node, judge a saved record, or run an all-reduce.

    python3 -m healthcheck.burnin run --duration 600 --out /var/lib/healthcheck/burnin --textfile DIR
    python3 -m healthcheck.burnin run --duration 120 --plant-corrupt 0 --plant-slow 0:0.25   # prove the checks
    python3 -m healthcheck.burnin judge record.json --json
    python3 -m healthcheck.burnin nccl --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --gpus 3 \
        --env NCCL_IB_HCA==mlx5_3

Exit codes as the health checks: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (torch missing, a phase
that could not run), 4 bad usage. Planted faults must make the run fail: that is how the checks are proven.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from healthcheck.burnin import decide
from healthcheck.burnin.gpu import PlantCorrupt, PlantSlow, StressConfig
from healthcheck.burnin.run import RunOptions, exit_code, figures, make_report, platform_of, save
from healthcheck.output import to_json, to_table, write_textfile

USAGE_EXIT = 4
TEXTFILE = "burnin.prom"


class UsageError(ValueError):
    pass


def _plant_corrupt(text: str) -> PlantCorrupt:
    gpu_text, _, bit = text.partition(":")
    try:
        plant = PlantCorrupt(int(gpu_text), int(bit) if bit else 6)
    except ValueError:
        raise UsageError(f"--plant-corrupt {text!r}: expected GPU[:BIT], e.g. 0 or 0:14") from None
    if not 0 <= plant.bit <= 14:
        raise UsageError(f"--plant-corrupt {text!r}: BIT must be 0-14 (bf16 bits below the sign)")
    return plant


def _plant_slow(text: str) -> PlantSlow:
    gpu_text, _, fraction = text.partition(":")
    try:
        plant = PlantSlow(int(gpu_text), float(fraction) if fraction else 0.25)
    except ValueError:
        raise UsageError(f"--plant-slow {text!r}: expected GPU[:FRACTION], e.g. 0:0.25") from None
    if not 0 < plant.fraction < 0.95:
        raise UsageError(f"--plant-slow {text!r}: FRACTION must be between 0 and 0.95")
    return plant


def _gpus(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(g) for g in text.split(","))
    except ValueError:
        raise UsageError(f"--gpus {text!r}: expected a comma-separated list of CUDA indices, e.g. 0,1,2") from None


def _overrides(args: argparse.Namespace) -> dict[str, float | None]:
    return {"tflops_floor": args.tflops_floor, "hbm_copy_gbps": args.hbm_gbps,
            "nccl_busbw_min_gbps": args.nccl_busbw_min, "pcie_copy_gbps_min": args.pcie_gbps_min}


def _settings(args: argparse.Namespace) -> decide.Settings:
    return decide.Settings(straggler_pct=args.straggler_pct, window_s=args.window_s,
                           persist_fraction=args.persist_fraction)


def _emit(record: dict[str, Any], args: argparse.Namespace) -> int:
    platform = platform_of(record, _overrides(args))
    results = decide.judge(record, platform, _settings(args))
    report = make_report(record, results)
    body = to_json(report)
    body["platform"] = platform.name
    body["figures"] = figures(record, results)
    if args.out:
        out = Path(args.out)
        save(record, out)
        (out / "report.json").write_text(json.dumps(body, indent=2))
    if args.textfile:
        write_textfile(report, Path(args.textfile), name=TEXTFILE, prefix="burnin")
    print(json.dumps(body, indent=2) if args.json else to_table(report))
    return exit_code(results)


def _import_torch() -> Any:
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbering = NVML numbering
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _run(args: argparse.Namespace) -> int:
    stress = StressConfig(
        duration_s=args.duration, n=args.n, seed=args.seed, plain_s=args.plain_s, refresh_s=args.refresh_s,
        plant_corrupt=_plant_corrupt(args.plant_corrupt) if args.plant_corrupt else None,
        plant_slow=_plant_slow(args.plant_slow) if args.plant_slow else None, gpus=_gpus(args.gpus),
    )
    torch = _import_torch()
    if torch is None:
        print("burnin: UNKNOWN: PyTorch with CUDA is not available on this node (pip install torch); "
              "burn-in cannot run", file=sys.stderr)
        return 3
    from healthcheck.burnin.run import run_burnin

    options = RunOptions(stress=stress, pcie=not args.skip_pcie, memory=not args.skip_memory,
                         plant_memory=args.plant_memory, nccl=not args.skip_nccl,
                         nccl_max_bytes=args.nccl_max_bytes, node=args.node or "",
                         memory_fraction=args.memory_fraction)
    record = run_burnin(torch, options)
    return _emit(record, args)


def _judge(args: argparse.Namespace) -> int:
    try:
        record = json.loads(Path(args.record).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read record {args.record}: {err}") from None
    args.out = None
    return _emit(record, args)


def _nccl(args: argparse.Namespace) -> int:
    torch = _import_torch()
    if torch is None:
        print("burnin nccl: UNKNOWN: PyTorch with CUDA is not available", file=sys.stderr)
        return 3
    import tempfile

    from healthcheck.burnin.nccl import run_allreduce

    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    gpus = list(_gpus(args.gpus) or range(torch.cuda.device_count()))
    with tempfile.TemporaryDirectory(prefix="burnin-nccl-") as tmp:
        result = run_allreduce(torch, gpus, Path(tmp) / "nccl.json", nnodes=args.nnodes, node_rank=args.node_rank,
                               master_addr=args.master_addr, master_port=args.master_port,
                               max_bytes=args.max_bytes, env=env)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'bytes':>12} {'time_us':>10} {'algbw':>8} {'busbw':>8} wrong")
        for row in result["rows"]:
            print(f"{row['bytes']:>12} {row['time_us']:>10} {row['algbw_gbps']:>8} {row['busbw_gbps']:>8} "
                  f"{row['wrong_elements']}")
    wrong = any(row["wrong_elements"] for row in result["rows"])
    # Only global rank 0 (node rank 0) holds the table; the other nodes' part succeeded if spawn returned.
    return 2 if wrong or (args.node_rank == 0 and not result["rows"]) else 0


def _judging_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--textfile", metavar="DIR", help=f"also write DIR/{TEXTFILE} for node_exporter")
    p.add_argument("--tflops-floor", type=float, help="platform floor, TFLOP/s per GPU (default: the platform's)")
    p.add_argument("--hbm-gbps", type=float, help="expected HBM copy GB/s (default: the platform's)")
    p.add_argument("--pcie-gbps-min", type=float, help="minimum host<->device copy GB/s")
    p.add_argument("--nccl-busbw-min", type=float, help="minimum all-reduce bus bandwidth GB/s")
    p.add_argument("--straggler-pct", type=float, default=5.0, help="%% below the node median that is slow")
    p.add_argument("--window-s", type=float, default=10.0, help="rate windows, seconds")
    p.add_argument("--persist-fraction", type=float, default=0.5,
                   help="share of slow windows that makes a straggler CRITICAL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m healthcheck.burnin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="burn in this node")
    run.add_argument("--duration", type=float, default=600.0, help="stress seconds (default %(default)s)")
    run.add_argument("--n", type=int, default=16384, help="matrix size n (nxn·nxn products)")
    run.add_argument("--gpus", help="CUDA indices, comma-separated (default: all)")
    run.add_argument("--seed", type=int, help="input seed (default: fresh, recorded)")
    run.add_argument("--plain-s", type=float, default=10.0, help="time the plain unchecked products first")
    run.add_argument("--refresh-s", type=float, default=15.0, help="new random inputs every this many seconds")
    run.add_argument("--plant-corrupt", metavar="GPU[:BIT]", help="flip a bit of one element of one product")
    run.add_argument("--plant-slow", metavar="GPU[:FRACTION]", help="make one GPU idle this share of the time")
    run.add_argument("--plant-memory", action="store_true", help="flip one word in the pattern test")
    run.add_argument("--skip-pcie", action="store_true")
    run.add_argument("--skip-memory", action="store_true")
    run.add_argument("--skip-nccl", action="store_true")
    run.add_argument("--memory-fraction", type=float, default=0.9, help="share of free memory the pattern test uses")
    run.add_argument("--nccl-max-bytes", type=int, default=4 << 30)
    run.add_argument("--node", help="node name in the report (default: hostname)")
    run.add_argument("--out", help="directory for record.json and report.json")
    _judging_flags(run)
    judge = sub.add_parser("judge", help="judge a saved record.json again")
    judge.add_argument("record")
    _judging_flags(judge)
    nccl = sub.add_parser("nccl", help="all-reduce bus bandwidth on this node's GPUs (one rank per GPU)")
    nccl.add_argument("--gpus")
    nccl.add_argument("--nnodes", type=int, default=1)
    nccl.add_argument("--node-rank", type=int, default=0)
    nccl.add_argument("--master-addr", default="127.0.0.1")
    nccl.add_argument("--master-port", type=int, default=29517)
    nccl.add_argument("--max-bytes", type=int, default=4 << 30)
    nccl.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="NCCL environment, repeatable")
    nccl.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        return {"run": _run, "judge": _judge, "nccl": _nccl}[args.command](args)
    except UsageError as err:
        print(f"burnin: {err}", file=sys.stderr)
        return USAGE_EXIT


if __name__ == "__main__":
    sys.exit(main())
