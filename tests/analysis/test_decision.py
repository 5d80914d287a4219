"""Decision rules and the impact formula on hand-built sufficient statistics (no database)."""

from __future__ import annotations

import pytest
from scipy.stats import norm

from abkit.analysis.decision import decide, early_stopping_alpha, guardrail_check
from abkit.analysis.impact import BusinessAssumptions, project_impact
from abkit.errors import ConfigError
from abkit.metrics.definitions import mean, proportion, ratio
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats, RatioStats

CONV = proportion("conv", "purchase", role="primary")
ERRORS = mean("errors", "error", aggregate="count", direction="lower", role="guardrail")


def prop(n, k):
    return MeanStats(n=n, sum=float(k), sum_sq=float(k))


def lift(metric, control, treatment, variant="treatment"):
    return compare(control, treatment, metric_type=metric.type, metric=metric.name, variant=variant)


# a 10% control rate needs ~113k units (both arms) for a 5% relative change: 200k is past
# the fixed horizon, 20k is an early look at it
FULL = 200_000


def run(
    primary_results,
    guardrails=(),
    srm=False,
    control=None,
    units=FULL,
    traffic=1000.0,
    method="fixed",
):
    return decide(
        primary=CONV,
        primary_results=primary_results,
        guardrails=list(guardrails),
        srm_detected=srm,
        srm_note="sample ratio mismatch (p = 1e-09)",
        control_stats=control or prop(10_000, 1_000),
        current_units=units,
        weights=[0.5, 0.5],
        alpha=0.05,
        traffic_per_day=traffic,
        method=method,
    )


WIN = lift(CONV, prop(10_000, 1_000), prop(10_000, 1_200))  # +20%, p ~ 1e-5
LOSS = lift(CONV, prop(10_000, 1_000), prop(10_000, 800))
FLAT = lift(CONV, prop(10_000, 1_000), prop(10_000, 1_010))


def errors(n, mean_, sd=1.0):
    return MeanStats(n=n, sum=mean_ * n, sum_sq=n * (sd**2 + mean_**2) - sd**2)


HARM = guardrail_check(
    lift(ERRORS, errors(10_000, 0.5), errors(10_000, 0.6)), ERRORS, "treatment", 0.05
)
SAFE = guardrail_check(
    lift(ERRORS, errors(10_000, 0.5), errors(10_000, 0.4)), ERRORS, "treatment", 0.05
)


def test_guardrail_direction():
    assert HARM.status == "fail" and "significantly worse" in HARM.reason
    assert SAFE.status == "pass"  # fewer errors is an improvement, never a breach


def test_guardrail_without_margin_passes_only_when_harm_beyond_the_mde_is_ruled_out():
    # +2% errors with a wide interval: no significant harm, but a 5% harm is not ruled out
    wide = guardrail_check(
        lift(ERRORS, errors(400, 0.5), errors(400, 0.51)), ERRORS, "treatment", 0.05
    )
    assert wide.status == "inconclusive" and wide.evaluated and not wide.holds_ship
    assert wide.rel_ci is not None and wide.rel_ci.upper > 0.05  # the harmful end
    assert SAFE.rel_ci is not None and SAFE.rel_ci.upper <= 0.05
    assert run({"treatment": WIN}, [wide]).verdict == "ship"  # only a margin holds a ship


def test_rules_in_order():
    assert run({"treatment": WIN}).verdict == "ship"
    assert run({"treatment": WIN}).winner == "treatment"
    # SRM beats a win: no lift-based verdict, flagged untrustworthy
    d = run({"treatment": WIN}, srm=True)
    assert (d.verdict, d.trustworthy, d.winner) == ("keep running", False, None)
    # a guardrail breach beats a win
    assert run({"treatment": WIN}, [HARM]).verdict == "roll back"
    assert run({"treatment": WIN}, [SAFE]).verdict == "ship"
    assert run({"treatment": LOSS}).verdict == "roll back"


