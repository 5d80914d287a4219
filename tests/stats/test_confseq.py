"""Asymptotic confidence sequences (abkit.stats.confseq)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abkit.errors import ConfigError
from abkit.stats.confseq import (
    confseq_readout,
    confseq_rho,
    confseq_series,
    crossing_probability,
    horizon_level,
)
from abkit.stats.estimators import Difference, estimate_difference
from abkit.stats.planning import plan_proportion
from abkit.stats.readout import compare
from abkit.stats.sequential import (
    always_valid_pvalue,
    optimal_rho,
    sequential_boundary,
    sequential_readout,
    tau_for_mde,
)
from abkit.stats.sufficient import MeanStats

LOOKS = 14
BASELINE = 0.10


def _difference(n_each: int, se: float, diff: float = 0.0) -> Difference:
    return Difference(
        control_mean=0.1,
        treatment_mean=0.1 + diff,
        abs_diff=diff,
        se_abs=se,
        var_control_mean=se * se / 2,
        var_treatment_mean=se * se / 2,
        cov_means=0.0,
        df=None,
        metric_type="proportion",
        n_control=n_each,
        n_treatment=n_each,
    )


def test_half_width_is_the_papers_formula() -> None:
    # Waudby-Smith et al. (2023), Gaussian-mixture asymptotic CS with σ̂_t = se·√t.
    alpha, n_planned = 0.05, 20_000

    def paper(t: int, se: float, rho2: float) -> float:
        sigma = se * math.sqrt(t)
        return sigma * math.sqrt(
            2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha)
        )

    for t in (500, 4_000, 20_000, 80_000):
        se = 0.3 / math.sqrt(t)
        ours = confseq_readout(_difference(t // 2, se), n_planned=n_planned)
        assert ours.abs_ci is not None and ours.abs_ci.upper is not None
        assert ours.abs_ci.upper == pytest.approx(
            paper(t, se, confseq_rho(n_planned, alpha)), rel=1e-12
        )
    # abkit's r* is the exact minimiser; the paper's one-step ρ is a hair wider at t*.
    se = 0.3 / math.sqrt(n_planned)
    one_step = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / n_planned
    ours = confseq_readout(_difference(n_planned // 2, se), n_planned=n_planned)
    assert ours.abs_ci is not None and ours.abs_ci.upper is not None
    assert ours.abs_ci.upper <= paper(n_planned, se, one_step) <= ours.abs_ci.upper * 1.001


def test_tightest_at_the_planned_sample() -> None:
    se = 0.01
    widths: dict[int, float] = {}
    for planned in (2_000, 10_000, 50_000):
        c = confseq_readout(_difference(5_000, se), n_planned=planned).boundary_z
        assert c is not None
        widths[planned] = c
    assert widths[10_000] < widths[2_000] and widths[10_000] < widths[50_000]
    assert confseq_rho(10_000) * 10_000 == pytest.approx(optimal_rho(0.05))


def test_p_value_and_interval_agree() -> None:
    for diff in (0.0, 0.02, 0.035, 0.05):
        result = confseq_readout(_difference(5_000, 0.01, diff), n_planned=10_000)
        assert result.abs_ci is not None
        assert result.significant == (not result.abs_ci.contains(0.0))


def test_engine_through_compare() -> None:
    c = MeanStats(n=5_000, sum=500.0, sum_sq=500.0)
    t = MeanStats(n=5_000, sum=580.0, sum_sq=580.0)
    result = compare(c, t, metric_type="proportion", method="confseq", n_planned=20_000)
    direct = confseq_readout(estimate_difference(c, t, metric_type="proportion"), n_planned=20_000)
    assert result.method == "confseq" and result.p_value == direct.p_value
    assert result.rel_ci is not None
    with pytest.raises(ConfigError, match="n_planned"):
        compare(c, t, metric_type="proportion", method="confseq")


def _peeking(effect: float, n_per_day: int, reps: int, seed: int) -> dict[str, float]:
    """Share of experiments declared significant at any of 14 daily looks, per method.

    Vectorised over replications with the same formulas as the scalar readouts (the first
    replication is checked against them look by look).
    """
    rng = np.random.default_rng(seed)
    n_planned = 2 * LOOKS * n_per_day
    n = n_per_day * np.arange(1, LOOKS + 1)
    xc = np.cumsum(rng.binomial(n_per_day, BASELINE, (reps, LOOKS)), axis=1)
    xt = np.cumsum(rng.binomial(n_per_day, BASELINE + effect, (reps, LOOKS)), axis=1)
    pc, pt = xc / n, xt / n
    se = np.sqrt(pc * (1 - pc) / n + pt * (1 - pt) / n)
    z = (pt - pc) / se
    planned_mde = 0.1 * BASELINE  # the plan's MDE (10% relative); mSPRT's default is 5%
    rho = {
        "confseq": np.broadcast_to(2 * n * confseq_rho(n_planned), z.shape),
        "msprt_default": (tau_for_mde(1.0) * 0.05 * pc / se) ** 2,  # τ is linear in the MDE
        "msprt_mde": (tau_for_mde(planned_mde) / se) ** 2,
    }
    hits = {k: (always_valid_pvalue(z, r) < 0.05).any(axis=1).mean() for k, r in rho.items()}
    level = horizon_level(0.05, 1.0)  # calibrated to stop at the planned sample
    calibrated = always_valid_pvalue(z, rho["confseq"]) < level
    hits["confseq_horizon"] = calibrated.any(axis=1).mean()
    hits["naive"] = (np.abs(z) > sps.norm.isf(0.025)).any(axis=1).mean()
    hits["fixed"] = (np.abs(z[:, -1]) > sps.norm.isf(0.025)).mean()
    for k in range(LOOKS):
        diff = estimate_difference(
            MeanStats(n=int(n[k]), sum=float(xc[0, k]), sum_sq=float(xc[0, k])),
            MeanStats(n=int(n[k]), sum=float(xt[0, k]), sum_sq=float(xt[0, k])),
            metric_type="proportion",
        )
        scalar = {
            "confseq": confseq_readout(diff, n_planned=n_planned).p_value,
            "msprt_default": sequential_readout(diff).p_value,
            "msprt_mde": sequential_readout(diff, mde=planned_mde).p_value,
        }
        for name, value in scalar.items():
            assert value == pytest.approx(always_valid_pvalue(z[0, k], rho[name][0, k]), rel=1e-9)
        horizon = confseq_readout(diff, n_planned=n_planned, horizon=1.0)
        assert horizon.significant == calibrated[0, k]
    return {k: float(v) for k, v in hits.items()}


def test_fourteen_peeks_false_positive_rate_and_power() -> None:
    plan = plan_proportion(BASELINE, mde=0.1, relative=True, power=0.8)
    n_per_day = math.ceil(plan.n_control / LOOKS)
    null = _peeking(0.0, n_per_day, reps=20_000, seed=20)
    assert null["confseq"] <= 0.05 and null["msprt_default"] <= 0.05
    assert null["confseq_horizon"] <= 0.05
    assert null["naive"] > 0.15  # peeking at a fixed-horizon test: the problem solved
    alt = _peeking(0.1 * BASELINE, n_per_day, reps=10_000, seed=21)
    assert alt["fixed"] == pytest.approx(0.8, abs=0.02)
    # Tuned to the plan, the sequence beats the mSPRT's default mixing scale clearly, and
    # matches the mSPRT tuned to the plan's MDE (the same mixture, tuned the same way).
    assert alt["confseq"] > alt["msprt_default"] + 0.05
    assert alt["confseq"] == pytest.approx(alt["msprt_mde"], abs=0.03)
    # Calibrated to stop by the planned sample, the same family gains much more.
    assert alt["confseq_horizon"] > alt["confseq"] + 0.08


def test_crossing_probability_matches_brownian_simulation() -> None:
    # Monte Carlo of the continuous-time crossing: 2,000 steps plus the Brownian-bridge
    # probability of crossing between steps (independent of the grid method).
    rng = np.random.default_rng(30)
    steps, paths, level = 1000, 6000, 0.1
    dt = 1.0 / steps
    times = dt * np.arange(1, steps + 1)
    bound = np.sqrt(times) * sequential_boundary(optimal_rho(0.05) * times, level)
    w = np.cumsum(rng.standard_normal((paths, steps)) * math.sqrt(dt), axis=1)
    prev = np.concatenate([np.zeros((paths, 1)), w[:, :-1]], axis=1)
    edge = np.concatenate([[bound[0]], (bound[:-1] + bound[1:]) / 2])

    def bridge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-2 * np.clip(edge - a, 0, None) * np.clip(edge - b, 0, None) / dt)

    survive = np.prod((1 - bridge(prev, w)) * (1 - bridge(-prev, -w)), axis=1)
    crossed = np.where((np.abs(w) >= bound).any(axis=1), 1.0, 1.0 - survive).mean()
    assert crossing_probability(level) == pytest.approx(crossed, abs=3 * math.sqrt(0.045 / paths))
    # Ville's bound holds with room to spare; the calibrated level spends exactly alpha.
    assert crossing_probability(0.05) < 0.025
    assert crossing_probability(horizon_level(0.05, 1.0)) == pytest.approx(0.05, abs=1e-6)


def test_past_the_horizon_there_is_no_inference() -> None:
    look = confseq_readout(_difference(6_000, 0.01, 0.05), n_planned=10_000, horizon=1.0)
    assert look.status == "not enough data" and not look.significant
    assert "past the calibrated horizon" in look.note
    within = confseq_readout(_difference(5_000, 0.01, 0.05), n_planned=10_000, horizon=1.0)
    plain = confseq_readout(_difference(5_000, 0.01, 0.05), n_planned=10_000)
    assert within.boundary_z is not None and plain.boundary_z is not None
    assert within.boundary_z < plain.boundary_z and within.level > 0.05
    assert within.p_value is not None and plain.p_value is not None
    assert within.p_value < plain.p_value
    assert within.significant == (within.p_value < 0.05)


def test_series_keeps_running_minimum_and_intersection() -> None:
    looks = [
        _difference(2_000, 0.02, 0.03),
        _difference(4_000, 0.014, 0.05),
        _difference(6_000, 0.012, 0.01),
    ]
    series = confseq_series(looks, n_planned=12_000)
    p = [look.p_value for look in series.looks]
    assert None not in p
    running = [min(v for v in p[: i + 1] if v is not None) for i in range(3)]
    assert list(series.p_values) == running
    final = series.intervals[-1]
    assert final is not None and final.lower is not None and final.upper is not None
    for look in series.looks:
        assert look.abs_ci is not None and look.abs_ci.lower is not None
        assert look.abs_ci.upper is not None
        assert look.abs_ci.lower <= final.lower and final.upper <= look.abs_ci.upper
    assert series.first_significant_look == 1
