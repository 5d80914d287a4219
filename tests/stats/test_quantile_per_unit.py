"""Quantile of a per-unit value (abkit.stats.quantile with one value per unit).

Revenue per user is zero for most users (no purchase) and log-normal for buyers; its p90
is in the continuous part, with the closed form
``q_p = exp(μ + σ·Φ⁻¹((p - π₀)/(1 - π₀)))`` (π₀ the share of zeros), so coverage of the
true difference is measured exactly. With ``n_i = 1`` the clustered formulas reduce to the
classical distribution-free interval (module docstring of abkit.stats.quantile).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abkit.stats.quantile import compare_quantiles, quantile_stats_from_events

P_ZERO, MU, SD = 0.6, math.log(40.0), 0.8


def _revenue(rng: np.random.Generator, n: int, lift: float) -> np.ndarray:
    buyer = rng.random(n) >= P_ZERO
    return np.where(buyer, np.exp(MU + SD * rng.normal(size=n)) * (1.0 + lift), 0.0)


def _true_quantile(p: float, lift: float) -> float:
    return math.exp(MU + SD * sps.norm.ppf((p - P_ZERO) / (1.0 - P_ZERO))) * (1.0 + lift)


def _simulate(p: float, lift: float, reps: int, n: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    true_diff = _true_quantile(p, lift) - _true_quantile(p, 0.0)
    covered = rejected = 0
    for _ in range(reps):
        c = quantile_stats_from_events(_revenue(rng, n, 0.0), np.arange(n), p)
        t = quantile_stats_from_events(_revenue(rng, n, lift), np.arange(n), p)
        result = compare_quantiles(c, t)
        covered += result.abs_ci.contains(true_diff)
        rejected += result.significant
    return covered / reps, rejected / reps


def test_one_value_per_unit_is_the_classical_binomial_variance() -> None:
    rng = np.random.default_rng(3)
    x = _revenue(rng, 700, 0.0)
    stats = quantile_stats_from_events(x, np.arange(x.size), 0.9)
    f = stats.cdf_at_estimate
    assert stats.events == stats.n == 700 and stats.events_sq == 700
    assert stats.cdf_variance == pytest.approx(f * (1 - f) / (700 - 1), rel=1e-12)
    assert stats.design_effect == pytest.approx(700 / 699, rel=1e-12)


def test_aa_false_positive_rate_p90_of_revenue_per_user() -> None:
    """2,000 A/A pairs of 1,000 users: 0.043 measured (0.05 ± 0.01 required)."""
    coverage, fpr = _simulate(0.9, 0.0, reps=2000, n=1000, seed=20)
    assert 0.04 <= fpr <= 0.06
    assert coverage >= 0.94


def test_coverage_of_the_true_difference_p90() -> None:
    """Buyers spend 15% more: coverage 0.954 measured, power 0.37 at 1,000 users an arm."""
    coverage, power = _simulate(0.9, 0.15, reps=2000, n=1000, seed=120)
    assert coverage >= 0.94
    assert 0.3 <= power <= 0.45


def test_agrees_with_a_unit_level_bootstrap() -> None:
    rng = np.random.default_rng(13)
    p = 0.9
    arms = [_revenue(rng, 3000, 0.0), _revenue(rng, 3000, 0.1)]
    c, t = (quantile_stats_from_events(x, np.arange(x.size), p) for x in arms)
    result = compare_quantiles(c, t)

    def resampled(x: np.ndarray) -> float:
        return float(np.quantile(rng.choice(x, x.size), p, method="inverted_cdf"))

    boot = np.array([resampled(arms[1]) - resampled(arms[0]) for _ in range(1000)])
    assert result.se_abs == pytest.approx(boot.std(ddof=1), rel=0.12)
    assert float(np.mean(boot)) == pytest.approx(result.abs_diff, abs=0.25 * result.se_abs)
    # and the percentile bootstrap interval is close to the z interval
    lo, hi = np.quantile(boot, [0.025, 0.975])
    assert lo == pytest.approx(result.abs_ci.lower, abs=0.3 * result.se_abs)
    assert hi == pytest.approx(result.abs_ci.upper, abs=0.3 * result.se_abs)
