"""Analysis results for report tests, built from real readouts without a database.

Each scenario runs :func:`abkit.stats.compare` on sufficient statistics with known
effects and wraps the readouts in the analysis' own result types, so the report's
adapter and sections are exercised on the shape ``analyze()`` returns, in milliseconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from abkit.analysis.decision import GuardrailCheck
from abkit.analysis.impact import Impact
from abkit.analysis.quality import MultipleExposure, QualityReport
from abkit.analysis.result import (
    AnalysisResult,
    DailyRow,
    ExperimentFacts,
    MetricInfo,
    SamplePlan,
    SegmentResult,
)
from abkit.results import Interval
from abkit.stats import compare, srm_test
from abkit.stats.sufficient import MeanStats


@dataclass(frozen=True)
class Decision:
    """The decision's documented shape (API-analysis.md, section c)."""

    verdict: str
    winner: str | None
    reasons: tuple[str, ...]
    sample_needed: int | None = None
    days_needed: float | None = None
    trustworthy: bool = True
    basis: str = ""
    decided_by: tuple[str, str] | None = None


def _proportion(n: int, rate: float) -> MeanStats:
    k = round(n * rate)
    return MeanStats(n=n, sum=k, sum_sq=k)


def _mean(n: int, mean: float, sd: float) -> MeanStats:
    return MeanStats(n=n, sum=n * mean, sum_sq=n * (sd**2 + mean**2))


def _info(name, type_, role, *, direction="higher", unit="number", currency="", mde=None):
    return MetricInfo(
        name=name,
        type=type_,
        role=role,
        direction=direction,
        unit=unit,
        currency=currency,
        margin=None,
        mde=mde,
        description="",
        definition={"name": name},
    )


