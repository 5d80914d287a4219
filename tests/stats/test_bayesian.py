"""Bayesian readouts: closed forms against Monte Carlo/quadrature, and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from abkit.stats.bayesian import bayesian_readout, beta_binomial_readout, normal_expected_loss
from abkit.stats.estimators import estimate_difference
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats


def _prop(n: int, x: int) -> MeanStats:
    return MeanStats(n=n, sum=x, sum_sq=x)


def test_flat_prior_matches_frequentist_quantities():
    c, t = _prop(8000, 800), _prop(8000, 870)
    d = estimate_difference(c, t, metric_type="proportion")
    b = bayesian_readout(d)
    fixed = compare(c, t, metric_type="proportion")
    one_sided = compare(c, t, metric_type="proportion", alternative="larger")
    # P(beat) = 1 - one-sided p-value; credible = Wald interval; relative = Fieller.
    assert b.prob_beat_control == pytest.approx(1 - one_sided.p_value, rel=1e-12)
    assert tuple(b.abs_ci) == pytest.approx(tuple(fixed.abs_ci), rel=1e-12)
    assert tuple(b.rel_ci) == pytest.approx(tuple(fixed.rel_ci), rel=1e-9)
    assert b.rel_lift == pytest.approx(fixed.rel_lift, rel=1e-12)
    assert b.significant == fixed.significant
    lower = bayesian_readout(d, higher_is_better=False)
    assert lower.prob_beat_control == pytest.approx(1 - b.prob_beat_control)
    assert lower.expected_loss_treatment == pytest.approx(b.expected_loss_control)


def test_probability_and_loss_against_monte_carlo():
    rng = np.random.default_rng(11)
    c = MeanStats.from_values(rng.gamma(2.0, 10.0, 4000))
    t = MeanStats.from_values(rng.gamma(2.0, 10.2, 4000))
    d = estimate_difference(c, t, metric_type="mean")
    b = bayesian_readout(d, prior_sd=0.5)
    # With a flat prior on μ_c the data inform δ only through δ̂ ~ N(δ, se²), so the
    # posterior of δ is the textbook normal-normal update; sample it directly.
    prec = 1 / d.se_abs**2 + 1 / 0.25
    mean = (d.abs_diff / d.se_abs**2) / prec
    draws = rng.normal(mean, math.sqrt(1 / prec), 2_000_000)
    assert b.abs_lift == pytest.approx(mean, rel=1e-9)
    assert b.prob_beat_control == pytest.approx(np.mean(draws > 0), abs=2e-3)
    assert b.expected_loss_treatment == pytest.approx(np.mean(np.maximum(-draws, 0)), rel=2e-2)
    assert b.expected_loss_control == pytest.approx(np.mean(np.maximum(draws, 0)), rel=2e-3)
    # Shrinkage: the sceptical prior pulls the lift towards 0 and narrows the interval.
    flat = bayesian_readout(d)
    assert abs(b.abs_lift) < abs(flat.abs_lift)
    assert b.abs_ci.upper - b.abs_ci.lower < flat.abs_ci.upper - flat.abs_ci.lower


@pytest.mark.parametrize(
    ("m", "s"), [(0.0, 1.0), (1.3, 0.7), (-2.0, 0.5), (40.0, 1.0), (-40.0, 1.0)]
)
def test_normal_expected_loss_by_quadrature(m, s):
    lt, lc = normal_expected_loss(m, s)
    # Finite ranges around the mass, so quadrature cannot miss a far-away peak.
    lo, hi = min(m, 0.0) - 15 * s, max(m, 0.0) + 15 * s
    kw = {"epsabs": 0, "epsrel": 1e-10, "limit": 200}
    qt = integrate.quad(
        lambda x: -x * sps.norm.pdf(x, m, s), lo, 0, points=[min(m, 0.0)] if m < 0 else None, **kw
    )[0]
    qc = integrate.quad(
        lambda x: x * sps.norm.pdf(x, m, s), 0, hi, points=[m] if m > 0 else None, **kw
    )[0]
    assert lt >= 0 and lc >= 0
    assert lt == pytest.approx(qt, rel=1e-7, abs=1e-300)
    assert lc == pytest.approx(qc, rel=1e-7, abs=1e-300)
    assert lc - lt == pytest.approx(m)


def _evan_miller_prob(ac: int, bc: int, at: int, bt: int) -> float:
    """Closed form P(p_t > p_c) for integer a_t (Evan Miller, 'Formulas for Bayesian A/B testing')."""
    i = np.arange(at)
    terms = (
        special_betaln(ac + i, bc + bt)
        - np.log(bt + i)
        - special_betaln(1 + i, bt)
        - special_betaln(ac, bc)
    )
    return float(np.exp(terms).sum())


def special_betaln(a, b):  # type: ignore[no-untyped-def]
    from scipy.special import betaln

    return betaln(a, b)


def test_beta_binomial_against_closed_form_and_monte_carlo():
    c, t = _prop(1000, 100), _prop(1000, 123)
    b = beta_binomial_readout(c, t)
    exact = _evan_miller_prob(1 + 100, 1 + 900, 1 + 123, 1 + 877)
    assert b.prob_beat_control == pytest.approx(exact, rel=1e-8)
    rng = np.random.default_rng(1)
    xc, xt = rng.beta(101, 901, 1_000_000), rng.beta(124, 878, 1_000_000)
    assert b.expected_loss_treatment == pytest.approx(np.mean(np.maximum(xc - xt, 0)), rel=1e-2)
    assert b.expected_loss_control == pytest.approx(np.mean(np.maximum(xt - xc, 0)), rel=1e-2)
    assert tuple(b.abs_ci) == pytest.approx(tuple(np.quantile(xt - xc, [0.025, 0.975])), abs=5e-4)
    # Same seed, same numbers; and close to the normal approximation at this size.
    assert beta_binomial_readout(c, t) == b
    normal = bayesian_readout(estimate_difference(c, t, metric_type="proportion"))
    assert b.prob_beat_control == pytest.approx(normal.prob_beat_control, abs=0.01)
    # Zero conversions in both arms is fine for the Beta model (the prior keeps it proper).
    z = beta_binomial_readout(_prop(50, 0), _prop(50, 0))
    assert z.prob_beat_control == pytest.approx(0.5, abs=1e-9)


def test_large_counts_stay_finite():
    b = beta_binomial_readout(_prop(2_000_000, 200_000), _prop(2_000_000, 201_500))
    assert 0.99 < b.prob_beat_control <= 1.0
    d = estimate_difference(
        _prop(10**8, 10**7), _prop(10**8, 10**7 + 200_000), metric_type="proportion"
    )
    n = bayesian_readout(d)
    assert n.prob_beat_control == 1.0
    assert n.expected_loss_treatment >= 0.0 and math.isfinite(n.expected_loss_treatment)
    for value in n.to_dict().values():
        assert not (isinstance(value, float) and not math.isfinite(value))


def test_edge_cases():
    d = estimate_difference(_prop(100, 0), _prop(100, 5), metric_type="proportion")
    b = bayesian_readout(d)
    assert b.status == "ok" and b.rel_ci is None and not b.rel_ci_bounded
    assert b.expected_loss_treatment_rel is None
    assert bayesian_readout(d, prior_sd_relative=0.1).status == "not enough data"
    lift = compare(_prop(100, 10), _prop(100, 15), metric_type="proportion", method="bayesian")
    assert lift.p_value is None and lift.details.prob_beat_control > 0.5


def test_calibration_by_simulation():
    """Effects drawn from the prior: P(beat) is calibrated and 95% intervals cover 95%.

    The sample is small enough that the prior matters (shrinkage ≈ 0.4), so the same
    check run on the flat-prior probabilities fails: the test has teeth.
    """
    rng = np.random.default_rng(2024)
    sims, n, p_c, prior_sd = 4000, 1500, 0.10, 0.01
    true = rng.normal(0.0, prior_sd, sims)
    xc = rng.binomial(n, p_c, sims)
    xt = rng.binomial(n, np.clip(p_c + true, 0, 1), sims)
    probs, covered = np.empty(sims), np.empty(sims, dtype=bool)
    for i in range(sims):
        d = estimate_difference(
            _prop(n, int(xc[i])), _prop(n, int(xt[i])), metric_type="proportion"
        )
        b = bayesian_readout(d, prior_sd=prior_sd)
        probs[i] = b.prob_beat_control
        covered[i] = b.abs_ci.lower <= true[i] <= b.abs_ci.upper
    assert 0.94 <= covered.mean() <= 0.96

    def worst_bin_gap(p: np.ndarray) -> float:
        bins = np.digitize(p, [0.1, 0.3, 0.5, 0.7, 0.9])
        gaps = [
            abs(np.mean(true[bins == k] > 0) - p[bins == k].mean())
            for k in range(6)
            if (bins == k).sum() >= 300
        ]
        return max(gaps)

    assert worst_bin_gap(probs) < 0.04
    # Flat prior on the same data: P(beat) = Φ(δ̂/se), over-confident here.
    pc, pt = xc / n, xt / n
    flat = sps.norm.cdf((pt - pc) / np.sqrt(pc * (1 - pc) / n + pt * (1 - pt) / n))
    assert worst_bin_gap(flat) > 0.06


def test_cuped_and_ratio_differences_carry_through():
    rng = np.random.default_rng(12)
    x_c, x_t = rng.gamma(2.0, 5.0, 3000), rng.gamma(2.0, 5.0, 3000)
    y_c = 0.8 * x_c + rng.normal(0, 3, 3000)
    y_t = 0.8 * x_t + rng.normal(0.6, 3, 3000)
    c, t = MeanStats.from_values(y_c, x_c), MeanStats.from_values(y_t, x_t)
    d = estimate_difference(c, t, metric_type="mean", cuped=True)
    assert d.cov_means != 0
    b = bayesian_readout(d)
    fixed = compare(c, t, metric_type="mean", cuped=True)
    # Flat prior: the relative credible interval is the fixed-horizon Fieller interval
    # up to the normal-vs-t quantile (the Bayesian readout uses the normal).
    z_fixed = compare_difference_normal(d)
    assert tuple(b.rel_ci) == pytest.approx(tuple(z_fixed), rel=1e-9)
    assert b.rel_lift == pytest.approx(fixed.rel_lift, rel=1e-12)
    from abkit.stats.sufficient import RatioStats

    den_c, den_t = rng.poisson(2, 4000) + 1, rng.poisson(2, 4000) + 1
    rc = RatioStats.from_values(rng.gamma(2, 5, 4000) * den_c, den_c)
    rt = RatioStats.from_values(rng.gamma(2, 5.3, 4000) * den_t, den_t)
    ratio = compare(rc, rt, metric_type="ratio", method="bayesian")
    plain = compare(rc, rt, metric_type="ratio")
    assert tuple(ratio.rel_ci) == pytest.approx(tuple(plain.rel_ci), rel=1e-9)
    assert ratio.details.prob_beat_control == pytest.approx(
        1 - compare(rc, rt, metric_type="ratio", alternative="larger").p_value, rel=1e-12
    )


def compare_difference_normal(d):  # type: ignore[no-untyped-def]
    """Fieller interval of the relative lift at the normal quantile, from readout's helper."""
    from abkit.stats.fieller import fieller_ratio_set

    ((lo, hi),) = fieller_ratio_set(
        d.control_mean,
        d.treatment_mean,
        d.var_control_mean,
        d.var_treatment_mean,
        d.cov_means,
        sps.norm.isf(0.025),
    )
    return (lo - 1, hi - 1)


def test_result_fields_are_plain_python_floats():
    """Results are JSON- and repr-friendly: no numpy scalar leaks into a field."""
    from dataclasses import fields

    from abkit.stats import MeanStats, compare

    c = MeanStats(n=11037, sum=104, sum_sq=104)
    t = MeanStats(n=11034, sum=189, sum_sq=189)
    result = compare(c, t, metric_type="proportion", method="bayesian").details
    leaked = [f.name for f in fields(result) if type(getattr(result, f.name)).__module__ == "numpy"]
    assert leaked == []


def test_bayesian_flat_prior_aa_false_positive_rate():
    rng = np.random.default_rng(405)
    sims, n, p = 4_000, 5_000, 0.06
    k_c, k_t = rng.binomial(n, p, sims), rng.binomial(n, p, sims)
    flags = []
    for a, b in zip(k_c, k_t, strict=True):
        d = estimate_difference(
            MeanStats(n, float(a), float(a)),
            MeanStats(n, float(b), float(b)),
            metric_type="proportion",
        )
        flags.append(bayesian_readout(d).significant)
    # 4,000 tests: sd 0.0034, so [0.04, 0.06] is about ±2.9 sd.
    assert 0.04 <= np.mean(flags) <= 0.06
