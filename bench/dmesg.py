"""Benchmark: a day-one dmesg baseline against another known-good node's 100k-line kernel log.

The logs are synthesised from the real H200 capture (tests/fixtures/device-h200/dmesg.txt): real
lines drawn at random with their timestamps, numbers and hex values varied the way another boot or
node varies them, plus what a GPU node running containers prints all day: docker's interface churn
(`br-<12 hex>: port N(veth<7 hex>) entered blocking state`, `eth0: renamed from veth<7 hex>`) and
now and then a kernel WARNING with its `Code:` byte dump. The baseline is learned the way a site
learns it on day one: from `--learn` known-good nodes, keeping templates seen on all of them.

A fourth node's log is then checked against it. Targets (issue 9):
- 0 novel lines in the known-good part of that log;
- every planted must-alert line (Xid, SXid, MCE, EDAC UE, AER fatal, NVMe down, thermal shutdown,
  mlx5 health, a line that starts with digits) flagged;
- at least 300k lines/s on one core.

    .venv/bin/python bench/dmesg.py [--lines 100000] [--learn 3] [--seed 7]
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
MUST_ALERT = {
    "xid": "NVRM: Xid (PCI:0000:{b:02x}:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
    "sxid": "nvidia-nvswitch{n}: SXid (PCI:0000:{b:02x}:00.0): 24007, Fatal, Link {n} sourcetrack timeout error",
    "mce": "mce: [Hardware Error]: CPU {n}: Machine Check: 0 Bank 5: be00000000800{s:03x}",
    "edac_ue": "EDAC MC{n}: 1 UE memory read error on CPU_SrcID#0_MC#{n}_Chan#0_DIMM#0 (channel:0 slot:0 "
               "page:0x{s:x} offset:0x0 grain:32 syndrome:0x0)",
    "aer_fatal": "pcieport 0000:{b:02x}:02.0: AER: Uncorrected (Fatal) error received: 0000:{b:02x}:00.0",
    "nvme_down": "nvme nvme{n}: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff",
    "thermal": "thermal thermal_zone{n}: critical temperature reached ({n} C), shutting down",
    "mlx5_health": "mlx5_core 0000:{b:02x}:00.0: poll_health:835:(pid 0): device's health compromised - "
                   "reached miss count",
    "leading_digits": "{n} blk_update_request: I/O error, dev nvme{n}n1, sector {s} op 0x1:(WRITE) flags 0x800",
}
HEX = "0123456789abcdef"
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
    body = "".join(rng.choice(HEX) if c.isalnum() else c for c in token[len(head) :])
    if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]", body):
        body = body[:-1] + str(rng.randrange(8))
    return head + body


def vary(line: str, rng: random.Random) -> str:
    """Another boot's or node's version of a line: new timestamp, other numbers, addresses, ids."""
    body = line.split("] ", 1)[1] if line.startswith("[") else line
    body = _HEX.sub(lambda m: _other(m, rng), body)
    return _DEC.sub(lambda m: _other(m, rng), body)


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(HEX) for _ in range(n))


def container_churn(rng: random.Random) -> list[str]:
    """What one container start and stop prints: docker names bridges and veths after random ids."""
    bridge = rng.choice(["docker0", f"br-{_hex(rng, 12)}"])
    veth, peer, port = f"veth{_hex(rng, 7)}", f"veth{_hex(rng, 7)}", rng.randrange(1, 64)
    return [
        f"{bridge}: port {port}({veth}) entered blocking state",
        f"{bridge}: port {port}({veth}) entered disabled state",
        f"{veth}: entered allmulticast mode",
        f"{veth}: entered promiscuous mode",
        f"eth0: renamed from {peer}",
        f"IPv6: ADDRCONF(NETDEV_CHANGE): {veth}: link becomes ready",
        f"{bridge}: port {port}({veth}) entered forwarding state",
        f"{bridge}: port {port}({veth}) entered disabled state",
        f"{peer}: renamed from eth0",
        f"{veth} (unregistering): left allmulticast mode",
        f"{veth} (unregistering): left promiscuous mode",
    ]


def benign_warning(rng: random.Random) -> list[str]:
    """A kernel WARNING a healthy node prints now and then: registers and code bytes differ each time."""
    code = " ".join(_hex(rng, 2) for _ in range(42)) + f" <{_hex(rng, 2)}> " + " ".join(
        _hex(rng, 2) for _ in range(21))
    return [
        f"WARNING: CPU: {rng.randrange(224)} PID: {rng.randrange(1 << 22)} at kernel/workqueue.c:3182 "
        f"__flush_work+0x{_hex(rng, 3)}/0x{_hex(rng, 3)}",
        f"RIP: 0010:__flush_work+0x{_hex(rng, 3)}/0x{_hex(rng, 3)}",
        f"Code: {code}",
        f"RSP: 0018:ffff{_hex(rng, 12)} EFLAGS: 000{_hex(rng, 5)}",
        f"RAX: {_hex(rng, 16)} RBX: ffff{_hex(rng, 12)} RCX: {_hex(rng, 16)}",
    ]


def node_log(real: list[str], count: int, rng: random.Random, *, alert_rate: float = 0.0
             ) -> tuple[list[str], set[int]]:
    """A known-good node's kernel log (boot lines, container churn, the odd warning), with must-alert
    lines planted at `alert_rate`; returns the log and the planted line numbers (1-based)."""
    out: list[str] = []
    planted: set[int] = set()
    while len(out) < count:
        draw = rng.random()
        if draw < alert_rate:
            text = rng.choice(list(MUST_ALERT.values())).format(
                n=rng.randrange(1, 64), b=rng.randrange(256), s=rng.randrange(1 << 30))
            chunk = [text]
            planted.add(len(out) + 1)
        elif draw < alert_rate + 0.04:
            chunk = container_churn(rng)
        elif draw < alert_rate + 0.041:
            chunk = benign_warning(rng)
        else:
            chunk = [vary(rng.choice(real), rng)]
        out.extend(f"[{rng.uniform(0, 90000):12.6f}] {line}" for line in chunk)
    return out[:count], {n for n in planted if n <= count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--learn", type=int, default=3, help="known-good nodes the baseline is learned from")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    real = [line.split("] ", 1)[1] for line in CAPTURE.read_text().splitlines() if "] " in line]
    learning = {f"node-{i}": node_log(real, args.lines, rng)[0] for i in range(args.learn)}
    baseline = learn_baseline(learning, min_nodes=args.learn).templates
    log, planted = node_log(real, args.lines, rng, alert_rate=0.01)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        novel = novel_lines(log, baseline)
        best = min(best, time.perf_counter() - started)
    flagged = {n.line_no for n in novel}
    false_alarms = flagged - planted
    missed = planted - flagged
    churn = sum("veth" in line for line in log)
    print(f"baseline: {len(baseline)} templates from {args.learn} known-good nodes x {args.lines} lines")
    print(f"checked node: {len(log)} lines ({churn} docker veth lines), {len(planted)} must-alert lines planted")
    print(f"novel lines on the known-good part: {len(false_alarms)} (target 0), "
          f"{len({n.template for n in novel if n.line_no in false_alarms})} templates")
    print(f"must-alert lines flagged: {len(planted) - len(missed)} of {len(planted)} (target all)")
    print(f"best of 3: {best:.3f} s  ->  {len(log) / best:,.0f} lines/s on one core (target 300,000)")
    for n in [n for n in novel if n.line_no in false_alarms][:5]:
        print(f"  novel: {n.template[:150]}")
    return 0 if not false_alarms and not missed and len(log) / best >= 300_000 else 1


if __name__ == "__main__":
    sys.exit(main())
