"""From an ``AnalysisResult`` (Contract 7) to the :class:`~abkit.report.model.ReportModel`.

This is the only module that knows the analysis result's shape; sections and templates
read the model. It reads the result only: the metric definitions (direction, unit,
currency, margin), the experiment's configuration, the sample plan and the guardrail
statuses all come with the result (``result.metric_info``, ``result.experiment``,
``result.plan``, ``result.guardrails``), so a report never opens the store, re-reads a
metric file or re-plans. Guardrail status is the analysis' one rule, in
:data:`abkit.vocabulary.GuardrailStatus` words.

:func:`load_report` is what the notebook templates call: it runs
:func:`abkit.analysis.analyze.analyze` with the template's parameters and adapts the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from abkit.errors import ConfigError
from abkit.locations import default_store_url
from abkit.report import story
from abkit.report.model import (
    DEFAULT_HORIZON_DAYS,
    ControllerAction,
    DailySeries,
    Facts,
    Harm,
    Impact,
    MetricRow,
    Outcome,
    Quality,
    QualityCheck,
    ReportModel,
    SegmentRow,
    VariantFact,
)
from abkit.report.output import database_file
from abkit.results import Interval
from abkit.stats.srm import SRMResult

if TYPE_CHECKING:
    from abkit.analysis.analyze import AnalysisResult
    from abkit.lifecycle.audit import AuditEntry

MULTIPLE_EXPOSURE_WARN = 0.01
# Days per projection period (the analysis' impact uses the same calendar).
PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12, "quarter": 365.25 / 4, "year": 365.25}
DEFAULT_PERIOD = "month"


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _short_time(value: str | None) -> str | None:
    """``2026-01-05T03:04:05.123+00:00`` -> ``2026-01-05 03:04 UTC``."""
    if not value:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _scale(ci: Interval | None, factor: float) -> Interval | None:
    if ci is None:
        return None
    return Interval(
        None if ci.lower is None else ci.lower * factor,
        None if ci.upper is None else ci.upper * factor,
    )


_P_EQUALS = re.compile(r"\bp = (\d+(?:\.\d+)?(?:[eE]-?\d+)?)")


def _tiny_p(text: str) -> str:
    """``p = 9.8e-42`` reads as ``p < 0.001``, as in the scorecard; other p-values stay."""

    def sub(match: re.Match[str]) -> str:
        return "p < 0.001" if float(match.group(1)) < 0.001 else match.group(0)

    return _P_EQUALS.sub(sub, text)


def _metric_rows(result: AnalysisResult, currency: str) -> list[MetricRow]:
    guards = {(g.metric, g.variant): g for g in result.guardrails}
    rows: list[MetricRow] = []
    for r in result.metrics:
        info = result.metric_info(r.metric)
        higher = info.direction != "lower"
        prob = None
        if result.method == "bayesian" and r.details is not None:
            prob = getattr(r.details, "prob_beat_control", None)
            if prob is not None and bool(getattr(r.details, "higher_is_better", True)) != higher:
                # The engine measured "better" the other way round (it was not told the
                # metric's direction); for a continuous posterior P(worse) = 1 - P(better).
                prob = 1.0 - prob
        guard = guards.get((r.metric, r.variant))
        p = r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value
        # The intervals that agree with the corrected significance, when the analysis
        # computed them (a multiplicity correction on a fixed-horizon readout).
        adjusted = r.rel_ci_adjusted is not None
        rows.append(
            MetricRow(
                metric=r.metric,
                variant=r.variant,
                role=info.role,
                metric_type=info.type,
                label=_label(r.metric),
                control_mean=r.control_mean,
                treatment_mean=r.treatment_mean,
                abs_lift=r.abs_lift,
                abs_ci=r.abs_ci_adjusted if adjusted else r.abs_ci,
                rel_lift=r.rel_lift,
                rel_ci=r.rel_ci_adjusted if adjusted else r.rel_ci,
                interval_adjusted=adjusted,
                unit=info.unit,
                currency=(info.currency or currency) if info.unit == "currency" else "",
                p_value=None if result.method == "bayesian" else p,
                prob_beat_control=prob,
                significant=bool(r.significant),
                higher_is_better=higher,
                guardrail_status=guard.status
                if guard is not None and info.role == "guardrail"
                else None,
                n_control=int(r.n_control or 0),
                n_treatment=int(r.n_treatment or 0),
                status=r.status,
                note=r.note or "",
                test=r.test or "",
                cuped=bool(result.cuped and r.variance_reduction),
                variance_reduction=r.variance_reduction if result.cuped else None,
            )
        )
    # Display order: primary first, then secondary, then guardrails (stable within).
    order = {"primary": 0, "secondary": 1, "guardrail": 2}
    rows.sort(key=lambda row: order.get(row.role, 1))
    return rows


def _eligible_per_period(result: AnalysisResult, period: str) -> float | None:
    """Units a full launch reaches per period: the impact's figure, else observed traffic
    scaled from the experiment's share to everyone."""
    if (
        result.impact is not None
        and result.impact.period == period
        and result.impact.eligible_units
    ):
        return float(result.impact.eligible_units)
    per_day = result.experiment.units_per_day
    if not per_day:
        return None
    return per_day / max(result.experiment.traffic, 1e-12) * PERIOD_DAYS[period]