def result(
    scenario: str = "ship",
    *,
    n: int = 20_000,
    days: float = 14.0,
    conversion_lift: float = 0.10,
    error_lift: float = 0.0,
    currency: str = "USD",
    metric_names: tuple[str, str, str] = ("conversion_rate", "revenue_per_user", "errors_per_user"),
    variant: str = "v2",
    segments: bool = False,
    guardrail_status: str | None = None,
) -> AnalysisResult:
    """An ``AnalysisResult`` for one of: ship, roll back, keep running, cannot finish,
    no detectable effect, srm."""
    conv, revenue, errors = metric_names
    c_conv, t_conv = _proportion(n, 0.10), _proportion(n, 0.10 * (1 + conversion_lift))
    c_rev, t_rev = _mean(n, 7.01, 20.0), _mean(n, 7.01 * (1 + conversion_lift), 20.0)
    c_err, t_err = _mean(n, 0.30, 0.6), _mean(n, 0.30 * (1 + error_lift), 0.6)
    lifts = [
        compare(c_conv, t_conv, metric_type="proportion", metric=conv, variant=variant),
        compare(c_rev, t_rev, metric_type="mean", metric=revenue, variant=variant),
        compare(c_err, t_err, metric_type="mean", metric=errors, variant=variant),
    ]
    lifts = [
        dataclasses.replace(r, correction="holm", p_value_adjusted=min(1.0, r.p_value * 2))
        if r.metric != errors
        else r
        for r in lifts
    ]
    g = lifts[2]
    status = guardrail_status or ("fail" if scenario == "roll back" else "pass")
    guard = GuardrailCheck(
        metric=errors,
        variant=variant,
        status=status,
        rel_lift=g.rel_lift,
        rel_ci=g.rel_ci,
        p_value=g.p_value,
        direction="lower",
        reason=f"{errors} ({variant}): +{(g.rel_lift or 0):.1%} (p = {g.p_value:.2g}), "
        "two-sided interval test",
    )
    per_day = 2 * n / days
    facts = ExperimentFacts(
        key="checkout-$5-test",
        control="v1",
        variants=("v1", variant),
        weights={"v1": 0.5, variant: 0.5},
        traffic=0.2,
        registered=True,
        dialect="sqlite",
        units={"v1": n, variant: n},
        first_exposure="2026-01-01T00:00:00+00:00",
        last_exposure=f"2026-01-{int(days):02d}T23:00:00+00:00",
        days=days,
        units_per_day=per_day,
        description="A test <b>description</b>",
        hypothesis="It helps",
        owner="Ana",
        status="running",
        start="2026-01-01T00:00:00+00:00",
        payloads={"v1": {"model": "a"}, variant: {"model": "b"}},
    )
    needed = {"keep running": 60_000, "cannot finish": 2_500_000}.get(scenario)
    plan = SamplePlan(
        metric=conv,
        n_total=2 * n + needed if needed else 2 * n,
        mde=0.05,
        power=0.8,
        alpha=0.05,
        target="5.0% relative change with 80% power",
        units_collected=2 * n,
        sample_needed=needed,
        days_needed=needed / per_day if needed else None,
        information_fraction=2 * n / (2 * n + needed) if needed else 1.0,
    )
    verdict, basis, decided = {
        "ship": ("ship", "primary_better", (conv, variant)),
        "roll back": ("roll back", "guardrail_breach", (errors, variant)),
        "keep running": ("keep running", "underpowered", None),
        "cannot finish": ("keep running", "underpowered", None),
        "no detectable effect": ("no detectable effect", "powered_null", None),
        "srm": ("keep running", "srm", None),
    }[scenario]
    decision = Decision(
        verdict=verdict,
        winner=variant if verdict == "ship" else None,
        reasons=(
            f"{conv} ({variant}): +{conversion_lift:.1%} relative, p = 9.8e-42 (Welch t-test)",
            "stopping now needs p < 1.1e-24 (O'Brien-Fleming boundary); analyse with "
            "method='sequential'",
        ),
        sample_needed=needed,
        days_needed=plan.days_needed,
        trustworthy=scenario != "srm",
        basis=basis,
        decided_by=decided,
    )
    impact = Impact(
        metric=revenue,
        variant=variant,
        period="month",
        eligible_units=per_day / 0.2 * 30.44,
        change=lifts[1].abs_lift * per_day / 0.2 * 30.44,
        interval=Interval(
            lifts[1].abs_ci.lower * per_day / 0.2 * 30.44,
            lifts[1].abs_ci.upper * per_day / 0.2 * 30.44,
        ),
        per_unit_change=lifts[1].abs_lift,
        baseline_total=None,
        value_per_unit=1.0,
        currency=currency,
        formula="",
    )
    srm = srm_test([n, n] if scenario != "srm" else [n, int(n * 0.9)], [0.5, 0.5])
    quality = QualityReport(
        srm=srm,
        multiple_exposure=MultipleExposure(
            units=2 * n, multiple=12, share=12 / (2 * n), by_variant={}
        ),
        balance=(),
        excluded_events=(),
        unknown_variants=(),
        warnings=(),
    )
    daily = tuple(
        DailyRow(
            date=f"2026-01-{d:02d}",
            metric=m,
            variant=variant,
            n=int(per_day * d),
            value=None,
            rel_lift=lift,
            rel_ci_lower=lift - 0.3 / d,
            rel_ci_upper=lift + 0.3 / d,
        )
        for m, lift in ((conv, conversion_lift), (errors, error_lift))
        for d in range(1, int(days) + 1)
    )
    segment_rows = ()
    if segments:
        segment_rows = tuple(
            SegmentResult(
                segment="platform",
                value=value,
                result=dataclasses.replace(lifts[i], p_value_adjusted=lifts[i].p_value),
            )
            for value in ("ios", "android $5")
            for i in (0, 2)
        )
    return AnalysisResult(
        experiment=facts,
        quality=quality,
        metrics=tuple(lifts),
        guardrails=(guard,),
        segments=segment_rows,
        decision=decision,  # type: ignore[arg-type]
        impact=impact,
        daily=daily,
        primary=conv,
        roles={conv: "primary", revenue: "secondary", errors: "guardrail"},
        arm_stats={},
        metric_defs=(
            _info(conv, "proportion", "primary", mde=0.05),
            _info(revenue, "mean", "secondary", unit="currency", currency=""),
            _info(errors, "mean", "guardrail", direction="lower", unit="count"),
        ),
        plan=plan,
    )


# --------------------------------------------------------------------------- models

# A tag that must never survive as markup, and a quote that must not break an attribute.
T = "<i id=pwn>\"'&"
RAW = "<i id=pwn>"


