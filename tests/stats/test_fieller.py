"""Fieller's interval (abkit.stats.fieller): one implementation, checked independently.

* against the textbook closed form (Fieller 1954; written with ``g = q²·v_c/m_c²``), a
  derivation independent of the quadratic solver;
* the scalar set and the array coefficients/roots are the same code on scalars and arrays.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from abkit.results import Interval
from abkit.stats.estimators import estimate_difference
from abkit.stats.fieller import (
    fieller_coefficients,
    fieller_ratio_set,
    quadratic_roots,
    relative_lift,
)
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats


def _textbook_fieller(m_c, m_t, v_c, v_t, cov, q):
    """Fieller's limits for μ_t/μ_c in the classical closed form (bounded case, g < 1)."""
    rho = m_t / m_c
    g = q * q * v_c / (m_c * m_c)
    assert g < 1
    centre = rho - g * cov / v_c
    half = (q / abs(m_c)) * math.sqrt(
        v_t - 2 * rho * cov + rho * rho * v_c - g * (v_t - cov * cov / v_c)
    )
    return (centre - half) / (1 - g), (centre + half) / (1 - g)


@pytest.mark.parametrize("cuped", [False, True])
@pytest.mark.parametrize("n", [12, 60, 5_000])
def test_fieller_equals_the_textbook_closed_form(cuped, n):
    rng = np.random.default_rng(n)
    x_c, x_t = rng.normal(20, 5, n), rng.normal(20, 5, n + 7)
    c = MeanStats.from_values(0.4 * x_c + rng.normal(0, 4, n) + 4, x_c)
    t = MeanStats.from_values(0.4 * x_t + rng.normal(0, 4, n + 7) + 5, x_t)
    r = compare(c, t, metric_type="mean", cuped=cuped)
    d = estimate_difference(c, t, metric_type="mean", cuped=cuped)
    q = sps.t.isf(0.025, d.df)
    lo, hi = _textbook_fieller(
        d.control_mean, d.treatment_mean, d.var_control_mean, d.var_treatment_mean, d.cov_means, q
    )
    assert r.rel_ci_bounded
    assert r.rel_ci.lower + 1 == pytest.approx(lo, rel=1e-9, abs=0)
    assert r.rel_ci.upper + 1 == pytest.approx(hi, rel=1e-9, abs=0)
    if cuped:
        assert d.cov_means != 0


moments = st.floats(-1e3, 1e3, allow_nan=False)
variances = st.floats(1e-6, 1e3, allow_nan=False)


@given(moments, moments, variances, variances, st.floats(1.0, 3.5))
def test_array_roots_equal_the_scalar_set_element_by_element(m_c, m_t, v_c, v_t, q):
    with np.errstate(all="ignore"):  # array callers own the floating-point error policy
        a, b, k = fieller_coefficients(np.array([m_c]), np.array([m_t]), v_c, v_t, 0.0, q)
        r1, r2 = quadratic_roots(a, b, k)
    pieces = fieller_ratio_set(m_c, m_t, v_c, v_t, 0.0, q)
    if a[0] > 0:
        assert pieces == (Interval(float(r1[0]), float(r2[0])),)
    elif a[0] < 0 and b[0] * b[0] - a[0] * k[0] > 0:
        assert pieces == (Interval(None, float(r1[0])), Interval(float(r2[0]), None))


def test_the_set_is_exactly_where_the_test_does_not_reject():
    m_c, m_t, v_c, v_t, cov, q = 2.0, 2.6, 0.04, 0.09, 0.01, 1.96
    ((lo, hi),) = fieller_ratio_set(m_c, m_t, v_c, v_t, cov, q)
    assert lo is not None and hi is not None
    for rho in np.linspace(lo - 0.2, hi + 0.2, 401):
        t = (m_t - rho * m_c) / math.sqrt(v_t - 2 * rho * cov + rho * rho * v_c)
        assert (abs(t) <= q + 1e-9) == (lo - 1e-12 <= rho <= hi + 1e-12) or abs(abs(t) - q) < 1e-9


def test_relative_lift_reports_unbounded_and_undefined_cases():
    undefined = relative_lift(0.0, 1.0, 1.0, 1.0, 0.0, 1.96, "two-sided")
    assert undefined.lift is None and undefined.ci is None and not undefined.bounded
    assert "control mean is 0" in undefined.note
    noisy = relative_lift(0.1, 0.5, 1.0, 1.0, 0.0, 1.96, "two-sided")
    assert noisy.lift == pytest.approx(4.0) and not noisy.bounded and noisy.ci is None
    assert "unbounded" in noisy.note and "Fieller set" in noisy.unbounded_note(with_set=True)
    one_sided = relative_lift(2.0, 2.4, 0.01, 0.01, 0.0, 1.645, "larger")
    assert one_sided.bounded and one_sided.ci is not None and one_sided.ci.upper is None