def _harms(
    result: AnalysisResult,
    rows: Sequence[MetricRow],
    period: str,
    values: Mapping[str, float],
) -> list[Harm]:
    """Every significantly harmed guardrail, priced per period (see :class:`Harm`)."""
    users = _eligible_per_period(result, period)
    harms = []
    for row in rows:
        if row.role != "guardrail" or row.guardrail_status != "fail":
            continue
        per_unit_count = row.metric_type in ("proportion", "mean")
        per_period = (
            row.abs_lift * users
            if (per_unit_count and users and row.abs_lift is not None)
            else None
        )
        per_period_ci = _scale(row.abs_ci, users) if per_period is not None and users else None
        value = values.get(row.metric)
        if value is None and row.unit == "currency":
            value = 1.0
        money = per_period * value if (per_period is not None and value is not None) else None
        harms.append(
            Harm(
                metric=row.metric,
                label=row.display_name,
                variant=row.variant,
                period=period,
                rel_lift=row.rel_lift,
                rel_ci=row.rel_ci,
                abs_lift=row.abs_lift,
                unit=row.unit,
                metric_type=row.metric_type,
                per_period=per_period,
                per_period_ci=per_period_ci,
                users=users,
                money=money,
                money_ci=_scale(per_period_ci, value)
                if money is not None and value is not None
                else None,
                currency=row.currency
                if row.unit == "currency"
                else (result.impact.currency if result.impact else ""),
            )
        )
    return harms


def _impacts(result: AnalysisResult) -> list[Impact]:
    imp = result.impact
    if imp is None:
        return []
    info = result.metric_info(imp.metric)
    money = bool(imp.currency) or info.unit == "currency"
    parts = [
        f"{imp.variant} shipped to about {imp.eligible_units:,.0f} eligible users per {imp.period}"
    ]
    if imp.note:
        parts.append(imp.note)
    return [
        Impact(
            metric=_label(imp.metric),
            variant=imp.variant,
            period=imp.period,
            estimate=imp.change,
            interval=Interval.of(*imp.interval) if imp.interval is not None else None,
            unit="" if money else _label(imp.metric),
            currency=imp.currency or info.currency,
            is_money=money,
            eligible_units=imp.eligible_units,
            assumption="; ".join(parts),
        )
    ]


def _quality(result: AnalysisResult) -> Quality:
    q = result.quality
    checks: list[QualityCheck] = []
    me = q.multiple_exposure
    checks.append(
        QualityCheck(
            name="Users seeing more than one variant",
            status="warn" if me.share > MULTIPLE_EXPOSURE_WARN else "pass",
            detail=f"{me.multiple:,} of {me.units:,} users ({me.share:.2%}), left out of every metric",
        )
    )
    for b in q.balance:
        if b.p_value is None:  # no pre-period data: nothing was compared
            status, detail = "warn", "not checked: no data from before the experiment"
        elif b.imbalanced:
            status, detail = "fail", "the groups differed before the experiment"
        else:
            status, detail = "pass", "the groups were alike before the experiment"
        checks.append(
            QualityCheck(
                name=f"Before the test: {_label(b.metric)} ({b.variant})",
                status=status,
                detail=detail,
                p_value=b.p_value,
            )
        )
    if q.unknown_variants:
        checks.append(
            QualityCheck(
                name="Unknown variants",
                status="warn",
                detail="exposures to variants not in the configuration: "
                + ", ".join(q.unknown_variants),
            )
        )
    facts = result.experiment
    plan = result.plan
    collected = int(sum(facts.units.values()))
    return Quality(
        counts={k: int(v) for k, v in facts.units.items()},
        expected_shares=dict(facts.weights),
        srm_p_value=q.srm.p_value if isinstance(q.srm, SRMResult) else None,
        srm_ok=not q.srm_detected,
        checks=tuple(checks),
        sample_collected=collected,
        sample_needed=int(plan.n_total) if plan is not None and plan.n_total else None,
        sample_target=plan.target if plan is not None else "",
        days_remaining=plan.days_needed if plan is not None else None,
        r_squared=plan.r_squared if plan is not None else None,
        sample_needed_without_cuped=plan.n_total_without_cuped if plan is not None else None,
        days_remaining_without_cuped=plan.days_needed_without_cuped if plan is not None else None,
    )


