"""Checked stress rate vs the plain unchecked matmul rate, same GPU, same shapes, same run.

    python3 bench/burnin.py [--seconds 30] [--plain-s 15] [--n 16384] [--gpus 0]

Plain products are timed before and after the checked stress (the mean of the two, so warming up
or throttling during the run does not favour either side); target: checked / plain >= 0.95.
Prints both rates and the ratio per GPU, and a JSON line for the record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from healthcheck.burnin import decide
from healthcheck.burnin.gpu import StressConfig, run_gpu_stress

TARGET = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="checked stress seconds")
    parser.add_argument("--plain-s", type=float, default=15.0, help="plain seconds, before and after")
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--gpus", help="CUDA indices (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    import torch

    gpus = tuple(int(g) for g in args.gpus.split(",")) if args.gpus else None
    checked = run_gpu_stress(torch, StressConfig(duration_s=args.seconds, n=args.n, plain_s=args.plain_s,
                                                 gpus=gpus, warmup_s=3.0))
    after = run_gpu_stress(torch, StressConfig(duration_s=0.5, n=args.n, plain_s=args.plain_s, gpus=gpus,
                                               warmup_s=0.5, pairs=1))
    rates = decide.gpu_rates(checked, window_s=args.seconds)
    rows, ok = [], True
    for rate, before, late in zip(rates, checked["gpus"], after["gpus"], strict=True):
        plain = (before["plain_tflops"] + late["plain_tflops"]) / 2
        ratio = rate["tflops"] / plain
        ok &= ratio >= TARGET and not before["mismatches"]
        rows.append({"gpu": rate["cuda_index"], "n": args.n, "plain_before_tflops": before["plain_tflops"],
                     "plain_after_tflops": late["plain_tflops"], "plain_tflops": round(plain, 1),
                     "checked_tflops": round(rate["tflops"], 1), "ratio": round(ratio, 4),
                     "products": before["loops"], "mismatches": len(before["mismatches"]),
                     "worst_freivalds_ratio": before["worst_freivalds_ratio"]})
        print(f"GPU {rate['cuda_index']}: plain {plain:.1f} TFLOP/s (before {before['plain_tflops']}, after "
              f"{late['plain_tflops']}), checked {rate['tflops']:.1f} TFLOP/s, ratio {ratio:.4f} "
              f"(target >= {TARGET}), {before['loops']} products, {len(before['mismatches'])} mismatches")
    print(json.dumps({"bench": "burnin", "target": TARGET, "met": ok, "gpus": rows}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
