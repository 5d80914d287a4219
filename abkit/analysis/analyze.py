"""``analyze``: name an experiment and its metrics, get a trustworthy readout and a decision.

The heavy lifting is one SQL query per analysis (plus one first pass per percentile cap
and one query per segment dimension) built by :mod:`abkit.analysis.sql`: the database
aggregates events per unit and then per arm and day, and Python receives a few rows of
sufficient statistics, never the event table. The statistics engine
(:func:`abkit.stats.readout.compare`) turns them into lifts with intervals.

Multiplicity (``correction``, Holm by default): the primary metric is corrected across
treatment arms; the secondary metrics form a second family (every metric × arm);
each segment dimension forms a family per metric (every value × arm). Guardrails are not
corrected: a missed harm costs more than a false alarm.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abkit.analysis.decision import (
    Decision,
    GuardrailCheck,
    decide,
    guardrail_check,
    noninferiority_check,
)
from abkit.analysis.impact import BusinessAssumptions, Impact, project_impact
from abkit.analysis.quality import (
    ExcludedEvents,
    MultipleExposure,
    QualityReport,
    balance_checks,
    build_quality,
    srm_check,
)
from abkit.errors import ConfigError, NotEnoughDataError, StoreError
from abkit.metrics.definitions import Metric, load_metrics
from abkit.stats._render import ResultMixin, html_table, json_safe
from abkit.stats.estimators import ratio_linearised
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.store.schema import MICROS_PER_DAY, from_us, to_us

METHODS = ("fixed", "sequential", "bayesian")


@dataclass(frozen=True)
class ExperimentFacts(ResultMixin):
    """What was analysed: the configuration, the database, the exposure period."""

    key: str
    control: str
    variants: tuple[str, ...]
    weights: dict[str, float]
    traffic: float
    registered: bool  # False: no configuration found, equal weights assumed for SRM
    dialect: str
    units: dict[str, int]  # analysed units per arm
    first_exposure: str | None
    last_exposure: str | None
    days: float
    units_per_day: float | None
    description: str = ""
    hypothesis: str = ""
    owner: str = ""


@dataclass(frozen=True)
class SegmentResult(ResultMixin):
    """One metric in one segment value for one treatment arm."""

    segment: str
    value: str
    result: Any  # LiftResult

    def _flat_row(self) -> dict[str, Any]:
        row = {"segment": self.segment, "segment_value": self.value}
        row.update(self.result._flat_row())
        return row


@dataclass(frozen=True)
class DailyRow(ResultMixin):
    """Cumulative value of a metric per arm up to a day (UTC day of first exposure)."""

    date: str
    metric: str
    variant: str
    n: int
    value: float | None
    rel_lift: float | None = None
    rel_ci_lower: float | None = None
    rel_ci_upper: float | None = None


@dataclass(frozen=True)
class AnalysisResult(ResultMixin):
    """The full readout; ``to_frame()`` gives one row per metric and treatment arm."""

    experiment: ExperimentFacts
    quality: QualityReport
    metrics: tuple[Any, ...]  # LiftResult per (metric, treatment arm), guardrails included
    guardrails: tuple[GuardrailCheck, ...]
    segments: tuple[SegmentResult, ...]
    decision: Decision
    impact: Impact | None
    daily: tuple[DailyRow, ...]
    primary: str
    roles: dict[str, str]  # metric -> primary | secondary | guardrail
    arm_stats: dict[str, dict[str, Any]]  # metric -> variant -> MeanStats | RatioStats
    method: str = "fixed"
    alpha: float = 0.05
    correction: str = "holm"
    cuped: bool = True

    # ------------------------------------------------------------------ views
    def to_frame(self):  # type: ignore[no-untyped-def]
        """One row per metric and treatment arm (guardrails included, ``role`` says which)."""
        import pandas as pd

        rows = []
        for r in self.metrics:
            row = {"role": self.roles.get(r.metric, "secondary")}
            row.update(r._flat_row())
            rows.append(row)
        return pd.DataFrame(rows)

    def segments_frame(self):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.DataFrame([s._flat_row() for s in self.segments])

    def daily_frame(self):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.DataFrame([json_safe(d) for d in self.daily])

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-safe (non-finite floats become ``null``)."""
        return json_safe(
            {
                "experiment": self.experiment,
                "primary": self.primary,
                "method": self.method,
                "alpha": self.alpha,
                "correction": self.correction,
                "cuped": self.cuped,
                "decision": self.decision.to_dict(),
                "quality": {
                    "srm": self.quality.srm,
                    "multiple_exposure": self.quality.multiple_exposure,
                    "balance": self.quality.balance,
                    "excluded_events": self.quality.excluded_events,
                    "unknown_variants": self.quality.unknown_variants,
                    "warnings": self.quality.warnings,
                },
                "metrics": [
                    {"role": self.roles.get(r.metric), **_lift_dict(r)} for r in self.metrics
                ],
                "guardrails": self.guardrails,
                "segments": [
                    {"segment": s.segment, "value": s.value, **_lift_dict(s.result)}
                    for s in self.segments
                ],
                "impact": self.impact,
                "daily": self.daily,
                "arm_stats": self.arm_stats,
            }
        )

    def summary(self) -> str:
        """A plain-text readout (what ``abkit analyze --format table`` prints)."""
        e = self.experiment
        lines = [
            f"Experiment {e.key}: {sum(e.units.values()):,} units "
            f"({', '.join(f'{v} {n:,}' for v, n in e.units.items())}), "
            f"{e.first_exposure or '-'} to {e.last_exposure or '-'}",
            "",
            f"DECISION: {self.decision.verdict.upper()}"
            + (f" ({self.decision.winner})" if self.decision.winner else ""),
        ]
        lines += [f"  - {r}" for r in self.decision.reasons]
        lines += ["", "Data quality:"]
        if self.quality.warnings:
            lines += [f"  ! {w}" for w in self.quality.warnings]
        else:
            lines.append("  all checks passed")
        srm = self.quality.srm
        lines.append(
            f"  SRM p = {_fmt(getattr(srm, 'p_value', None))}; "
            f"multiple-exposure units excluded: {self.quality.multiple_exposure.multiple}"
        )
        lines += ["", "Metrics:"]
        header = (
            "metric",
            "role",
            "variant",
            "control",
            "treatment",
            "rel lift",
            "CI",
            "p",
            "p adj",
        )
        table = [header]
        for r in self.metrics:
            ci = r.rel_ci
            table.append(
                (
                    r.metric,
                    self.roles.get(r.metric, ""),
                    r.variant,
                    _fmt(r.control_mean),
                    _fmt(r.treatment_mean),
                    _pct(r.rel_lift),
                    "-" if ci is None else f"[{_pct(ci[0])}, {_pct(ci[1])}]",
                    _fmt(r.p_value),
                    _fmt(r.p_value_adjusted),
                )
            )
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        for row in table:
            lines.append(
                "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            )
        if self.guardrails:
            lines += ["", "Guardrails:"]
            lines += [f"  [{g.status}] {g.reason}" for g in self.guardrails]
        if self.segments:
            lines += ["", "Segments (primary metric and guardrails, corrected per dimension):"]
            for seg in self.segments:
                r = seg.result
                ci = r.rel_ci
                lines.append(
                    f"  {seg.segment}={seg.value}  {r.metric}  {r.variant}  {_pct(r.rel_lift)}  "
                    + ("-" if ci is None else f"[{_pct(ci[0])}, {_pct(ci[1])}]")
                    + f"  p adj {_fmt(r.p_value_adjusted)}"
                )
        if self.impact is not None:
            lines += ["", "Business impact:", "  " + self.impact.sentence()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = self.experiment
        d = self.decision
        parts = [
            f"<h3>Experiment {html.escape(e.key)}</h3>",
            f"<p><strong>Decision: {html.escape(d.verdict)}"
            + (f" ({html.escape(d.winner)})" if d.winner else "")
            + "</strong></p><ul>"
            + "".join(f"<li>{html.escape(r)}</li>" for r in d.reasons)
            + "</ul>",
        ]
        if self.quality.warnings:
            parts.append(
                "<p><strong>Data quality warnings</strong></p><ul>"
                + "".join(f"<li>{html.escape(w)}</li>" for w in self.quality.warnings)
                + "</ul>"
            )
        parts.append(html_table(self.quality.rows(), caption="Data quality"))
        keep = (
            "metric",
            "variant",
            "control_mean",
            "treatment_mean",
            "rel_lift",
            "rel_ci_lower",
            "rel_ci_upper",
            "p_value",
            "p_value_adjusted",
            "significant",
        )
        rows = []
        for r in self.metrics:
            flat = r._flat_row()
            rows.append({"role": self.roles.get(r.metric), **{k: flat.get(k) for k in keep}})
        parts.append(html_table(rows, caption="Metrics"))
        if self.impact is not None:
            parts.append(f"<p>{html.escape(self.impact.sentence())}</p>")
        if self.segments:
            seg_rows = []
            for s in self.segments:
                flat = s.result._flat_row()
                seg_rows.append(
                    {"segment": s.segment, "value": s.value, **{k: flat.get(k) for k in keep}}
                )
            parts.append(html_table(seg_rows, caption="Segments"))
        return "<div class='abkit-analysis'>" + "".join(parts) + "</div>"


def _lift_dict(result: Any) -> dict[str, Any]:
    out = result.to_dict()
    out.pop("details", None)
    return out


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"


# ------------------------------------------------------------------------ helpers
def _resolve_metrics(
    metrics: Sequence[Metric] | str | Path | None, guardrails: Sequence[Metric | str] | None
) -> tuple[list[Metric], Metric, list[Metric]]:
    """(all metrics in order, primary, guardrails)."""
    from abkit.metrics.library import builtin_metrics

    if metrics is None:
        chosen = builtin_metrics(
            "conversion_rate", "revenue_per_user", "orders_per_user", "average_order_value"
        )
        chosen[0] = chosen[0].with_(role="primary")
    elif isinstance(metrics, (str, Path)):
        chosen = load_metrics(metrics)
    else:
        chosen = list(metrics)
        for m in chosen:
            if not isinstance(m, Metric):
                raise ConfigError(f"metrics must be Metric objects, got {type(m).__name__}")
    by_name = {m.name: m for m in chosen}
    if len(by_name) != len(chosen):
        raise ConfigError("two metrics share a name", field="name")
    extra: list[Metric] = []
    for g in guardrails or ():
        if isinstance(g, str):
            g = by_name[g] if g in by_name else _builtin_or_error(g)
        if not isinstance(g, Metric):
            raise ConfigError(f"a guardrail must be a Metric or a metric name, got {g!r}")
        g = g.with_(role="guardrail")
        if g.name in by_name:
            chosen = [g if m.name == g.name else m for m in chosen]
        else:
            extra.append(g)
        by_name[g.name] = g
    everything = chosen + extra
    non_guard = [m for m in everything if m.role != "guardrail"]
    if not non_guard:
        raise ConfigError("give at least one metric that is not a guardrail", field="metrics")
    primaries = [m for m in non_guard if m.role == "primary"]
    if len(primaries) > 1:
        raise ConfigError(
            f"only one primary metric is allowed, got {', '.join(m.name for m in primaries)}",
            field="role",
        )
    primary = primaries[0] if primaries else non_guard[0]
    everything = [m.with_(role="primary") if m is primary else m for m in everything]
    primary = next(m for m in everything if m.name == primary.name)
    return everything, primary, [m for m in everything if m.role == "guardrail"]


def _builtin_or_error(name: str) -> Metric:
    from abkit.metrics.library import builtin_metric

    try:
        return builtin_metric(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]), field="guardrails") from None


