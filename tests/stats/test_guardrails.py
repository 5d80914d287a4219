"""Non-inferiority guardrails: agreement with statsmodels, direction, outcomes, simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.weightstats import ttest_ind

from abkit.stats.estimators import estimate_difference
from abkit.stats.guardrails import guardrail, noninferiority
from abkit.stats.sufficient import MeanStats, RatioStats


def _prop(n: int, x: int) -> MeanStats:
    return MeanStats(n=n, sum=x, sum_sq=x)


def test_absolute_margin_matches_statsmodels_welch_with_value():
    rng = np.random.default_rng(3)
    c, t = rng.normal(10, 2, 400), rng.normal(9.9, 2.5, 500)
    d = estimate_difference(MeanStats.from_values(c), MeanStats.from_values(t), metric_type="mean")
    g = noninferiority(d, margin=0.5, margin_type="absolute")
    # H0: μ_t - μ_c <= -0.5, Welch t with the same df.
    _, p_sm, _ = ttest_ind(t, c, alternative="larger", usevar="unequal", value=-0.5)
    assert g.p_value == pytest.approx(p_sm, rel=1e-9)
    assert g.status == ("pass" if p_sm < 0.05 else "inconclusive")
    # Lower is better (say, latency): H0: μ_t - μ_c >= +0.5.
    g2 = noninferiority(d, margin=0.5, margin_type="absolute", higher_is_better=False)
    _, p_sm2, _ = ttest_ind(t, c, alternative="smaller", usevar="unequal", value=0.5)
    assert g2.p_value == pytest.approx(p_sm2, rel=1e-9)
    assert g2.margin_boundary == 0.5 and g.margin_boundary == -0.5
    assert g2.bound == g2.ci.upper and g.bound == g.ci.lower


def test_outcomes_and_their_evidence():
    base = _prop(50_000, 5_000)
    # Flat: passes a 3% relative margin.
    ok = guardrail(base, _prop(50_000, 5_010), metric_type="proportion", margin=0.03)
    assert ok.status == "pass" and ok.p_value < 0.05 and ok.bound > -0.03
    # 10% worse: fails a 3% margin: the whole interval is past the margin.
    bad = guardrail(base, _prop(50_000, 4_500), metric_type="proportion", margin=0.03)
    assert bad.status == "fail" and bad.ci.upper < -0.03 and bad.p_value_inferiority < 0.05
    assert bad.harmful
    # 2% worse with a 3% margin and this n: significantly harmful yet not a fail.
    mid = guardrail(
        _prop(400_000, 40_000), _prop(400_000, 39_200), metric_type="proportion", margin=0.03
    )
    assert mid.harmful and mid.status in ("pass", "inconclusive")
    # Too little data to decide either way.
    small = guardrail(_prop(500, 50), _prop(500, 48), metric_type="proportion", margin=0.03)
    assert small.status == "inconclusive"
    assert small.ci.lower < -0.03 < small.ci.upper
    # The relative bound is the inversion of the same statistic: it sits exactly where
    # the test switches from inconclusive to pass.
    d = estimate_difference(base, _prop(50_000, 5_010), metric_type="proportion")
    edge = -ok.bound
    assert noninferiority(d, margin=edge * 1.0001).status == "pass"
    assert noninferiority(d, margin=edge * 0.9999).status == "inconclusive"
    assert noninferiority(d, margin=edge).p_value == pytest.approx(0.05, rel=1e-6)


def test_lower_is_better_flips_direction():
    c, t = _prop(60_000, 3_000), _prop(60_000, 3_600)  # error rate up 20%
    worse = guardrail(c, t, metric_type="proportion", margin=0.05, higher_is_better=False)
    assert worse.status == "fail" and worse.margin_boundary == 0.05
    better = guardrail(t, c, metric_type="proportion", margin=0.05, higher_is_better=False)
    assert better.status == "pass"


def test_not_enough_data_and_bad_inputs():
    assert (
        guardrail(None, _prop(10, 1), metric_type="proportion", margin=0.1).status
        == "not enough data"
    )
    assert (
        guardrail(_prop(1, 1), _prop(10, 1), metric_type="proportion", margin=0.1).status
        == "not enough data"
    )
    neg = estimate_difference(
        MeanStats.from_values([-1.0, -2.0, -3.0]),
        MeanStats.from_values([-1.0, -2.5, -3.0]),
        metric_type="mean",
    )
    r = noninferiority(neg, margin=0.1)
    assert r.status == "not enough data" and "absolute" in r.note
    assert noninferiority(neg, margin=0.5, margin_type="absolute").status in (
        "inconclusive",
        "pass",
        "fail",
    )
    with pytest.raises(ValueError):
        noninferiority(neg, margin=-0.1)
    result = guardrail(_prop(0, 0), _prop(0, 0), metric_type="proportion", margin=0.1)
    for value in result.to_dict().values():
        assert not (isinstance(value, float) and not math.isfinite(value))
    assert "<table" in result._repr_html_()


@pytest.mark.parametrize(
    ("margin_type", "higher"), [("relative", True), ("relative", False), ("absolute", True)]
)
def test_pass_rate_at_the_margin_is_alpha(margin_type, higher):
    """True effect exactly at the margin: pass rate ≈ α (never much above)."""
    rng = np.random.default_rng(99)
    sims, n, p_c, margin = 3000, 20_000, 0.10, 0.05
    s = 1 if higher else -1
    p_t = p_c * (1 - s * margin) if margin_type == "relative" else p_c - s * 0.005
    m = margin if margin_type == "relative" else 0.005
    xc, xt = rng.binomial(n, p_c, sims), rng.binomial(n, p_t, sims)
    status = [
        guardrail(_prop(n, int(a)), _prop(n, int(b)), metric_type="proportion", margin=m,
                  margin_type=margin_type, higher_is_better=higher).status
        for a, b in zip(xc, xt, strict=False)
    ]  # fmt: skip
    pass_rate = np.mean(np.array(status) == "pass")
    fail_rate = np.mean(np.array(status) == "fail")
    # Binomial sd at 3,000 sims is 0.004; the test is exact only asymptotically.
    assert 0.035 <= pass_rate <= 0.06
    assert 0.035 <= fail_rate <= 0.065


def test_ratio_guardrail_and_power_when_flat():
    rng = np.random.default_rng(5)

    def arm(scale):  # type: ignore[no-untyped-def]
        d = rng.poisson(2.0, 30_000) + 1
        return RatioStats.from_values(rng.gamma(2.0, 10 * scale, d.size) * d, d)

    g = guardrail(arm(1.0), arm(1.0), metric_type="ratio", margin=0.05)
    assert g.status == "pass" and g.metric_type == "ratio"
    assert g.bound > -0.05 and g.ci.lower < g.estimate < g.ci.upper
    assert g.statistic > sps.norm.isf(0.05)
    bad = guardrail(arm(1.0), arm(0.85), metric_type="ratio", margin=0.05)
    assert bad.status == "fail" and bad.ci.upper < -0.05


@settings(max_examples=80, deadline=None)
@given(
    mean_c=st.floats(1.0, 100.0),
    rel=st.floats(-0.3, 0.3),
    se_c=st.floats(0.01, 5.0),
    se_t=st.floats(0.01, 5.0),
    margin=st.floats(0.005, 0.3),
    higher=st.booleans(),
    margin_type=st.sampled_from(["relative", "absolute"]),
)
def test_property_status_matches_the_bounds(mean_c, rel, se_c, se_t, margin, higher, margin_type):
    from abkit.stats.estimators import Difference

    mean_t = mean_c * (1 + rel)
    d = Difference(
        control_mean=mean_c, treatment_mean=mean_t, abs_diff=mean_t - mean_c,
        se_abs=math.hypot(se_c, se_t), var_control_mean=se_c**2, var_treatment_mean=se_t**2,
        cov_means=0.0, df=None, metric_type="mean", n_control=1000, n_treatment=1000,
    )  # fmt: skip
    m = margin if margin_type == "relative" else margin * mean_c
    g = noninferiority(d, margin=m, margin_type=margin_type, higher_is_better=higher)
    assert g.status in ("pass", "fail", "inconclusive")
    assert (g.p_value < 0.05) == (g.status == "pass")
    assert (g.p_value_inferiority < 0.05) == (g.status == "fail")
    lo, hi = g.ci
    boundary = g.margin_boundary
    if abs(abs(g.statistic) - sps.norm.isf(0.05)) < 1e-7:
        return
    harmful_end, good_end = (lo, hi) if higher else (hi, lo)
    if harmful_end is not None:
        # pass <=> the harmful-side bound is inside the margin
        inside = harmful_end > boundary if higher else harmful_end < boundary
        assert inside == (g.status == "pass")
    if good_end is not None:
        beyond = good_end < boundary if higher else good_end > boundary
        assert beyond == (g.status == "fail")
