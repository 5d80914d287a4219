"""Sufficient statistics (Contract 4)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.errors import NotEnoughDataError
from abkit.stats.sufficient import MeanStats, RatioStats

values = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=50)


@settings(max_examples=60, deadline=None)
@given(values, values)
def test_mean_stats_add_and_match_numpy(a, b):
    whole = MeanStats.from_values(a + b)
    added = MeanStats.from_values(a) + MeanStats.from_values(b)
    assert added.n == whole.n
    assert added.mean == pytest.approx(np.mean(a + b), abs=1e-9)
    assert added.var == pytest.approx(np.var(a + b, ddof=1), rel=1e-6, abs=1e-6)


def test_covariate_moments():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = 2 * x + rng.normal(size=200)
    s = MeanStats.from_values(y, x)
    assert s.has_covariate
    assert s.cov_mean == pytest.approx(x.mean())
    assert s.cov_var == pytest.approx(x.var(ddof=1))
    assert s.cross_cov == pytest.approx(np.cov(x, y)[0, 1])


def test_ratio_moments_and_addition():
    rng = np.random.default_rng(2)
    y, d = rng.gamma(2, 3, 100), rng.poisson(2, 100) + 1.0
    s = RatioStats.from_values(y[:40], d[:40]) + RatioStats.from_values(y[40:], d[40:])
    assert s.ratio == pytest.approx(y.sum() / d.sum())
    assert s.num_var == pytest.approx(y.var(ddof=1))
    assert s.den_var == pytest.approx(d.var(ddof=1))
    assert s.num_den_cov == pytest.approx(np.cov(y, d)[0, 1])


def test_validation():
    with pytest.raises(ValueError, match="finite"):
        MeanStats(3, float("nan"), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        MeanStats(-1, 0.0, 0.0)
    with pytest.raises(ValueError, match="together"):
        MeanStats(3, 1.0, 1.0, cov_sum=1.0)
    with pytest.raises(ValueError, match="without a covariate"):
        MeanStats(3, 1, 1, 1, 1, 1) + MeanStats(3, 1, 1)
    with pytest.raises(NotEnoughDataError):
        _ = MeanStats(1, 1.0, 1.0).var
    with pytest.raises(NotEnoughDataError):
        _ = MeanStats(0, 0.0, 0.0).mean
    with pytest.raises(NotEnoughDataError):
        _ = RatioStats(3, 1, 1, 0, 0, 0).ratio
    with pytest.raises(FrozenInstanceError):
        MeanStats(3, 1, 1).n = 4  # type: ignore[misc]


def test_variance_clamped_at_zero_under_cancellation():
    s = MeanStats.from_values([1e8 + 0.1] * 10)
    assert s.var >= 0.0
