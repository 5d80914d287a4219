"""CUPED diagnostics and the end-to-end variance reduction."""

from __future__ import annotations

import numpy as np
import pytest

from abkit.errors import NotEnoughDataError
from abkit.stats.cuped import cuped_adjust, cuped_summary
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats


def _arms(rho: float, n: int = 20_000, seed: int = 40, effect: float = 0.05):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, n))
    e = rng.normal(size=(2, n))
    y = 1.0 + rho * x + np.sqrt(1 - rho * rho) * e  # baseline 1: relative lift defined
    y[1] += effect
    return MeanStats.from_values(y[0], x[0]), MeanStats.from_values(y[1], x[1]), x, y


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_reduction_is_the_squared_correlation(rho):
    c, t, _, _ = _arms(rho)
    s = cuped_summary(c, t)
    assert s.correlation == pytest.approx(rho, abs=0.01)
    assert s.expected_reduction == pytest.approx(rho * rho, abs=0.015)
    # Equal arm moments: achieved reduction equals ρ² up to sampling noise.
    assert s.achieved_reduction == pytest.approx(s.expected_reduction, abs=0.005)
    assert s.se_cuped == pytest.approx(s.se_raw * np.sqrt(1 - rho * rho), rel=0.02)


def test_readout_reports_reduction_and_narrows_the_interval():
    c, t, _, _ = _arms(0.8)
    raw = compare(c, t, metric_type="mean")
    adj = compare(c, t, metric_type="mean", cuped=True)
    assert raw.variance_reduction is None
    assert adj.variance_reduction == pytest.approx(0.64, abs=0.02)
    width = lambda r: r.abs_ci.upper - r.abs_ci.lower  # noqa: E731
    assert width(adj) == pytest.approx(width(raw) * 0.6, rel=0.03)
    assert adj.test == "Welch t-test with CUPED" and adj.cuped and adj.theta is not None
    assert adj.rel_ci_bounded


def test_cuped_adjust_helper_matches_engine_means():
    c, t, x, y = _arms(0.5, n=1000)
    s = cuped_summary(c, t)
    adj = compare(c, t, metric_type="mean", cuped=True)
    x_pool = x.mean()
    assert cuped_adjust(y[0], x[0], s.theta, x_pool).mean() == pytest.approx(
        adj.control_mean_adjusted
    )
    assert cuped_adjust(y[1], x[1], s.theta, x_pool).mean() == pytest.approx(
        adj.treatment_mean_adjusted
    )


def test_cuped_readout_shows_raw_means_beside_the_adjusted_effect():
    """Issue 9 defect: "Control"/"Treatment" read the raw means; the adjusted ones are named."""
    c, t, _, y = _arms(0.5, n=1000)
    raw = compare(c, t, metric_type="mean")
    adj = compare(c, t, metric_type="mean", cuped=True)
    assert adj.control_mean == pytest.approx(y[0].mean(), rel=1e-12)
    assert adj.treatment_mean == pytest.approx(y[1].mean(), rel=1e-12)
    assert (adj.control_mean, adj.treatment_mean) == (raw.control_mean, raw.treatment_mean)
    assert adj.control_mean_adjusted != pytest.approx(adj.control_mean, rel=1e-6)
    assert adj.abs_lift == pytest.approx(
        adj.treatment_mean_adjusted - adj.control_mean_adjusted, rel=1e-12
    )
    assert raw.control_mean_adjusted is None and raw.treatment_mean_adjusted is None
    assert "control_mean_adjusted" in adj.to_dict() and "control_mean_adjusted" in adj.to_frame()


def test_proportion_with_pre_period_conversion():
    rng = np.random.default_rng(41)
    pre = rng.random((2, 30_000)) < 0.2
    post = np.where(pre, rng.random((2, 30_000)) < 0.5, rng.random((2, 30_000)) < 0.08)
    c = MeanStats.from_values(post[0].astype(float), pre[0].astype(float))
    t = MeanStats.from_values(post[1].astype(float), pre[1].astype(float))
    r = compare(c, t, metric_type="proportion", cuped=True)
    assert r.status == "ok" and r.variance_reduction > 0.1
    assert r.test.startswith("two-proportion z-test")


def test_zero_variance_covariate_is_an_explicit_error():
    c = MeanStats.from_values([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    with pytest.raises(NotEnoughDataError):
        cuped_summary(c, c)
