"""Estimators on sufficient statistics, checked against raw-data computations and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from abkit.errors import DataError, NotEnoughDataError
from abkit.stats.estimators import (
    arm_estimate,
    arm_mean,
    arm_var_of_mean,
    cuped_theta,
    estimate_difference,
    welch_df,
)
from abkit.stats.sufficient import MeanStats, RatioStats


def test_proportion_variance_is_unpooled_wald_as_statsmodels():
    from statsmodels.stats.proportion import test_proportions_2indep

    c, t = MeanStats(2000, 210, 210), MeanStats(1900, 250, 250)
    d = estimate_difference(c, t, metric_type="proportion")
    ref = test_proportions_2indep(250, 1900, 210, 2000, method="wald", compare="diff")
    assert d.abs_diff == pytest.approx(ref.diff, rel=1e-12)
    assert d.se_abs**2 == pytest.approx(ref.variance, rel=1e-12)
    assert d.df is None and d.distribution == "normal"
    assert d.var_control_mean == pytest.approx(0.105 * 0.895 / 2000, rel=1e-12)


def test_mean_is_welch_with_satterthwaite_df():
    rng = np.random.default_rng(3)
    y_c = rng.gamma(2.0, 3.0, size=400)
    y_t = rng.gamma(2.0, 3.5, size=700)
    d = estimate_difference(
        MeanStats.from_values(y_c), MeanStats.from_values(y_t), metric_type="mean"
    )
    ref = stats.ttest_ind(y_t, y_c, equal_var=False)
    assert d.abs_diff / d.se_abs == pytest.approx(ref.statistic, rel=1e-10)
    assert d.df == pytest.approx(ref.df, rel=1e-10)
    assert d.var_control_mean == pytest.approx(y_c.var(ddof=1) / 400, rel=1e-10)


def test_ratio_delta_method_matches_linearisation_on_raw_units():
    rng = np.random.default_rng(4)
    n = 5000
    orders = rng.poisson(2.0, size=n) + 1
    revenue = orders * rng.gamma(3.0, 10.0, size=n)
    arm = RatioStats.from_values(revenue, orders)
    r = revenue.sum() / orders.sum()
    # Independent route: the influence function of Σy/Σd is (y - R·d)/d̄ per unit.
    lin = (revenue - r * orders) / orders.mean()
    assert arm_mean(arm, "ratio") == pytest.approx(r, rel=1e-12)
    assert arm_var_of_mean(arm, "ratio") == pytest.approx(lin.var(ddof=1) / n, rel=1e-9)


def test_ratio_delta_variance_matches_bootstrap():
    # The delta variance is first order; a bootstrap on 4,000 resamples agrees within 10%.
    rng = np.random.default_rng(5)
    n = 3000
    d = rng.poisson(3.0, size=n) + 1
    y = d * rng.lognormal(2.0, 0.6, size=n)
    idx = rng.integers(0, n, size=(4000, n))
    boot = y[idx].sum(axis=1) / d[idx].sum(axis=1)
    var = arm_var_of_mean(RatioStats.from_values(y, d), "ratio")
    assert var == pytest.approx(boot.var(ddof=1), rel=0.1)


def test_cuped_theta_and_effect_equal_ols_with_arm_indicator():
    import statsmodels.api as sm

    rng = np.random.default_rng(6)
    n_c, n_t = 3000, 2500
    x = rng.normal(10, 3, size=n_c + n_t)
    arm = np.r_[np.zeros(n_c), np.ones(n_t)]
    y = 2.0 + 0.7 * x + 0.4 * arm + rng.normal(0, 2, size=x.size)
    c = MeanStats.from_values(y[:n_c], x[:n_c])
    t = MeanStats.from_values(y[n_c:], x[n_c:])
    d = estimate_difference(c, t, metric_type="mean", cuped=True)
    # OLS y ~ 1 + arm + x gives the pooled within-arm slope and the adjusted effect.
    fit = sm.OLS(y, np.column_stack([np.ones_like(x), arm, x])).fit()
    assert d.theta == pytest.approx(fit.params[2], rel=1e-10)
    assert cuped_theta(c, t) == pytest.approx(fit.params[2], rel=1e-10)
    assert d.abs_diff == pytest.approx(fit.params[1], rel=1e-10)
    # The unpooled (Welch-type) variance of the adjusted difference: close to OLS's
    # homoscedastic one here because the arms have equal residual variance.
    assert d.se_abs == pytest.approx(fit.bse[1], rel=0.02)
    assert d.cuped and d.variance_reduction is not None
    # True squared correlation: 0.7²·3² / (0.7²·3² + 2²) = 4.41 / 8.41.
    assert d.variance_reduction == pytest.approx(4.41 / 8.41, abs=0.03)


def test_cuped_equals_welch_on_adjusted_values_and_covariance_is_consistent():
    rng = np.random.default_rng(7)
    x_c, x_t = rng.normal(5, 2, 800), rng.normal(5, 2, 1200)
    y_c = 1 + 0.9 * x_c + rng.normal(0, 1, 800)
    y_t = 1.3 + 0.9 * x_t + rng.normal(0, 1.5, 1200)
    c, t = MeanStats.from_values(y_c, x_c), MeanStats.from_values(y_t, x_t)
    d = estimate_difference(c, t, metric_type="mean", cuped=True)
    x_pool = np.r_[x_c, x_t].mean()
    adj_c = y_c - d.theta * (x_c - x_pool)
    adj_t = y_t - d.theta * (x_t - x_pool)
    ref = stats.ttest_ind(adj_t, adj_c, equal_var=False)
    assert d.control_mean == pytest.approx(adj_c.mean(), rel=1e-12)
    assert d.treatment_mean == pytest.approx(adj_t.mean(), rel=1e-12)
    assert d.abs_diff / d.se_abs == pytest.approx(ref.statistic, rel=1e-9)
    assert d.df == pytest.approx(ref.df, rel=1e-9)
    # se² = Var(m_c) + Var(m_t) - 2 Cov(m_c, m_t): the covariance term is not zero.
    assert d.cov_means != 0
    assert d.var_control_mean + d.var_treatment_mean - 2 * d.cov_means == pytest.approx(
        d.se_abs**2, rel=1e-9
    )


def test_cuped_covariance_terms_match_monte_carlo():
    # Var(m_c), Var(m_t), Cov(m_c, m_t) of the CUPED-adjusted means (θ and the pooled
    # covariate mean re-estimated each time) against 4,000 simulated experiments.
    rng = np.random.default_rng(8)
    n_c, n_t, reps = 300, 500, 4000
    x_c = rng.normal(0, 1, (reps, n_c))
    x_t = rng.normal(0, 1, (reps, n_t))
    y_c = 0.8 * x_c + rng.normal(0, 0.6, (reps, n_c))
    y_t = 0.8 * x_t + rng.normal(0, 0.6, (reps, n_t))
    ms = []
    for i in range(reps):
        d = estimate_difference(
            MeanStats.from_values(y_c[i], x_c[i]),
            MeanStats.from_values(y_t[i], x_t[i]),
            metric_type="mean",
            cuped=True,
        )
        ms.append((d.control_mean, d.treatment_mean))
        if i == 0:
            formula = d
    emp = np.cov(np.array(ms).T)
    assert formula.var_control_mean == pytest.approx(emp[0, 0], rel=0.1)
    assert formula.var_treatment_mean == pytest.approx(emp[1, 1], rel=0.1)
    assert formula.cov_means == pytest.approx(emp[0, 1], rel=0.2)


def test_cuped_with_useless_covariate_changes_little():
    rng = np.random.default_rng(9)
    c = MeanStats.from_values(rng.normal(size=2000), rng.normal(size=2000))
    t = MeanStats.from_values(rng.normal(size=2000), rng.normal(size=2000))
    d = estimate_difference(c, t, metric_type="mean", cuped=True)
    assert abs(d.variance_reduction) < 0.01


def test_cuped_constant_covariate_means_no_adjustment():
    c = MeanStats.from_values([1.0, 2.0, 3.0, 4.0], [5.0] * 4)
    t = MeanStats.from_values([2.0, 3.0, 5.0, 4.0], [5.0] * 4)
    d = estimate_difference(c, t, metric_type="mean", cuped=True)
    raw = estimate_difference(c, t, metric_type="mean")
    assert d.theta == 0.0
    assert d.abs_diff == pytest.approx(raw.abs_diff)
    assert d.se_abs == pytest.approx(raw.se_abs)


def test_welch_df_formula():
    v_c, v_t = 0.3, 0.05
    assert welch_df(v_c, 10, v_t, 30) == pytest.approx(
        (v_c + v_t) ** 2 / (v_c**2 / 9 + v_t**2 / 29)
    )


def test_sufficient_statistics_add_up_to_the_same_estimate():
    rng = np.random.default_rng(10)
    y = rng.normal(size=1000)
    whole = MeanStats.from_values(y)
    parts = MeanStats.from_values(y[:300]) + MeanStats.from_values(y[300:])
    assert arm_estimate(parts, "mean").mean == pytest.approx(arm_estimate(whole, "mean").mean)
    assert arm_var_of_mean(parts, "mean") == pytest.approx(arm_var_of_mean(whole, "mean"))


@pytest.mark.parametrize(
    ("control", "treatment", "metric_type", "message"),
    [
        (MeanStats(1, 1.0, 1.0), MeanStats(10, 3.0, 3.0), "proportion", "at least 2"),
        (MeanStats(100, 0.0, 0.0), MeanStats(100, 0.0, 0.0), "proportion", "zero variance"),
        (MeanStats(100, 100.0, 100.0), MeanStats(50, 50.0, 50.0), "proportion", "zero variance"),
        (MeanStats(10, 20.0, 40.0), MeanStats(10, 20.0, 40.0), "mean", "zero variance"),
        (
            RatioStats(10, 5.0, 5.0, 0.0, 0.0, 0.0),
            RatioStats(10, 5.0, 5.0, 3.0, 3.0, 1.0),
            "ratio",
            "denominator",
        ),
    ],
)
def test_not_enough_data(control, treatment, metric_type, message):
    with pytest.raises(NotEnoughDataError, match=message):
        estimate_difference(control, treatment, metric_type=metric_type)


def test_input_validation():
    with pytest.raises(TypeError):
        estimate_difference(MeanStats(5, 1, 1), MeanStats(5, 1, 1), metric_type="ratio")
    with pytest.raises(ValueError, match="metric_type"):
        estimate_difference(MeanStats(5, 1, 1), MeanStats(5, 1, 1), metric_type="median")
    with pytest.raises(DataError, match="0/1") as info:
        estimate_difference(MeanStats(5, 3, 7), MeanStats(5, 1, 1), metric_type="proportion")
    assert info.value.location.field == "sum_sq"
    with pytest.raises(DataError, match="sum <= n"):
        estimate_difference(MeanStats(5, 6, 6), MeanStats(5, 1, 1), metric_type="proportion")
    with pytest.raises(ValueError, match="ratio"):
        r = RatioStats(5, 1, 1, 5, 5, 1)
        estimate_difference(r, r, metric_type="ratio", cuped=True)
    with pytest.raises(ValueError, match="covariate"):
        estimate_difference(MeanStats(5, 1, 1), MeanStats(5, 2, 2), metric_type="mean", cuped=True)


def test_difference_is_json_safe():
    import json

    d = estimate_difference(
        MeanStats(100, 10, 10), MeanStats(100, 12, 12), metric_type="proportion"
    )
    payload = d.to_dict()
    json.dumps(payload, allow_nan=False)
    assert payload["df"] is None and math.isfinite(payload["se_abs"])


def test_welch_df_survives_huge_and_tiny_variances():
    assert welch_df(1e300, 10, 1e300, 10) == pytest.approx(18.0, rel=1e-12)
    assert welch_df(1e-300, 10, 1e-300, 10) == pytest.approx(18.0, rel=1e-12)
    assert welch_df(0.0, 5, 2.0, 9) == pytest.approx(8.0, rel=1e-12)