def test_inconclusive_uses_the_planner():
    # 20% control rate would need ~ 25k units for a 5% relative change; we have 20k
    d = run({"treatment": FLAT}, control=prop(10_000, 2_000), units=20_000, traffic=500.0)
    assert d.verdict == "keep running"
    assert d.sample_needed == d.power_plan.n_total - 20_000 > 0
    assert d.days_needed == pytest.approx(round(d.sample_needed / 500.0 + 0.05, 1), abs=0.1)
    big = run({"treatment": FLAT}, control=prop(10_000, 2_000), units=10**6)
    assert big.verdict == "no detectable effect" and big.sample_needed == 0


def test_one_arm_ships_when_the_other_breaches():
    other = guardrail_check(
        lift(ERRORS, errors(10_000, 0.5), errors(10_000, 0.5)), ERRORS, "b", 0.05
    )
    d = run({"treatment": WIN, "b": WIN}, [HARM, other])
    assert d.verdict == "ship" and d.winner == "b"


def test_impact_formula_mean_and_ratio():
    result = lift(CONV, prop(10_000, 1_000), prop(10_000, 1_200))
    imp = project_impact(
        metric=CONV,
        variant="treatment",
        result=result,
        control_stats=prop(10_000, 1_000),
        assumptions=BusinessAssumptions(period="year", value_per_unit=30.0),
        observed_units_per_day=2_000.0,
        experiment_traffic=0.5,  # the experiment saw half the eligible traffic
    )
    eligible = 2_000.0 / 0.5 * 365.25
    assert imp.eligible_units == pytest.approx(eligible)
    assert imp.change == pytest.approx(0.02 * eligible * 30.0)
    assert imp.interval == pytest.approx(tuple(x * eligible * 30.0 for x in result.abs_ci))
    assert "per year" in imp.sentence()
    aov = ratio("aov", ("purchase", "sum"), ("purchase", "count"))
    c = RatioStats.from_values([10, 0, 30, 20] * 50, [1, 0, 2, 3] * 50)
    t = RatioStats.from_values([12, 0, 33, 24] * 50, [1, 0, 2, 3] * 50)
    r = compare(c, t, metric_type="ratio")
    imp = project_impact(
        metric=aov,
        variant="t",
        result=r,
        control_stats=c,
        assumptions=BusinessAssumptions(period="day", eligible_units_per_day=100.0),
        observed_units_per_day=None,
        experiment_traffic=1.0,
    )
    # per order lift × control orders per unit (6/4 = 1.5) × 100 units
    assert imp.change == pytest.approx(r.abs_lift * 1.5 * 100.0)
    assert imp.per_unit_change == pytest.approx(r.abs_lift * 1.5)
    assert imp.interval == pytest.approx(tuple(x * 1.5 * 100.0 for x in r.abs_ci))
    with pytest.raises(ConfigError):
        BusinessAssumptions(period="fortnight")


def test_early_look_at_a_fixed_horizon_test_does_not_ship():
    # WIN (p ~ 1e-5) at 20k of the ~113k planned units: a peek, not a result
    d = run({"treatment": WIN}, units=20_000)
    assert d.verdict == "keep running" and d.winner is None
    plan_total = d.power_plan.n_total
    assert 100_000 < plan_total < 130_000
    assert d.sample_needed == plan_total - 20_000
    assert d.information_fraction == pytest.approx(20_000 / plan_total)
    assert "O'Brien-Fleming" in d.reasons[0] and "method='sequential'" in d.reasons[0]
    assert WIN.p_value > early_stopping_alpha(d.information_fraction, 0.05)
    # overwhelming evidence clears the boundary and may stop early
    huge = lift(CONV, prop(10_000, 1_000), prop(10_000, 1_500))  # z ~ 10
    early = run({"treatment": huge}, units=20_000)
    assert early.verdict == "ship" and early.winner == "treatment"
    assert any("Stopped early" in r for r in early.reasons)
    # the planned horizon reached: the ordinary alpha applies
    full = run({"treatment": WIN})
    assert full.verdict == "ship" and full.information_fraction > 1
    # sequential (always-valid) readouts are not gated
    assert run({"treatment": WIN}, units=20_000, method="sequential").verdict == "ship"
    # early harm still rolls back: stopping a loser early is the safe direction
    assert run({"treatment": LOSS}, units=20_000).verdict == "roll back"


