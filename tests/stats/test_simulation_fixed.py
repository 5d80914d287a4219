"""Fixed-seed simulations of the fixed-horizon readouts.

Tolerances are set from the Monte-Carlo standard error so that a correct implementation
passes comfortably and a real bug (wrong variance, pooled instead of Welch, a missing
covariance term, 1 - cdf) fails:

* A/A false-positive rate at alpha 0.05 within [0.04, 0.06]: with 10,000 tests the MC
  standard error is 0.0022, so the band is about ±4.5 SE; with 4,000 (scalar path, CUPED)
  it is ±2.9 SE.
* Fieller 95% coverage within [0.94, 0.96] over 5,000 tests (SE 0.0031, ±3.2 SE).
* CUPED: empirical Var(Δ_cuped)/Var(Δ_raw) within 0.03 of 1 - ρ² (its MC relative SE is
  about 3% at 4,000 tests) and the reported reduction within 0.01 of ρ² on average.
"""

from __future__ import annotations

import numpy as np
import pytest

from abkit.stats.readout import compare, compare_many
from abkit.stats.sufficient import MeanStats, RatioStats

ALPHA = 0.05


def _mean_arrays(y):
    return {"n": np.full(y.shape[0], y.shape[1]), "sum": y.sum(1), "sum_sq": (y * y).sum(1)}


def _ratio_arrays(num, den):
    return {
        "n": np.full(num.shape[0], num.shape[1]),
        "num_sum": num.sum(1),
        "num_sum_sq": (num * num).sum(1),
        "den_sum": den.sum(1),
        "den_sum_sq": (den * den).sum(1),
        "num_den_sum": (num * den).sum(1),
    }


# ----------------------------------------------------------------- A/A false positives


def test_aa_false_positive_rate_proportion():
    rng = np.random.default_rng(100)
    sims, n_c, n_t, p = 10_000, 4_000, 6_000, 0.07
    k_c = rng.binomial(n_c, p, sims).astype(float)
    k_t = rng.binomial(n_t, p, sims).astype(float)
    res = compare_many(
        {"n": np.full(sims, n_c), "sum": k_c, "sum_sq": k_c},
        {"n": np.full(sims, n_t), "sum": k_t, "sum_sq": k_t},
        metric_type="proportion",
    )
    fpr = res.significant.mean()
    assert 0.04 <= fpr <= 0.06, fpr
    # Scalar path on 4,000 of them: same decisions, same rate.
    scalar = [
        compare(
            MeanStats(n_c, k_c[i], k_c[i]), MeanStats(n_t, k_t[i], k_t[i]), metric_type="proportion"
        ).significant
        for i in range(4_000)
    ]
    assert np.array_equal(np.array(scalar), res.significant[:4_000])


@pytest.mark.parametrize(
    ("label", "n_c", "n_t", "sd_c", "sd_t"),
    [
        # Unequal sizes and variances: Student's pooled t would be off here, Welch is not.
        ("heteroscedastic normal", 20, 80, 3.0, 1.0),
        ("skewed, equal arms", 400, 400, None, None),
    ],
)
def test_aa_false_positive_rate_welch_mean(label, n_c, n_t, sd_c, sd_t):
    rng = np.random.default_rng(101)
    sims = 10_000
    if sd_c is None:
        y_c = rng.lognormal(0.0, 0.8, (sims, n_c))
        y_t = rng.lognormal(0.0, 0.8, (sims, n_t))
    else:
        y_c = rng.normal(5.0, sd_c, (sims, n_c))
        y_t = rng.normal(5.0, sd_t, (sims, n_t))
    res = compare_many(_mean_arrays(y_c), _mean_arrays(y_t), metric_type="mean")
    fpr = res.significant.mean()
    assert 0.04 <= fpr <= 0.06, (label, fpr)
    if sd_c is not None:
        # The pooled-variance t-test on the same data is badly anti-conservative (≈0.15):
        # evidence the simulation can tell a wrong variance from a right one.
        from scipy import stats

        pooled = stats.ttest_ind(y_t, y_c, axis=1, equal_var=True).pvalue
        assert (pooled < ALPHA).mean() > 0.1


def test_aa_false_positive_rate_delta_ratio():
    rng = np.random.default_rng(102)
    sims, n = 5_000, 400
    fprs = []
    for chunk in range(2):  # two chunks of 5,000 keep memory small
        d = rng.poisson(1.5, (2, sims, n)) + 1.0
        # Revenue per order correlated with the number of orders (what makes ratios hard).
        y = d * rng.gamma(2.0, 10.0, (2, sims, n)) * (1 + 0.2 * (d > 2))
        res = compare_many(
            _ratio_arrays(y[0], d[0]), _ratio_arrays(y[1], d[1]), metric_type="ratio"
        )
        fprs.append(res.significant.mean())
        if chunk == 0:
            scalar = [
                compare(
                    RatioStats.from_values(y[0, i], d[0, i]),
                    RatioStats.from_values(y[1, i], d[1, i]),
                    metric_type="ratio",
                ).significant
                for i in range(500)
            ]
            assert np.array_equal(np.array(scalar), res.significant[:500])
    fpr = float(np.mean(fprs))
    assert 0.04 <= fpr <= 0.06, fpr