def _resolve_experiment(store: Any, experiment: Any) -> tuple[Any, bool]:
    """(Experiment or None, registered?)."""
    if not isinstance(experiment, str):
        if not hasattr(experiment, "variant_names"):
            raise ConfigError("experiment must be a key or an abkit Experiment")
        return experiment, True
    try:
        return store.get_experiment(experiment), True
    except StoreError:
        return None, False


def _cap_text(metric: Metric, caps: Mapping[str, float]) -> str | None:
    if metric.cap is not None:
        return f"capped at {metric.cap:g}"
    if metric.cap_percentile is not None:
        value = caps.get(metric.name)
        if value is None:
            return f"p{metric.cap_percentile:g} cap (no non-zero values)"
        return f"capped at p{metric.cap_percentile:g} = {value:.6g}"
    return None


def _strip_covariate(stats: Any) -> Any:
    if isinstance(stats, MeanStats) and stats.has_covariate:
        return MeanStats(n=stats.n, sum=stats.sum, sum_sq=stats.sum_sq)
    if isinstance(stats, RatioStats) and stats.has_covariate:
        return stats.without_covariate()
    return stats


def _cuped_capable(metric: Metric) -> bool:
    """Mean and proportion metrics (covariate ``x``) and ratio metrics (pre-period
    numerator and denominator, delta-method CUPED) can be CUPED-adjusted."""
    return metric.supports_cuped or metric.kind == "ratio"


