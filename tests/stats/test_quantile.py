"""Quantile metrics with clustered events (abkit.stats.quantile)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from abkit.errors import NotEnoughDataError
from abkit.stats.estimators import arm_var_of_mean
from abkit.stats.quantile import (
    QuantileStats,
    bracket_ranks,
    compare_quantiles,
    quantile_rank,
    quantile_stats_from_events,
    with_bracket,
)
from abkit.stats.sufficient import RatioStats

LOG_SD = math.sqrt(0.5**2 + 0.5**2)  # sd of log latency: unit effect and event noise


def _latency_arm(
    rng: np.random.Generator, n_units: int, mu: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log-normal latencies, a per-unit random effect, 1 + Poisson(4) events per unit.

    Event counts are independent of the unit effect, so the event-level distribution is
    log-normal(mu, LOG_SD) and its true quantiles are known in closed form.
    """
    counts = 1 + rng.poisson(4, n_units)
    effect = rng.normal(0.0, 0.5, n_units)
    units = np.repeat(np.arange(n_units), counts)
    values = np.exp(mu + effect[units] + rng.normal(0.0, 0.5, units.size))
    return values, units


def _true_quantile(mu: float, p: float) -> float:
    return math.exp(mu + LOG_SD * sps.norm.ppf(p))


@given(st.floats(0.01, 0.99), st.integers(1, 10_000))
def test_rank_is_the_nearest_rank(p: float, m: int) -> None:
    k = quantile_rank(p, m)
    assert 1 <= k <= m
    assert k >= p * m and (k - 1 < p * m or k == 1)


def test_estimate_equals_numpy_inverted_cdf() -> None:
    rng = np.random.default_rng(0)
    values, units = _latency_arm(rng, 300, 0.0)
    for p in (0.5, 0.9, 0.95, 0.99):
        stats = quantile_stats_from_events(values, units, p)
        assert stats.estimate == np.quantile(values, p, method="inverted_cdf")


def test_cdf_variance_is_the_ratio_delta_method() -> None:
    # F̂ = Σs/Σn is a ratio metric: its variance must equal abkit's delta-method ratio
    # variance on the per-unit (s_i, n_i).
    rng = np.random.default_rng(1)
    values, units = _latency_arm(rng, 500, 0.0)
    stats = quantile_stats_from_events(values, units, 0.95)
    n_i = np.bincount(units).astype(float)
    s_i = np.bincount(units, weights=(values <= stats.estimate).astype(float))
    expected = arm_var_of_mean(RatioStats.from_values(s_i, n_i), "ratio")
    assert stats.cdf_variance == pytest.approx(expected, rel=1e-10)
    assert stats.design_effect > 1.3  # the unit effect makes events correlated


def test_per_unit_quantile_matches_the_exact_order_statistic_interval() -> None:
    # One event per unit: the bracket is the normal approximation of the distribution-free
    # binomial interval that scipy.stats.quantile_test inverts exactly.
    x = np.random.default_rng(2).lognormal(size=2000)
    for p in (0.5, 0.9, 0.99):
        stats = quantile_stats_from_events(x, np.arange(x.size), p)
        assert stats.design_effect == pytest.approx(2000 / 1999, rel=1e-9)
        exact = sps.quantile_test(x, q=stats.estimate, p=p).confidence_interval(0.95)
        ordered = np.sort(x)
        low, high = bracket_ranks(stats, 0.05)
        exact_low = int(np.searchsorted(ordered, exact.low)) + 1
        exact_high = int(np.searchsorted(ordered, exact.high)) + 1
        assert abs(low - exact_low) <= 2 and abs(high - exact_high) <= 2


def test_statistics_are_not_additive() -> None:
    stats = quantile_stats_from_events([1.0, 2.0, 3.0], [1, 1, 2], 0.5)
    with pytest.raises(TypeError, match="not additive"):
        stats + stats


