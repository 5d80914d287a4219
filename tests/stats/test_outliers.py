"""Capping / winsorising per-unit values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats.mstats import winsorize

from abkit.stats.outliers import AppliedCap, Cap, cap_values, percentile_positions, resolve_cap
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats


def test_value_cap():
    out, applied = cap_values([1.0, 5.0, 50.0, 500.0], Cap(upper=100))
    assert out.tolist() == [1.0, 5.0, 50.0, 100.0]
    assert applied.upper == 100 and applied.lower is None
    assert (applied.n_capped, applied.n_total) == (1, 4)


def test_percentile_cap_matches_numpy_and_both_tails():
    rng = np.random.default_rng(30)
    v = rng.lognormal(2, 1.2, 10_001)
    out, applied = cap_values(v, Cap(lower_percentile=1, upper_percentile=99))
    assert applied.upper == pytest.approx(np.percentile(v, 99))
    assert applied.lower == pytest.approx(np.percentile(v, 1))
    assert out.max() == pytest.approx(applied.upper) and out.min() == pytest.approx(applied.lower)
    assert applied.n_capped == np.count_nonzero((v > applied.upper) | (v < applied.lower))


def test_winsorising_agrees_with_scipy_when_percentile_falls_on_a_value():
    # n = 101: the 95th percentile is exactly the 96th order statistic, as scipy keeps.
    v = np.random.default_rng(31).normal(size=101)
    ours, _ = cap_values(v, Cap(lower_percentile=5, upper_percentile=95))
    ref = np.asarray(winsorize(v, limits=(0.05, 0.05)))
    np.testing.assert_allclose(ours, ref)


def test_percentile_positions_reproduce_numpy():
    rng = np.random.default_rng(32)
    for n in (1, 2, 7, 100, 1001):
        v = np.sort(rng.normal(size=n))
        for q in (0.5, 50, 90, 99, 99.9):
            lo, hi, frac = percentile_positions(n, q)
            assert v[lo] + frac * (v[hi] - v[lo]) == pytest.approx(np.percentile(v, q))


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