def test_obrien_fleming_spending_values():
    # alpha(t) = 2 - 2 Phi(z_{0.975} / sqrt(t)): 0.0056 at t = 0.5, 8.9e-5 at t = 0.25
    assert early_stopping_alpha(1.0, 0.05) == 0.05
    assert early_stopping_alpha(2.0, 0.05) == 0.05
    assert early_stopping_alpha(0.5, 0.05) == pytest.approx(2 * norm.sf(1.959964 / 0.5**0.5))
    assert early_stopping_alpha(0.5, 0.05) == pytest.approx(0.00557, abs=5e-5)
    assert early_stopping_alpha(0.25, 0.05) == pytest.approx(8.9e-5, rel=0.02)
    assert early_stopping_alpha(0.0, 0.05) == 0.0


def test_gate_keeps_daily_peeking_near_the_nominal_false_ship_rate():
    """Fixed-seed simulation of 20 equally spaced looks at a fixed-horizon test.

    Under the null, shipping at the first look with p < 0.05 in the good direction ships
    a useless change ~12% of the time (nominal 2.5%); the rule's boundary keeps it
    near nominal (measured 3.6%: the boundary treats each look as the first, a small
    excess documented in docs/analysis.md) while keeping the power of the planned test.
    """
    import numpy as np

    rng = np.random.default_rng(1)
    sims, looks = 20_000, 20
    t = np.arange(1, looks + 1) / looks
    brownian = np.cumsum(rng.standard_normal((sims, looks)) * np.sqrt(1 / looks), axis=1)
    bounds = np.array([early_stopping_alpha(x, 0.05) for x in t])

    def ship_rate(drift, rule):
        z = (brownian + drift * t) / np.sqrt(t)
        p = 2 * norm.sf(np.abs(z))
        return ((p < rule) & (z > 0)).any(axis=1).mean()

    assert ship_rate(0.0, 0.05) > 0.10  # naive peeking
    assert 0.025 <= ship_rate(0.0, bounds) < 0.045  # gated
    drift = norm.isf(0.025) + norm.isf(0.2)  # an effect the test is powered (80%) for
    assert ship_rate(drift, bounds) > 0.78


def test_the_arm_with_the_largest_improvement_ships():
    bigger = lift(CONV, prop(10_000, 1_000), prop(10_000, 1_300), variant="b")
    d = run({"a": WIN, "b": bigger})
    assert d.verdict == "ship" and d.winner == "b"
    d = run({"b": bigger, "a": WIN})  # not an artefact of order
    assert d.winner == "b"
    # lower is better (e.g. time to convert): the largest *decrease* wins
    faster = proportion("slow", "purchase", direction="lower", role="primary")
    small = lift(faster, prop(10_000, 1_000), prop(10_000, 800), variant="a")
    large = lift(faster, prop(10_000, 1_000), prop(10_000, 700), variant="b")
    d = decide(
        primary=faster,
        primary_results={"a": small, "b": large},
        guardrails=[],
        srm_detected=False,
        srm_note="",
        control_stats=prop(10_000, 1_000),
        current_units=FULL,
        weights=[1 / 3] * 3,
        alpha=0.05,
        traffic_per_day=1000.0,
    )
    assert d.verdict == "ship" and d.winner == "b"


