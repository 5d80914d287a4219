"""Small-sample proportions (abkit.stats.exact)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from abkit.errors import ConfigError, DataError
from abkit.stats.estimators import estimate_difference
from abkit.stats.exact import (
    compare_exact,
    fisher_pvalue,
    needs_exact,
    newcombe_interval,
    wilson_interval,
)
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats
from abkit.stats.tails import p_value

SIDES = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}


def _arm(x: int, n: int) -> MeanStats:
    return MeanStats(n=n, sum=float(x), sum_sq=float(x))


def test_fisher_equals_scipy() -> None:
    for x_c, n_c, x_t, n_t in [(0, 20, 5, 20), (3, 11, 9, 14), (1, 7, 1, 9), (12, 40, 4, 33)]:
        table = [[x_t, x_c], [n_t - x_t, n_c - x_c]]
        for ours, theirs in SIDES.items():
            expected = sps.fisher_exact(table, alternative=theirs).pvalue
            assert fisher_pvalue(x_c, n_c, x_t, n_t, ours) == pytest.approx(expected, rel=1e-12)


def test_mid_p_is_fisher_minus_half_the_observed_table() -> None:
    x_c, n_c, x_t, n_t = 2, 15, 7, 15
    point = sps.hypergeom.pmf(x_t, n_c + n_t, x_c + x_t, n_t)
    full = fisher_pvalue(x_c, n_c, x_t, n_t, "larger")
    assert fisher_pvalue(x_c, n_c, x_t, n_t, "larger", mid_p=True) == pytest.approx(
        full - point / 2, rel=1e-12
    )
    assert fisher_pvalue(x_c, n_c, x_t, n_t, mid_p=True) < fisher_pvalue(x_c, n_c, x_t, n_t)


def test_boschloo_equals_scipy_and_the_published_example() -> None:
    # scipy.stats.boschloo_exact's documented example: 74/117 vs 31/63 (p = 0.0355).
    result = compare_exact(_arm(31, 63), _arm(74, 117), alternative="larger", test="boschloo")
    assert result.p_value == pytest.approx(0.0355, abs=1e-4)
    table = [[7, 2], [13, 18]]
    for ours, theirs in SIDES.items():
        got = compare_exact(_arm(2, 20), _arm(7, 20), alternative=ours, test="boschloo")
        assert got.p_value == pytest.approx(
            sps.boschloo_exact(table, alternative=theirs).pvalue, rel=1e-10
        )


def test_newcombe_and_wilson_equal_statsmodels_and_the_paper() -> None:
    # Newcombe (1998), Table II example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339.
    low, high = newcombe_interval(48, 80, 56, 70)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    for x_c, n_c, x_t, n_t in [(0, 10, 0, 20), (0, 25, 4, 25), (10, 10, 3, 12), (5, 9, 6, 7)]:
        ref = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb")
        got = newcombe_interval(x_c, n_c, x_t, n_t)
        assert (got.lower, got.upper) == pytest.approx(ref, rel=1e-10, abs=1e-12)
        for x, n in ((x_c, n_c), (x_t, n_t)):
            w = wilson_interval(x, n)
            assert (w.lower, w.upper) == pytest.approx(
                proportion_confint(x, n, method="wilson"), rel=1e-10, abs=1e-12
            )


def test_zero_conversions_wald_is_anti_conservative() -> None:
    control, treatment = _arm(0, 50), _arm(5, 50)
    wald = estimate_difference(control, treatment, metric_type="proportion")
    wald_p = p_value(wald.abs_diff / wald.se_abs, None, "two-sided")
    assert needs_exact(control, treatment)
    fisher = compare_exact(control, treatment, test="fisher")
    assert wald_p < 0.025 and fisher.p_value > 0.05  # the example: 0.018 vs 0.056
    # The default (Boschloo) sits between them and agrees with the Newcombe interval.
    auto = compare_exact(control, treatment)
    assert wald_p < auto.p_value < 0.05 and auto.significant
    assert auto.abs_ci.lower is not None and auto.abs_ci.lower > 0


def test_switching_rule() -> None:
    assert needs_exact(_arm(0, 1000), _arm(3, 1000))  # zero conversions
    assert needs_exact(_arm(10, 10), _arm(9, 10))  # all converted
    assert needs_exact(_arm(2, 40), _arm(4, 40))  # expected count 3 < 5
    assert not needs_exact(_arm(50, 500), _arm(60, 500))
    assert compare_exact(_arm(2, 40), _arm(4, 40)).test.startswith("Boschloo")
    assert compare_exact(_arm(2, 400), _arm(4, 400)).test == "Fisher exact test"
    with pytest.raises(DataError, match="0/1"):
        needs_exact(MeanStats(n=10, sum=2.5, sum_sq=3.0), _arm(1, 10))


def _size(pvalue: Callable[[int, int], float], n: int, rate: float, alpha: float = 0.05) -> float:
    """Exact A/A false-positive rate: the probability of every table with p < alpha."""
    pmf = sps.binom.pmf(np.arange(n + 1), n, rate)
    return float(
        sum(
            pmf[a] * pmf[b]
            for a, b in itertools.product(range(n + 1), repeat=2)
            if pmf[a] * pmf[b] > 1e-12 and pvalue(a, b) < alpha
        )
    )


def _wald(a: int, b: int, n: int) -> float:
    try:
        d = estimate_difference(_arm(a, n), _arm(b, n), metric_type="proportion")
    except Exception:  # zero variance in both arms: Wald cannot reject
        return 1.0
    return p_value(d.abs_diff / d.se_abs, None, "two-sided")


def test_aa_size_at_small_n_by_enumeration() -> None:
    n = 15
    for rate in (0.05, 0.2, 0.5):
        assert _size(lambda a, b: fisher_pvalue(a, n, b, n), n, rate) <= 0.05
    m = 10
    # Wald's size at n = 10, rate 0.2 is 0.091; the exact tests hold 5%.
    assert _size(lambda a, b: _wald(a, b, m), m, 0.2) > 0.08
    boschloo = _size(lambda a, b: compare_exact(_arm(a, m), _arm(b, m)).p_value, m, 0.3)
    fisher = _size(lambda a, b: fisher_pvalue(a, m, b, m), m, 0.3)
    assert fisher < boschloo <= 0.05  # exact, and more powerful than Fisher


def test_engine_through_compare() -> None:
    result = compare(_arm(0, 50), _arm(5, 50), metric_type="proportion", method="exact")
    direct = compare_exact(_arm(0, 50), _arm(5, 50))
    assert result.method == "exact" and result.p_value == direct.p_value
    assert result.abs_ci == direct.abs_ci and result.significant
    # CUPED adjusts the means, but the exact test uses the raw counts.
    with_cov = [MeanStats.from_values(y, x) for y, x in _cuped_arms()]
    cuped = compare(with_cov[0], with_cov[1], metric_type="proportion", method="exact", cuped=True)
    plain = compare_exact(
        _arm(int(with_cov[0].sum), with_cov[0].n), _arm(int(with_cov[1].sum), with_cov[1].n)
    )
    assert cuped.p_value == plain.p_value
    with pytest.raises(ConfigError, match="proportion"):
        compare(
            MeanStats.from_values([1.0, 2.0, 3.0]),
            MeanStats.from_values([1.0, 2.5, 3.0]),
            metric_type="mean",
            method="exact",
        )


def _cuped_arms() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(9)
    arms = []
    for rate in (0.05, 0.1):
        x = rng.normal(size=60)
        arms.append(((rng.random(60) < rate + 0.02 * (x > 0)).astype(float), x))
    return arms


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.data())
def test_invariants(n_c: int, n_t: int, data: st.DataObject) -> None:
    x_c = data.draw(st.integers(0, n_c))
    x_t = data.draw(st.integers(0, n_t))
    ci = newcombe_interval(x_c, n_c, x_t, n_t)
    assert ci.lower is not None and ci.upper is not None
    assert -1.0 <= ci.lower <= x_t / n_t - x_c / n_c <= ci.upper <= 1.0
    one_sided = newcombe_interval(x_c, n_c, x_t, n_t, alternative="larger")
    assert one_sided.upper is None
    assert one_sided.lower == pytest.approx(newcombe_interval(x_c, n_c, x_t, n_t, 0.1).lower)
    full = fisher_pvalue(x_c, n_c, x_t, n_t)
    assert 0.0 <= fisher_pvalue(x_c, n_c, x_t, n_t, mid_p=True) <= full <= 1.0
    # The two one-sided p-values overlap in the observed table only.
    larger = fisher_pvalue(x_c, n_c, x_t, n_t, "larger")
    smaller = fisher_pvalue(x_c, n_c, x_t, n_t, "smaller")
    assert larger + smaller >= 1.0 - 1e-12