def _facts(result: AnalysisResult) -> Facts:
    f = result.experiment
    return Facts(
        key=f.key,
        description=f.description,
        hypothesis=f.hypothesis,
        owner=f.owner,
        start=_short_time(_iso(f.start)),
        end=_short_time(_iso(f.end)),
        first_exposure=_short_time(f.first_exposure),
        last_exposure=_short_time(f.last_exposure),
        since=_short_time(_iso(f.since)),
        until=_short_time(_iso(f.until)),
        days=f.days,
        units_per_day=f.units_per_day,
        traffic=f.traffic,
        status=f.status or "",
        tags=tuple(f.tags),
        variants=tuple(
            VariantFact(
                name=name,
                weight=float(f.weights.get(name, 0.0)),
                payload=dict(f.payloads.get(name, {})),
                is_control=name == f.control,
            )
            for name in f.variants
        ),
    )


def _daily(result: AnalysisResult, row: MetricRow | None) -> list[DailySeries]:
    if row is None:
        return []
    points = [p for p in result.daily if p.metric == row.metric and p.variant == row.variant]
    if not points:
        return []
    return [
        DailySeries(
            metric=row.display_name,
            variant=row.variant,
            dates=tuple(p.date for p in points),
            rel_lift=tuple(p.rel_lift for p in points),
            low=tuple(p.rel_ci_lower for p in points),
            high=tuple(p.rel_ci_upper for p in points),
        )
    ]


def _segments(result: AnalysisResult, rows: Sequence[MetricRow]) -> list[SegmentRow]:
    directions = {row.metric: row.higher_is_better for row in rows}
    out = []
    for s in result.segments:
        r = s.result
        higher = directions.get(r.metric, True)
        outcome: Outcome
        if r.status != "ok" or r.rel_lift is None:
            outcome = "unknown"
        elif not r.significant:
            outcome = "neutral"
        else:
            lift = r.abs_lift if r.abs_lift is not None else r.rel_lift
            outcome = "better" if (lift > 0) == higher else "worse"
        out.append(
            SegmentRow(
                segment=s.segment,
                value=s.value,
                metric=r.metric,
                label=_label(r.metric),
                variant=r.variant,
                n_control=int(r.n_control or 0),
                n_treatment=int(r.n_treatment or 0),
                rel_lift=r.rel_lift,
                rel_ci=r.rel_ci,
                p_value=r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value,
                significant=bool(r.significant),
                outcome=outcome,
            )
        )
    return out


def from_analysis(
    result: AnalysisResult,
    *,
    generated_at: datetime | None = None,
    horizon_days: float = DEFAULT_HORIZON_DAYS,
    values: Mapping[str, float] | None = None,
    segments: Sequence[str] = (),
    audit: Sequence[AuditEntry] = (),
) -> ReportModel:
    """Build the report model of ``result`` (an ``AnalysisResult``).

    ``horizon_days``: how long a test may sensibly run (from its first exposure) before
    the report says it cannot finish; ``values``: money per unit of a metric (metric
    name -> amount in the impact's currency), used to price a harmed guardrail;
    ``segments``: the attributes the readout was broken down by; ``audit``: the
    experiment's audit trail (what the controller or a person did), shown as a timeline.
    """
    from abkit import __version__

    currency = result.impact.currency if result.impact is not None else ""
    rows = _metric_rows(result, currency)
    period = result.impact.period if result.impact is not None else DEFAULT_PERIOD
    harms = _harms(result, rows, period, values or {})
    impacts = _impacts(result)
    quality = _quality(result)
    facts = _facts(result)
    d = result.decision
    # The engine's reasons name metrics by key ("errors_per_user"); a reader sees the same
    # words as in the scorecard ("errors per user"). Longest keys first, whole words only.
    keys = sorted({r.metric for r in rows if "_" in r.metric}, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, keys)) + r")\b") if keys else None
    technical = tuple(
        _tiny_p(pattern.sub(lambda m: _label(m.group(1)), str(x)) if pattern else str(x))
        for x in d.reasons
    )
    plan = result.plan
    decision = story.decide(
        story.Evidence(
            verdict=d.verdict,
            basis=d.basis,
            decided_by=d.decided_by,
            winner=d.winner,
            trustworthy=d.trustworthy,
            rows=tuple(rows),
            harms=tuple(harms),
            impacts=tuple(impacts),
            facts=facts,
            sample_collected=quality.sample_collected,
            sample_needed=plan.sample_needed if plan is not None else None,
            days_needed=plan.days_needed if plan is not None else None,
            n_total=plan.n_total if plan is not None else None,
            mde=plan.mde if plan is not None else None,
            horizon_days=horizon_days,
        ),
        technical=technical,
    )
    model_rows = tuple(rows)
    decided = next(
        (
            r
            for r in rows
            if d.decided_by is not None and (r.metric, r.variant) == tuple(d.decided_by)
        ),
        next((r for r in rows if r.role == "primary"), None),
    )
    moment = generated_at or datetime.now(timezone.utc)
    return ReportModel(
        facts=facts,
        decision=decision,
        metrics=model_rows,
        quality=quality,
        impact=tuple(impacts),
        harm=tuple(harms),
        daily=tuple(_daily(result, decided)),
        segments=tuple(_segments(result, rows)),
        segments_requested=tuple(segments),
        actions=tuple(_action(entry) for entry in audit),
        method=result.method,
        alpha=result.alpha,
        correction=result.correction,
        # the option alone says nothing: whether a metric's readout was adjusted does
        cuped=any(getattr(m, "cuped", False) for m in result.metrics),
        horizon_days=horizon_days,
        generated_at=moment.strftime("%Y-%m-%d %H:%M UTC"),
        abkit_version=__version__,
    )


