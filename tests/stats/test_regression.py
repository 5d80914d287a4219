"""Regression adjustment with several covariates (abkit.stats.regression)."""

from __future__ import annotations

from dataclasses import fields
from typing import Literal

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from abkit.errors import NotEnoughDataError
from abkit.stats.estimators import estimate_difference
from abkit.stats.regression import (
    CovariateMeanStats,
    RegressionStats,
    compare_adjusted,
    regression_adjustment,
)
from abkit.stats.sufficient import MeanStats

NAMES = ("pre_revenue", "pre_sessions", "cupac")


def _units(rng: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Revenue driven by two pre-period metrics and a non-linear term a model can learn."""
    pre_rev = rng.gamma(2.0, 5.0, n)
    pre_sess = rng.poisson(6, n).astype(float)
    signal = 0.6 * pre_rev + 1.5 * pre_sess + 0.05 * pre_rev * pre_sess
    y = signal + rng.normal(0.0, 6.0, n) + effect
    prediction = signal + rng.normal(0.0, 1.0, n)  # the CUPAC model's per-unit prediction
    return y, np.column_stack([pre_rev, pre_sess, prediction])


Arm = tuple[np.ndarray, np.ndarray]


def _arms(seed: int, n_c: int = 800, n_t: int = 700, effect: float = 0.0) -> tuple[Arm, Arm]:
    rng = np.random.default_rng(seed)
    return _units(rng, n_c, 0.0), _units(rng, n_t, effect)


def test_equals_the_ols_treatment_coefficient() -> None:
    (yc, xc), (yt, xt) = _arms(0, effect=2.0)
    result = regression_adjustment(
        RegressionStats.from_values(yc, xc, NAMES), RegressionStats.from_values(yt, xt, NAMES)
    )
    design = np.column_stack([np.r_[np.zeros(yc.size), np.ones(yt.size)], np.vstack([xc, xt])])
    fit = sm.OLS(np.r_[yc, yt], sm.add_constant(design)).fit()
    assert result.difference.abs_diff == pytest.approx(fit.params[1], rel=1e-9, abs=1e-9)
    # The slopes are OLS's (common-slope model).
    assert np.allclose(result.coefficients, fit.params[2:], rtol=1e-9, atol=1e-12)


def test_variance_is_the_per_arm_residual_variance() -> None:
    (yc, xc), (yt, xt) = _arms(1)
    result = regression_adjustment(
        RegressionStats.from_values(yc, xc, NAMES), RegressionStats.from_values(yt, xt, NAMES)
    )
    theta = np.asarray(result.coefficients)
    expected = sum(np.var(y - x @ theta, ddof=1) / y.size for y, x in ((yc, xc), (yt, xt)))
    assert result.difference.se_abs**2 == pytest.approx(expected, rel=1e-10)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 60), st.integers(3, 60), st.booleans())
def test_one_covariate_is_cuped(seed: int, n_c: int, n_t: int, binary: bool) -> None:
    rng = np.random.default_rng(seed)
    metric: Literal["proportion", "mean"] = "proportion" if binary else "mean"
    arms = []
    for n in (n_c, n_t):
        x = rng.normal(10, 3, n)
        y = (rng.random(n) < 0.3).astype(float) if binary else x + rng.normal(0, 2, n)
        arms.append((y, x))
    means = [MeanStats.from_values(y, x) for y, x in arms]
    try:
        cuped = estimate_difference(means[0], means[1], metric_type=metric, cuped=True)
    except NotEnoughDataError:
        return
    regs = [RegressionStats.from_mean_stats(m) for m in means]
    ours = regression_adjustment(regs[0], regs[1], metric_type=metric).difference
    for f in fields(cuped):
        a, b = getattr(cuped, f.name), getattr(ours, f.name)
        if isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-12, abs=1e-12), f.name
        else:
            assert a == b, f.name


def test_sums_add_across_days() -> None:
    (y, x), _ = _arms(2)
    whole = RegressionStats.from_values(y, x, NAMES)
    parts = RegressionStats.from_values(y[:300], x[:300], NAMES) + RegressionStats.from_values(
        y[300:], x[300:], NAMES
    )
    assert parts.n == whole.n
    assert np.allclose(parts.cov_cross, whole.cov_cross, rtol=1e-12)
    with pytest.raises(ValueError, match="different covariates"):
        whole + RegressionStats.from_values(y, x[:, :2], NAMES[:2])


def test_collinear_and_constant_covariates_do_not_break_the_estimate() -> None:
    (yc, xc), (yt, xt) = _arms(3, effect=1.0)
    base = regression_adjustment(
        RegressionStats.from_values(yc, xc, NAMES), RegressionStats.from_values(yt, xt, NAMES)
    )
    names = (*NAMES, "copy", "constant")
    wide_c = np.column_stack([xc, xc[:, 0], np.ones(yc.size)])
    wide_t = np.column_stack([xt, xt[:, 0], np.ones(yt.size)])
    wide = regression_adjustment(
        RegressionStats.from_values(yc, wide_c, names),
        RegressionStats.from_values(yt, wide_t, names),
    )
    assert wide.difference.abs_diff == pytest.approx(base.difference.abs_diff, rel=1e-8)
    assert wide.coefficients[-1] == 0.0


def test_validation() -> None:
    with pytest.raises(ValueError, match="k\\(k\\+1\\)/2"):
        RegressionStats(3, 1.0, 1.0, ("a", "b"), (1.0, 1.0), (1.0,), (1.0, 1.0))
    with pytest.raises(ValueError, match="distinct"):
        RegressionStats(3, 1.0, 1.0, ("a", "a"), (1.0, 1.0), (1.0,) * 3, (1.0, 1.0))
    one = RegressionStats.from_values([1.0], np.ones((1, 1)), ("a",))
    with pytest.raises(NotEnoughDataError):
        regression_adjustment(one, one)


def test_variance_reduction_tracks_multiple_r_squared_and_cupac_helps() -> None:
    (yc, xc), (yt, xt) = _arms(4, n_c=4000, n_t=4000)
    full = regression_adjustment(
        RegressionStats.from_values(yc, xc, NAMES), RegressionStats.from_values(yt, xt, NAMES)
    )
    assert full.achieved_reduction == pytest.approx(full.r_squared, abs=0.01)
    single = regression_adjustment(
        RegressionStats.from_values(yc, xc[:, :1], NAMES[:1]),
        RegressionStats.from_values(yt, xt[:, :1], NAMES[:1]),
    )
    two = regression_adjustment(
        RegressionStats.from_values(yc, xc[:, :2], NAMES[:2]),
        RegressionStats.from_values(yt, xt[:, :2], NAMES[:2]),
    )
    assert single.achieved_reduction < two.achieved_reduction < full.achieved_reduction
    # R² of the pooled OLS of y on the covariates (arm means removed) is the same number.
    y = np.r_[yc - yc.mean(), yt - yt.mean()]
    x = np.vstack([xc - xc.mean(axis=0), xt - xt.mean(axis=0)])
    assert full.r_squared == pytest.approx(sm.OLS(y, x).fit().rsquared, rel=1e-9)


def test_aa_false_positive_rate() -> None:
    rng = np.random.default_rng(5)
    reps, rejected = 2000, 0
    for _ in range(reps):
        (yc, xc), (yt, xt) = _units(rng, 200, 0.0), _units(rng, 200, 0.0)
        d = regression_adjustment(
            RegressionStats.from_values(yc, xc, NAMES), RegressionStats.from_values(yt, xt, NAMES)
        ).difference
        assert d.df is not None
        rejected += 2 * sps.t.sf(abs(d.abs_diff) / d.se_abs, d.df) < 0.05
    assert 0.04 <= rejected / reps <= 0.06


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.floats(-50, 50), st.floats(0.1, 20))
def test_invariant_to_affine_changes_of_a_covariate(seed: int, shift: float, scale: float) -> None:
    (yc, xc), (yt, xt) = _arms(seed, n_c=60, n_t=50, effect=1.0)
    base = regression_adjustment(
        RegressionStats.from_values(yc, xc, NAMES), RegressionStats.from_values(yt, xt, NAMES)
    )
    moved_c, moved_t = xc.copy(), xt.copy()
    moved_c[:, 1] = moved_c[:, 1] * scale + shift
    moved_t[:, 1] = moved_t[:, 1] * scale + shift
    moved = regression_adjustment(
        RegressionStats.from_values(yc, moved_c, NAMES),
        RegressionStats.from_values(yt, moved_t, NAMES),
    )
    assert moved.difference.abs_diff == pytest.approx(base.difference.abs_diff, rel=1e-7, abs=1e-9)
    assert moved.difference.se_abs == pytest.approx(base.difference.se_abs, rel=1e-7)
    assert moved.coefficients[1] == pytest.approx(base.coefficients[1] / scale, rel=1e-6)


# ------------------------------------------------- the readout analyze() uses (CUPAC)
def _revenue_units(rng: np.random.Generator, n: int, effect: float = 0.0):
    """Zero-inflated, skewed revenue (most units buy nothing) with the own pre-period
    revenue, the pre-period order count and a model's prediction as covariates."""
    taste = rng.gamma(1.0, 1.0, n)
    orders_pre = rng.poisson(taste)
    # a sum of k Gamma(2, 4) order values is Gamma(2k, 4) (0 when k = 0)
    rev_pre = rng.gamma(2.0 * orders_pre, 4.0)
    orders = rng.poisson(taste)
    y = rng.gamma(2.0 * orders, 4.0) + effect * (orders > 0)
    prediction = 8.0 * taste + rng.normal(0.0, 2.0, n)
    return y, rev_pre, np.column_stack([orders_pre, prediction])


def _stats(y, x, extra) -> CovariateMeanStats:
    return CovariateMeanStats.from_values(y, x, extra)


def test_covariate_mean_stats_add_and_keep_the_one_covariate_view() -> None:
    rng = np.random.default_rng(2)
    y, x, extra = _revenue_units(rng, 500)
    whole = _stats(y, x, extra)
    parts = _stats(y[:200], x[:200], extra[:200]) + _stats(y[200:], x[200:], extra[200:])
    assert isinstance(parts, CovariateMeanStats) and parts.regression is not None
    assert whole.regression is not None
    assert np.allclose(parts.regression.cov_cross, whole.regression.cov_cross, rtol=1e-12)
    # the MeanStats part is CUPED's statistics of (y, own pre-period)
    one = MeanStats.from_values(y, x)
    assert whole.base().cross_sum == pytest.approx(one.cross_sum, rel=1e-12)
    assert estimate_difference(whole.base(), one, metric_type="mean", cuped=True).n_control == 500
    with pytest.raises(ValueError, match="other units"):
        CovariateMeanStats(
            **vars(MeanStats.from_values(y[:10], x[:10])), regression=whole.regression
        )


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"])
def test_compare_adjusted_reads_the_adjusted_difference(method: str) -> None:
    rng = np.random.default_rng(3)
    c, t = _stats(*_revenue_units(rng, 900)), _stats(*_revenue_units(rng, 800, effect=2.0))
    assert c.regression is not None and t.regression is not None
    adjusted = regression_adjustment(c.regression, t.regression)
    result = compare_adjusted(
        c.regression, t.regression, metric_type="mean", method=method, metric="revenue"
    )
    assert result.status == "ok" and result.cuped and result.method == method
    assert result.abs_lift == pytest.approx(adjusted.difference.abs_diff, rel=1e-12)
    assert result.variance_reduction == pytest.approx(adjusted.achieved_reduction, rel=1e-12)
    assert "regression adjustment on 3 covariates" in result.note
    if method == "fixed":
        assert result.se_abs == pytest.approx(adjusted.difference.se_abs, rel=1e-12)
    tiny = RegressionStats.from_values([1.0], np.ones((1, 3)), ("pre", "c1", "c2"))
    empty = compare_adjusted(tiny, tiny, metric_type="mean")
    assert empty.status != "ok"


def test_aa_false_positive_rate_of_the_readout_on_skewed_revenue() -> None:
    """A/A through the readout analyze() uses, on zero-inflated revenue with three
    covariates: 3000 replications, rejection rate 0.05 ± 0.01 (binomial sd 0.004)."""
    rng = np.random.default_rng(17)
    reps, rejected, reductions = 3000, 0, []
    for _ in range(reps):
        c, t = _stats(*_revenue_units(rng, 300)), _stats(*_revenue_units(rng, 300))
        assert c.regression is not None and t.regression is not None
        result = compare_adjusted(c.regression, t.regression, metric_type="mean")
        rejected += bool(result.p_value is not None and result.p_value < 0.05)
        reductions.append(result.variance_reduction)
    rate = rejected / reps
    assert 0.04 <= rate <= 0.06, rate
    # the adjustment does reduce the variance on these data (mean ≈ population R²)
    assert 0.3 < float(np.mean(reductions)) < 0.8
