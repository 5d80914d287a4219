"""Holm and Benjamini-Hochberg against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from abkit.stats.multiple import adjust_pvalues, apply_correction
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats

SM_NAME = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni"}


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40),
    st.sampled_from(["holm", "bh", "bonferroni"]),
)
def test_agrees_with_statsmodels(p, method):
    ours = np.array(adjust_pvalues(p, method))
    ref = multipletests(p, method=SM_NAME[method])[1]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_agrees_with_statsmodels_on_ties_and_tiny_values():
    p = [1e-300, 0.01, 0.01, 0.04, 0.04, 0.5, 1.0, 0.03]
    for method in ("holm", "bh"):
        np.testing.assert_allclose(
            adjust_pvalues(p, method), multipletests(p, method=SM_NAME[method])[1], rtol=1e-12
        )


def test_hand_worked_example():
    # Holm on (0.01, 0.04, 0.03, 0.005): sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1 -> running max.
    assert adjust_pvalues([0.01, 0.04, 0.03, 0.005], "holm") == pytest.approx(
        [0.03, 0.06, 0.06, 0.02]
    )
    # BH: 0.005·4/1, 0.01·4/2, 0.03·4/3, 0.04·4/4 -> running min from the top.
    assert adjust_pvalues([0.01, 0.04, 0.03, 0.005], "bh") == pytest.approx(
        [0.02, 0.04, 0.04, 0.02]
    )


def test_none_entries_are_left_out_of_the_family():
    out = adjust_pvalues([0.01, None, 0.02], "holm")
    assert out[1] is None
    assert out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)


def test_aliases_and_validation():
    assert adjust_pvalues([0.2, 0.01], "fdr_bh") == adjust_pvalues([0.2, 0.01], "BH")
    assert adjust_pvalues([0.2, 0.01], None) == [0.2, 0.01]
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues([0.1], "sidak")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([1.2], "holm")


def test_apply_correction_to_results_records_the_method():
    def p(k_c, k_t):
        return compare(
            MeanStats(5000, k_c, k_c), MeanStats(5000, k_t, k_t), metric_type="proportion"
        )

    results = [p(500, 570), p(500, 540), p(500, 505), compare(None, None, metric_type="mean")]
    adjusted = apply_correction(results, "holm")
    raw = [r.p_value for r in results[:3]]
    ref = multipletests(raw, method="holm")[1]
    for r, a in zip(adjusted[:3], ref, strict=True):
        assert r.correction == "Holm"
        assert r.p_value_adjusted == pytest.approx(a, rel=1e-12)
        assert r.significant == (a < 0.05)
        assert "Holm correction over 3 comparisons" in r.note
    assert adjusted[3].p_value_adjusted is None and adjusted[3].correction == "Holm"
    # Correction can only remove significance.
    assert all(not a.significant or r.significant for a, r in zip(adjusted, results, strict=True))
    bh = apply_correction(results, "bh")
    assert {r.correction for r in bh} == {"Benjamini-Hochberg"}
    assert "p_value_adjusted" in bh[0].to_frame().columns
