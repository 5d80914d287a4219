"""mSPRT: closed forms against numerical integration, boundaries, readouts and series."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps

from abkit.errors import NotEnoughDataError
from abkit.stats.estimators import estimate_difference
from abkit.stats.readout import compare
from abkit.stats.sequential import (
    always_valid_pvalue,
    log_mixture_lr,
    optimal_rho,
    sequential_boundary,
    sequential_readout,
    sequential_series,
    tau_for_mde,
)
from abkit.stats.sufficient import MeanStats


def _mixture_by_quadrature(theta_hat: float, v: float, tau: float, one_sided: bool) -> float:
    """∫ L(θ)/L(0) dH(θ) numerically, H = N(0, τ²) (or its half on θ > 0, doubled)."""

    def integrand(theta: float) -> float:
        lr = math.exp((theta * theta_hat - theta * theta / 2.0) / v)
        return lr * sps.norm.pdf(theta, 0.0, tau) * (2.0 if one_sided else 1.0)

    lo = 0.0 if one_sided else -np.inf
    return integrate.quad(integrand, lo, np.inf, epsabs=0, epsrel=1e-11)[0]


@pytest.mark.parametrize(
    ("theta_hat", "v", "tau"),
    [(0.01, 1e-5, 0.005), (-0.3, 0.04, 0.5), (2.0, 1.0, 0.3), (0.0, 2.0, 3.0)],
)
def test_closed_form_matches_numerical_mixture(theta_hat, v, tau):
    z, rho = theta_hat / math.sqrt(v), tau * tau / v
    two = _mixture_by_quadrature(theta_hat, v, tau, one_sided=False)
    one = _mixture_by_quadrature(theta_hat, v, tau, one_sided=True)
    assert math.exp(float(log_mixture_lr(z, rho))) == pytest.approx(two, rel=1e-8)
    assert math.exp(float(log_mixture_lr(z, rho, "larger"))) == pytest.approx(one, rel=1e-8)
    # "smaller" mirrors "larger".
    assert float(log_mixture_lr(-z, rho, "smaller")) == pytest.approx(
        float(log_mixture_lr(z, rho, "larger"))
    )


@pytest.mark.parametrize("alternative", ["two-sided", "larger"])
@pytest.mark.parametrize("rho", [0.5, 8.2, 300.0])
def test_boundary_is_where_p_equals_alpha(rho, alternative):
    c = float(sequential_boundary(rho, 0.05, alternative))
    assert float(always_valid_pvalue(c, rho, alternative)) == pytest.approx(0.05, rel=1e-9)
    assert float(always_valid_pvalue(c * 1.001, rho, alternative)) < 0.05
    assert float(always_valid_pvalue(c * 0.999, rho, alternative)) > 0.05
    if alternative == "larger":
        assert c < float(sequential_boundary(rho, 0.05))
    # Always wider than the fixed-horizon critical value.
    assert c > sps.norm.isf(0.025 if alternative == "two-sided" else 0.05)


def test_tau_default_is_width_optimal_at_the_planned_horizon():
    r = optimal_rho(0.05)
    assert r == pytest.approx(2 * math.log(20) + math.log1p(r))
    grid = np.linspace(1, 30, 20001)
    width = (1 + 1 / grid) * (2 * math.log(20) + np.log1p(grid))
    assert grid[np.argmin(width)] == pytest.approx(r, abs=2e-3)
    # At alpha 0.05 and 80% power the optimal tau is almost exactly the MDE.
    assert tau_for_mde(0.01) == pytest.approx(0.01, rel=0.03)


def test_readout_fields_and_agreement_with_compare():
    c = MeanStats(n=20000, sum=2000, sum_sq=2000)
    t = MeanStats(n=20000, sum=2150, sum_sq=2150)
    d = estimate_difference(c, t, metric_type="proportion")
    r = sequential_readout(d, mde=0.01)
    assert r.status == "ok" and r.tau_source == "mde"
    assert r.p_value == pytest.approx(float(always_valid_pvalue(d.abs_diff / d.se_abs, r.rho)))
    lo, hi = r.abs_ci
    assert lo == pytest.approx(d.abs_diff - r.boundary_z * d.se_abs)
    assert hi == pytest.approx(d.abs_diff + r.boundary_z * d.se_abs)
    # The relative interval excludes 0 exactly when the always-valid p < alpha.
    assert (r.rel_ci.lower > 0) == (r.p_value < 0.05) == r.significant
    lift = compare(c, t, metric_type="proportion", method="sequential", mde=0.01)
    assert lift.p_value == r.p_value and lift.abs_ci == r.abs_ci
    fixed = compare(c, t, metric_type="proportion")
    assert lift.p_value > fixed.p_value  # the price of always-valid inference
    for value in r.to_dict().values():
        assert not (isinstance(value, float) and not math.isfinite(value))


@pytest.mark.parametrize("alternative", ["larger", "smaller"])
def test_one_sided_readouts_are_half_open(alternative):
    c = MeanStats(n=5000, sum=500, sum_sq=500)
    t = MeanStats(n=5000, sum=580, sum_sq=580)
    r = sequential_readout(
        estimate_difference(c, t, metric_type="proportion"), alternative=alternative, tau=0.01
    )
    if alternative == "larger":
        assert r.abs_ci.upper is None and r.abs_ci.lower is not None
        assert (
            r.p_value
            < sequential_readout(
                estimate_difference(c, t, metric_type="proportion"), tau=0.01
            ).p_value
        )
    else:
        assert r.abs_ci.lower is None and r.p_value > 0.5


def test_p_value_consistency_at_every_relative_value():
    # For each r the relative sequence contains r iff the mSPRT of μ_t = (1+r)μ_c passes.
    c = MeanStats.from_values(np.random.default_rng(1).gamma(2.0, 5.0, 3000))
    t = MeanStats.from_values(np.random.default_rng(2).gamma(2.0, 5.5, 3000))
    d = estimate_difference(c, t, metric_type="mean")
    r = sequential_readout(d, tau=0.5)
    lo, hi = r.rel_ci
    for rel in (lo - 1e-6, lo + 1e-6, hi - 1e-6, hi + 1e-6):
        stat = (d.treatment_mean - (1 + rel) * d.control_mean) / math.sqrt(
            d.var_treatment_mean + (1 + rel) ** 2 * d.var_control_mean
        )
        assert (abs(stat) < r.boundary_z) == (lo < rel < hi)


def test_edge_cases_are_not_enough_data_not_nan():
    zero = MeanStats(n=100, sum=0, sum_sq=0)
    some = MeanStats(n=100, sum=10, sum_sq=10)
    d = estimate_difference(zero, some, metric_type="proportion")
    r = sequential_readout(d)  # default tau needs a non-zero control mean
    assert r.status == "not enough data" and r.p_value is None
    ok = sequential_readout(d, tau=0.05)
    assert ok.status == "ok" and ok.rel_ci is None and not ok.rel_ci_bounded
    s = sequential_series(
        [None, MeanStats(n=1, sum=0, sum_sq=0), MeanStats(n=200, sum=20, sum_sq=20)],
        [None, MeanStats(n=1, sum=1, sum_sq=1), MeanStats(n=200, sum=30, sum_sq=30)],
        metric_type="proportion",
    )
    assert [look.status for look in s.looks] == ["not enough data", "not enough data", "ok"]
    assert s.tau_source == "default 5% of control mean"
    frame = s.to_frame()
    assert list(frame["look"]) == [1, 2, 3]
    assert "abs_ci_lower" in frame.columns
    with pytest.raises(ValueError):
        sequential_readout(d, alpha=0.7)


def test_series_increments_equal_cumulative_and_running_summaries():
    rng = np.random.default_rng(3)
    days = [
        (
            MeanStats.from_values(rng.normal(10, 3, 400)),
            MeanStats.from_values(rng.normal(10.4, 3, 400)),
        )
        for _ in range(10)
    ]
    inc = sequential_series(
        [c for c, _ in days], [t for _, t in days], metric_type="mean", cumulative=False, tau=0.3
    )
    cum_c, cum_t = [days[0][0]], [days[0][1]]
    for c, t in days[1:]:
        cum_c.append(cum_c[-1] + c)
        cum_t.append(cum_t[-1] + t)
    cum = sequential_series(cum_c, cum_t, metric_type="mean", tau=0.3)
    assert [a.p_value for a in inc.looks] == pytest.approx([b.p_value for b in cum.looks])
    ps = [look.p_value for look in cum.looks]
    assert all(b <= a for a, b in itertools.pairwise(ps))  # running minimum
    widths = [look.abs_ci.upper - look.abs_ci.lower for look in cum.looks]
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(widths))  # running intersection
    assert cum.first_significant_look is not None
    assert cum.looks[cum.first_significant_look - 1].significant
    assert "<table" in cum._repr_html_()


@settings(max_examples=80, deadline=None)
@given(
    n_c=st.integers(50, 50_000),
    n_t=st.integers(50, 50_000),
    rate_c=st.floats(0.02, 0.9),
    lift=st.floats(-0.5, 0.5),
    tau=st.floats(1e-4, 0.2),
    alternative=st.sampled_from(["two-sided", "larger", "smaller"]),
)
def test_property_interval_agrees_with_p_value(n_c, n_t, rate_c, lift, tau, alternative):
    x_c = round(n_c * rate_c)
    x_t = min(n_t, max(0, round(n_t * rate_c * (1 + lift))))
    try:
        d = estimate_difference(
            MeanStats(n=n_c, sum=x_c, sum_sq=x_c),
            MeanStats(n=n_t, sum=x_t, sum_sq=x_t),
            metric_type="proportion",
        )
    except NotEnoughDataError:  # zero variance in both arms: covered elsewhere
        return
    r = sequential_readout(d, tau=tau, alternative=alternative)
    assert 0 < r.p_value <= 1
    lo, hi = r.abs_ci
    excludes = (lo is not None and lo > 0) or (hi is not None and hi < 0)
    # Tolerance only at the exact boundary, where rounding decides.
    if abs(abs(r.z) - r.boundary_z) > 1e-9:
        assert excludes == r.significant
        if r.rel_ci_bounded:
            rlo, rhi = r.rel_ci
            assert ((rlo is not None and rlo > 0) or (rhi is not None and rhi < 0)) == r.significant


def test_tau_out_of_scale_is_not_nan():
    d = estimate_difference(
        MeanStats(n=100, sum=10, sum_sq=10),
        MeanStats(n=100, sum=12, sum_sq=12),
        metric_type="proportion",
    )
    for tau in (1e-200, 1e200):
        r = sequential_readout(d, tau=tau)
        assert r.status == "not enough data" and "out of scale" in r.note
    tiny = sequential_readout(d, tau=1e-12)
    assert tiny.status == "ok" and tiny.p_value == 1.0
    for value in tiny.to_dict().values():
        assert not (isinstance(value, float) and not math.isfinite(value))


def test_cuped_covariance_enters_the_relative_sequence():
    rng = np.random.default_rng(12)
    x_c, x_t = rng.gamma(2.0, 5.0, 3000), rng.gamma(2.0, 5.0, 3000)
    c = MeanStats.from_values(0.8 * x_c + rng.normal(0, 3, 3000), x_c)
    t = MeanStats.from_values(0.8 * x_t + rng.normal(0.5, 3, 3000), x_t)
    d = estimate_difference(c, t, metric_type="mean", cuped=True)
    r = sequential_readout(d, tau=0.5)
    lo, hi = r.rel_ci
    for rel in (lo, hi):
        w = d.var_treatment_mean - 2 * (1 + rel) * d.cov_means + (1 + rel) ** 2 * d.var_control_mean
        stat = (d.treatment_mean - (1 + rel) * d.control_mean) / math.sqrt(w)
        assert abs(stat) == pytest.approx(r.boundary_z, rel=1e-9)
    raw = sequential_readout(estimate_difference(c, t, metric_type="mean"), tau=0.5)
    assert r.abs_ci.upper - r.abs_ci.lower < raw.abs_ci.upper - raw.abs_ci.lower
    g = guardrail_from_cuped(c, t)
    assert g.status == "pass"


def guardrail_from_cuped(c, t):  # type: ignore[no-untyped-def]
    from abkit.stats.guardrails import guardrail

    return guardrail(c, t, metric_type="mean", margin=0.02, cuped=True)
