"""Fixed-horizon readouts: agreement with statsmodels/scipy, published examples, Fieller."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from abkit.results import Interval
from abkit.stats._common import NOT_ENOUGH_DATA
from abkit.stats.fieller import fieller_ratio_set
from abkit.stats.lift import LiftResult
from abkit.stats.outliers import Cap, resolve_cap
from abkit.stats.readout import compare, compare_variants, results_table
from abkit.stats.sufficient import MeanStats, RatioStats

REL = 1e-6  # the bar for p-values and interval bounds


def from_moments(n: int, mean: float, sd: float) -> MeanStats:
    """MeanStats with a given sample mean and (n-1) standard deviation."""
    return MeanStats(n=n, sum=n * mean, sum_sq=(n - 1) * sd * sd + n * mean * mean)


def prop(n: int, k: int) -> MeanStats:
    return MeanStats(n=n, sum=float(k), sum_sq=float(k))


def assert_json_clean(result: LiftResult) -> None:
    json.dumps(result.to_dict(), allow_nan=False)


def in_set(x: float, intervals) -> bool:
    return any(
        (lo is None or lo <= x) and (hi is None or x <= hi)
        for lo, hi in intervals  # None marks an unbounded end
    )


# ----------------------------------------------------------------- statsmodels / scipy


PROPORTION_CASES = [(1000, 100, 1100, 140), (50_000, 1510, 49_800, 1622), (40, 3, 45, 11)]


@pytest.mark.parametrize(("n_c", "k_c", "n_t", "k_t"), PROPORTION_CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_proportion_matches_statsmodels(n_c, k_c, n_t, k_t, alternative):
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    r = compare(prop(n_c, k_c), prop(n_t, k_t), metric_type="proportion", alternative=alternative)
    ref = test_proportions_2indep(
        k_t, n_t, k_c, n_c, method="wald", compare="diff", alternative=alternative
    )
    assert r.statistic == pytest.approx(ref.statistic, rel=REL, abs=0)
    assert r.p_value == pytest.approx(ref.pvalue, rel=REL, abs=0)
    if alternative == "two-sided":
        lo, hi = confint_proportions_2indep(k_t, n_t, k_c, n_c, method="wald", compare="diff")
        assert tuple(r.abs_ci) == pytest.approx((lo, hi), rel=REL, abs=0)
    assert r.test == "two-proportion z-test (unpooled)"
    assert_json_clean(r)


MEAN_CASES = [
    (120, 10.0, 4.0, 150, 11.2, 6.5),
    (2_000, 35.1, 80.0, 1_900, 38.9, 95.0),
    (8, -1.0, 0.4, 30, -0.6, 1.3),
]


@pytest.mark.parametrize(("n_c", "m_c", "s_c", "n_t", "m_t", "s_t"), MEAN_CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_mean_matches_scipy_and_statsmodels(n_c, m_c, s_c, n_t, m_t, s_t, alternative):
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    r = compare(
        from_moments(n_c, m_c, s_c),
        from_moments(n_t, m_t, s_t),
        metric_type="mean",
        alternative=alternative,
        alpha=0.1,
    )
    scipy_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    ref = stats.ttest_ind_from_stats(
        m_t, s_t, n_t, m_c, s_c, n_c, equal_var=False, alternative=scipy_alt
    )
    assert r.statistic == pytest.approx(ref.statistic, rel=REL, abs=0)
    assert r.p_value == pytest.approx(ref.pvalue, rel=REL, abs=0)

    # CompareMeans on raw data with exactly these moments (standardised draws).
    rng = np.random.default_rng(n_c + n_t)

    def exact(n, m, s):
        z = rng.normal(size=n)
        z = (z - z.mean()) / z.std(ddof=1)
        return m + s * z

    cm = CompareMeans(DescrStatsW(exact(n_t, m_t, s_t)), DescrStatsW(exact(n_c, m_c, s_c)))
    _, p_sm, df_sm = cm.ttest_ind(usevar="unequal", alternative=alternative)
    assert r.p_value == pytest.approx(p_sm, rel=REL, abs=0)
    assert r.df == pytest.approx(df_sm, rel=REL, abs=0)
    lo, hi = cm.tconfint_diff(alpha=0.1, alternative=alternative, usevar="unequal")
    exp_lo = None if math.isinf(lo) else lo
    exp_hi = None if math.isinf(hi) else hi
    for got, exp in zip(r.abs_ci, (exp_lo, exp_hi), strict=True):
        if exp is None:
            assert got is None
        else:
            assert got == pytest.approx(exp, rel=REL, abs=0)


def test_ratio_delta_method_z_test():
    rng = np.random.default_rng(11)
    d_c, d_t = rng.poisson(2, 4000) + 1, rng.poisson(2, 4200) + 1
    y_c = d_c * rng.gamma(2, 10, 4000)
    y_t = d_t * rng.gamma(2, 11, 4200)
    r = compare(
        RatioStats.from_values(y_c, d_c), RatioStats.from_values(y_t, d_t), metric_type="ratio"
    )
    # Independent route: Welch-free z on the linearised per-unit values.
    rc, rt = y_c.sum() / d_c.sum(), y_t.sum() / d_t.sum()
    v = ((y_c - rc * d_c) / d_c.mean()).var(ddof=1) / 4000 + ((y_t - rt * d_t) / d_t.mean()).var(
        ddof=1
    ) / 4200
    z = (rt - rc) / math.sqrt(v)
    assert r.abs_lift == pytest.approx(rt - rc, rel=1e-12)
    assert r.statistic == pytest.approx(z, rel=1e-9)
    assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=REL, abs=0)
    assert r.test == "delta-method z-test"


# ----------------------------------------------------------------- published examples


def test_welch_published_examples():
    # Welch's t-test article (Wikipedia), examples 1 and 2: t, df and p to the printed digits.
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    r = compare(MeanStats.from_values(a2), MeanStats.from_values(a1), metric_type="mean")
    assert round(r.statistic, 2) == -2.46
    assert round(r.df, 2) == 24.99
    assert round(r.p_value, 3) == 0.021
    b1 = [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8]
    b2 = [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8]
    b2 += [20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5, 23.5, 21.5, 21.8]
    r = compare(MeanStats.from_values(b2), MeanStats.from_values(b1), metric_type="mean")
    assert round(r.statistic, 2) == -1.57
    assert round(r.df, 2) == 9.90
    assert round(r.p_value, 3) == 0.149


def test_physicians_health_study_difference_of_proportions():
    # Aspirin and heart attacks (Agresti, Categorical Data Analysis, §2.2): placebo
    # 189/11034 vs aspirin 104/11037; difference 0.0077, SE 0.0015, 95% CI (0.005, 0.011).
    r = compare(prop(11037, 104), prop(11034, 189), metric_type="proportion")
    assert round(r.abs_lift, 4) == 0.0077
    assert round(r.se_abs, 4) == 0.0015
    assert (round(r.abs_ci.lower, 3), round(r.abs_ci.upper, 3)) == (0.005, 0.011)
    # Relative risk placebo/aspirin 1.82 (Agresti), i.e. a relative lift of +82%.
    assert round(r.rel_lift + 1, 2) == 1.82
    assert r.rel_ci_bounded and r.rel_ci.lower > 0
    assert r.p_value < 1e-6


# ----------------------------------------------------------------- Fieller


def _t_of_rho(rho, m_c, m_t, v_c, v_t, cov):
    return (m_t - rho * m_c) / math.sqrt(v_t - 2 * rho * cov + rho * rho * v_c)


@pytest.mark.parametrize("cuped", [False, True])
def test_fieller_bounds_invert_the_test(cuped):
    rng = np.random.default_rng(12)
    x_c, x_t = rng.normal(20, 5, 500), rng.normal(20, 5, 450)
    c = MeanStats.from_values(x_c * 0.5 + rng.normal(0, 4, 500) + 3, x_c)
    t = MeanStats.from_values(x_t * 0.5 + rng.normal(0, 4, 450) + 3.8, x_t)
    r = compare(c, t, metric_type="mean", cuped=cuped)
    from abkit.stats.estimators import estimate_difference

    d = estimate_difference(c, t, metric_type="mean", cuped=cuped)
    q = stats.t.isf(0.025, d.df)
    args = (d.control_mean, d.treatment_mean, d.var_control_mean, d.var_treatment_mean, d.cov_means)
    lo, hi = r.rel_ci
    # At each bound |T(ρ)| equals the critical value; root-finding from the other side agrees.
    assert abs(_t_of_rho(lo + 1, *args)) == pytest.approx(q, rel=1e-9)
    assert abs(_t_of_rho(hi + 1, *args)) == pytest.approx(q, rel=1e-9)
    rho_hat = d.treatment_mean / d.control_mean
    f = lambda rho: _t_of_rho(rho, *args) ** 2 - q * q  # noqa: E731
    assert optimize.brentq(f, rho_hat, rho_hat + 10) - 1 == pytest.approx(hi, rel=1e-8)
    assert optimize.brentq(f, rho_hat - 10 + 1e-9, rho_hat) - 1 == pytest.approx(lo, rel=1e-8)
    # Brute force: grid membership equals |T| <= q.
    for rho in np.linspace(lo + 1 - 0.5, hi + 1 + 0.5, 301):
        inside = abs(_t_of_rho(rho, *args)) <= q
        assert inside == in_set(rho - 1, r.rel_ci_set)
    if cuped:
        assert d.cov_means != 0  # the covariance term really entered the quadratic


def test_fieller_unbounded_when_control_not_away_from_zero():
    # Control mean 0.2 ± 0.5: a ratio against it can be anything.
    r = compare(from_moments(30, 0.2, 2.7), from_moments(30, 1.5, 2.7), metric_type="mean")
    assert r.status == "ok"
    assert not r.rel_ci_bounded
    assert r.rel_ci is None
    assert "unbounded" in r.note
    assert len(r.rel_ci_set) in (1, 2)
    assert_json_clean(r)


def test_fieller_whole_line_case():
    # a < 0 and D <= 0: every ratio is compatible with the data.
    sets = fieller_ratio_set(0.1, 0.1, 1.0, 1.0, 0.0, 1.96)
    assert sets == (Interval(None, None),)
    r = compare(from_moments(10, 0.05, 3.0), from_moments(10, 0.06, 3.0), metric_type="mean")
    assert r.rel_ci is None and not r.rel_ci_bounded
    assert r.rel_ci_set == (Interval(None, None),)


def test_one_sided_fieller_is_a_half_line_consistent_with_p():
    c, t = prop(5000, 500), prop(5000, 560)
    r = compare(c, t, metric_type="proportion", alternative="larger")
    assert r.abs_ci.upper is None and r.rel_ci.upper is None
    assert r.rel_ci_bounded
    assert (r.rel_ci.lower > 0) == (r.p_value < 0.05)
    r2 = compare(c, t, metric_type="proportion", alternative="smaller")
    assert r2.rel_ci.lower is None and r2.rel_ci.upper > r.rel_lift


def _mean_arm(draw, n):
    mean = draw(st.floats(-20, 20, allow_nan=False))
    sd = draw(st.floats(0.01, 30, allow_nan=False))
    return from_moments(n, mean, sd)


@st.composite
def comparisons(draw):
    kind = draw(st.sampled_from(["proportion", "mean", "ratio", "cuped"]))
    n_c = draw(st.integers(2, 20_000))
    n_t = draw(st.integers(2, 20_000))
    alternative = draw(st.sampled_from(["two-sided", "larger", "smaller"]))
    alpha = draw(st.sampled_from([0.01, 0.05, 0.1, 0.2]))
    if kind == "proportion":
        c = prop(n_c, draw(st.integers(0, n_c)))
        t = prop(n_t, draw(st.integers(0, n_t)))
    elif kind == "mean":
        c, t = _mean_arm(draw, n_c), _mean_arm(draw, n_t)
    elif kind == "ratio":
        arms = []
        for n in (n_c, n_t):
            seed = draw(st.integers(0, 2**32 - 1))
            rng = np.random.default_rng(seed)
            size = min(n, 300)
            d = rng.poisson(draw(st.floats(0.2, 5)), size) + draw(st.integers(0, 1))
            y = d * rng.gamma(2.0, draw(st.floats(0.1, 10)), size)
            arms.append(RatioStats.from_values(y, d))
        c, t = arms
    else:
        arms = []
        for n in (n_c, n_t):
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            size = min(n, 300)
            x = rng.normal(draw(st.floats(-5, 5)), 2, size)
            y = draw(st.floats(-2, 2)) * x + rng.normal(draw(st.floats(-5, 5)), 1, size)
            arms.append(MeanStats.from_values(y, x))
        c, t = arms
    return kind, c, t, alternative, alpha


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(comparisons())
def test_relative_interval_excludes_zero_exactly_when_significant(case):
    kind, c, t, alternative, alpha = case
    metric_type = "mean" if kind == "cuped" else kind
    r = compare(
        c, t, metric_type=metric_type, alpha=alpha, alternative=alternative, cuped=kind == "cuped"
    )
    assert_json_clean(r)
    if r.status == NOT_ENOUGH_DATA:
        assert r.p_value is None and r.rel_ci is None
        return
    assume(abs(r.p_value - alpha) > 1e-9 * alpha)
    # Make sure the strategy reaches both verdicts and both interval shapes.
    event(f"{kind}: significant={r.significant}, bounded={r.rel_ci_bounded}")
    assert (not in_set(0.0, r.rel_ci_set)) == (r.p_value < alpha)
    # The absolute interval tells the same story.
    assert (not in_set(0.0, [r.abs_ci])) == (r.p_value < alpha)
    if r.rel_ci_bounded:
        assert in_set(r.rel_lift, [r.rel_ci])


# ----------------------------------------------------------------- tails


def _normal_tail_asymptotic(z: float) -> float:
    # Mills-ratio series: P(Z > z) = φ(z)/z · (1 - 1/z² + 3/z⁴ - 15/z⁶ + 105/z⁸ - …).
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return phi / z * (1 - 1 / z**2 + 3 / z**4 - 15 / z**6 + 105 / z**8)


def test_tiny_p_value_keeps_its_magnitude():
    # z ≈ 37 gives p ≈ 1e-299; 1 - cdf would print 0.
    c, t = prop(200_000, 20_000), prop(200_000, 27_400)
    r = compare(c, t, metric_type="proportion")
    assert 0 < r.p_value < 1e-250
    assert r.p_value == pytest.approx(2 * _normal_tail_asymptotic(r.statistic), rel=1e-8, abs=0)
    assert "e-" in f"{r.p_value:.3g}"
    assert r.significant


def test_p_value_below_double_range_is_floored_and_noted():
    r = compare(prop(10**6, 10**5), prop(10**6, 2 * 10**5), metric_type="proportion")
    assert r.p_value > 0 and r.p_value < 1e-300
    assert "smallest representable" in r.note


# ----------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    ("control", "treatment", "metric_type"),
    [
        (prop(1000, 0), prop(1000, 0), "proportion"),
        (prop(1000, 1000), prop(900, 900), "proportion"),
        (prop(1, 1), prop(100, 10), "proportion"),
        (MeanStats(0, 0.0, 0.0), prop(100, 10), "proportion"),
        (None, prop(100, 10), "proportion"),
        (prop(100, 10), None, "proportion"),
        (from_moments(50, 3.0, 0.0), from_moments(50, 3.0, 0.0), "mean"),
        (RatioStats(50, 3, 3, 0, 0, 0), RatioStats(50, 3, 3, 10, 10, 1), "ratio"),
    ],
)
def test_edge_cases_are_not_enough_data(control, treatment, metric_type):
    r = compare(control, treatment, metric_type=metric_type)
    assert r.status == NOT_ENOUGH_DATA
    assert r.note
    assert not r.significant
    assert all(getattr(r, f) is None for f in ("p_value", "abs_lift", "abs_ci", "rel_lift"))
    assert_json_clean(r)
    frame = r.to_frame()
    assert frame.loc[0, "status"] == NOT_ENOUGH_DATA


def test_control_mean_zero_gives_no_relative_lift():
    r = compare(prop(1000, 0), prop(1000, 12), metric_type="proportion")
    assert r.status == "ok" and r.p_value is not None
    assert r.rel_lift is None and r.rel_ci is None and not r.rel_ci_bounded
    assert "relative lift is undefined" in r.note
    assert "0% or 100%" in r.note
    assert_json_clean(r)


def test_option_validation():
    c, t = prop(100, 10), prop(100, 12)
    with pytest.raises(ValueError, match="alpha"):
        compare(c, t, metric_type="proportion", alpha=0.7)
    with pytest.raises(ValueError, match="alternative"):
        compare(c, t, metric_type="proportion", alternative="greater")
    with pytest.raises(ValueError, match="method"):
        compare(c, t, metric_type="proportion", method="frequentist")
    with pytest.raises(TypeError, match="unexpected options"):
        compare(c, t, metric_type="proportion", tau=0.1)


# ----------------------------------------------------------------- rendering, labels, caps


def test_rendering_and_labels():
    r = compare(
        prop(1000, 100), prop(1000, 130), metric_type="proportion", metric="signup", variant="B"
    )
    frame = r.to_frame()
    for col in ("abs_ci_lower", "abs_ci_upper", "rel_ci_lower", "rel_ci_upper", "p_value"):
        assert col in frame.columns
    assert frame.loc[0, "rel_ci_lower"] == pytest.approx(r.rel_ci.lower)
    html = r._repr_html_()
    assert "<table" in html and "signup" in html and "rel_ci_lower" in html
    payload = r.to_dict()
    assert payload["abs_ci"] == list(r.abs_ci) and payload["variant"] == "B"
    table = results_table([r, compare(prop(1000, 100), prop(1000, 90), metric_type="proportion")])
    assert len(table.to_frame()) == 2 and "<table" in table._repr_html_()


def test_cap_is_recorded():
    rng = np.random.default_rng(13)
    pooled = rng.lognormal(3, 1.5, 4000)
    applied = resolve_cap(Cap(upper_percentile=99), pooled)
    capped = np.minimum(pooled, applied.upper)
    c, t = MeanStats.from_values(capped[:2000]), MeanStats.from_values(capped[2000:])
    r = compare(c, t, metric_type="mean", cap=applied)
    assert r.cap is not None and "upper" in r.cap and "99th percentile" in r.cap
    assert compare(c, t, metric_type="mean").cap is None


# ----------------------------------------------------------------- vectorised path


# ----------------------------------------------------------------- other engines


def test_sequential_dispatch_when_available():
    seq = pytest.importorskip("abkit.stats.sequential")
    c, t = prop(20_000, 2_000), prop(20_000, 2_150)
    fixed = compare(c, t, metric_type="proportion")
    r = compare(c, t, metric_type="proportion", method="sequential", mde_relative=0.05)
    assert r.method == "sequential"
    assert isinstance(r.details, seq.SequentialResult)
    # An always-valid p-value is never smaller than the fixed-horizon one.
    assert r.p_value >= fixed.p_value
    assert r.abs_ci.lower <= fixed.abs_ci.lower and r.abs_ci.upper >= fixed.abs_ci.upper
    json.dumps(r.to_dict(), allow_nan=False)


def test_bayesian_dispatch_when_available():
    pytest.importorskip("abkit.stats.bayesian")
    c, t = prop(20_000, 2_000), prop(20_000, 2_150)
    r = compare(c, t, metric_type="proportion", method="bayesian")
    assert r.method == "bayesian" and r.details is not None
    json.dumps(r.to_dict(), allow_nan=False)


# ----------------------------------------------------------------- package surface


def test_stats_package_is_lazy_and_sql_free():
    import subprocess
    import sys

    code = (
        "import sys, abkit.stats as s\n"
        "assert 'scipy' not in sys.modules, 'import abkit.stats must be free'\n"
        "for name in s._LAZY: getattr(s, name)\n"
        "assert 'sqlalchemy' not in sys.modules\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import abkit.stats as s

    with pytest.raises(AttributeError):
        _ = s.no_such_name


def test_cuped_request_without_covariate_runs_unadjusted_and_says_so():
    c, t = prop(1000, 100), prop(1000, 120)
    r = compare(c, t, metric_type="proportion", cuped=True)
    assert r.status == "ok" and not r.cuped and r.variance_reduction is None
    assert "CUPED not applied: no pre-period covariate" in r.note
    assert r.p_value == compare(c, t, metric_type="proportion").p_value
    ratio = RatioStats(100, 50.0, 60.0, 120.0, 200.0, 90.0)
    r = compare(ratio, ratio, metric_type="ratio", cuped=True)
    assert "not supported for ratio" in r.note
    with pytest.raises(ValueError, match="one arm only"):
        compare(MeanStats.from_values([1.0, 2.0], [1.0, 3.0]), c, metric_type="mean", cuped=True)


def test_summary_line():
    r = compare(prop(11037, 104), prop(11034, 189), metric_type="proportion", variant="placebo")
    line = r.summary()
    assert line.startswith("placebo vs control: +81.78% [")
    assert "significant at alpha 0.05" in line and "z-test" in line
    unbounded = compare(from_moments(30, 0.2, 2.7), from_moments(30, 1.5, 2.7), metric_type="mean")
    assert "interval unbounded" in unbounded.summary()
    assert "not enough data" in compare(None, prop(10, 1), metric_type="proportion").summary()


def test_compare_variants_corrects_across_arms():
    from statsmodels.stats.multitest import multipletests

    arms = {
        "control": prop(8000, 800),
        "a": prop(8000, 880),
        "b": prop(8000, 905),
        "c": None,
    }
    table = compare_variants(arms, metric_type="proportion", metric="signup")
    assert [r.variant for r in table] == ["a", "b", "c"]
    assert table[2].status == NOT_ENOUGH_DATA
    raw = [compare(arms["control"], arms[v], metric_type="proportion").p_value for v in "ab"]
    ref = multipletests(raw, method="holm")[1]
    assert [r.p_value_adjusted for r in table][:2] == pytest.approx(list(ref), rel=1e-12)
    assert all(r.correction == "Holm" for r in table)
    frame = table.to_frame()
    assert list(frame["variant"]) == ["a", "b", "c"] and "rel_ci_lower" in frame.columns
    assert "signup" in table._repr_html_()
    with pytest.raises(ValueError, match="not one of"):
        compare_variants(arms, metric_type="proportion", control="z")