def _varying_covariate(stats: Any) -> bool:
    if isinstance(stats, RatioStats):
        if not stats.has_covariate or stats.n < 2 or not stats.pre_den_sum:
            return False
        # the pre-period ratio term must vary (no pre-period activity: nothing to learn)
        return ratio_linearised(stats)[3] > 0
    if not isinstance(stats, MeanStats) or not stats.has_covariate or stats.n < 2:
        return False
    return stats.cov_var > 0


def _compare(
    metric: Metric,
    control: Any,
    treatment: Any,
    *,
    variant: str,
    alpha: float,
    cuped: bool,
    method: str,
    cap: str | None,
) -> Any:
    from abkit.stats.readout import compare

    use_cuped = bool(
        cuped
        and _cuped_capable(metric)
        # a covariate that never varies carries no information (no pre-period data)
        and _varying_covariate(control)
        and _varying_covariate(treatment)
    )
    if not use_cuped:
        control, treatment = _strip_covariate(control), _strip_covariate(treatment)
    return compare(
        control,
        treatment,
        metric_type=metric.kind,
        alpha=alpha,
        cuped=use_cuped,
        method=method,
        metric=metric.name,
        variant=variant,
        cap=cap,
    )


def _guardrail(
    metric: Metric,
    stats: Mapping[str, Any],
    control: str,
    result: Any,
    *,
    alpha: float,
    cuped: bool,
) -> GuardrailCheck:
    """Non-inferiority test when the metric has a margin, else the harm-interval check."""
    if metric.margin is None:
        return guardrail_check(result, metric, result.variant, alpha)
    from abkit.stats.guardrails import guardrail

    c, t = stats.get(control), stats.get(result.variant)
    use_cuped = bool(
        cuped and _cuped_capable(metric) and _varying_covariate(c) and _varying_covariate(t)
    )
    if not use_cuped:
        c, t = _strip_covariate(c), _strip_covariate(t)
    outcome = guardrail(
        c,
        t,
        metric_type=metric.kind,
        margin=metric.margin,
        margin_type="relative",
        higher_is_better=metric.higher_is_better,
        alpha=alpha,
        cuped=use_cuped,
        metric=metric.name,
    )
    return noninferiority_check(outcome, metric, result.variant)


