"""The Freivalds tolerance, checked in pure Python with bf16 rounding done by hand (no torch here)."""

from __future__ import annotations

import math
import random
import struct

import pytest

from healthcheck.burnin.tolerance import (
    element_tolerance,
    flops_per_product,
    freivalds_tolerance,
    relative_tolerance,
    unit_roundoff,
)


def bf16(x: float) -> float:
    """Round to bfloat16 (round to nearest even on the top 16 bits of the float32), as tensor cores output."""
    (bits,) = struct.unpack("<I", struct.pack("<f", x))
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def product(rng: random.Random, n: int) -> tuple[list[list[float]], list[list[float]], list[list[float]]]:
    a = [[bf16(rng.gauss(0, 1)) for _ in range(n)] for _ in range(n)]
    b = [[bf16(rng.gauss(0, 1)) for _ in range(n)] for _ in range(n)]
    c = [[bf16(math.fsum(a[i][k] * b[k][j] for k in range(n))) for j in range(n)] for i in range(n)]
    return a, b, c


def freivalds(a, b, c, r) -> list[tuple[float, float]]:
    """Per row: (|C·r - A·(B·r)|, tolerance)."""
    n = len(c)
    br = [math.fsum(b[k][j] * r[j] for j in range(n)) for k in range(n)]
    out = []
    for i in range(n):
        y = math.fsum(c[i][j] * r[j] for j in range(n))
        z = math.fsum(a[i][k] * br[k] for k in range(n))
        norm = math.sqrt(math.fsum(v * v for v in c[i]))
        out.append((abs(y - z), freivalds_tolerance(norm, n, "bfloat16")))
    return out


def test_bf16_rounding_helper_keeps_8_significant_bits():
    assert bf16(1.0) == 1.0
    assert bf16(1.0 + 2**-8) == 1.0  # halfway: to even
    assert bf16(1.0 + 3 * 2**-8) == 1.0 + 2**-6
    assert abs(bf16(math.pi) - math.pi) <= math.pi * 2**-8


def test_correct_products_pass_with_room_to_spare():
    rng = random.Random(1234)
    worst = 0.0
    for _ in range(6):
        a, b, c = product(rng, 48)
        r = [rng.choice((-1.0, 1.0)) for _ in range(48)]
        worst = max(worst, max(err / tol for err, tol in freivalds(a, b, c, r)))
    assert worst < 0.5  # the device run saw 0.40 at n=16384


@pytest.mark.parametrize("factor", [1.6, 3.0])
def test_one_wrong_element_beyond_the_tolerance_is_caught_in_its_row(factor):
    rng = random.Random(99)
    a, b, c = product(rng, 48)
    r = [rng.choice((-1.0, 1.0)) for _ in range(48)]
    _, tol = freivalds(a, b, c, r)[7]
    c[7][11] += factor * tol  # one element off by more than its row's tolerance
    rows = [i for i, (err, t) in enumerate(freivalds(a, b, c, r)) if err > t]
    assert rows == [7]


def test_an_error_below_the_tolerance_passes_freivalds_which_is_why_repeats_are_compared_bit_for_bit():
    rng = random.Random(5)
    a, b, c = product(rng, 32)
    r = [rng.choice((-1.0, 1.0)) for _ in range(32)]
    _, tol = freivalds(a, b, c, r)[3]
    c[3][4] += 0.1 * tol
    assert all(err <= t for err, t in freivalds(a, b, c, r))


def test_tolerance_grows_with_size_and_dtype():
    assert relative_tolerance(1024, "bfloat16") > relative_tolerance(1024, "float16")
    assert relative_tolerance(16384, "bfloat16") > relative_tolerance(1024, "bfloat16")
    assert unit_roundoff("torch.bfloat16") == 2.0**-8
    assert freivalds_tolerance(2.0, 16, "bfloat16") == pytest.approx(2 * relative_tolerance(16, "bfloat16"))


def test_element_tolerance_against_an_fp32_reference():
    rng = random.Random(7)
    a, b, c = product(rng, 32)
    for i, j in ((0, 0), (5, 9), (31, 2)):
        ref = math.fsum(a[i][k] * b[k][j] for k in range(32))
        scale = math.sqrt(math.fsum(v * v for v in a[i])) * math.sqrt(math.fsum(b[k][j] ** 2 for k in range(32)))
        assert abs(c[i][j] - ref) <= element_tolerance(ref, 32, "bfloat16", scale=scale)
        wrong = c[i][j] * 1.05 + 0.5 * math.copysign(1, c[i][j])
        assert abs(wrong - ref) > element_tolerance(ref, 32, "bfloat16", scale=scale)


def test_bad_inputs_are_refused_with_the_name():
    with pytest.raises(ValueError, match="int8"):
        unit_roundoff("int8")
    with pytest.raises(ValueError, match="positive"):
        relative_tolerance(0, "bfloat16")
    assert flops_per_product(2, 3, 4) == 48