def row(metric: str = "conversion_rate", variant: str = "b", **kw):
    """A scorecard row (report model) with sensible figures; ``kw`` overrides."""
    from abkit.report.model import MetricRow

    base = dict(
        metric=metric,
        variant=variant,
        role="primary",
        metric_type="proportion",
        label=metric.replace("_", " "),
        control_mean=0.1,
        treatment_mean=0.12,
        abs_lift=0.02,
        abs_ci=Interval(0.01, 0.03),
        rel_lift=0.2,
        rel_ci=Interval(0.1, 0.3),
        p_value=0.001,
        significant=True,
    )
    base.update(kw)
    return MetricRow(**base)


def hostile_model():
    """Every string field a user or the store can influence holds markup."""
    from abkit.report.model import (
        ControllerAction,
        DailySeries,
        Facts,
        Harm,
        Quality,
        QualityCheck,
        ReportModel,
        SegmentRow,
        VariantFact,
    )
    from abkit.report.model import Decision as ModelDecision
    from abkit.report.model import Impact as ModelImpact

    variant = f"var {T}"
    return ReportModel(
        facts=Facts(
            key=f"key {T}",
            description=f"desc {T}",
            hypothesis=f"hyp {T}",
            owner=f"owner {T}",
            start=f"2026-01-01 {T}",
            end=f"2026-02-01 {T}",
            first_exposure=f"2026-01-02 {T}",
            last_exposure=f"2026-01-30 {T}",
            since=f"2026-01-02 {T}",
            until=f"2026-01-29 {T}",
            status=f"status {T}",
            tags=(f"tag {T}",),
            variants=(
                VariantFact(f"ctl {T}", 0.5, {f"k {T}": f"v {T}", "n": [T]}, True),
                VariantFact(variant, 0.5, {"model": T}),
            ),
        ),
        decision=ModelDecision(
            verdict="roll back",
            state="roll back",
            headline=f"reason {T}",
            why=(f"r1 {T}",),
            options=(f"o1 {T}",),
            technical=(f"t1 {T}",),
        ),
        metrics=(
            row(f"m1 {T}", variant, label=f"label {T}", note=f"note {T}", test=f"test {T}"),
            row(
                f"m2 {T}",
                f"other {T}",
                role="guardrail",
                guardrail_status="fail",
                unit="currency",
                currency=f"X{T}",
            ),
            row(f"m3 {T}", variant, status=f"odd {T}", significant=False),
        ),
        quality=Quality(
            counts={f"ctl {T}": 100, variant: 100},
            expected_shares={f"ctl {T}": 0.5, variant: 0.5},
            srm_p_value=0.5,
            srm_ok=False,
            checks=(QualityCheck(f"check {T}", f"st {T}", f"detail {T}"),),
            sample_collected=200,
            sample_needed=1000,
            sample_target=f"target {T}",
            days_remaining=2.0,
        ),
        impact=(
            ModelImpact(
                f"imp {T}",
                variant,
                f"per {T}",
                10.0,
                Interval(1.0, 20.0),
                f"unit {T}",
                f"C{T}",
                True,
                5.0,
                f"as {T}",
            ),
        ),
        harm=(
            Harm(
                f"m2 {T}",
                f"label {T}",
                variant,
                f"per {T}",
                0.2,
                Interval(0.1, 0.3),
                0.01,
                "count",
                "mean",
                50.0,
                Interval(10.0, 90.0),
                5000.0,
                20.0,
                Interval(4.0, 36.0),
                f"C{T}",
            ),
        ),
        daily=(
            DailySeries(
                f"m1 {T}", variant, ("2026-01-01", "2026-01-02"), (0.1, 0.2), (0.0, 0.1), (0.2, 0.3)
            ),
        ),
        segments=(
            SegmentRow(
                f"seg {T}",
                f"val {T}",
                f"m1 {T}",
                f"label {T}",
                variant,
                10,
                12,
                0.2,
                Interval(0.1, 0.3),
                0.01,
                True,
                "better",
            ),
        ),
        segments_requested=(f"seg {T}",),
        actions=(
            ControllerAction(
                at=f"2026-01-03 {T}",
                action="rollback",
                actor=f"manual:{T}",
                reason=f"reason {T}",
                status="stopped",
                winner=variant,
            ),
        ),
        correction=f"holm {T}",
        generated_at=f"now {T}",
        abkit_version=f"0 {T}",
    )
