"""Sample ratio mismatch: chi-square against configured weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from abkit.stats.srm import SRMResult, srm_test


def test_matches_scipy_chisquare_with_weights():
    counts = {"control": 50_300, "a": 24_800, "b": 25_100}
    weights = {"control": 0.5, "a": 0.25, "b": 0.25}
    r = srm_test(counts, weights)
    ref = stats.chisquare([50_300, 24_800, 25_100], [50_100, 25_050, 25_050])
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert r.df == 2
    assert r.expected == pytest.approx((50_100, 25_050, 25_050))
    assert not r.mismatch and r.status == "ok"


def test_hand_computed_two_arm_example():
    # 10,000 units, 50/50 split, 5,200 vs 4,800: χ² = (200² + 200²)/5,000 = 16, df 1.
    r = srm_test([5200, 4800])
    assert r.statistic == pytest.approx(16.0)
    assert r.p_value == pytest.approx(stats.chi2.sf(16.0, 1), rel=1e-12)
    assert r.mismatch  # p ≈ 6.3e-5 < 0.001
    assert "sample ratio mismatch" in r.note


def test_threshold_is_0_001_by_default():
    # p ≈ 0.0027: suspicious, yet not flagged at the default 0.001.
    r = srm_test([5150, 4850])
    assert 0.001 < r.p_value < 0.01 and not r.mismatch
    assert srm_test([5150, 4850], threshold=0.01).mismatch


def test_unnormalised_weights_and_missing_variant():
    r = srm_test({"c": 900, "t": 100}, {"c": 9, "t": 1})
    assert r.weights == pytest.approx((0.9, 0.1)) and r.statistic == pytest.approx(0.0)
    # A configured variant that received no units at all still counts (and screams).
    r = srm_test({"c": 1000}, {"c": 1, "t": 1})
    assert r.variants == ("c", "t") and r.observed == (1000, 0) and r.mismatch


def test_zero_weight_variant_with_units_is_a_certain_mismatch():
    r = srm_test({"c": 500, "t": 500, "off": 3}, {"c": 1, "t": 1, "off": 0})
    assert r.mismatch and r.p_value == 0.0 and r.statistic is None
    assert "weight 0" in r.note
    json.dumps(r.to_dict(), allow_nan=False)


def test_no_units_is_not_enough_data():
    r = srm_test([0, 0], [0.5, 0.5])
    assert r.status == "not enough data" and r.p_value is None and not r.mismatch
    json.dumps(r.to_dict(), allow_nan=False)


def test_small_counts_are_noted():
    assert "below 5" in srm_test([3, 1]).note


@pytest.mark.parametrize(
    ("counts", "weights", "match"),
    [
        ([10], None, "two variants"),
        ([10, -1], None, "non-negative"),
        ([10, 10], [1, 1, 1], "weights"),
        ([10, 10], [-1, 2], "non-negative"),
        ({"a": 1, "b": 2}, {"a": 1}, "no configured weight"),
    ],
)
def test_invalid_input(counts, weights, match):
    with pytest.raises(ValueError, match=match):
        srm_test(counts, weights)


def test_false_alarm_rate_under_correct_split():
    # 4,000 experiments drawn from the configured split: ~0.1% flagged.
    rng = np.random.default_rng(20)
    n = rng.multinomial(20_000, [0.5, 0.3, 0.2], size=4_000)
    flagged = sum(srm_test(row, [0.5, 0.3, 0.2]).mismatch for row in n)
    assert flagged <= 12  # expected 4; Poisson(4) exceeds 12 with probability < 0.1%


def test_rendering():
    r = srm_test({"control": 5200, "treatment": 4800})
    assert isinstance(r, SRMResult)
    assert "control, treatment" in r.to_frame().loc[0, "variants"]
    assert "<table" in r._repr_html_()
