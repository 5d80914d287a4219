"""Decision rules and the impact formula on hand-built sufficient statistics (no database)."""

from __future__ import annotations

import pytest

from abkit.analysis.decision import decide, guardrail_check
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
    return compare(control, treatment, metric_type=metric.kind, metric=metric.name, variant=variant)


def run(primary_results, guardrails=(), srm=False, control=None, units=20_000, traffic=1000.0):
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
    assert HARM.status == "breached" and "significantly worse" in HARM.reason
    assert SAFE.status == "ok"  # fewer errors is an improvement, never a breach


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
    c = RatioStats.from_values([10, 0, 30, 20] * 50, [1, 0, 2, 1] * 50)
    t = RatioStats.from_values([12, 0, 33, 24] * 50, [1, 0, 2, 1] * 50)
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
    # per order lift × orders per unit (4/4 = 1.0) × 100 units
    assert imp.change == pytest.approx(r.abs_lift * 1.0 * 100.0)
    with pytest.raises(ConfigError):
        BusinessAssumptions(period="fortnight")