def test_bracket_must_contain_the_estimate_and_come_complete() -> None:
    stats = quantile_stats_from_events([1.0, 2.0, 3.0, 4.0], [1, 1, 2, 3], 0.5)
    with pytest.raises(ValueError, match="contain"):
        with_bracket(stats, lower_value=3.5, upper_value=4.0, alpha=0.05)
    with pytest.raises(ValueError, match="together"):
        QuantileStats(0.5, 1.0, 2, 2.0, 2.0, 1.0, 1.0, 1.0, lower_value=1.0)
    with pytest.raises(ValueError, match="probability"):
        quantile_rank(1.0, 10)


def test_ties_everywhere_is_not_enough_data() -> None:
    control = quantile_stats_from_events([5.0] * 20, np.arange(20) % 5, 0.95)
    with pytest.raises(NotEnoughDataError, match="zero width"):
        compare_quantiles(control, control)


def test_one_sided_interval_is_open_on_one_end() -> None:
    rng = np.random.default_rng(3)
    c = quantile_stats_from_events(*_latency_arm(rng, 300, 0.0), 0.9)
    t = quantile_stats_from_events(*_latency_arm(rng, 300, 0.2), 0.9)
    result = compare_quantiles(c, t, alternative="larger")
    assert result.abs_ci.upper is None and result.abs_ci.lower is not None
    two = compare_quantiles(c, t)
    assert result.p_value == pytest.approx(two.p_value / 2, rel=1e-12)


def _simulate(p: float, mu_t: float, reps: int, n_units: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    true_diff = _true_quantile(mu_t, p) - _true_quantile(0.0, p)
    covered = rejected = 0
    for _ in range(reps):
        c = quantile_stats_from_events(*_latency_arm(rng, n_units, 0.0), p)
        t = quantile_stats_from_events(*_latency_arm(rng, n_units, mu_t), p)
        result = compare_quantiles(c, t)
        covered += result.abs_ci.contains(true_diff)
        rejected += result.significant
    return covered / reps, rejected / reps


def test_aa_false_positive_rate_median() -> None:
    coverage, fpr = _simulate(0.5, 0.0, reps=2000, n_units=400, seed=10)
    assert 0.04 <= fpr <= 0.06
    assert coverage >= 0.94


def test_coverage_of_the_true_difference_p95() -> None:
    coverage, power = _simulate(0.95, 0.1, reps=2000, n_units=600, seed=11)
    assert coverage >= 0.94
    assert power > 0.3  # the test sees a 10% slower model at p95


def test_agrees_with_a_unit_level_bootstrap() -> None:
    rng = np.random.default_rng(12)
    p = 0.95
    arms = [_latency_arm(rng, 1500, 0.0), _latency_arm(rng, 1500, 0.1)]
    c, t = (quantile_stats_from_events(v, u, p) for v, u in arms)
    result = compare_quantiles(c, t)

    def resampled_quantile(values: np.ndarray, units: np.ndarray) -> float:
        # Resample whole units (clusters) with replacement, keep all their events.
        order = np.argsort(units, kind="stable")
        counts = np.bincount(units)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        pick = rng.integers(0, counts.size, counts.size)
        idx = np.concatenate([order[starts[i] : starts[i] + counts[i]] for i in pick])
        return float(np.quantile(values[idx], p, method="inverted_cdf"))

    boot = np.array(
        [resampled_quantile(*arms[1]) - resampled_quantile(*arms[0]) for _ in range(600)]
    )
    assert result.se_abs == pytest.approx(boot.std(ddof=1), rel=0.15)
    assert float(np.mean(boot)) == pytest.approx(result.abs_diff, abs=0.25 * result.se_abs)


def test_swapping_arms_negates_the_difference() -> None:
    rng = np.random.default_rng(4)
    c = quantile_stats_from_events(*_latency_arm(rng, 300, 0.0), 0.9)
    t = quantile_stats_from_events(*_latency_arm(rng, 300, 0.15), 0.9)
    forward, backward = compare_quantiles(c, t), compare_quantiles(t, c)
    assert backward.abs_diff == -forward.abs_diff
    assert backward.p_value == pytest.approx(forward.p_value, rel=1e-12)
    assert forward.control_ci == c.ci and forward.treatment_ci == t.ci
    with pytest.raises(ValueError, match="same quantile"):
        compare_quantiles(c, quantile_stats_from_events(*_latency_arm(rng, 300, 0.0), 0.5))
