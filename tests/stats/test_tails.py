"""Tail probabilities and critical values (abkit.stats.tails) against scipy and closed forms.

Welch t tails far out (p ≈ 1e-30 and below) are checked against the regularised incomplete
beta function, with ``abs=0`` so that ``1 - cdf`` (which prints 0) cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats
from abkit.stats.tails import critical_value, p_value


def test_welch_far_tail_matches_the_incomplete_beta_function():
    # Two-sided Student tail: P(|T| > t) = I_{df/(df+t²)}(df/2, 1/2).
    c = MeanStats.from_values(np.linspace(0.0, 1.0, 30))
    t = MeanStats.from_values(np.linspace(0.0, 1.0, 40) + 3.0)
    r = compare(c, t, metric_type="mean")
    exact = special.betainc(r.df / 2, 0.5, r.df / (r.df + r.statistic**2))
    assert 0 < r.p_value < 1e-30
    assert r.p_value == pytest.approx(exact, rel=1e-9, abs=0)
    one = compare(c, t, metric_type="mean", alternative="larger")
    assert one.p_value == pytest.approx(exact / 2, rel=1e-9, abs=0)


def test_critical_value_matches_scipy():
    assert critical_value(0.05, None, "two-sided") == pytest.approx(
        stats.norm.ppf(0.975), rel=1e-12
    )
    assert critical_value(0.05, 7.5, "larger") == pytest.approx(stats.t.ppf(0.95, 7.5), rel=1e-12)


@pytest.mark.parametrize("df", [None, 3.5, 40.0])
def test_p_value_matches_scipy_for_every_alternative(df):
    dist = stats.norm if df is None else stats.t(df)
    for s in (-3.1, -0.2, 0.0, 1.7, 6.0):
        assert p_value(s, df, "two-sided") == pytest.approx(2 * dist.sf(abs(s)), rel=1e-12)
        assert p_value(s, df, "larger") == pytest.approx(dist.sf(s), rel=1e-12)
        assert p_value(s, df, "smaller") == pytest.approx(dist.cdf(s), rel=1e-12)
    with pytest.raises(ValueError, match="alternative"):
        p_value(1.0, df, "both")
