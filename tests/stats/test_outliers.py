"""Capping / winsorising per-unit values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats.mstats import winsorize

from abkit.stats.outliers import (
    AppliedCap,
    Cap,
    cap_values,
    nearest_rank,
    nearest_rank_percentile,
    resolve_cap,
)
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats


def test_value_cap():
    out, applied = cap_values([1.0, 5.0, 50.0, 500.0], Cap(upper=100))
    assert out.tolist() == [1.0, 5.0, 50.0, 100.0]
    assert applied.upper == 100 and applied.lower is None
    assert (applied.n_capped, applied.n_total) == (1, 4)


def test_percentile_cap_is_numpy_inverted_cdf_of_the_non_zero_values_on_both_tails():
    rng = np.random.default_rng(30)
    v = np.where(rng.random(10_001) < 0.6, 0.0, rng.lognormal(2, 1.2, 10_001))
    nonzero = v[v != 0]
    out, applied = cap_values(v, Cap(lower_percentile=1, upper_percentile=99))
    assert applied.upper == np.percentile(nonzero, 99, method="inverted_cdf")
    assert applied.lower == np.percentile(nonzero, 1, method="inverted_cdf")
    assert applied.upper in nonzero and applied.lower in nonzero  # always one of the values
    assert out.max() == applied.upper and out.min() == applied.lower
    assert applied.n_capped == np.count_nonzero((v > applied.upper) | (v < applied.lower))


def test_issue_9_example_caps_at_the_sql_value():
    # 900 zeros and 1..100: the analysis SQL caps at 99; the old interpolated rule gave 90.01.
    applied = resolve_cap(Cap(upper_percentile=99), np.r_[np.zeros(900), np.arange(1, 101)])
    assert applied.upper == 99.0
    assert applied.n_capped == 1 and applied.n_total == 1000


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=300),
    st.floats(0.01, 99.99),
)
def test_nearest_rank_percentile_equals_numpy_inverted_cdf(values, q):
    v = np.asarray(values)
    nonzero = v[v != 0]
    got = nearest_rank_percentile(v, q)
    if nonzero.size == 0:
        assert got is None
        return
    assert got == np.percentile(nonzero, q, method="inverted_cdf")
    k = nearest_rank(nonzero.size, q)
    # the defining property: the smallest rank with at least q% of the values at or below it
    assert 100 * k >= q * nonzero.size and (k == 1 or 100 * (k - 1) < q * nonzero.size)


def test_nearest_rank_on_exact_boundaries():
    assert [nearest_rank(100, q) for q in (1, 50, 99, 99.5)] == [1, 50, 99, 100]
    assert nearest_rank(1, 0.01) == 1 and nearest_rank(3, 99.99) == 3
    with pytest.raises(ValueError, match="at least one value"):
        nearest_rank(0, 50)


def test_all_zero_values_are_not_capped():
    applied = resolve_cap(Cap(upper_percentile=99), np.zeros(50))
    assert applied.upper is None and applied.n_capped == 0
    assert "no non-zero values" in applied.describe()
    out, _ = cap_values(np.zeros(5), applied)
    assert out.tolist() == [0.0] * 5


def test_winsorising_agrees_with_scipy_when_percentile_falls_on_a_value():
    # n = 101: the 95th percentile is exactly the 96th order statistic, as scipy keeps.
    v = np.random.default_rng(31).normal(size=101)
    ours, _ = cap_values(v, Cap(lower_percentile=5, upper_percentile=95))
    ref = np.asarray(winsorize(v, limits=(0.05, 0.05)))
    np.testing.assert_allclose(ours, ref)


def test_one_threshold_for_all_arms():
    rng = np.random.default_rng(33)
    control = rng.lognormal(3, 1, 5000)
    treatment = rng.lognormal(3.2, 1, 5000)  # treatment raises big spenders
    applied = resolve_cap(Cap(upper_percentile=99), np.r_[control, treatment])
    _, info_c = cap_values(control, applied)
    _, info_t = cap_values(treatment, applied)
    assert info_c.upper == info_t.upper == applied.upper
    assert info_t.n_capped > info_c.n_capped  # the same cap bites harder in treatment
    assert info_c.n_capped + info_t.n_capped == applied.n_capped


def test_capping_reduces_variance_and_is_recorded_in_the_readout():
    rng = np.random.default_rng(34)
    y_c = rng.pareto(1.8, 20_000) * 10
    y_t = rng.pareto(1.8, 20_000) * 10.5
    raw = compare(MeanStats.from_values(y_c), MeanStats.from_values(y_t), metric_type="mean")
    applied = resolve_cap(Cap(upper_percentile=99.5), np.r_[y_c, y_t])
    c, _ = cap_values(y_c, applied)
    t, _ = cap_values(y_t, applied)
    capped = compare(
        MeanStats.from_values(c), MeanStats.from_values(t), metric_type="mean", cap=applied
    )
    assert capped.se_abs < 0.7 * raw.se_abs
    assert "capped per unit" in capped.cap and "99.5th percentile" in capped.cap
    assert "units changed" in capped.cap
    json.dumps(capped.to_dict(), allow_nan=False)
    json.dumps(applied.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "at least one"),
        ({"upper": 5, "upper_percentile": 99}, "not both"),
        ({"lower": 1, "lower_percentile": 1}, "not both"),
        ({"upper_percentile": 100}, r"\(0, 100\)"),
        ({"lower_percentile": 60, "upper_percentile": 40}, "below"),
        ({"lower": 5, "upper": 1}, "exceed"),
        ({"upper": float("inf")}, "finite"),
    ],
)
def test_invalid_caps(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Cap(**kwargs)


def test_resolve_needs_values():
    with pytest.raises(ValueError, match="no values"):
        resolve_cap(Cap(upper_percentile=99), [])
    with pytest.raises(ValueError, match="finite"):
        resolve_cap(Cap(upper=1), [1.0, float("nan")])
    assert isinstance(resolve_cap(Cap(upper=3), []), AppliedCap)


def test_percentile_cap_takes_an_order_statistic_not_an_interpolation():
    # n = 1,000 non-zero values and q = 97.5: the interpolated (type 7) rule would land
    # between two order statistics; the nearest-rank rule takes the 975th value itself,
    # with 500 zeros ignored.
    from abkit.stats.outliers import Cap, resolve_cap

    v = np.random.default_rng(406).lognormal(2.0, 1.2, 1_000)
    pooled = np.r_[np.zeros(500), v]
    applied = resolve_cap(Cap(upper_percentile=97.5, lower_percentile=2.5), pooled)
    s = np.sort(v)
    assert applied.upper == s[974] and applied.lower == s[24]
    assert applied.upper != pytest.approx(np.percentile(pooled, 97.5), rel=1e-3)