def test_aa_false_positive_rate_one_sided():
    rng = np.random.default_rng(103)
    sims = 10_000
    y_c = rng.normal(0.0, 1.0, (sims, 60))
    y_t = rng.normal(0.0, 2.0, (sims, 40))
    for alternative in ("larger", "smaller"):
        res = compare_many(
            _mean_arrays(y_c + 3),
            _mean_arrays(y_t + 3),
            metric_type="mean",
            alternative=alternative,
        )
        assert 0.04 <= res.significant.mean() <= 0.06, alternative


# ----------------------------------------------------------------- Fieller coverage


@pytest.mark.parametrize("lift", [0.10, 0.60])
def test_fieller_relative_interval_coverage_proportion(lift):
    rng = np.random.default_rng(104)
    sims, n, p_c = 5_000, 3_000, 0.08
    k_c = rng.binomial(n, p_c, sims).astype(float)
    k_t = rng.binomial(n, p_c * (1 + lift), sims).astype(float)
    res = compare_many(
        {"n": np.full(sims, n), "sum": k_c, "sum_sq": k_c},
        {"n": np.full(sims, n), "sum": k_t, "sum_sq": k_t},
        metric_type="proportion",
    )
    assert res.rel_ci_bounded.all()
    cover = (res.rel_ci_lower <= lift) & (lift <= res.rel_ci_upper)
    assert 0.94 <= cover.mean() <= 0.96, cover.mean()
    if lift > 0.5:
        # The shortcut some tools use (absolute interval divided by the control mean)
        # ignores that the control mean's noise is scaled by the ratio, and under-covers
        # on the same data once the lift is large.
        lo = res.abs_ci_lower / res.control_mean
        hi = res.abs_ci_upper / res.control_mean
        naive = (lo <= lift) & (lift <= hi)
        assert naive.mean() < 0.935, naive.mean()


def test_fieller_relative_interval_coverage_mean_small_noisy_control():
    # A noisy control (CV of the control mean ≈ 0.18) is where Fieller earns its keep.
    rng = np.random.default_rng(105)
    sims, n, lift = 5_000, 50, 0.25
    y_c = rng.lognormal(0.0, 1.0, (sims, n))
    y_t = rng.lognormal(0.0, 1.0, (sims, n)) * (1 + lift)
    res = compare_many(_mean_arrays(y_c), _mean_arrays(y_t), metric_type="mean")
    bounded = res.rel_ci_bounded
    assert bounded.mean() > 0.99
    cover = (res.rel_ci_lower <= lift) & (lift <= res.rel_ci_upper)
    # Unbounded sets contain every lift, so they count as covering.
    rate = (cover | ~bounded).mean()
    assert 0.94 <= rate <= 0.965, rate


def test_fieller_relative_interval_coverage_ratio_scalar_path():
    rng = np.random.default_rng(106)
    sims, n, lift = 2_000, 300, 0.15
    hits = 0
    for _ in range(sims):
        d = rng.poisson(2.0, (2, n)) + 1.0
        y = d * rng.gamma(2.0, 5.0, (2, n))
        y[1] *= 1 + lift
        r = compare(
            RatioStats.from_values(y[0], d[0]),
            RatioStats.from_values(y[1], d[1]),
            metric_type="ratio",
        )
        lo, hi = r.rel_ci
        hits += lo <= lift <= hi
    # 2,000 tests: SE 0.0049, so the band is ±2 SE on the low side.
    assert 0.94 <= hits / sims <= 0.965


# ----------------------------------------------------------------- CUPED


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_cuped_variance_reduction_is_squared_correlation(rho):
    rng = np.random.default_rng(107)
    sims, n = 4_000, 200
    x = rng.normal(0, 1, (2, sims, n))
    y = 10 + rho * x + np.sqrt(1 - rho**2) * rng.normal(0, 1, (2, sims, n))
    raw, adj, reported, sig = [], [], [], 0
    for i in range(sims):
        c = MeanStats.from_values(y[0, i], x[0, i])
        t = MeanStats.from_values(y[1, i], x[1, i])
        r = compare(c, t, metric_type="mean", cuped=True)
        raw.append(t.mean - c.mean)
        adj.append(r.abs_lift)
        reported.append(r.variance_reduction)
        sig += r.significant
    ratio = np.var(adj) / np.var(raw)
    assert ratio == pytest.approx(1 - rho**2, abs=0.03)
    assert np.mean(reported) == pytest.approx(rho**2, abs=0.01)
    # CUPED keeps the A/A false-positive rate (4,000 tests: ±2.9 SE band).
    assert 0.04 <= sig / sims <= 0.06
