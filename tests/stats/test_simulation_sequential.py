"""Fixed-seed simulations: peeking is safe with mSPRT, naive peeking is not.

4,000 experiments with 14 daily looks each, vectorised over experiments and looks.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from abkit.stats.planning import plan_proportion
from abkit.stats.sequential import (
    always_valid_pvalue,
    plan_sequential,
    sequential_boundary,
    sequential_series,
    tau_for_mde,
)
from abkit.stats.sufficient import MeanStats

SIMS = 4000
LOOKS = 14
ALPHA = 0.05


def _cumulative_proportions(rng, p_c, p_t, daily):
    """Cumulative conversions (sims × looks) per arm and the running unit counts."""
    conv_c = rng.binomial(daily, p_c, (SIMS, LOOKS)).cumsum(axis=1)
    conv_t = rng.binomial(daily, p_t, (SIMS, LOOKS)).cumsum(axis=1)
    n = daily * np.arange(1, LOOKS + 1)
    return conv_c, conv_t, n


def _z_and_var(conv_c, conv_t, n):
    pc, pt = conv_c / n, conv_t / n
    var = pc * (1 - pc) / n + pt * (1 - pt) / n
    return (pt - pc), var


@pytest.mark.parametrize("alternative", ["two-sided", "larger"])
def test_aa_false_positive_rate_with_14_peeks(alternative):
    rng = np.random.default_rng(20240614)
    # Plan for a 10% relative lift on a 10% rate over 14 days; tau from that MDE.
    plan = plan_proportion(0.10, mde=0.01, alternative=alternative)
    daily = plan.n_control // LOOKS + 1
    tau = tau_for_mde(0.01)
    conv_c, conv_t, n = _cumulative_proportions(rng, 0.10, 0.10, daily)
    diff, var = _z_and_var(conv_c, conv_t, n)
    z = diff / np.sqrt(var)
    p_seq = always_valid_pvalue(z, tau**2 / var, alternative)
    seq_fpr = np.mean((p_seq < ALPHA).any(axis=1))
    naive_p = 2 * sps.norm.sf(np.abs(z)) if alternative == "two-sided" else sps.norm.sf(z)
    naive_fpr = np.mean((naive_p < ALPHA).any(axis=1))
    final_fpr = np.mean(naive_p[:, -1] < ALPHA)
    # mSPRT: at or below alpha over all 14 looks (binomial sd of the rate is ~0.0035).
    assert seq_fpr <= ALPHA
    # Naive peeking inflates the false-positive rate well beyond alpha ...
    assert naive_fpr > 0.10
    # ... while the single look at the horizon is a correct fixed-horizon test.
    assert 0.04 <= final_fpr <= 0.06


def test_confidence_sequence_covers_over_all_looks():
    rng = np.random.default_rng(77)
    p_c, p_t, daily = 0.10, 0.11, 1100
    tau = tau_for_mde(0.01)
    conv_c, conv_t, n = _cumulative_proportions(rng, p_c, p_t, daily)
    diff, var = _z_and_var(conv_c, conv_t, n)
    c = sequential_boundary(tau**2 / var, ALPHA)
    inside = np.abs(diff - (p_t - p_c)) <= c * np.sqrt(var)
    coverage = np.mean(inside.all(axis=1))
    assert coverage >= 1 - ALPHA
    # The fixed-horizon interval, checked at every look, does not cover uniformly.
    naive_inside = np.abs(diff - (p_t - p_c)) <= sps.norm.isf(0.025) * np.sqrt(var)
    assert np.mean(naive_inside.all(axis=1)) < 0.90
    # Relative lift: the Fieller-form sequence covers the true relative lift at all looks.
    pc, pt = conv_c / n, conv_t / n
    r = p_t / p_c - 1
    vc, vt = pc * (1 - pc) / n, pt * (1 - pt) / n
    stat = (pt - (1 + r) * pc) / np.sqrt(vt + (1 + r) ** 2 * vc)
    assert np.mean((np.abs(stat) <= c).all(axis=1)) >= 1 - ALPHA
    # And the test has real power: the true 10% lift is detected in most experiments.
    p_seq = always_valid_pvalue(diff / np.sqrt(var), tau**2 / var)
    assert np.mean((p_seq < ALPHA).any(axis=1)) > 0.5


def test_aa_means_with_default_tau_and_series_api_agree():
    """Means (Welch/normal), tau from the default; the object API matches the vectorised one."""
    rng = np.random.default_rng(5)
    daily = 300
    y_c = rng.lognormal(2.0, 1.0, (SIMS // 2, LOOKS, daily))
    y_t = rng.lognormal(2.0, 1.0, (SIMS // 2, LOOKS, daily))

    def cum(y):
        s, ss = y.sum(axis=2).cumsum(axis=1), (y * y).sum(axis=2).cumsum(axis=1)
        return s, ss

    n = daily * np.arange(1, LOOKS + 1)
    s_c, ss_c = cum(y_c)
    s_t, ss_t = cum(y_t)
    m_c, m_t = s_c / n, s_t / n
    v_c = (ss_c - s_c**2 / n) / (n - 1) / n
    v_t = (ss_t - s_t**2 / n) / (n - 1) / n
    tau = np.array([tau_for_mde(0.05 * m) for m in m_c[:, 0]])[:, None]
    var = v_c + v_t
    p = always_valid_pvalue((m_t - m_c) / np.sqrt(var), tau**2 / var)
    assert np.mean((p < ALPHA).any(axis=1)) <= ALPHA
    for i in range(3):
        series = sequential_series(
            [
                MeanStats(n=int(n[k]), sum=float(s_c[i, k]), sum_sq=float(ss_c[i, k]))
                for k in range(LOOKS)
            ],
            [
                MeanStats(n=int(n[k]), sum=float(s_t[i, k]), sum_sq=float(ss_t[i, k]))
                for k in range(LOOKS)
            ],
            metric_type="mean",
        )
        assert series.tau == pytest.approx(tau[i, 0])
        running = np.minimum.accumulate(p[i])
        assert [look.p_value for look in series.looks] == pytest.approx(list(running), rel=1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "larger"])
def test_plan_sequential_single_look_matches_closed_form(alternative):
    """With one look the mSPRT is a z-test at the boundary c(ρ): solve that exactly."""
    plan = plan_proportion(0.10, mde=0.01, alternative=alternative)
    seq = plan_sequential(plan, looks=1)
    v_n = plan.baseline_sd**2 / plan.n_control + plan.treatment_sd**2 / plan.n_per_arm[1]
    z_beta = sps.norm.isf(0.2)

    def gap(f: float) -> float:
        c = float(sequential_boundary(seq.tau**2 * f / v_n, ALPHA, alternative))
        return 0.01 * np.sqrt(f / v_n) - c - z_beta

    from scipy.optimize import brentq

    exact = brentq(gap, 1.0, 10.0)
    assert seq.inflation == pytest.approx(exact, rel=0.02)
    assert seq.expected_n_total_at_mde == seq.n_total


def test_plan_sequential_power_holds_on_binomial_data():
    """Max sample from plan_sequential, 14 looks, real binomial data: power ≈ 80%."""
    rng = np.random.default_rng(8)
    plan = plan_proportion(0.10, mde=0.01, daily_traffic=4000)
    seq = plan_sequential(plan, looks=LOOKS)
    assert 1.4 < seq.inflation < 2.0
    assert seq.expected_n_total_at_mde < 0.8 * seq.n_total  # real effects stop early
    assert seq.duration_days > plan.duration_days
    daily = -(-seq.n_per_arm[0] // LOOKS)
    conv_c, conv_t, n = _cumulative_proportions(rng, 0.10, 0.11, daily)
    diff, var = _z_and_var(conv_c, conv_t, n)
    p = always_valid_pvalue(diff / np.sqrt(var), seq.tau**2 / var)
    assert abs(np.mean((p < ALPHA).any(axis=1)) - 0.8) < 0.03