def _action(entry: AuditEntry) -> ControllerAction:
    changes = entry.evidence.get("changes") or {}
    traffic = changes.get("traffic")
    return ControllerAction(
        at=entry.at.strftime("%Y-%m-%d %H:%M UTC"),
        action=entry.action,
        actor=entry.actor,
        reason=entry.reason,
        traffic=float(traffic) if isinstance(traffic, (int, float)) else None,
        status=changes.get("status"),
        winner=changes.get("winner"),
    )


def resolve_db_url(db_url: str | None, *, field: str = "db_url") -> str:
    """The database a template reads, refusing a SQLite file that does not exist.

    The one rule of :func:`abkit.locations.default_store_url`, also looking one folder up,
    so a notebook opened by hand from ``notebooks/`` after running the demo at the
    repository root works with its defaults. Opening the store would create an empty file,
    so a missing one is a :class:`~abkit.errors.ConfigError` that says what to do instead of
    a confusing "no exposures" later.
    """
    url = default_store_url(db_url, search_parent=True, field=field)
    path = database_file(url)
    if path is not None and not path.is_file():
        raise ConfigError(
            f"database file {str(path)!r} does not exist (run `abkit demo` or `abkit ingest` "
            "first, or check the path)",
            field=field,
        )
    return url


def load_report(
    db_url: str | None,
    experiment: str,
    *,
    metrics_path: str | None = None,
    guardrails: Sequence[str] | None = None,
    alpha: float | None = None,
    method: str | None = None,
    segments: Sequence[str] | None = None,
    business: Mapping[str, Any] | None = None,
    traffic_per_day: float | None = None,
    since: str | None = None,
    until: str | None = None,
    horizon_days: float | None = None,
    values: Mapping[str, float] | None = None,
    spec_path: str | None = None,
) -> tuple[AnalysisResult, ReportModel]:
    """Run the analysis the way a template's parameters ask and adapt it for display.

    ``db_url`` ``None`` means ``ABKIT_DATABASE_URL``, else ``sqlite:///abkit.db``, else the
    demo's ``abkit-demo.db`` here or one folder up (see :func:`resolve_db_url`).
    ``since``/``until`` limit the readout to a window (an as-of readout: ``until``).
    ``spec_path``: the experiment spec file; without it the spec is found by the one rule of
    :mod:`abkit.lifecycle.declared` (the default spec file, else the newest version the
    store recorded). Its metrics, method, alpha, correction, CUPED and business assumptions
    are used (as by ``abkit analyze``); the other parameters win.
    """
    # the one path `abkit analyze` takes: the spec's inputs, amended by what is given
    from abkit.lifecycle.declared import analyze

    db = resolve_db_url(db_url)
    options: dict[str, Any] = {"spec": spec_path}
    if alpha is not None:
        options["alpha"] = alpha
    if method is not None:
        options["method"] = method
    if segments:
        options["segments"] = tuple(segments)
    if business:
        options["business"] = dict(business)
    if guardrails:
        options["guardrails"] = list(guardrails)
    if traffic_per_day is not None:
        options["traffic_per_day"] = traffic_per_day
    if since is not None:
        options["since"] = since
    if until is not None:
        options["until"] = until
    result = analyze(db, experiment, metrics_path, **options)
    from abkit.lifecycle.audit import read_audit_at

    model = from_analysis(
        result,
        horizon_days=DEFAULT_HORIZON_DAYS if horizon_days is None else horizon_days,
        values=values,
        segments=tuple(segments or ()),
        audit=_as_of(read_audit_at(db, experiment), result.experiment.until),
    )
    return result, model


def _as_of(entries: Sequence[AuditEntry], until: str | None) -> list[AuditEntry]:
    """The controller's actions an as-of readout had seen: those before ``until``."""
    if until is None:
        return list(entries)
    moment = datetime.fromisoformat(until.replace("Z", "+00:00"))
    return [e for e in entries if e.at < moment]
