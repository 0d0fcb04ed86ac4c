"""Benchmark: classify a 100k-line kernel log against a learned dmesg baseline.

The log is synthesised from the real H200 capture (tests/fixtures/device-h200/dmesg.txt): real
lines drawn at random with their timestamps, numbers and hex values varied the way another
boot or node would vary them, plus 1% lines no known-good node printed. Prints lines per
second on one core (target: 200k lines/s) and checks that exactly the planted lines are flagged.

    .venv/bin/python bench/dmesg.py [--lines 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from healthcheck.kernlog import learn_baseline, novel_lines  # noqa: E402

CAPTURE = REPO / "tests" / "fixtures" / "device-h200" / "dmesg.txt"
UNKNOWN = [
    "blk_update_request: I/O error, dev nvme{n}n1, sector {s} op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0",
    "{n} watchdog: BUG: soft lockup - CPU#{n} stuck for {s}s! [kworker/{n}:1:{s}]",
    "mce: [Hardware Error]: Machine check events logged (bank {n}, status 0x{s:x})",
]
# What differs between boots and nodes of one model: addresses, PCI bus ids, MACs/GUIDs, UUIDs,
# serials and counters. Vendor:device ids and versions stay: the hardware and image are the same.
_HEX = re.compile(
    r"\b0x[0-9a-fA-F]+"
    r"|\b[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\b"
    r"|\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b"
    r"|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)
_DEC = re.compile(r"(?<![\w:.\-])\d+(?![\w:.\-])")


def _other(match: re.Match[str], rng: random.Random) -> str:
    token = match.group()
    if token.isdigit():  # a plain number: any other value, any length
        return str(int(token) + rng.randrange(0, 100_000))
    head = "0x" if token.startswith("0x") else ""
    # An address, bus id, MAC or UUID: same shape, other digits (a PCI function stays 0-7).
    body = "".join(rng.choice("0123456789abcdef") if c.isalnum() else c for c in token[len(head) :])
    if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]", body):
        body = body[:-1] + str(rng.randrange(8))
    return head + body


def vary(line: str, rng: random.Random) -> str:
    """Another boot's or node's version of a line: new timestamp, other numbers, addresses, ids."""
    body = line.split("] ", 1)[1] if line.startswith("[") else line
    body = _HEX.sub(lambda m: _other(m, rng), body)
    body = _DEC.sub(lambda m: _other(m, rng), body)
    return f"[{rng.uniform(0, 90000):12.6f}] {body}"


def synthesise(lines: list[str], count: int, rng: random.Random) -> tuple[list[str], set[int]]:
    out, planted = [], set()
    for i in range(count):
        if rng.random() < 0.01:
            text = rng.choice(UNKNOWN).format(n=rng.randrange(64), s=rng.randrange(1 << 30))
            out.append(f"[{rng.uniform(0, 90000):12.6f}] {text}")
            planted.add(i + 1)
        else:
            out.append(vary(rng.choice(lines), rng))
    return out, planted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    real = [line for line in CAPTURE.read_text().splitlines() if line.strip()]
    baseline = learn_baseline({"device-h200": real}).templates
    log, planted = synthesise(real, args.lines, rng)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        novel = novel_lines(log, baseline)
        best = min(best, time.perf_counter() - started)
    flagged = {n.line_no for n in novel}
    print(f"lines: {len(log)}  baseline templates: {len(baseline)}  planted unknown: {len(planted)}")
    print(
        f"flagged: {len(flagged)}  planted and flagged: {len(flagged & planted)}  "
        f"flagged but not planted: {len(flagged - planted)}"
    )
    print(f"best of 3: {best:.3f} s  ->  {len(log) / best:,.0f} lines/s (target 200,000)")
    return 0 if flagged == planted else 1


if __name__ == "__main__":
    sys.exit(main())
