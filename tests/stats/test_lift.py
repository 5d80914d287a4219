"""LiftResult's invariant (abkit.stats.lift): no field is ever NaN or infinite.

The same holds for every other stats result (sequential, Bayesian, guardrail, plans). The
other suites check JSON safety through ``to_dict()``, which already maps non-finite
floats to ``None``, so they cannot see a NaN stored in a field. These walk the dataclass
fields themselves (the helper is itself tested to catch a NaN), on the issue's edge cases
(zero or all conversions, fewer than two units, zero variance, a missing arm, a control
mean of 0) and on metrics in extreme units, where squaring variances used to overflow
(``OverflowError`` or a NaN p-value) or underflow (a spurious "not enough data").
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields, is_dataclass

import numpy as np
import pytest

from abkit.stats._common import NOT_ENOUGH_DATA
from abkit.stats.bayesian import bayesian_readout, beta_binomial_readout
from abkit.stats.estimators import estimate_difference
from abkit.stats.guardrails import guardrail
from abkit.stats.planning import plan_mean, plan_proportion
from abkit.stats.readout import compare
from abkit.stats.sequential import sequential_series
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.stats.vectorised import compare_many


def nonfinite_fields(obj, path: str = "result") -> list[str]:
    """Paths of every float (or numpy scalar) field that is NaN or infinite, recursively."""
    found: list[str] = []
    if is_dataclass(obj) and not isinstance(obj, type):
        for f in fields(obj):
            found += nonfinite_fields(getattr(obj, f.name), f"{path}.{f.name}")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            found += nonfinite_fields(value, f"{path}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found += nonfinite_fields(value, f"{path}[{i}]")
    elif isinstance(obj, (float, np.floating)) and not math.isfinite(float(obj)):
        found.append(path)
    return found


@dataclass(frozen=True)
class _Inner:
    x: float


@dataclass(frozen=True)
class _Outer:
    a: float
    inner: _Inner
    ci: tuple[float | None, float | None]


def test_the_walker_finds_nan_and_inf_where_to_dict_would_hide_them():
    bad = _Outer(a=1.0, inner=_Inner(x=math.nan), ci=(None, math.inf))
    assert nonfinite_fields(bad) == ["result.inner.x", "result.ci[1]"]
    assert nonfinite_fields(_Outer(a=np.float64(2.0), inner=_Inner(0.0), ci=(1.0, None))) == []


def prop(n: int, k: int) -> MeanStats:
    return MeanStats(n=n, sum=float(k), sum_sq=float(k))


def from_moments(n: int, mean: float, sd: float) -> MeanStats:
    return MeanStats(n=n, sum=n * mean, sum_sq=(n - 1) * sd * sd + n * mean * mean)


PROPORTION_ARMS = [
    None,
    prop(0, 0),
    prop(1, 1),
    prop(2, 0),
    prop(2, 1),
    prop(1000, 0),
    prop(1000, 1000),
    prop(1000, 1),
    prop(1000, 999),
    prop(10**9, 5 * 10**8),
]

MEAN_ARMS = [
    from_moments(2, 0.0, 0.0),  # zero variance, mean 0
    from_moments(50, -3.0, 0.0),  # zero variance, negative
    from_moments(50, 0.0, 1.0),  # control mean exactly 0
    from_moments(50, -4.0, 2.0),  # negative mean
    from_moments(40, 5.0, 2.0),
    from_moments(10**7, 1e-8, 1e-8),
]

RATIO_ARMS = [
    RatioStats(50, 3.0, 3.0, 0.0, 0.0, 0.0),  # denominator sums to 0
    RatioStats.from_values([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]),  # constant ratio: zero variance
    RatioStats.from_values(np.arange(1.0, 41.0), np.full(40, 2.0)),
]


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"])
def test_proportion_edge_cases_have_no_nonfinite_field(method):
    for c, t in itertools.product(PROPORTION_ARMS, PROPORTION_ARMS):
        for alternative in ("two-sided", "larger", "smaller"):
            r = compare(c, t, metric_type="proportion", method=method, alternative=alternative)
            assert nonfinite_fields(r) == [], (c, t, alternative)
            if r.status == NOT_ENOUGH_DATA:
                assert r.note and r.p_value is None and r.abs_ci is None


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"])
def test_mean_and_ratio_edge_cases_have_no_nonfinite_field(method):
    for arms, metric_type in ((MEAN_ARMS, "mean"), (RATIO_ARMS, "ratio")):
        for c, t in itertools.product(arms, arms):
            r = compare(c, t, metric_type=metric_type, method=method)
            assert nonfinite_fields(r) == [], (c, t)
            if r.ok and r.control_mean == 0:
                assert r.rel_lift is None and r.rel_ci is None


def test_guardrail_and_beta_binomial_edge_cases():
    for c, t in itertools.product(PROPORTION_ARMS, PROPORTION_ARMS):
        for margin_type, higher in itertools.product(("relative", "absolute"), (True, False)):
            g = guardrail(
                c,
                t,
                metric_type="proportion",
                margin=0.05,
                margin_type=margin_type,
                higher_is_better=higher,
            )
            assert nonfinite_fields(g) == [], (c, t, margin_type, higher)
            assert g.status in ("pass", "fail", "inconclusive", "not enough data")
        if c is not None and t is not None and c.n > 0 and t.n > 0 and c.n < 10**6:
            assert nonfinite_fields(beta_binomial_readout(c, t, draws=2_000)) == [], (c, t)


def test_sequential_series_with_missing_and_tiny_looks():
    control = [None, prop(1, 0), prop(40, 0), prop(400, 40), prop(800, 85)]
    treatment = [None, prop(1, 1), prop(40, 0), prop(400, 52), prop(800, 110)]
    series = sequential_series(control, treatment, metric_type="proportion")
    assert nonfinite_fields(series) == []
    assert [look.status for look in series.looks[:3]] == [NOT_ENOUGH_DATA] * 3
    assert series.looks[-1].status == "ok"


def test_compare_many_results_have_no_nonfinite_field():
    cells = [(c, t) for c, t in itertools.product(PROPORTION_ARMS[1:], PROPORTION_ARMS[1:])]
    arms = [
        {
            "n": np.array([cell[i].n for cell in cells]),
            "sum": np.array([cell[i].sum for cell in cells]),
            "sum_sq": np.array([cell[i].sum_sq for cell in cells]),
        }
        for i in (0, 1)
    ]
    many = compare_many(arms[0], arms[1], metric_type="proportion")
    for i, (c, t) in enumerate(cells):
        got = many.result(i)
        assert nonfinite_fields(got) == [], (c, t)
        assert got.status == compare(c, t, metric_type="proportion").status


def test_plans_have_no_nonfinite_field():
    plans = [
        plan_proportion(0.001, mde=0.5, relative=True),
        plan_proportion(0.999, mde=-0.0005, alternative="smaller"),
        plan_mean(0.0, 1.0, mde=0.1),  # baseline 0: no relative MDE
        plan_mean(0.0, 1.0, n_total=10**9, power=0.99, n_variants=5),
    ]
    for plan in plans:
        assert nonfinite_fields(plan) == [], plan


# ----------------------------------------------------------------- extreme scales


def _arms(scale: float):
    rng = np.random.default_rng(3)
    y_c, y_t = rng.normal(10, 3, 400), rng.normal(10.6, 3, 400)
    return MeanStats.from_values(y_c * scale), MeanStats.from_values(y_t * scale)


@pytest.mark.parametrize("scale", [1e-140, 1e-80, 1e80, 1e140])
def test_readout_is_scale_invariant_in_extreme_units(scale):
    """p-value, Welch df and the Fieller interval do not depend on the metric's units.

    Before the review fix these raised ``OverflowError`` (scale 1e80: ``(v_c + v_t)**2``)
    or came back "not enough data" (scale 1e-80: ``v²`` underflowed to 0).
    """
    ref = compare(*_arms(1.0), metric_type="mean")
    got = compare(*_arms(scale), metric_type="mean")
    assert got.status == "ok"
    assert got.p_value == pytest.approx(ref.p_value, rel=1e-9, abs=0)
    assert got.df == pytest.approx(ref.df, rel=1e-9, abs=0)
    assert tuple(got.rel_ci) == pytest.approx(tuple(ref.rel_ci), rel=1e-9, abs=0)
    assert nonfinite_fields(got) == []
    bayes = bayesian_readout(estimate_difference(*_arms(scale), metric_type="mean"))
    assert bayes.rel_ci_bounded and nonfinite_fields(bayes) == []


# ----------------------------------------------------------------- notes that prevent misreading
