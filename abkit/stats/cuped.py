"""CUPED diagnostics: how much a pre-period covariate helps, and why.

The adjustment itself lives in :func:`abkit.stats.estimators.estimate_difference`
(``cuped=True``); see that module for the estimator. This module reports the pieces an
analyst wants to see next to it (Deng, Xu, Kohavi & Walker 2013):

* ``theta``: ``θ = (S_xy,c + S_xy,t) / (S_xx,c + S_xx,t)`` on within-arm centred sums of
  both arms pooled;
* ``correlation``: the pooled within-arm correlation
  ``ρ = (S_xy,c + S_xy,t) / sqrt((S_xx,c + S_xx,t)(S_yy,c + S_yy,t))``;
* ``expected_reduction = ρ²``: with equal within-arm moments the variance of the adjusted
  difference is ``(1 - ρ²)`` times the raw one;
* ``achieved_reduction``: ``1 - Var_cuped(Δ)/Var_raw(Δ)`` actually obtained (it differs
  from ``ρ²`` when the arms' moments differ, and it can be slightly negative for a useless
  covariate, because θ is estimated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from abkit.errors import NotEnoughDataError
from abkit.results import ResultMixin
from abkit.stats.estimators import cuped_theta, estimate_difference
from abkit.stats.sufficient import MeanStats
from abkit.vocabulary import MetricType

__all__ = ["CupedSummary", "cuped_adjust", "cuped_summary"]


@dataclass(frozen=True)
class CupedSummary(ResultMixin):
    """What CUPED did for one metric (see the module docstring)."""

    theta: float
    correlation: float
    expected_reduction: float
    achieved_reduction: float
    se_raw: float
    se_cuped: float


def _centred(n: int, a: float, b: float, ab: float) -> float:
    return ab - a * b / n


def cuped_summary(
    control: MeanStats, treatment: MeanStats, *, metric_type: MetricType = "mean"
) -> CupedSummary:
    """Theta, correlation, expected (``ρ²``) and achieved variance reduction."""
    raw = estimate_difference(control, treatment, metric_type=metric_type, cuped=False)
    adj = estimate_difference(control, treatment, metric_type=metric_type, cuped=True)
    s_xy = s_xx = s_yy = 0.0
    for arm in (control, treatment):
        assert arm.cov_sum is not None and arm.cov_sum_sq is not None and arm.cross_sum is not None
        s_xy += _centred(arm.n, arm.cov_sum, arm.sum, arm.cross_sum)
        s_xx += max(_centred(arm.n, arm.cov_sum, arm.cov_sum, arm.cov_sum_sq), 0.0)
        s_yy += max(_centred(arm.n, arm.sum, arm.sum, arm.sum_sq), 0.0)
    if s_xx <= 0 or s_yy <= 0:
        raise NotEnoughDataError("the covariate or the metric has zero variance")
    rho = max(-1.0, min(1.0, s_xy / math.sqrt(s_xx * s_yy)))
    assert adj.variance_reduction is not None
    return CupedSummary(
        theta=cuped_theta(control, treatment),
        correlation=rho,
        expected_reduction=rho * rho,
        achieved_reduction=adj.variance_reduction,
        se_raw=raw.se_abs,
        se_cuped=adj.se_abs,
    )


def cuped_adjust(y: Any, x: Any, theta: float, x_mean: float) -> Any:
    """Per-unit adjusted values ``y - θ(x - x̄)`` for raw arrays (tests, notebooks)."""
    import numpy as np

    return np.asarray(y, dtype=float) - theta * (np.asarray(x, dtype=float) - x_mean)
