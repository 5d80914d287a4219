"""CUPED for ratio metrics (delta method): exactness against a row-level computation,
neutral cases, and fixed-seed simulations of A/A and A/B experiments.

Model of the simulations (units randomised, a ratio metric such as revenue per order):
each unit has a value level ``a_i ~ Gamma(2, 25)`` (mean 50) and an order rate
``λ_i ~ Gamma(2, 1)``; post-period orders ``d_i = 1 + Poisson(λ_i)`` and pre-period orders
``e_i = 1 + Poisson(λ_i)``; revenues ``y_i = d_i·a_i·m_i`` and ``x_i = e_i·a_i·m'_i`` with
independent mean-one log-normal noises ``m``. ``a`` is independent of ``λ``, so the true
ratio is ``E[y]/E[d] = E[a] = 50`` (times ``1 + lift`` in treatment), and the shared level
``a_i`` correlates the linearised post and pre terms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abkit.stats.estimators import (
    estimate_difference,
    ratio_cuped_theta,
    ratio_linearised,
)
from abkit.stats.readout import compare
from abkit.stats.sufficient import RatioStats

TRUE_RATIO = 50.0


def _units(rng: np.random.Generator, shape: tuple[int, ...], lift: float = 0.0):
    """Per-unit ``(y, d, x, e)`` arrays of the model in the module docstring."""
    a = rng.gamma(2.0, 25.0, shape)
    lam = rng.gamma(2.0, 1.0, shape)
    d = 1.0 + rng.poisson(lam)
    e = 1.0 + rng.poisson(lam)
    sigma = 0.3
    y = d * a * rng.lognormal(-(sigma**2) / 2, sigma, shape) * (1.0 + lift)
    x = e * a * rng.lognormal(-(sigma**2) / 2, sigma, shape)
    return y, d, x, e


def _arm_stats(y, d, x, e) -> list[RatioStats]:
    """One RatioStats per row (simulation) from ``(S, n)`` arrays, sums vectorised."""
    sums = {
        "num_sum": y.sum(1),
        "num_sum_sq": (y * y).sum(1),
        "den_sum": d.sum(1),
        "den_sum_sq": (d * d).sum(1),
        "num_den_sum": (y * d).sum(1),
        "pre_num_sum": x.sum(1),
        "pre_num_sum_sq": (x * x).sum(1),
        "pre_den_sum": e.sum(1),
        "pre_den_sum_sq": (e * e).sum(1),
        "pre_num_pre_den_sum": (x * e).sum(1),
        "pre_num_num_sum": (x * y).sum(1),
        "pre_num_den_sum": (x * d).sum(1),
        "pre_den_num_sum": (e * y).sum(1),
        "pre_den_den_sum": (e * d).sum(1),
    }
    n = y.shape[1]
    return [RatioStats(n=n, **{k: float(v[s]) for k, v in sums.items()}) for s in range(y.shape[0])]


def _row_level(arms):
    """The estimator computed from rows: linearised terms, pooled θ, adjusted ratios."""
    lin = []
    for y, d, x, e in arms:
        r, r0 = y.sum() / d.sum(), x.sum() / e.sum()
        u = (y - r * d) / d.mean()
        v = (x - r0 * e) / e.mean()
        lin.append((r, r0, u, v, e.sum()))
    num = sum(((u - u.mean()) * (v - v.mean())).sum() for _, _, u, v, _ in lin)
    den = sum(((v - v.mean()) ** 2).sum() for _, _, u, v, _ in lin)
    theta = num / den
    r0_pool = sum(a[2].sum() for a in arms) / sum(a[3].sum() for a in arms)
    means = [r - theta * (r0 - r0_pool) for r, r0, _, _, _ in lin]
    var_diff = sum(np.var(u - theta * v, ddof=1) / u.size for _, _, u, v, _ in lin)
    raw = sum(np.var(u, ddof=1) / u.size for _, _, u, _, _ in lin)
    return theta, means, var_diff, 1.0 - var_diff / raw


# ----------------------------------------------------------------- exactness
def test_matches_row_level_computation():
    rng = np.random.default_rng(11)
    arms = [tuple(a[0] for a in _units(rng, (1, n), lift)) for n, lift in ((700, 0), (900, 0.1))]
    c, t = (RatioStats.from_values(*a) for a in arms)
    diff = estimate_difference(c, t, metric_type="ratio", cuped=True)
    theta, (m_c, m_t), var_diff, reduction = _row_level(arms)
    assert diff.cuped and diff.df is None and diff.distribution == "normal"
    assert diff.theta == pytest.approx(theta, rel=1e-9)
    assert ratio_cuped_theta(c, t) == pytest.approx(theta, rel=1e-9)
    assert diff.control_mean == pytest.approx(m_c, rel=1e-10)
    assert diff.treatment_mean == pytest.approx(m_t, rel=1e-10)
    assert diff.se_abs**2 == pytest.approx(var_diff, rel=1e-9)
    assert diff.variance_reduction == pytest.approx(reduction, rel=1e-9)
    # the per-arm variances and their covariance reproduce Var(Δ) (what Fieller uses)
    var_from_parts = diff.var_control_mean + diff.var_treatment_mean - 2 * diff.cov_means
    assert var_from_parts == pytest.approx(var_diff, rel=1e-9)
    assert diff.cov_means > 0 and theta > 0.3


def test_covariance_of_adjusted_means_matches_bootstrap_free_algebra():
    """Var(m_c), Var(m_t), Cov(m_c, m_t) from first principles, arms independent:
    m_c = R_c - θω_t(R₀_c - R₀_t), m_t = R_t - θω_c(R₀_t - R₀_c), ω = pre-denominator share."""
    rng = np.random.default_rng(5)
    arms = [tuple(a[0] for a in _units(rng, (1, n))) for n in (500, 1500)]
    c, t = (RatioStats.from_values(*a) for a in arms)
    diff = estimate_difference(c, t, metric_type="ratio", cuped=True)
    th = diff.theta
    (_, _, uu_c, vv_c, uv_c), (_, _, uu_t, vv_t, uv_t) = ratio_linearised(c), ratio_linearised(t)
    w_c = c.pre_den_sum / (c.pre_den_sum + t.pre_den_sum)
    w_t = 1 - w_c
    # Cov(R_c, R₀_c) ≈ s_uv/n etc.: a matrix product over the independent arms
    cov_c = np.array([[uu_c, uv_c], [uv_c, vv_c]]) / c.n
    cov_t = np.array([[uu_t, uv_t], [uv_t, vv_t]]) / t.n
    # loadings of (m_c, m_t) on (R_c, R₀_c) and (R_t, R₀_t)
    load_c = np.array([[1.0, -th * w_t], [0.0, th * w_c]])
    load_t = np.array([[0.0, th * w_t], [1.0, -th * w_c]])
    sigma = load_c @ cov_c @ load_c.T + load_t @ cov_t @ load_t.T
    assert diff.var_control_mean == pytest.approx(sigma[0, 0], rel=1e-9)
    assert diff.var_treatment_mean == pytest.approx(sigma[1, 1], rel=1e-9)
    assert diff.cov_means == pytest.approx(sigma[0, 1], rel=1e-9)


def test_absent_covariate_equals_unadjusted_readout():
    rng = np.random.default_rng(3)
    (y, d, *_), (y2, d2, *_) = (tuple(a[0] for a in _units(rng, (1, 400))) for _ in range(2))
    c, t = RatioStats.from_values(y, d), RatioStats.from_values(y2 * 1.05, d2)
    raw = compare(c, t, metric_type="ratio")
    asked = compare(c, t, metric_type="ratio", cuped=True)
    assert not asked.cuped and asked.variance_reduction is None
    assert "no pre-period covariate" in asked.note
    for name in ("control_mean", "treatment_mean", "abs_lift", "p_value"):
        assert getattr(asked, name) == getattr(raw, name)
    assert asked.abs_ci == raw.abs_ci and asked.rel_ci == raw.rel_ci
    with pytest.raises(ValueError, match="pre-period numerator and denominator"):
        estimate_difference(c, t, metric_type="ratio", cuped=True)


def _orthogonal_pre(rng, y, d):
    """A pre-period whose linearised term is exactly uncorrelated with the post term:
    ``e = 1`` so ``v = x - x̄``, and ``x`` is a random vector with its projection on the
    centred ``u`` removed."""
    r = y.sum() / d.sum()
    u = (y - r * d) / d.mean()
    uc = u - u.mean()
    z = rng.normal(size=y.size)
    z = z - z.mean()
    z = z - uc * (z @ uc) / (uc @ uc)
    return 10.0 + z, np.ones_like(y)


@pytest.mark.parametrize("kind", ["uncorrelated", "constant pre-period ratio"])
def test_uninformative_covariate_equals_unadjusted_readout(kind):
    rng = np.random.default_rng(17)
    arms = []
    for lift in (0.0, 0.08):
        y, d, x, e = (a[0] for a in _units(rng, (1, 600), lift))
        if kind == "uncorrelated":
            x, e = _orthogonal_pre(rng, y, d)
        else:  # x = 3e: v ≡ 0, no information at all
            x = 3.0 * e
        arms.append(RatioStats.from_values(y, d, x, e))
    c, t = arms
    raw = compare(c.without_covariate(), t.without_covariate(), metric_type="ratio")
    adj = compare(c, t, metric_type="ratio", cuped=True)
    diff = estimate_difference(c, t, metric_type="ratio", cuped=True)
    assert adj.cuped and abs(diff.theta) < 1e-12
    assert abs(adj.variance_reduction) < 1e-12
    assert diff.cov_means == pytest.approx(0.0, abs=1e-15)
    for name in ("control_mean", "treatment_mean", "abs_lift", "p_value", "rel_lift"):
        assert getattr(adj, name) == pytest.approx(getattr(raw, name), rel=1e-10)
    for got, want in zip((*adj.abs_ci, *adj.rel_ci), (*raw.abs_ci, *raw.rel_ci), strict=True):
        assert got == pytest.approx(want, rel=1e-9)


def test_sufficient_stats_add_and_validate():
    rng = np.random.default_rng(2)
    y, d, x, e = (a[0] for a in _units(rng, (1, 50)))
    whole = RatioStats.from_values(y, d, x, e)
    parts = RatioStats.from_values(y[:20], d[:20], x[:20], e[:20]) + RatioStats.from_values(
        y[20:], d[20:], x[20:], e[20:]
    )
    for name in ("pre_num_num_sum", "pre_den_den_sum", "pre_num_pre_den_sum", "num_den_sum"):
        assert getattr(parts, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    assert whole.has_covariate and not whole.without_covariate().has_covariate
    assert whole.pre_ratio == pytest.approx(x.sum() / e.sum())
    with pytest.raises(ValueError, match="together"):
        RatioStats(2, 1.0, 1.0, 2.0, 2.0, 1.0, pre_num_sum=1.0)
    with pytest.raises(ValueError, match="together"):
        RatioStats.from_values(y, d, pre_num=x)
    with pytest.raises(ValueError, match="with and without"):
        whole + whole.without_covariate()
    # old positional construction is unchanged
    assert RatioStats(2, 1.0, 1.0, 2.0, 2.0, 1.0).has_covariate is False


def test_zero_pre_period_denominator_means_no_adjustment():
    rng = np.random.default_rng(4)
    y, d, *_ = (a[0] for a in _units(rng, (1, 200)))
    zero = np.zeros_like(y)
    c = RatioStats.from_values(y, d, zero, zero)
    t = RatioStats.from_values(y * 1.1, d, zero, zero)
    diff = estimate_difference(c, t, metric_type="ratio", cuped=True)
    raw = estimate_difference(c, t, metric_type="ratio")
    assert diff.theta == 0.0 and diff.variance_reduction == 0.0
    assert diff.abs_diff == pytest.approx(raw.abs_diff) and diff.se_abs == pytest.approx(raw.se_abs)


# ----------------------------------------------------------------- simulations
SIMS, N_ARM = 3000, 300


@pytest.fixture(scope="module")
def aa():
    """SIMS A/A experiments; returns per-experiment raw and CUPED differences and ρ²."""
    rng = np.random.default_rng(20240601)
    c_units = _units(rng, (SIMS, N_ARM))
    t_units = _units(rng, (SIMS, N_ARM))
    cs, ts = _arm_stats(*c_units), _arm_stats(*t_units)
    raw = [estimate_difference(c, t, metric_type="ratio") for c, t in zip(cs, ts, strict=True)]
    adj = [compare(c, t, metric_type="ratio", cuped=True) for c, t in zip(cs, ts, strict=True)]
    # population correlation of the linearised terms, from all control units pooled
    y, d, x, e = (a.ravel() for a in c_units)
    u = y - (y.sum() / d.sum()) * d
    v = x - (x.sum() / e.sum()) * e
    rho2 = float(np.corrcoef(u, v)[0, 1] ** 2)
    return raw, adj, rho2


def test_aa_false_positive_rate(aa):
    _, adj, _ = aa
    assert all(r.status == "ok" and r.cuped for r in adj)
    fpr = np.mean([r.p_value < 0.05 for r in adj])
    # 3000 experiments: binomial SE 0.004, so [0.04, 0.06] is about ±2.5 SE
    assert 0.04 <= fpr <= 0.06, fpr


def test_aa_variance_reduced_by_squared_correlation(aa):
    raw, adj, rho2 = aa
    assert 0.2 < rho2 < 0.8  # the model gives a useful but imperfect covariate
    raw_var = np.var([r.abs_diff for r in raw])
    adj_var = np.var([r.abs_lift for r in adj])
    achieved = 1.0 - adj_var / raw_var
    # Observed reduction across 3000 experiments vs the theoretical ρ²: tolerance 0.04
    # (the Monte-Carlo SE of the variance ratio is about 0.015 here).
    assert achieved == pytest.approx(rho2, abs=0.04), (achieved, rho2)
    reported = np.mean([r.variance_reduction for r in adj])
    assert reported == pytest.approx(rho2, abs=0.02), (reported, rho2)
    # the reported standard error is calibrated: mean se² matches the empirical variance
    mean_se2 = np.mean([((r.abs_ci.upper - r.abs_ci.lower) / (2 * 1.959964)) ** 2 for r in adj])
    assert mean_se2 == pytest.approx(adj_var, rel=0.08)


@pytest.fixture(scope="module")
def ab():
    rng = np.random.default_rng(777)
    lift = 0.04
    cs = _arm_stats(*_units(rng, (SIMS, N_ARM)))
    ts = _arm_stats(*_units(rng, (SIMS, N_ARM), lift))
    diffs = [
        estimate_difference(c, t, metric_type="ratio", cuped=True)
        for c, t in zip(cs, ts, strict=True)
    ]
    results = [compare(c, t, metric_type="ratio", cuped=True) for c, t in zip(cs, ts, strict=True)]
    return lift, diffs, results


def test_ab_adjusted_estimates_unbiased(ab):
    lift, diffs, _ = ab
    truth = {
        "control_mean": TRUE_RATIO,
        "treatment_mean": TRUE_RATIO * (1 + lift),
        "abs_diff": TRUE_RATIO * lift,
    }
    for name, want in truth.items():
        values = np.array([getattr(df, name) for df in diffs])
        se = values.std(ddof=1) / math.sqrt(values.size)
        assert abs(values.mean() - want) < 3 * se, (name, values.mean(), want, se)


def test_ab_intervals_cover_true_lifts(ab):
    """Coverage of the absolute and the Fieller relative interval (the latter uses the
    covariance of the two adjusted arm means)."""
    lift, _, results = ab
    abs_cover = np.mean([r.abs_ci.lower <= TRUE_RATIO * lift <= r.abs_ci.upper for r in results])
    rel_cover = np.mean([r.rel_ci.lower <= lift <= r.rel_ci.upper for r in results])
    # nominal 0.95, binomial SE 0.004 over 3000 experiments
    assert 0.935 <= abs_cover <= 0.965, abs_cover
    assert 0.935 <= rel_cover <= 0.965, rel_cover
