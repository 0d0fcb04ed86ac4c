"""How far a checked product may be from its reference before it is a wrong answer.

A randomized (Freivalds) check compares ``y = C·r`` with ``z = A·(B·r)``: two matrix-vector
products instead of a second matrix product. With exact arithmetic ``y == z`` whenever ``C == A·B``;
a wrong element ``C[i][j]`` off by ``d`` moves ``y[i]`` by ``d·r[j]``. In floating point the two
sides differ by rounding, so the check needs a tolerance derived from the dtypes and the size:

- every element of ``C`` is rounded once to the output dtype: at most ``u_out·|c|`` (``u`` is the
  unit roundoff, 2^-8 for bfloat16). With ``|r[j]| <= 1`` these errors add up in row ``i`` like a
  random walk, whose size is at most ``u_out·||C[i]||_2`` (the 2-norm of the row);
- the products are accumulated in ``acc`` precision (fp32 on tensor cores) over ``n`` terms: at most
  ``n·u_acc`` relative to the same norm, small next to bf16 rounding (8192·2^-24 = 4.9e-4 vs 3.9e-3);
- ``kappa`` (default 4) is the margin over that random-walk size. Rounding errors are bounded by
  ``u·|c|`` each and independent, so the sum's standard deviation is at most ``u·||C[i]||_2/sqrt(3)``:
  4 times the bound is ~7 standard deviations, false alarms below 1e-11 per row checked (and the
  bound itself is loose: the device run records the worst ratio seen, see the fixture README).

An error below the tolerance (a low mantissa bit) passes this check; the stress also compares every
repeat of a product bit for bit with the first one and across GPUs, which catches those (``gpu``).

Everything here is plain arithmetic on numbers, so the same functions run on Python floats (tests)
and on torch tensors (the stress itself).
"""

from __future__ import annotations

from typing import TypeVar

# Unit roundoff u = 2^-p for p significand bits (implicit bit included); IEEE 754 and the bf16/tf32 formats.
UNIT_ROUNDOFF = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "tfloat32": 2.0**-11,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
DEFAULT_KAPPA = 4.0

T = TypeVar("T")


def unit_roundoff(dtype: str) -> float:
    """``u`` for a dtype name (``torch.bfloat16`` and ``bfloat16`` both work)."""
    name = dtype.removeprefix("torch.")
    try:
        return UNIT_ROUNDOFF[name]
    except KeyError:
        raise ValueError(f"no unit roundoff known for dtype {dtype!r}; known: {', '.join(UNIT_ROUNDOFF)}") from None


def relative_tolerance(n: int, out_dtype: str, acc_dtype: str = "float32", kappa: float = DEFAULT_KAPPA) -> float:
    """Tolerance per unit of ``||C[i]||_2 · max|r|``: ``kappa·(u_out + n·u_acc)``."""
    if n <= 0:
        raise ValueError(f"inner dimension must be positive, got {n}")
    return kappa * (unit_roundoff(out_dtype) + n * unit_roundoff(acc_dtype))


def freivalds_tolerance(row_norm: T, n: int, out_dtype: str, acc_dtype: str = "float32",
                        kappa: float = DEFAULT_KAPPA, r_max: float = 1.0) -> T:
    """Allowed ``|y[i] - z[i]|`` for a row of 2-norm ``row_norm`` (a float, or a tensor of rows)."""
    return row_norm * (relative_tolerance(n, out_dtype, acc_dtype, kappa) * r_max)  # type: ignore[operator]


def element_tolerance(reference: T, n: int, out_dtype: str, acc_dtype: str = "float32",
                      kappa: float = DEFAULT_KAPPA, scale: T | float = 0.0) -> T:
    """Allowed ``|c - c_ref|`` against a higher-precision reference element.

    ``reference`` is the reference value and ``scale`` the size of its terms (``||a_i||_2·||b_j||_2``,
    which bounds ``sqrt(sum (a_ik·b_kj)^2)``): one output rounding of the value, plus the
    accumulation error of ``n`` fp32 additions as a random walk (``sqrt(n)·u_acc·scale``).
    """
    u_out, u_acc = unit_roundoff(out_dtype), unit_roundoff(acc_dtype)
    return kappa * (abs(reference) * u_out + scale * (n**0.5 * u_acc))  # type: ignore[operator,arg-type]


def flops_per_product(m: int, n: int, k: int) -> int:
    """Floating-point operations of one (m x k)·(k x n) product: a multiply and an add per term."""
    return 2 * m * n * k
