"""The fixed-horizon readout of a difference (abkit.stats.fixed): notes that prevent misreading."""

from __future__ import annotations

import pytest

from abkit.stats._common import NOT_ENOUGH_DATA
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats


def from_moments(n: int, mean: float, sd: float) -> MeanStats:
    return MeanStats(n=n, sum=n * mean, sum_sq=(n - 1) * sd * sd + n * mean * mean)


def test_negative_control_mean_is_explained():
    # Treatment -5 against control -10: the absolute lift is +5, the ratio - 1 is -50%.
    r = compare(from_moments(100, -10.0, 5.0), from_moments(100, -5.0, 5.0), metric_type="mean")
    assert r.abs_lift == pytest.approx(5.0) and r.rel_lift == pytest.approx(-0.5)
    assert "control mean is negative" in r.note
    positive = compare(
        from_moments(100, 10.0, 5.0), from_moments(100, 5.0, 5.0), metric_type="mean"
    )
    assert "negative" not in positive.note


def test_zero_variance_arm_is_explained_for_means():
    r = compare(from_moments(50, 3.0, 0.0), from_moments(50, 4.0, 1.0), metric_type="mean")
    assert r.ok and "zero variance" in r.note
    both = compare(from_moments(50, 3.0, 0.0), from_moments(50, 4.0, 0.0), metric_type="mean")
    assert both.status == NOT_ENOUGH_DATA
    assert "conversion" not in both.note and "same value" in both.note
