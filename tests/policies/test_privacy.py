"""Differential privacy helpers: parameter checks, composition, and the noise itself.

The statistical checks use tolerances many standard errors wide so they do not flake: the
discrete Laplace noise of scale 1 has variance 2e^-1 / (1 - e^-1)^2 ≈ 1.84 (continuous: 2).
"""

from __future__ import annotations

import math
import statistics
from decimal import Decimal
from fractions import Fraction

import pytest

from policies.privacy import (
    PARTITION_DELTA,
    PrivacyError,
    accuracy,
    noise_scale,
    noisy_count,
    noisy_counts,
    noisy_partitions,
    noisy_sum,
    noisy_sums,
    partition_threshold,
    split_epsilon,
    sum_sensitivity,
)

BAD_EPSILONS = [0, 0.0, -1.0, math.nan, math.inf, -math.inf, "1", None, True]


# --------------------------------------------------------------------------- validation


def test_errors_are_value_errors() -> None:
    assert issubclass(PrivacyError, ValueError)


@pytest.mark.parametrize("epsilon", BAD_EPSILONS)
def test_bad_epsilon_is_refused_everywhere(epsilon: object) -> None:
    with pytest.raises(PrivacyError):
        noisy_count(10, epsilon=epsilon)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        noisy_counts([10], epsilon=epsilon)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        noisy_sum(10, epsilon=epsilon, lower=0, upper=5)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        split_epsilon(epsilon, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [-1, 1.5, True, "3", None, 2**63])
def test_bad_count_is_refused(count: object) -> None:
    with pytest.raises(PrivacyError):
        noisy_count(count, epsilon=1.0)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        noisy_counts([1, count], epsilon=1.0)  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("true_sum", "lower", "upper"),
    [
        (10.0, 5.0, 1.0),  # lower > upper
        (10.0, 0, 0),  # nothing to release
        (math.nan, 0, 5),
        (math.inf, 0, 5),
        (10.0, -math.inf, 5),
        (10.0, 0, math.nan),
        ("10", 0, 5),
        (10**400, 0, 5),
    ],
)
def test_bad_sum_parameters_are_refused(true_sum: object, lower: float, upper: float) -> None:
    with pytest.raises(PrivacyError):
        noisy_sum(true_sum, epsilon=1.0, lower=lower, upper=upper)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        noisy_sums([true_sum], epsilon=1.0, lower=lower, upper=upper)  # type: ignore[list-item]


@pytest.mark.parametrize("parts", [0, -3, 1.5, True, None])
def test_split_epsilon_refuses_bad_parts(parts: object) -> None:
    with pytest.raises(PrivacyError):
        split_epsilon(1.0, parts)  # type: ignore[arg-type]


def test_empty_batches_release_nothing() -> None:
    assert noisy_counts([], epsilon=1.0) == []
    assert noisy_sums([], epsilon=1.0, lower=0, upper=1) == []


# --------------------------------------------------------------------------- composition


@pytest.mark.parametrize(("epsilon", "parts"), [(1.0, 1), (1.0, 3), (0.3, 3), (0.7, 7), (2, 10)])
def test_split_epsilon_is_an_equal_share_that_never_overspends(epsilon: float, parts: int) -> None:
    share = split_epsilon(epsilon, parts)
    assert share == pytest.approx(epsilon / parts, rel=1e-12)
    assert Fraction(share) * parts <= Fraction(epsilon)
    assert split_epsilon(epsilon, 1) == epsilon


# --------------------------------------------------------------------------- scale and accuracy


@pytest.mark.parametrize("epsilon", [1.0, 3.0, 0.7, 1 / 3, 0.01, 50.0])
def test_scale_never_spends_more_than_epsilon(epsilon: float) -> None:
    scale = noise_scale(epsilon=epsilon, sensitivity=1)
    assert scale == pytest.approx(1 / epsilon, rel=1e-12)
    assert 1 / scale <= epsilon
    float_scale = noise_scale(epsilon=epsilon, sensitivity=2.5, integer=False)
    assert float_scale == pytest.approx(2.5 / epsilon, rel=1e-12)
    assert 2.5 / float_scale <= epsilon


def test_noise_scale_and_accuracy_parameters() -> None:
    with pytest.raises(PrivacyError):
        noise_scale(epsilon=1.0, sensitivity=0)
    with pytest.raises(PrivacyError):
        noise_scale(epsilon=1.0, sensitivity=1.5)  # not whole: integer mechanism
    with pytest.raises(PrivacyError):
        accuracy(1.0, alpha=0)
    # 95% of discrete Laplace(1) draws land within about 3.4 of the truth.
    assert 2.5 < accuracy(1.0) < 4.0
    assert accuracy(1.0, integer=False) == pytest.approx(math.log(1 / 0.05))


def test_sum_sensitivity() -> None:
    assert sum_sensitivity(0, 10) == 10
    assert sum_sensitivity(-5, 3) == 5
    assert sum_sensitivity(-2.5, -1.0) == 2.5


# --------------------------------------------------------------------------- the noise


def test_noise_is_added() -> None:
    draws = [noisy_count(50, epsilon=1.0) for _ in range(200)]
    assert len(set(draws)) > 1
    assert all(isinstance(value, int) for value in draws)