def test_impact_is_projected_for_the_best_arm_in_the_metric_direction():
    # with no winner, analyze projects the impact of the arm that is best on the primary
    from types import SimpleNamespace

    from abkit.analysis.analyze import _best_arm

    arms = [
        SimpleNamespace(variant="a", rel_lift=0.05),
        SimpleNamespace(variant="b", rel_lift=-0.1),
    ]
    assert _best_arm(arms, CONV) == "a"
    assert _best_arm(arms, CONV.with_(direction="lower")) == "b"
    assert _best_arm([SimpleNamespace(variant="a", rel_lift=None)], CONV) is None


def test_an_unevaluated_guardrail_is_named_in_the_reasons():
    empty = lift(ERRORS, errors(1, 0.5), errors(1, 0.5))  # one unit per arm: no variance
    check = guardrail_check(empty, ERRORS, "treatment", 0.05)
    assert (check.status, check.evaluated) == ("inconclusive", False)
    d = run({"treatment": WIN}, [check])
    assert d.verdict == "ship"
    assert any("could not be evaluated" in r and "errors" in r for r in d.reasons)


def _arms(rng, n: int, lift: float) -> tuple[MeanStats, MeanStats]:
    return (
        MeanStats.from_values(rng.normal(10.0, 2.0, n)),
        MeanStats.from_values(rng.normal(10.0 * (1 + lift), 2.0, n)),
    )


def _decision(control, treatment, n: int, method: str, **options):
    metric = mean("m", "ev", mde=0.05, role="primary")
    readout = compare(
        control, treatment, metric_type="mean", metric="m", variant="B", method=method, **options
    )
    return decide(
        primary=metric,
        primary_results={"B": readout},
        guardrails=(),
        srm_detected=False,
        srm_note="",
        control_stats=control,
        current_units=2 * n,
        weights=[0.5, 0.5],
        alpha=0.05,
        traffic_per_day=None,
        method=method,
    )


@pytest.mark.parametrize("method", ["sequential", "confseq"])
def test_an_always_valid_readout_is_not_called_powered_at_the_fixed_sample(method):
    # at the fixed test's planned sample an always-valid test has about half the power:
    # "no detectable effect" there would stop half of the real effects (seed 22: 38% of
    # mSPRT verdicts were "no detectable effect" with a true effect equal to the mde)
    import numpy as np

    from abkit.stats.planning import plan_mean

    n = int(plan_mean(10, 2, mde=0.05, relative=True, power=0.8).n_control * 1.02)
    control, treatment = _arms(np.random.default_rng(5), n, 0.0)
    options = {"n_planned": 2 * n, "horizon": 2.0} if method == "confseq" else {}
    decision = _decision(control, treatment, n, method, **options)
    assert decision.verdict == "keep running" and (decision.sample_needed or 0) > 0.3 * 2 * n
    assert "always-valid" in decision.reasons[0] or "confidence sequence" in decision.reasons[0]


def test_a_confidence_sequence_at_its_horizon_has_the_power_the_decision_assumes():
    # the decision calls a confseq readout powered at CONFSEQ_HORIZON x the planned sample:
    # simulate a true effect equal to the mde there (one look) and count detections
    import numpy as np

    from abkit.analysis.decision import CONFSEQ_HORIZON
    from abkit.stats.planning import plan_mean

    planned = plan_mean(10, 2, mde=0.05, relative=True, power=0.8).n_total
    n = int(CONFSEQ_HORIZON * planned) // 2
    rng = np.random.default_rng(7)
    runs = 600
    detected = 0
    for _ in range(runs):
        control, treatment = _arms(rng, n, 0.05)
        readout = compare(
            control,
            treatment,
            metric_type="mean",
            metric="m",
            variant="B",
            method="confseq",
            n_planned=planned,
            horizon=CONFSEQ_HORIZON,
        )
        detected += readout.significant
    # 86% expected (decision.py); the binomial sd over 600 runs is 1.4 points
    assert 0.80 <= detected / runs <= 0.92
