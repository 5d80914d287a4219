"""Intervals consistent with multiplicity corrections (abkit.stats.simultaneous)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from abkit.stats.simultaneous import corrected_intervals
from abkit.vocabulary import CORRECTIONS, Correction

THETA = np.array([0.0, 0.0, 0.0, 2.0, 3.0, -3.5])  # true effects in units of the se


def _strictly_contains_zero(lower: float | None, upper: float | None) -> bool:
    return (lower is None or lower < 0) and (upper is None or upper > 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-6, 6), min_size=1, max_size=8),
    st.sampled_from(CORRECTIONS),
)
def test_interval_excludes_zero_exactly_when_significant(
    z: list[float], correction: Correction
) -> None:
    results = corrected_intervals(z, [1.0] * len(z), correction=correction)
    for r in results:
        assert r.significant == (not _strictly_contains_zero(r.ci.lower, r.ci.upper))


def test_adjusted_pvalues_and_levels() -> None:
    z = [0.5, 2.2, 2.6, 3.1]
    raw = [2 * sps.norm.sf(abs(v)) for v in z]
    pairs: tuple[tuple[Correction, str], ...] = (
        ("holm", "holm"),
        ("bh", "fdr_bh"),
        ("bonferroni", "bonferroni"),
    )
    for ours, theirs in pairs:
        got = corrected_intervals(z, [1.0] * 4, correction=ours)
        expected = multipletests(raw, alpha=0.05, method=theirs)[1]
        assert [r.p_value_adjusted for r in got] == pytest.approx(list(expected), rel=1e-12)
    bonf = corrected_intervals(z, [1.0] * 4, correction="bonferroni")
    half = sps.norm.isf(0.05 / 8)
    assert bonf[0].ci.upper == pytest.approx(0.5 + half, rel=1e-12)
    # BH selects 3 of 4 (p = 0.62, 0.028, 0.0093, 0.0019): level 3·0.05/4 for every interval.
    bh = corrected_intervals(z, [1.0] * 4, correction="bh")
    assert [r.significant for r in bh] == [False, True, True, True]
    assert all(r.level_alpha == pytest.approx(0.0375) for r in bh)


def test_single_comparison_is_the_plain_interval() -> None:
    for correction in ("holm", "bh", "bonferroni", "none"):
        (r,) = corrected_intervals([1.2], [0.5], correction=correction, dfs=[30.0])
        half = sps.t.isf(0.025, 30) * 0.5
        assert (r.ci.lower, r.ci.upper) == pytest.approx((1.2 - half, 1.2 + half), rel=1e-12)


def test_holm_rejected_bounds_sit_at_zero_unless_all_rejected() -> None:
    some = corrected_intervals([0.3, 4.0, -3.0], [1.0] * 3, correction="holm")
    assert not some[0].significant and some[1].bounded_at_zero and some[1].ci.lower == 0.0
    lower = some[2].ci.lower
    assert some[2].ci.upper == 0.0 and lower is not None and lower < -3.0
    every = corrected_intervals([5.0, 4.0], [1.0, 1.0], correction="holm")
    assert every[0].ci.lower == pytest.approx(5.0 - sps.norm.isf(0.05 / 4), rel=1e-12)


def test_one_sided() -> None:
    (r, s) = corrected_intervals(
        [3.0, 0.1], [1.0, 1.0], correction="bonferroni", alternative="larger"
    )
    assert r.ci.upper is None and r.ci.lower == pytest.approx(3.0 - sps.norm.isf(0.025))
    assert r.significant and not s.significant


@functools.cache
def _coverage(correction: Correction, reps: int = 4000, seed: int = 7) -> tuple[float, float]:
    """(simultaneous coverage, false-coverage rate among selected) over independent z's."""
    rng = np.random.default_rng(seed)
    all_cover = 0
    fcr = 0.0
    for _ in range(reps):
        est = THETA + rng.standard_normal(THETA.size)
        results = corrected_intervals(list(est), [1.0] * THETA.size, correction=correction)
        covered = [r.ci.contains(t) for r, t in zip(results, THETA, strict=True)]
        all_cover += all(covered)
        selected = [c for r, c in zip(results, covered, strict=True) if r.significant]
        fcr += (len(selected) - sum(selected)) / max(len(selected), 1)
    return all_cover / reps, fcr / reps


def test_bonferroni_and_holm_simultaneous_coverage() -> None:
    for correction in ("bonferroni", "holm"):
        coverage, _ = _coverage(correction)
        assert coverage >= 0.95 - 0.008, correction  # 2.3 se of 4000 draws
    # Unadjusted intervals do not cover simultaneously: the test can tell the difference.
    assert _coverage("none")[0] < 0.8


def test_bh_false_coverage_rate() -> None:
    _, fcr = _coverage("bh")
    assert fcr <= 0.05 + 0.006
    assert _coverage("none")[1] > 0.06  # naive intervals of BH-style selections miss more
