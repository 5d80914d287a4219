"""From an ``AnalysisResult`` (Contract 7) to the :class:`~abkit.report.model.ReportModel`.

This is the only module that knows the analysis result's shape; sections and templates
read the model. :func:`load_report` is what the notebook templates call: it runs
:func:`abkit.analysis.analyze.analyze` with the template's parameters and adapts the
result.

Guardrail status (pass / fail / inconclusive) reads the guardrail's ``1 - alpha``
interval of the relative lift against a non-inferiority margin ``m`` (the metric's
``mde``, default 5% relative):

* **fail**: the analysis flagged a breach (the whole interval on the harmful side);
* **pass**: the harmful end of the interval is within the margin (harm larger than ``m``
  is ruled out at level ``alpha``);
* **inconclusive**: otherwise (neither harm nor safety is established, or no data).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from abkit.errors import ConfigError
from abkit.report.model import (
    DailySeries,
    Decision,
    Facts,
    Impact,
    MetricRow,
    Quality,
    QualityCheck,
    ReportModel,
    VariantFact,
)

DEFAULT_GUARDRAIL_MARGIN = 0.05
MULTIPLE_EXPOSURE_WARN = 0.01


def _interval(ci: Any) -> tuple[float | None, float | None]:
    if not ci:
        return None, None
    lo, hi = ci
    return lo, hi


def guardrail_status(
    check_status: str | None,
    rel_ci: Any,
    *,
    higher_is_better: bool,
    margin: float = DEFAULT_GUARDRAIL_MARGIN,
) -> str:
    """pass / fail / inconclusive for one guardrail readout (module docstring)."""
    if check_status == "breached":
        return "fail"
    lo, hi = _interval(rel_ci)
    if check_status != "ok" or (lo is None and hi is None):
        return "inconclusive"
    harmful_end = lo if higher_is_better else hi
    if harmful_end is None:
        return "inconclusive"
    harm = -harmful_end if higher_is_better else harmful_end
    return "pass" if harm <= margin else "inconclusive"


def _metric_defs(metrics: Any, metric_names: Sequence[str] = ()) -> dict[str, Any]:
    """Metric definitions by name, as analyze resolves them (for directions and margins)."""
    from abkit.metrics.definitions import Metric, load_metrics
    from abkit.metrics.library import builtin_metric

    defs: dict[str, Any] = {}
    for name in set(metric_names):
        with contextlib.suppress(KeyError):
            defs[name] = builtin_metric(name)
    if isinstance(metrics, (str, os.PathLike)):
        defs.update({m.name: m for m in load_metrics(metrics)})
    elif metrics is not None:
        defs.update({m.name: m for m in metrics if isinstance(m, Metric)})
    return defs


def _experiment_config(db: Any, key: str) -> Any:
    """The registered Experiment (for variant payloads, dates, status), or None."""
    from abkit.errors import AbkitError
    from abkit.store.store import open_store

    try:
        return open_store(db).get_experiment(key)
    except AbkitError:
        return None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


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


def _sample_needed(result: Any, defs: Mapping[str, Any], collected: int) -> tuple[int | None, str]:
    """Units (all arms) needed to detect the primary metric's MDE with 80% power.

    The decision carries the plan when it says "keep running" or "no detectable effect";
    for the other verdicts the same planner (``abkit.analysis.decision.power_needed``) is
    asked here, so the report always says how the sample compares with the plan.
    """
    d = result.decision
    plan = getattr(d, "power_plan", None)
    target = ""
    metric = defs.get(result.primary)
    if plan is None and metric is not None:
        from abkit.analysis.decision import power_needed

        control = result.arm_stats.get(result.primary, {}).get(result.experiment.control)
        if control is not None:
            try:
                _, _, plan, target = power_needed(
                    metric,
                    control,
                    current_units=collected,
                    weights=[result.experiment.weights[v] for v in result.experiment.variants],
                    alpha=result.alpha,
                    traffic_per_day=result.experiment.units_per_day,
                )
            except Exception:  # a plan is a courtesy here; never fail the report on it
                plan = None
    if plan is not None and getattr(plan, "n_total", None):
        if not target and metric is not None:
            target = f"{(metric.mde or 0.05):.1%} relative change with 80% power"
        return int(plan.n_total), target
    if d.sample_needed is not None:
        return collected + int(d.sample_needed), target
    return None, target


_P_EQUALS = re.compile(r"\bp = (\d+(?:\.\d+)?(?:[eE]-?\d+)?)")


def _tiny_p(text: str) -> str:
    """``p = 9.8e-42`` reads as ``p < 0.001``, as in the scorecard; other p-values stay."""

    def sub(match: re.Match[str]) -> str:
        return "p < 0.001" if float(match.group(1)) < 0.001 else match.group(0)

    return _P_EQUALS.sub(sub, text)


def from_analysis(
    result: Any,
    *,
    experiment: Any = None,
    metrics: Any = None,
    generated_at: datetime | None = None,
) -> ReportModel:
    """Build the report model of ``result`` (an ``AnalysisResult``).

    ``experiment``: the registered ``Experiment`` (adds payloads, planned dates, status);
    ``metrics``: the metric definitions given to ``analyze`` (directions and margins).
    """
    from abkit import __version__

    defs = _metric_defs(metrics, [r.metric for r in result.metrics])
    facts_in = result.experiment
    guards = {(g.metric, g.variant): g for g in result.guardrails}

    rows: list[MetricRow] = []
    for r in result.metrics:
        role = result.roles.get(r.metric, "secondary")
        definition = defs.get(r.metric)
        guard = guards.get((r.metric, r.variant))
        higher = (
            definition.higher_is_better
            if definition is not None
            else (guard.direction != "lower" if guard is not None else True)
        )
        abs_lo, abs_hi = _interval(r.abs_ci)
        rel_lo, rel_hi = _interval(r.rel_ci)
        details = getattr(r, "details", None)
        prob = getattr(details, "prob_beat_control", None)
        engine_higher = getattr(details, "higher_is_better", True)
        if prob is not None and bool(engine_higher) != higher:
            # The engine measured "better" the other way round (it was not told the
            # metric's direction); for a continuous posterior P(worse) = 1 - P(better).
            prob = 1.0 - prob
        g_status = None
        if role == "guardrail":
            # The decision's non-inferiority margin when the metric has one, so the chip and
            # the verdict judge harm against the same bar; else its MDE; else 5%.
            margin = (
                getattr(definition, "margin", None)
                or getattr(definition, "mde", None)
                or DEFAULT_GUARDRAIL_MARGIN
            )
            g_status = guardrail_status(
                guard.status if guard is not None else None,
                r.rel_ci,
                higher_is_better=higher,
                margin=margin,
            )
        p = r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value
        rows.append(
            MetricRow(
                metric=r.metric,
                variant=r.variant,
                role=role,
                metric_type=r.metric_type,
                control_mean=r.control_mean,
                treatment_mean=r.treatment_mean,
                abs_lift=r.abs_lift,
                abs_low=abs_lo,
                abs_high=abs_hi,
                rel_lift=r.rel_lift,
                rel_low=rel_lo,
                rel_high=rel_hi,
                p_value=None if result.method == "bayesian" else p,
                prob_beat_control=prob if result.method == "bayesian" else None,
                significant=bool(r.significant),
                higher_is_better=higher,
                guardrail_status=g_status,
                n_control=int(r.n_control or 0),
                n_treatment=int(r.n_treatment or 0),
                status=r.status,
                note=r.note or "",
                label=r.metric.replace("_", " "),
                test=getattr(r, "test", "") or "",
            )
        )
    # Display order: primary first, then secondary, then guardrails (stable within).
    order = {"primary": 0, "secondary": 1, "guardrail": 2}
    rows.sort(key=lambda row: order.get(row.role, 1))

    d = result.decision
    # The engine's reasons name metrics by key ("errors_per_user"); a reader sees the same
    # words as in the scorecard ("errors per user"). Longest keys first, whole words only.
    keys = sorted({r.metric for r in rows if "_" in r.metric}, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, keys)) + r")\b") if keys else None
    reasons = tuple(
        _tiny_p(pattern.sub(lambda m: m.group(1).replace("_", " "), str(x)) if pattern else str(x))
        for x in d.reasons
    )
    decision = Decision(
        verdict=d.verdict,
        reason=reasons[0] if reasons else d.verdict,
        reasons=reasons[1:],
    )

    impacts: list[Impact] = []
    imp = result.impact
    if imp is not None:
        lo, hi = _interval(imp.interval)
        parts = [
            f"{imp.variant} shipped to about {imp.eligible_units:,.0f} eligible units per {imp.period}"
        ]
        if imp.note:
            parts.append(imp.note)
        impacts.append(
            Impact(
                metric=imp.metric.replace("_", " "),
                period=imp.period,
                estimate=imp.change,
                low=lo,
                high=hi,
                unit=imp.currency or "",
                is_currency=bool(imp.currency),
                assumption="; ".join(parts),
            )
        )

    q = result.quality
    srm = q.srm
    checks: list[QualityCheck] = []
    me = q.multiple_exposure
    checks.append(
        QualityCheck(
            name="Units seeing more than one variant",
            status="warn" if me.share > MULTIPLE_EXPOSURE_WARN else "pass",
            detail=f"{me.multiple:,} of {me.units:,} units ({me.share:.2%}), excluded from every metric",
        )
    )
    for b in q.balance:
        checks.append(
            QualityCheck(
                name=f"Pre-experiment balance: {b.metric.replace('_', ' ')} ({b.variant})",
                status="fail" if b.imbalanced else "pass",
                detail="groups differed before the experiment"
                if b.imbalanced
                else "groups were alike before the experiment",
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
    collected = int(sum(facts_in.units.values()))
    needed, target = _sample_needed(result, defs, collected)
    quality = Quality(
        counts={k: int(v) for k, v in facts_in.units.items()},
        expected_shares=dict(facts_in.weights),
        srm_p_value=getattr(srm, "p_value", None),
        srm_ok=not q.srm_detected,
        checks=tuple(checks),
        sample_collected=collected,
        sample_needed=needed,
        sample_target=target,
        days_remaining=d.days_needed,
    )

    payloads: Mapping[str, Any] = {}
    planned_start = planned_end = None
    status = ""
    tags: Sequence[str] = ()
    if experiment is not None:
        payloads = {v.name: dict(v.payload) for v in experiment.variants}
        planned_start, planned_end = _iso(experiment.start), _iso(experiment.end)
        status = experiment.status
        tags = experiment.tags
    facts = Facts(
        key=facts_in.key,
        description=facts_in.description,
        hypothesis=facts_in.hypothesis,
        owner=facts_in.owner,
        start=_short_time(planned_start),
        end=_short_time(planned_end),
        first_exposure=_short_time(facts_in.first_exposure),
        last_exposure=_short_time(facts_in.last_exposure),
        traffic=facts_in.traffic,
        status=status,
        tags=tuple(tags),
        variants=tuple(
            VariantFact(
                name=name,
                weight=float(facts_in.weights.get(name, 0.0)),
                payload=dict(payloads.get(name, {})),
                is_control=name == facts_in.control,
            )
            for name in facts_in.variants
        ),
    )

    primary_row = next((row for row in rows if row.role == "primary"), None)
    daily: list[DailySeries] = []
    if primary_row is not None:
        points = [
            p
            for p in result.daily
            if p.metric == primary_row.metric and p.variant == primary_row.variant
        ]
        if points:
            daily.append(
                DailySeries(
                    metric=primary_row.metric.replace("_", " "),
                    variant=primary_row.variant,
                    dates=tuple(p.date for p in points),
                    rel_lift=tuple(p.rel_lift for p in points),
                    low=tuple(p.rel_ci_lower for p in points),
                    high=tuple(p.rel_ci_upper for p in points),
                )
            )

    moment = generated_at or datetime.now(timezone.utc)
    return ReportModel(
        facts=facts,
        decision=decision,
        metrics=tuple(rows),
        quality=quality,
        impact=tuple(impacts),
        daily=tuple(daily),
        method=result.method,
        alpha=result.alpha,
        correction=result.correction,
        cuped=bool(result.cuped),
        generated_at=moment.strftime("%Y-%m-%d %H:%M UTC"),
        abkit_version=__version__,
    )


def _sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:///`` URL names, or ``None`` for other databases and memory."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL is reported by the store with its own message
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def resolve_db_url(db_url: str | None, *, field: str = "db_url") -> str:
    """The database a template reads, refusing a SQLite file that does not exist.

    ``None`` means ``$ABKIT_DATABASE_URL``, else ``sqlite:///abkit.db`` when that file
    exists, else the database ``abkit demo`` writes (``abkit-demo.db``) in this folder or
    the one above it: a notebook opened by hand from ``notebooks/`` after running the demo
    at the repository root then works with its defaults. Opening the store would create an
    empty file, so a missing one is a :class:`~abkit.errors.ConfigError` that says what to
    do instead of a confusing "no exposures" later.
    """
    url = db_url or os.environ.get("ABKIT_DATABASE_URL")
    if url is None:
        candidates = [Path("abkit.db"), Path("abkit-demo.db"), Path("..") / "abkit-demo.db"]
        for candidate in candidates:
            if candidate.is_file():
                return f"sqlite:///{candidate.resolve()}"
        raise ConfigError(
            f"no database given and none found in {Path.cwd()} (looked for abkit.db and "
            "abkit-demo.db, and abkit-demo.db one folder up): run `abkit demo` in this folder or the one above, or "
            "set db_url (or $ABKIT_DATABASE_URL) to your store's URL",
            field=field,
        )
    path = _sqlite_file(url)
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
) -> tuple[Any, ReportModel]:
    """Run the analysis the way a template's parameters ask and adapt it for display.

    ``db_url`` ``None`` means ``ABKIT_DATABASE_URL``, else ``sqlite:///abkit.db``, else the
    demo's ``abkit-demo.db`` here or one folder up (see :func:`resolve_db_url`).
    """
    from abkit.analysis.analyze import analyze

    db = resolve_db_url(db_url)
    options: dict[str, Any] = {}
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
    result = analyze(db, experiment, metrics_path, **options)
    config = _experiment_config(db, experiment)
    return result, from_analysis(result, experiment=config, metrics=metrics_path)