def _day_iso(day: int) -> str:
    return from_us(day * MICROS_PER_DAY).date().isoformat()


# ------------------------------------------------------------------------- analyze
def analyze(
    db: Any,
    experiment: Any,
    metrics: Sequence[Metric] | str | Path | None = None,
    *,
    guardrails: Sequence[Metric | str] | None = None,
    method: str = "fixed",
    alpha: float = 0.05,
    segments: Sequence[str] = (),
    correction: str = "holm",
    cuped: bool = True,
    traffic_per_day: float | None = None,
    business: BusinessAssumptions | Mapping[str, Any] | None = None,
) -> AnalysisResult:
    """Analyse ``experiment`` in the store ``db`` (URL or :class:`~abkit.store.store.Store`).

    ``metrics``: ``Metric`` objects, a TOML file, or ``None`` for conversion rate (primary),
    revenue per user, orders per user and average order value. The primary metric is the
    one with ``role="primary"`` (else the first non-guardrail one). ``guardrails``:
    metrics or names (library or listed metrics) that must not get significantly worse.
    ``method``: ``fixed``, ``sequential`` or ``bayesian`` (see :mod:`abkit.stats.readout`).
    ``segments``: exposure attribute names (e.g. ``"platform"``) to break the primary
    metric and the guardrails down by (fixed-horizon readouts, corrected per dimension).
    ``traffic_per_day``: exposed units per day (default: observed) for the sample still
    needed and the impact projection; ``business``: :class:`BusinessAssumptions`.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from abkit.analysis import sql
    from abkit.stats.multiple import apply_correction, normalise_method
    from abkit.store.store import open_store

    if method not in METHODS:
        raise ConfigError(
            f"method must be one of {', '.join(METHODS)}, got {method!r}", field="method"
        )
    if not 0 < alpha < 0.5:
        raise ConfigError(f"alpha must be in (0, 0.5), got {alpha!r}", field="alpha")
    try:
        correction = normalise_method(correction)
    except ValueError as exc:
        raise ConfigError(str(exc), field="correction") from None
    if isinstance(segments, str):
        segments = (segments,)
    assumptions = BusinessAssumptions.coerce(business)
    all_metrics, primary, guard_metrics = _resolve_metrics(metrics, guardrails)
    roles = {m.name: m.role for m in all_metrics}

    store = open_store(db, create=False)
    exp, registered = _resolve_experiment(store, experiment)
    key = experiment if isinstance(experiment, str) else exp.key
    end_us = to_us(exp.end) if exp is not None and exp.end is not None else None
    tables = store.tables
    try:
        with store.engine.connect() as conn:
            counts = conn.execute(sql.exposure_counts_query(tables, key, end_us=end_us)).all()
            if not counts:
                raise NotEnoughDataError(
                    f"experiment {key!r} has no exposures in {store.url}"
                    + ("" if registered else " (and it is not registered)")
                )
            caps = sql.compute_caps(conn, tables, key, all_metrics, end_us=end_us)
            overall = sql.fetch_aggregates(
                conn, tables, key, all_metrics, end_us=end_us, caps=caps, ratio_cuped=cuped
            ).get(None)
            by_segment = {
                name: sql.fetch_aggregates(
                    conn,
                    tables,
                    key,
                    all_metrics,
                    end_us=end_us,
                    caps=caps,
                    segment=name,
                    daily=False,
                    ratio_cuped=cuped,
                )
                for name in segments
            }
    except SQLAlchemyError as exc:
        raise StoreError(f"the analysis query failed on {store.url}: {exc}") from exc

    seen_variants = sorted({str(r.variant) for r in counts})
    if exp is not None:
        variants = tuple(exp.variant_names)
        weights = dict(zip(variants, exp.effective_weights, strict=True))
        traffic = float(exp.traffic)
    else:  # not registered: equal split, control named "control" or else the first name
        control_name = "control" if "control" in seen_variants else seen_variants[0]
        variants = (control_name, *[v for v in seen_variants if v != control_name])
        weights = dict.fromkeys(variants, 1.0 / len(variants))
        traffic = 1.0
    control = variants[0]
    unknown = tuple(v for v in seen_variants if v not in variants)

    units = {v: (overall.units.get(v, 0) if overall else 0) for v in variants}
    first_us = min(int(r.first_us) for r in counts)
    last_us = max(int(r.last_us) for r in counts)
    span_days = max((last_us - first_us) / MICROS_PER_DAY, 1.0)
    observed_per_day = sum(units.values()) / span_days if sum(units.values()) else None
    per_day = traffic_per_day if traffic_per_day is not None else observed_per_day

    # ---- quality
    total_units = sum(int(r.units) for r in counts)
    multi_by = {str(r.variant): int(r.multi or 0) for r in counts}
    multiple = MultipleExposure(
        units=total_units,
        multiple=sum(multi_by.values()),
        share=sum(multi_by.values()) / total_units if total_units else 0.0,
        by_variant=multi_by,
    )
    srm = srm_check(units, weights)
    arm_stats: dict[str, dict[str, Any]] = {}
    excluded = []
    for m in all_metrics:
        arms = overall.metrics.get(m.name, {}) if overall else {}
        arm_stats[m.name] = {v: arms[v].stats for v in variants if v in arms}
        excluded.append(
            ExcludedEvents(
                metric=m.name,
                before_exposure=sum(a.events_before_exposure for a in arms.values()),
                after_window=sum(a.events_after_window for a in arms.values()),
            )
        )
    balance = balance_checks(
        {
            m.name: {v: s for v, s in arm_stats[m.name].items() if isinstance(s, MeanStats)}
            for m in all_metrics
            if m.supports_cuped
        },
        control,
    )
    quality = build_quality(
        srm=srm, multiple=multiple, balance=balance, excluded=excluded, unknown_variants=unknown
    )

    # ---- readouts
    treatments = [v for v in variants if v != control]
    readouts: dict[str, list[Any]] = {}
    for m in all_metrics:
        cap = _cap_text(m, caps)
        stats = arm_stats[m.name]
        readouts[m.name] = [
            _compare(
                m,
                stats.get(control),
                stats.get(v),
                variant=v,
                alpha=alpha,
                cuped=cuped,
                method=method,
                cap=cap,
            )
            for v in treatments
        ]
    readouts[primary.name] = apply_correction(readouts[primary.name], correction)
    secondary = [m.name for m in all_metrics if m.role == "secondary"]
    family = [r for name in secondary for r in readouts[name]]
    corrected = iter(apply_correction(family, correction))
    for name in secondary:
        readouts[name] = [next(corrected) for _ in readouts[name]]
    lift_results = tuple(r for m in all_metrics for r in readouts[m.name])

    checks = tuple(
        _guardrail(m, arm_stats[m.name], control, r, alpha=alpha, cuped=cuped)
        for m in guard_metrics
        for r in readouts[m.name]
    )

    decision = decide(
        primary=primary,
        primary_results={r.variant: r for r in readouts[primary.name]},
        guardrails=checks,
        srm_detected=quality.srm_detected,
        srm_note=quality.warnings[0] if quality.srm_detected else "",
        control_stats=arm_stats[primary.name].get(control),
        current_units=sum(units.values()),
        weights=[weights[v] for v in variants],
        alpha=alpha,
        traffic_per_day=per_day,
        method=method,
    )

    # ---- impact
    impact_metric = next(
        (m for m in all_metrics if m.name == assumptions.metric),
        None,
    )
    if assumptions.metric is not None and impact_metric is None:
        raise ConfigError(
            f"business.metric {assumptions.metric!r} is not among the analysed metrics",
            field="business.metric",
        )
    if impact_metric is None:
        impact_metric = next((m for m in all_metrics if m.name == "revenue_per_user"), primary)
    impact = None
    if treatments:
        best = decision.winner or _best_arm(readouts[primary.name], primary) or treatments[0]
        result = next(r for r in readouts[impact_metric.name] if r.variant == best)
        impact = project_impact(
            metric=impact_metric,
            variant=best,
            result=result,
            control_stats=arm_stats[impact_metric.name].get(control),
            assumptions=assumptions,
            observed_units_per_day=per_day,
            experiment_traffic=traffic,
        )

    # ---- daily cumulative series
    daily = _daily_rows(overall, all_metrics, control, alpha) if overall else ()

    # ---- segments
    segment_results: list[SegmentResult] = []
    for name, parts in by_segment.items():
        for m in [primary, *guard_metrics]:
            family_rows: list[tuple[str, Any]] = []
            for value, agg in sorted(parts.items(), key=lambda kv: str(kv[0])):
                st = {v: s.stats for v, s in agg.metrics.get(m.name, {}).items()}
                for v in treatments:
                    family_rows.append(
                        (
                            str(value),
                            _compare(
                                m,
                                st.get(control),
                                st.get(v),
                                variant=v,
                                alpha=alpha,
                                cuped=cuped,
                                method="fixed",
                                cap=_cap_text(m, caps),
                            ),
                        )
                    )
            adjusted = apply_correction([r for _, r in family_rows], correction)
            segment_results += [
                SegmentResult(segment=name, value=val, result=r)
                for (val, _), r in zip(family_rows, adjusted, strict=True)
            ]

    facts = ExperimentFacts(
        key=key,
        control=control,
        variants=variants,
        weights=weights,
        traffic=traffic,
        registered=registered,
        dialect=store.dialect_name,
        units=units,
        first_exposure=from_us(first_us).isoformat(),
        last_exposure=from_us(last_us).isoformat(),
        days=round(span_days, 3),
        units_per_day=per_day,
        description=getattr(exp, "description", "") if exp is not None else "",
        hypothesis=getattr(exp, "hypothesis", "") if exp is not None else "",
        owner=getattr(exp, "owner", "") if exp is not None else "",
    )
    return AnalysisResult(
        experiment=facts,
        quality=quality,
        metrics=lift_results,
        guardrails=checks,
        segments=tuple(segment_results),
        decision=decision,
        impact=impact,
        daily=daily,
        primary=primary.name,
        roles=roles,
        arm_stats=arm_stats,
        method=method,
        alpha=alpha,
        correction=correction,
        cuped=cuped,
    )


def _best_arm(results: Sequence[Any], metric: Metric) -> str | None:
    ok = [r for r in results if getattr(r, "rel_lift", None) is not None]
    if not ok:
        return None
    sign = 1.0 if metric.higher_is_better else -1.0
    return max(ok, key=lambda r: sign * r.rel_lift).variant


def _daily_rows(
    overall: Any, metrics: Sequence[Metric], control: str, alpha: float
) -> tuple[DailyRow, ...]:
    """Cumulative mean per arm and day; treatment rows carry the cumulative relative lift."""
    from abkit.stats.estimators import arm_mean
    from abkit.stats.readout import compare

    kinds = {m.name: m.kind for m in metrics}
    latest: dict[tuple[str, str], Any] = {}
    by_day: dict[int, list[Any]] = {}
    for point in overall.daily:
        by_day.setdefault(point.day, []).append(point)
    rows: list[DailyRow] = []
    for day in sorted(by_day):
        for point in by_day[day]:
            latest[(point.metric, point.variant)] = point.stats
        for (metric, variant), stats in sorted(latest.items()):
            kind = kinds[metric]
            try:
                value = arm_mean(stats, kind)  # type: ignore[arg-type]
            except (NotEnoughDataError, ValueError, ZeroDivisionError):
                value = None
            rel = lo = hi = None
            base = latest.get((metric, control))
            if variant != control and base is not None:
                r = compare(
                    _strip_covariate(base), _strip_covariate(stats), metric_type=kind, alpha=alpha
                )
                rel = r.rel_lift
                if r.rel_ci is not None:
                    lo, hi = r.rel_ci
            rows.append(
                DailyRow(
                    date=_day_iso(day),
                    metric=metric,
                    variant=variant,
                    n=int(stats.n),
                    value=None if value is None or not math.isfinite(value) else float(value),
                    rel_lift=rel,
                    rel_ci_lower=lo,
                    rel_ci_upper=hi,
                )
            )
    return tuple(rows)


__all__ = [
    "AnalysisResult",
    "DailyRow",
    "ExperimentFacts",
    "SegmentResult",
    "analyze",
]
