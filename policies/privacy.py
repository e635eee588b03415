"""Differential privacy for `/aggregate`: noisy counts and sums and the per-grant budget.

Noise comes only from OpenDP's vetted Laplace mechanism (`opendp.measurements.make_laplace`).
On integers it samples the discrete Laplace distribution exactly; on floats it samples on a
2^k lattice with exact arithmetic, so it is not open to Mironov's (2012) floating-point attack.
OpenDP draws its random bits from OpenSSL's CSPRNG (`RAND_bytes`, statically linked into the
wheel); this module never uses `random`.

Neighbouring data sets differ by one added or removed row. A count then has sensitivity 1, and
a sum whose rows the caller clamped to `[lower, upper]` has sensitivity `max(|lower|, |upper|)`.
The noise scale is `sensitivity / epsilon`, nudged up by a few ulps if OpenDP's own privacy map
says the rounded scale would spend more than `epsilon`.

A grant's budget (`epsilon`, `epsilon_spent`) lives on its row and is spent atomically in SQL
(`policies.grants.spend_epsilon`).

OpenDP puts `make_laplace` behind its "contrib" feature flag, so importing this module calls
`opendp.prelude.enable_features("contrib")`. That setting is global to the process. The
"floating-point" flag (for mechanisms that are open to floating-point attacks) is not enabled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

import opendp.prelude as dp
from opendp.accuracy import discrete_laplacian_scale_to_accuracy, laplacian_scale_to_accuracy

dp.enable_features("contrib")

_I64_MAX = 2**63 - 1
Number = int | float | Decimal
_MAX_SCALE_NUDGES = 64


class PrivacyError(ValueError):
    """A parameter that no differentially private release can accept."""


# --------------------------------------------------------------------------- validation


def _epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
        raise PrivacyError(f"epsilon must be a number, not {type(epsilon).__name__}")
    value = float(epsilon)
    if not math.isfinite(value) or value <= 0:
        raise PrivacyError(f"epsilon must be finite and > 0, got {epsilon!r}")
    return value


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PrivacyError(f"{name} must be a number, not {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:
        raise PrivacyError(f"{name} is too large: {value!r}") from None
    if not math.isfinite(result):
        raise PrivacyError(f"{name} must be finite, got {value!r}")
    return result


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PrivacyError(f"a count must be an int, not {type(value).__name__}")
    if not 0 <= value <= _I64_MAX:
        raise PrivacyError(f"a count must be between 0 and 2**63 - 1, got {value}")
    return value


def _whole_bound(value: float) -> bool:
    return float(value).is_integer() and abs(value) < 2**53


def sum_sensitivity(lower: float, upper: float) -> float:
    """How far one added or removed row can move a sum of values clamped to `[lower, upper]`."""
    lo, hi = _finite("lower", lower), _finite("upper", upper)
    if lo > hi:
        raise PrivacyError(f"lower ({lower!r}) must not exceed upper ({upper!r})")
    sensitivity = max(abs(lo), abs(hi))
    if sensitivity == 0:
        raise PrivacyError("lower and upper are both 0: the sum is always 0, nothing to release")
    return sensitivity


# --------------------------------------------------------------------------- OpenDP measurements


@lru_cache(maxsize=512)
def _laplace(epsilon: float, sensitivity: float, integer: bool, vector: bool) -> tuple[Any, float]:
    """An OpenDP Laplace measurement whose privacy map proves `sensitivity -> <= epsilon`,
    and its scale.

    Built once per `(epsilon, sensitivity, type, shape)`; calling it only samples noise.
    """
    atom = dp.atom_domain(T="i64") if integer else dp.atom_domain(T=float, nan=False)
    if vector:
        domain, metric = dp.vector_domain(atom), dp.l1_distance(T="i64" if integer else float)
    else:
        domain, metric = atom, dp.absolute_distance(T="i64" if integer else float)
    d_in: int | float = int(sensitivity) if integer else sensitivity
    scale = sensitivity / epsilon
    for _ in range(_MAX_SCALE_NUDGES):
        measurement = dp.m.make_laplace(domain, metric, scale=scale)
        if measurement.map(d_in) <= epsilon:
            return measurement, scale
        # sensitivity / epsilon rounded down; a slightly wider scale keeps the promise.
        scale = math.nextafter(scale, math.inf)
    raise PrivacyError(f"no Laplace scale spends at most epsilon={epsilon!r}")  # pragma: no cover


def noise_scale(*, epsilon: float, sensitivity: float, integer: bool = True) -> float:
    """The Laplace scale actually used for this `(epsilon, sensitivity)`; report it to callers.

    Standard deviation of the (continuous) noise is `scale * sqrt(2)`.
    """
    eps = _epsilon(epsilon)
    sens = _finite("sensitivity", sensitivity)
    if sens <= 0 or (integer and not sens.is_integer()):
        raise PrivacyError(f"sensitivity must be > 0 (and whole for integers), got {sensitivity!r}")
    return _laplace(eps, sens, integer, False)[1]


def accuracy(scale: float, *, alpha: float = 0.05, integer: bool = True) -> float:
    """Half-width `a` such that the noise exceeds `a` in magnitude with probability `alpha`."""
    if not 0 < alpha < 1:
        raise PrivacyError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0 < _finite("scale", scale) < math.inf:
        raise PrivacyError(f"scale must be > 0, got {scale!r}")
    if integer:
        return float(discrete_laplacian_scale_to_accuracy(scale, alpha))
    return float(laplacian_scale_to_accuracy(scale, alpha))


# --------------------------------------------------------------------------- releases


def noisy_count(true_count: int, *, epsilon: float) -> int:
    """An epsilon-DP count: discrete Laplace noise of scale `1 / epsilon`, clamped at 0.

    The clamp is post-processing of a DP value, so it costs no privacy; it biases counts near
    zero upwards.
    """
    count = _count(true_count)
    noisy = _laplace(_epsilon(epsilon), 1.0, True, False)[0](count)
    return max(0, int(noisy))


def noisy_counts(true_counts: Sequence[int], *, epsilon: float) -> list[int]:
    """`noisy_count` for every group of one group-by in one OpenDP call.

    Each row is in exactly one group, so adding or removing a row changes the vector of counts
    by 1 in L1 norm: all groups together spend `epsilon` once (parallel composition).
    """
    counts = [_count(value) for value in true_counts]
    if not counts:
        return []
    noisy = _laplace(_epsilon(epsilon), 1.0, True, True)[0](counts)
    return [max(0, int(value)) for value in noisy]


def _i64(value: Number) -> int:
    """An integer column's sum as i64: floored (a float or Decimal SUM of integers is whole
    anyway) and saturated. Both maps are monotone and move two sums at most as far apart as
    they were, for whole sensitivities, so the sensitivity holds."""
    return max(-_I64_MAX, min(_I64_MAX, math.floor(value)))


def _sum_path(values: Sequence[Number], lower: float, upper: float, integer: bool | None) -> bool:
    """True when the discrete (integer) mechanism applies.

    `integer=None` looks at the Python *type* of the sums (`int` only), never at whether a
    float sum happens to be whole: a data-dependent choice of mechanism would show in the
    output (a whole number or not) and leak whether the true sum was whole. Callers that
    know the column's declared type should pass `integer` explicitly: some databases return a
    float SUM of an integer column once a float clamp bound replaced a value.
    """
    whole = _whole_bound(lower) and _whole_bound(upper)
    if integer is None:
        return whole and all(isinstance(v, int) for v in values)
    if integer and not whole:
        raise PrivacyError(f"integer sums need whole-number bounds, got [{lower!r}, {upper!r}]")
    return integer


def noisy_sum(
    true_sum: Number,
    *,
    epsilon: float,
    lower: float,
    upper: float,
    integer: bool | None = None,
) -> float:
    """An epsilon-DP sum of values the caller clamped to `[lower, upper]` row by row.

    Scale is `max(|lower|, |upper|) / epsilon`. An integer column (`integer=True`, which needs
    whole-number bounds) uses the discrete Laplace mechanism and the result is a whole number;
    anything else uses OpenDP's lattice-based float Laplace. With `integer=None` the mechanism
    follows the Python type of `true_sum` (`int` → discrete); pass the column's declared type
    instead whenever it is known. `Decimal` (PostgreSQL's SUM of bigint) is accepted.
    """
    total = _finite("true_sum", true_sum)
    sensitivity = sum_sensitivity(lower, upper)
    eps = _epsilon(epsilon)
    if _sum_path([true_sum], lower, upper, integer):
        return float(_laplace(eps, sensitivity, True, False)[0](_i64(true_sum)))
    return float(_laplace(eps, sensitivity, False, False)[0](total))


def noisy_sums(
    true_sums: Sequence[Number],
    *,
    epsilon: float,
    lower: float,
    upper: float,
    integer: bool | None = None,
) -> list[float]:
    """`noisy_sum` for every group of one group-by in one OpenDP call (parallel composition:
    one row moves only its own group's sum, by at most `max(|lower|, |upper|)`)."""
    sums = [_finite("true_sum", value) for value in true_sums]
    sensitivity = sum_sensitivity(lower, upper)
    eps = _epsilon(epsilon)
    if not sums:
        return []
    if _sum_path(list(true_sums), lower, upper, integer):
        noisy = _laplace(eps, sensitivity, True, True)[0]([_i64(value) for value in true_sums])
    else:
        noisy = _laplace(eps, sensitivity, False, True)[0](sums)
    return [float(value) for value in noisy]


# --------------------------------------------------------------------------- partitions

PARTITION_DELTA = 1e-6
"""Chance that a group-by shows a group which exists only because of one row."""


@lru_cache(maxsize=256)
def _threshold_measurement(epsilon: float, k: int, delta: float) -> tuple[Any, int]:
    """OpenDP's Laplace threshold (propose-test-release over an unknown set of groups,
    Rogers 2023) whose map proves one added or removed row → (≤ ε, ≤ δ), and its
    threshold: at least `k`, and high enough for δ."""
    domain = dp.map_domain(dp.atom_domain(T="i64"), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    scale = 1.0 / epsilon
    # P(1 + Lap(scale) ≥ τ) = ½·exp(-(τ-1)/scale) ≤ δ, rounded up; then let OpenDP decide.
    threshold = max(k, math.ceil(1 + scale * math.log(1 / delta)))
    for _ in range(_MAX_SCALE_NUDGES):
        measurement = dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)
        spent, leaked = measurement.map((1, 1, 1))
        if spent > epsilon:
            scale = math.nextafter(scale, math.inf)
        elif leaked > delta:
            threshold += 1
        else:
            return measurement, threshold
    raise PrivacyError(f"no threshold for epsilon={epsilon!r}, delta={delta!r}")  # pragma: no cover


def partition_threshold(*, epsilon: float, k: int, delta: float = PARTITION_DELTA) -> int:
    """The noisy count a group needs to be shown (report it to callers)."""
    return _threshold_measurement(_epsilon(epsilon), k, delta)[1]


def noisy_partitions(
    true_counts: Sequence[int], *, epsilon: float, k: int, delta: float = PARTITION_DELTA
) -> dict[int, int]:
    """Noisy counts of the groups of a group-by whose groups are not known in advance
    (they come from the data), keeping only groups whose noisy count reaches the
    threshold: {index in `true_counts`: noisy count}. (ε, δ)-DP as a whole.

    Releasing which groups exist is itself a release: without the threshold a group made
    by one row (a filter down to one person) would show whenever it exists, and its mere
    presence answers the filter's question exactly, however much noise its count carries.
    """
    counts = {i: _count(value) for i, value in enumerate(true_counts)}
    if not counts:
        return {}
    measurement = _threshold_measurement(_epsilon(epsilon), k, delta)[0]
    released = measurement(counts)
    return {int(i): max(0, int(v)) for i, v in released.items()}


# --------------------------------------------------------------------------- composition


def split_epsilon(epsilon: float, parts: int) -> float:
    """Equal share of `epsilon` for `parts` releases under sequential composition.

    The share is rounded down so that `parts` shares never add up to more than `epsilon`.
    """
    eps = _epsilon(epsilon)
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise PrivacyError(f"parts must be an int >= 1, got {parts!r}")
    share = eps / parts
    while share > 0 and Fraction(share) * parts > Fraction(eps):
        share = math.nextafter(share, 0.0)
    return share