def test_noisy_count_is_unbiased_with_laplace_variance() -> None:
    draws = [noisy_count(1000, epsilon=1.0) for _ in range(2000)]
    assert abs(statistics.fmean(draws) - 1000) <= 0.3
    assert 1.0 <= statistics.variance(draws) <= 4.0  # ≈ 1.84; continuous Laplace: 2 / eps²


def test_batch_counts_have_the_same_distribution() -> None:
    draws = noisy_counts([1000] * 2000, epsilon=1.0)
    assert len(draws) == 2000
    assert abs(statistics.fmean(draws) - 1000) <= 0.3
    assert 1.0 <= statistics.variance(draws) <= 4.0


def test_larger_epsilon_gives_less_spread() -> None:
    wide = [noisy_count(500, epsilon=0.5) for _ in range(200)]  # variance ≈ 7.8
    narrow = [noisy_count(500, epsilon=2.0) for _ in range(200)]  # variance ≈ 0.36
    assert statistics.variance(narrow) * 4 < statistics.variance(wide)


def test_clamped_count_is_never_negative() -> None:
    draws = [noisy_count(0, epsilon=0.1) for _ in range(200)]
    assert min(draws) >= 0
    assert max(draws) > 0  # noise is still there
    assert min(noisy_counts([0] * 300, epsilon=0.1)) >= 0


def test_noisy_sum_scale_follows_bounds_and_epsilon() -> None:
    # Integer data: discrete Laplace, scale max(|-5|, |10|) / 1 = 10, so E|noise| ≈ 10.
    draws = [noisy_sum(400, epsilon=1.0, lower=-5, upper=10) for _ in range(200)]
    assert all(value.is_integer() for value in draws)
    assert 6.5 <= statistics.fmean(abs(v - 400) for v in draws) <= 13.5
    batch = noisy_sums([400] * 2000, epsilon=1.0, lower=-5, upper=10)
    assert abs(statistics.fmean(batch) - 400) <= 1.5
    assert 8.5 <= statistics.fmean(abs(v - 400) for v in batch) <= 11.5
    # Halving epsilon doubles the scale.
    halved = noisy_sums([400] * 2000, epsilon=0.5, lower=-5, upper=10)
    assert 17.0 <= statistics.fmean(abs(v - 400) for v in halved) <= 23.0


def test_noisy_sum_on_floats_uses_the_float_mechanism() -> None:
    # scale = max(2.5, 1.0) / 2 = 1.25
    one = noisy_sum(12.0, epsilon=2.0, lower=-2.5, upper=1.0)
    assert isinstance(one, float)
    draws = noisy_sums([12.0] * 2000, epsilon=2.0, lower=-2.5, upper=1.0)
    assert abs(statistics.fmean(draws) - 12.0) <= 0.2
    assert 1.1 <= statistics.fmean(abs(v - 12.0) for v in draws) <= 1.4
    # A float sum that happens to be whole still gets float noise: the mechanism is chosen
    # by the column's type, never by the value.
    whole = noisy_sums([12.0] * 50, epsilon=1.0, lower=0, upper=10)
    assert any(not value.is_integer() for value in whole)


def test_declared_column_type_picks_the_mechanism() -> None:
    # An integer column whose SUM came back as float or Decimal still gets integer noise.
    assert noisy_sum(12.0, epsilon=1.0, lower=0, upper=10.0, integer=True).is_integer()
    assert noisy_sum(Decimal(12), epsilon=1.0, lower=0, upper=10, integer=True).is_integer()
    assert all(
        v.is_integer() for v in noisy_sums([3.0, 4], epsilon=1, lower=0, upper=5, integer=True)
    )
    # A float column whose SUM happens to be an int still gets float noise.
    floats = noisy_sums([12] * 50, epsilon=1.0, lower=0, upper=10, integer=False)
    assert any(not value.is_integer() for value in floats)
    with pytest.raises(PrivacyError):
        noisy_sum(12, epsilon=1.0, lower=0, upper=2.5, integer=True)


# --------------------------------------------------------------------------- partitions


def test_partition_threshold_keeps_its_promise() -> None:
    import opendp.prelude as dp

    for epsilon in (0.005, 0.05, 1.0):
        threshold = partition_threshold(epsilon=epsilon, k=5)
        measurement = dp.m.make_laplace_threshold(
            dp.map_domain(dp.atom_domain(T="i64"), dp.atom_domain(T="i64")),
            dp.l01inf_distance(dp.absolute_distance(T="i64")),
            scale=1 / epsilon,
            threshold=threshold,
        )
        spent, leaked = measurement.map((1, 1, 1))
        assert spent <= epsilon and leaked <= PARTITION_DELTA
    assert partition_threshold(epsilon=10.0, k=50) == 50  # never below k


def test_a_group_of_one_row_does_not_show() -> None:
    """The binary-search attack of issue 12: a group made by one row is released with
    probability ≤ δ, so its presence cannot answer the filter's question."""
    shown = sum(bool(noisy_partitions([1], epsilon=0.05, k=5)) for _ in range(2000))
    assert shown == 0
    big = noisy_partitions([1, 5000, 3], epsilon=0.05, k=5)
    assert list(big) == [1] and abs(big[1] - 5000) < 400
    assert noisy_partitions([], epsilon=0.05, k=5) == {}


@pytest.mark.parametrize("epsilon", BAD_EPSILONS)
def test_partitions_refuse_bad_epsilons(epsilon: object) -> None:
    with pytest.raises(PrivacyError):
        noisy_partitions([10], epsilon=epsilon, k=5)  # type: ignore[arg-type]
