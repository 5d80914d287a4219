"""``analyze``: name an experiment and its metrics, get a trustworthy readout and a decision.

The orchestration, step by step (each step is a function below):

1. :func:`_options` checks the readout options; :func:`resolve_metrics` settles the
   metrics, the primary one and the guardrails.
2. :func:`_connect` opens the database (a URL, a ``Store`` or a
   :class:`~abkit.analysis.runner.QueryRunner`) and the relations to read (abkit's store,
   or a :class:`~abkit.analysis.sources.Source`); :func:`_configuration` finds the
   experiment's registered configuration.
3. :func:`_read` runs the SQL of :mod:`abkit.analysis.sql`: the database aggregates events
   per unit and then per arm and day, and Python receives a few rows of sufficient
   statistics, never the event table (one statement overall, one per segment dimension).
4. :func:`_quality`, :func:`_readouts` (lifts with intervals from
   :func:`abkit.stats.readout.compare`, corrected for multiplicity), :func:`_guardrails`,
   :func:`abkit.analysis.decision.decide`, :func:`_plan`, :func:`_impact`,
   :func:`_daily_rows` and :func:`_segment_results` turn them into the result.

Multiplicity (``correction``, Holm by default): the primary metric is corrected across
treatment arms; the secondary metrics form a second family (every metric × arm);
each segment dimension forms a family per metric (every value × arm). Guardrails are not
corrected: a missed harm costs more than a false alarm.

As-of readouts: ``until`` reads the data as it was before that moment (exposures and events
at or after it are ignored, like an experiment's end) and ``since`` keeps the units first
exposed at or after it; both are stated in the result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import String, literal, select

from abkit.analysis import sql
from abkit.analysis.decision import (
    CONFSEQ_HORIZON,
    DEFAULT_MDE,
    DEFAULT_POWER,
    Decision,
    GuardrailCheck,
    decide,
    guardrail_check,
    noninferiority_check,
    power_needed,
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
from abkit.analysis.result import (
    AnalysisResult,
    DailyRow,
    ExperimentFacts,
    MetricInfo,
    SamplePlan,
    SegmentResult,
)
from abkit.analysis.runner import (
    QueryRunner,
    SQLAlchemyRunner,
    registered_runner,
    session_runner,
)
from abkit.analysis.sources import Relations, Source, load_source, store_relations
from abkit.analysis.sql import Aggregates, Scope
from abkit.assignment.config import Experiment
from abkit.errors import ConfigError, NotEnoughDataError, StoreError
from abkit.metrics.definitions import Metric
from abkit.metrics.files import load_metrics
from abkit.metrics.library import bind_covariates, builtin_metric, builtin_metrics
from abkit.stats.estimators import ratio_linearised
from abkit.stats.lift import LiftResult
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.store.schema import Tables, build_tables
from abkit.store.store import Store, open_store
from abkit.timeutil import MICROS_PER_DAY, from_us, to_us
from abkit.vocabulary import METHODS, Correction, Method, RefreshMode


# ------------------------------------------------------------------------ options
@dataclass(frozen=True)
class Options:
    """The readout options, checked."""

    method: Method
    alpha: float
    correction: Correction
    cuped: bool
    segments: tuple[str, ...]
    since_us: int | None
    until_us: int | None
    business: BusinessAssumptions
    traffic_per_day: float | None


def _moment_us(value: datetime | str | None, field_name: str) -> int | None:
    """Epoch µs of a timezone-aware datetime or ISO-8601 text (a date means its UTC midnight)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{field_name} must be an ISO-8601 date or time, got {value!r}", field=field_name
            ) from None
        if moment.tzinfo is None:
            if len(text) > 10:  # a time without a zone is ambiguous
                raise ConfigError(
                    f"{field_name} {value!r} has no time zone; add one (e.g. +00:00 or Z)",
                    field=field_name,
                )
            moment = moment.replace(tzinfo=from_us(0).tzinfo)
        value = moment
    if not isinstance(value, datetime):
        raise ConfigError(f"{field_name} must be a datetime or ISO-8601 text", field=field_name)
    try:
        return to_us(value)
    except ValueError as exc:
        raise ConfigError(str(exc), field=field_name) from None


def _options(
    *,
    method: str,
    alpha: float,
    correction: str,
    cuped: bool,
    segments: Sequence[str] | str,
    since: datetime | str | None,
    until: datetime | str | None,
    business: BusinessAssumptions | Mapping[str, Any] | None,
    traffic_per_day: float | None,
) -> Options:
    from abkit.stats.multiple import normalise_method

    if method not in METHODS:
        raise ConfigError(
            f"method must be one of {', '.join(METHODS)}, got {method!r}", field="method"
        )
    if not 0 < alpha < 0.5:
        raise ConfigError(f"alpha must be in (0, 0.5), got {alpha!r}", field="alpha")
    try:
        normalised: Correction = normalise_method(correction)
    except ValueError as exc:
        raise ConfigError(str(exc), field="correction") from None
    since_us, until_us = _moment_us(since, "since"), _moment_us(until, "until")
    if since_us is not None and until_us is not None and since_us >= until_us:
        raise ConfigError("since must be before until", field="since")
    return Options(
        method=method,
        alpha=alpha,
        correction=normalised,
        cuped=cuped,
        segments=(segments,) if isinstance(segments, str) else tuple(segments),
        since_us=since_us,
        until_us=until_us,
        business=BusinessAssumptions.coerce(business),
        traffic_per_day=traffic_per_day,
    )


# ------------------------------------------------------------------------ metrics
DEFAULT_METRICS = ("conversion_rate", "revenue_per_user", "orders_per_user", "average_order_value")


def resolve_metrics(
    metrics: Sequence[Metric] | str | Path | None, guardrails: Sequence[Metric | str] | None
) -> tuple[list[Metric], Metric, list[Metric]]:
    """(all metrics in order, primary, guardrails)."""
    if metrics is None:
        chosen = builtin_metrics(*DEFAULT_METRICS)
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
    # "pre:<metric>" covariates name analysed or library metrics: resolve them once here
    everything = bind_covariates(everything)
    primary = next(m for m in everything if m.name == primary.name)
    return everything, primary, [m for m in everything if m.role == "guardrail"]


def _builtin_or_error(name: str) -> Metric:
    try:
        return builtin_metric(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]), field="guardrails") from None


# --------------------------------------------------------------------- connection
@dataclass(frozen=True)
class Connected:
    """An open database: how to run statements, what to read, where the registry is."""

    runner: QueryRunner
    relations: Relations
    dialect: str
    source: str
    registry: Tables | None  # the tables holding the experiment registry, if any
    store: Store | None  # the Store when one was given or opened


@contextlib.contextmanager
def _connect(db: Any, source: Source | str | Path | None) -> Iterator[Connected]:
    """Open ``db`` (URL, Store or QueryRunner) for reading; close what was opened here."""
    declared = load_source(source) if isinstance(source, (str, Path)) else source

    def relations(tables: Tables | None) -> tuple[Relations, str]:
        if declared is not None:
            return declared.relations(), declared.describe()
        assert tables is not None  # without a declared source the store's tables are read
        return store_relations(tables), "abkit store"

    if not isinstance(db, (str, Store, QueryRunner)):
        db = session_runner(db)  # e.g. a SparkSession: the caller keeps owning it
    if isinstance(db, QueryRunner):
        tables = build_tables()
        rel, what = relations(tables)
        yield Connected(db, rel, db.dialect.name, what, tables, None)
        return
    # a runner that serves only abkit's own tables (a replica of the store) is not opened
    # for the user's tables: they are read on the database itself
    opened = registered_runner(db, store_tables=declared is None) if isinstance(db, str) else None
    if opened is not None:
        try:
            tables = build_tables()
            rel, what = relations(tables)
            yield Connected(opened, rel, opened.dialect.name, what, tables, None)
        finally:
            close = getattr(opened, "close", None)
            if callable(close):
                close()
        return
    if declared is not None and isinstance(db, str):
        # the user's own tables: connect without opening (or creating) an abkit store
        from sqlalchemy import create_engine

        from abkit.store.store import normalise_url

        engine = create_engine(normalise_url(db))
        try:
            with engine.connect() as conn:
                rel, what = relations(None)
                # abkit's registry may live beside the user's tables: looked up, not required
                registry = build_tables()
                yield Connected(
                    SQLAlchemyRunner(conn), rel, engine.dialect.name, what, registry, None
                )
        finally:
            engine.dispose()
        return
    store = db if isinstance(db, Store) else open_store(db, create=False)
    with store.engine.connect() as conn:
        rel, what = relations(store.tables)
        runner = SQLAlchemyRunner(conn, where=str(store.url))
        yield Connected(runner, rel, store.dialect_name, what, store.tables, store)


def _configuration(conn: Connected, experiment: str | Experiment) -> tuple[Experiment | None, bool]:
    """(Experiment or None, registered?): the object given, or the registry's entry."""
    if not isinstance(experiment, str):
        if not hasattr(experiment, "variant_names"):
            raise ConfigError("experiment must be a key or an abkit Experiment")
        return experiment, True
    if conn.store is not None:
        try:
            return conn.store.get_experiment(experiment), True
        except StoreError:
            return None, False
    if conn.registry is None:
        return None, False
    table = conn.registry.experiments
    stmt = select(table.c.config).where(table.c.key == literal(experiment, String()))
    try:
        rows = conn.runner.run(stmt)
    except StoreError:  # no registry table on this engine: not registered
        return None, False
    if not rows:
        return None, False
    return Experiment.from_dict(json.loads(rows[0][0])), True


# --------------------------------------------------------------------------- read
@dataclass(frozen=True)
class _Refresh:
    """``analyze(refresh=...)``: the mode, the late-event bound, the configured end."""

    mode: RefreshMode
    lookback: timedelta | None
    end_us: int | None


def _from_cache(
    conn: Connected,
    scope: Scope,
    metrics: Sequence[Metric],
    options: Options,
    refresh: _Refresh,
    stack: contextlib.ExitStack,
) -> tuple[dict[str | None, Aggregates] | None, str, QueryRunner, Relations]:
    """The overall aggregates read from the refreshed unit cache (``None`` when it cannot
    serve this readout: the caller runs the full analysis), what the refresh did, and the
    runner and relations the rest of the readout (segments) reads: the rows the cache
    holds, through a connection opened after the refresh. ``stack`` keeps them open."""
    from abkit.analysis import incremental

    cache_scope = Scope(scope.experiment, refresh.end_us, scope.since_us)
    rel = conn.relations
    arrival = all("batch_id" in t.c for t in (rel.events, rel.exposures))
    arm_rows = None
    runner: QueryRunner = conn.runner
    how: dict[str, Any] = {
        "cuped": options.cuped,
        "mode": refresh.mode,
        "lookback": refresh.lookback,
        "cache_scope": cache_scope,
    }
    # the cache's lock and connection: kept (moved to ``stack``) while the readout reads
    # the cache, released at once when a full analysis follows instead
    held = contextlib.ExitStack()
    with held:
        if isinstance(conn.runner, incremental.CachingRunner) and conn.store is None and arrival:
            # the runner keeps its caches itself, beside the tables it reads; a merge needs
            # the rows' arrival order (their ingest batch)
            units, report = held.enter_context(conn.runner.unit_cache(rel, scope, metrics, **how))
        elif conn.store is None or rel.events is not conn.store.tables.events:
            note = (
                "full analysis: a unit cache lives in abkit's own store or beside the tables "
                "of a runner that keeps caches (Spark), and needs the rows' batch ids; "
                f"this analysis reads {conn.source} on {conn.dialect}"
            )
            return None, note, runner, rel
        else:
            store = conn.store
            cache, report = held.enter_context(
                incremental.cached_units(store, scope, metrics, **how)
            )
            units = None if cache is None else cache.source()
            if cache is not None:
                arm_rows = cache.arm_rows
                # a fresh connection: the reader's snapshot may predate the refresh; and the
                # rows of an ingest still running are in no part of this readout
                fresh = held.enter_context(store.engine.connect())
                runner = SQLAlchemyRunner(fresh, where=str(store.url))
                rel = incremental.rows_upto(rel, report.rows_upto)
        if units is None:
            return None, report.describe(), conn.runner, conn.relations
        stack.enter_context(held.pop_all())
    found = sql.fetch_aggregates(
        runner,
        rel,
        scope,
        metrics,
        cuped=options.cuped,
        unit_source=units,
        arm_rows=arm_rows,
    )
    return found, report.describe(), runner, rel


def _read(
    conn: Connected,
    scope: Scope,
    metrics: Sequence[Metric],
    options: Options,
    refresh: _Refresh | None = None,
) -> tuple[Aggregates, dict[str, dict[str | None, Aggregates]], str]:
    """The overall aggregates, per segment dimension the aggregates per value, and what
    the refresh did (``""`` without ``refresh``).

    With ``refresh``, the overall per-unit aggregates come from the unit cache, brought up to
    date first: the store's (:mod:`abkit.analysis.incremental`), or the runner's own
    (:class:`~abkit.analysis.incremental.CachingRunner`, e.g. Spark's Parquet caches) when it
    reads abkit's tables; segments are read in full, from the rows the cache holds.
    """
    note = ""
    found: dict[str | None, Aggregates] | None = None
    runner, relations = conn.runner, conn.relations
    with contextlib.ExitStack() as stack:
        if refresh is not None:
            found, note, runner, relations = _from_cache(
                conn, scope, metrics, options, refresh, stack
            )
        if found is None:
            found = sql.fetch_aggregates(runner, relations, scope, metrics, cuped=options.cuped)
        overall = found.get(None)
        if overall is None:
            raise NotEnoughDataError(
                f"experiment {scope.experiment!r} has no exposures in {conn.runner.where}"
            )
        if options.segments:
            _check_segments(conn, scope, options.segments)
        by_segment = {
            name: sql.fetch_aggregates(
                runner,
                relations,
                scope,
                metrics,
                cuped=options.cuped,
                caps=overall.caps,
                segment=name,
                daily=False,
            )
            for name in options.segments
        }
    return overall, by_segment, note


def _check_segments(conn: Connected, scope: Scope, segments: Sequence[str]) -> None:
    """An attribute no exposure of the experiment carries is a mistake (a misspelling)."""
    rel = conn.relations
    known = set(rel.attribute_columns)
    if rel.attributes is not None:
        stmt = sql.known_attributes_query(rel, scope)
        known |= {str(r[0]) for r in conn.runner.run(stmt)}
    for name in segments:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"unknown segment attribute {name!r}: the exposures of {scope.experiment!r} "
                f"carry {listed}",
                field="segments",
            )


# ------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Arms:
    """The experiment's arms as analysed."""

    variants: tuple[str, ...]
    weights: dict[str, float]
    traffic: float
    unknown: tuple[str, ...]

    @property
    def control(self) -> str:
        return self.variants[0]

    @property
    def treatments(self) -> list[str]:
        return list(self.variants[1:])


def _arms(exp: Experiment | None, overall: Aggregates) -> Arms:
    seen = sorted({*overall.units, *overall.contaminated})
    if exp is not None:
        variants = tuple(exp.variant_names)
        weights = dict(zip(variants, exp.effective_weights, strict=True))
        traffic = float(exp.traffic)
    else:  # not registered: equal split, control named "control" or else the first name
        control = "control" if "control" in seen else seen[0]
        variants = (control, *[v for v in seen if v != control])
        weights = dict.fromkeys(variants, 1.0 / len(variants))
        traffic = 1.0
    return Arms(variants, weights, traffic, tuple(v for v in seen if v not in variants))


def _quality(
    overall: Aggregates, arms: Arms, metrics: Sequence[Metric]
) -> tuple[QualityReport, dict[str, dict[str, Any]]]:
    """Data-quality checks and the per-arm statistics of every metric."""
    units = {v: overall.units.get(v, 0) for v in arms.variants}
    seen = sorted({*overall.units, *overall.contaminated})
    multi_by = {v: overall.contaminated.get(v, 0) for v in seen}
    total_units = sum(overall.units.values()) + sum(multi_by.values())
    multiple = MultipleExposure(
        units=total_units,
        multiple=sum(multi_by.values()),
        share=sum(multi_by.values()) / total_units if total_units else 0.0,
        by_variant=multi_by,
    )
    arm_stats: dict[str, dict[str, Any]] = {}
    excluded = []
    for m in metrics:
        per_arm = overall.metrics.get(m.name, {})
        arm_stats[m.name] = {v: per_arm[v].stats for v in arms.variants if v in per_arm}
        excluded.append(
            ExcludedEvents(
                metric=m.name,
                before_exposure=sum(a.events_before_exposure for a in per_arm.values()),
                after_window=sum(a.events_after_window for a in per_arm.values()),
            )
        )
    balance = balance_checks(
        {
            m.name: {v: s for v, s in arm_stats[m.name].items() if isinstance(s, MeanStats)}
            for m in metrics
        },
        arms.control,
    )
    quality = build_quality(
        srm=srm_check(units, arms.weights),
        multiple=multiple,
        balance=balance,
        excluded=excluded,
        unknown_variants=arms.unknown,
    )
    return quality, arm_stats


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


def _varying_covariate(stats: Any) -> bool:
    """A covariate that never varies carries no information (no pre-period data); with
    declared covariates (:class:`~abkit.stats.regression.CovariateMeanStats`) one that
    varies is enough (the others get a zero coefficient)."""
    regression = getattr(stats, "regression", None)
    if regression is not None:
        if stats.n < 2:
            return False
        return bool((regression.moments()[2].diagonal() > 0).any())
    if isinstance(stats, RatioStats):
        if not stats.has_covariate or stats.n < 2 or not stats.pre_den_sum:
            return False
        return ratio_linearised(stats)[3] > 0
    if not isinstance(stats, MeanStats) or not stats.has_covariate or stats.n < 2:
        return False
    return stats.cov_var > 0


def _use_cuped(cuped: bool, control: Any, treatment: Any) -> bool:
    return bool(cuped and _varying_covariate(control) and _varying_covariate(treatment))


def _small_counts(metric: Metric, control: object, treatment: object) -> bool:
    """A fixed-horizon proportion with too few (or all) conversions for the normal
    approximation (:func:`abkit.stats.exact.needs_exact`: 0 or all conversions in an arm, or
    an expected cell count below its minimum)."""
    from abkit.stats.exact import needs_exact

    if metric.type != "proportion":
        return False
    if not isinstance(control, MeanStats) or not isinstance(treatment, MeanStats):
        return False
    return control.n > 0 and treatment.n > 0 and needs_exact(control, treatment)


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
    **method_options: Any,
) -> Any:
    from abkit.stats.readout import compare

    if metric.type == "quantile":
        return _quantile_readout(metric, control, treatment, variant=variant, alpha=alpha)
    use_cuped = _use_cuped(cuped, control, treatment)
    if method == "fixed" and _small_counts(metric, control, treatment):
        # few conversions: the Wald test is anti-conservative; the exact test decides
        method, use_cuped = "exact", False
    if not use_cuped:
        control, treatment = _strip_covariate(control), _strip_covariate(treatment)
    regression = [getattr(arm, "regression", None) for arm in (control, treatment)]
    if use_cuped and regression[0] is not None and regression[1] is not None:
        # several covariates: regression adjustment on their cross-products
        from abkit.stats.regression import compare_adjusted

        return compare_adjusted(
            regression[0],
            regression[1],
            metric_type="proportion" if metric.type == "proportion" else "mean",
            alpha=alpha,
            method=method,
            metric=metric.name,
            variant=variant,
            cap=cap,
            labels=("pre-period", *[c.label for c in metric.covariates]),
            **method_options,
        )
    return compare(
        control,
        treatment,
        metric_type=metric.type,
        alpha=alpha,
        cuped=use_cuped,
        method=method,
        metric=metric.name,
        variant=variant,
        cap=cap,
        **method_options,
    )


def _quantile_readout(
    metric: Metric, control: object, treatment: object, *, variant: str, alpha: float
) -> LiftResult:
    """A quantile metric's readout (:func:`abkit.stats.quantile.compare_quantiles`, a
    clustered z-test) in the shape of every other readout. Fixed-horizon only: the
    sequential and Bayesian engines have no quantile form yet, so every method reads it so."""
    from abkit.errors import AbkitError
    from abkit.stats.lift import not_enough_data
    from abkit.stats.quantile import QuantileStats, compare_quantiles

    common = dict(method="fixed", alpha=alpha, alternative="two-sided", cuped=False)
    c_n = control.n if isinstance(control, QuantileStats) else 0
    t_n = treatment.n if isinstance(treatment, QuantileStats) else 0
    if not isinstance(control, QuantileStats) or not isinstance(treatment, QuantileStats):
        return not_enough_data(
            "quantile",
            "no values in an arm (no event with a value, or no unit in this segment value)",
            n_control=c_n,
            n_treatment=t_n,
            metric=metric.name,
            variant=variant,
            cap=None,
            **common,  # type: ignore[arg-type]
        )
    try:
        q = compare_quantiles(control, treatment, alpha=alpha)
    except (AbkitError, ValueError) as exc:
        return not_enough_data(
            "quantile",
            str(exc),
            n_control=c_n,
            n_treatment=t_n,
            metric=metric.name,
            variant=variant,
            cap=None,
            **common,  # type: ignore[arg-type]
        )
    return LiftResult(
        metric_type="quantile",
        control_mean=q.control_quantile,
        treatment_mean=q.treatment_quantile,
        abs_lift=q.abs_diff,
        abs_ci=q.abs_ci,
        rel_lift=q.rel_lift,
        rel_ci=q.rel_ci,
        rel_ci_bounded=q.rel_ci is not None,
        p_value=q.p_value,
        significant=q.significant,
        method="fixed",
        test=q.test,
        n_control=q.n_control,
        n_treatment=q.n_treatment,
        variance_reduction=None,
        status="ok",
        note=_quantile_note(metric),
        alpha=alpha,
        se_abs=q.se_abs,
        metric=metric.name,
        variant=variant,
    )


def _quantile_note(metric: Metric) -> str:
    """``"p95 of the event values"`` / ``"p90 of the per-unit values"``."""
    from abkit.metrics.kinds.quantile import quantile_of

    percent = f"p{(metric.probability or 0.0) * 100:g}"
    if quantile_of(metric) == "unit":
        return f"{percent} of the per-unit values (one per unit)"
    return f"{percent} of the event values (clustered by unit)"


def _method_options(
    primary: Metric, arm_stats: Mapping[str, Mapping[str, Any]], arms: Arms, options: Options
) -> dict[str, float]:
    """What a method needs beyond the statistics: a confidence sequence (``confseq``) is
    tightest at the planned total sample (the primary metric's plan for its mde) and valid
    up to :data:`CONFSEQ_HORIZON` times it."""
    if options.method != "confseq":
        return {}
    control = arm_stats[primary.name].get(arms.control)
    if not isinstance(control, (MeanStats, RatioStats)):
        raise ConfigError(
            f"method 'confseq' needs a plan for the primary metric {primary.name!r}",
            field="method",
        )
    _, _, plan, target = power_needed(
        primary,
        control,
        current_units=0,
        weights=[arms.weights[v] for v in arms.variants],
        alpha=options.alpha,
        traffic_per_day=None,
    )
    n_total = getattr(plan, "n_total", None)
    if not n_total:
        raise ConfigError(f"method 'confseq' needs a sample plan: {target}", field="method")
    return {"n_planned": float(n_total), "horizon": CONFSEQ_HORIZON}


def _readouts(
    metrics: Sequence[Metric],
    primary: Metric,
    arm_stats: Mapping[str, Mapping[str, Any]],
    caps: Mapping[str, float],
    arms: Arms,
    options: Options,
) -> dict[str, list[Any]]:
    """Lifts per metric and treatment arm, corrected per family (module docstring)."""
    from abkit.stats.family import correct_family

    options_for_method = _method_options(primary, arm_stats, arms, options)
    readouts: dict[str, list[Any]] = {}
    for m in metrics:
        stats = arm_stats[m.name]
        readouts[m.name] = [
            _compare(
                m,
                stats.get(arms.control),
                stats.get(v),
                variant=v,
                alpha=options.alpha,
                cuped=options.cuped,
                method=options.method,
                cap=_cap_text(m, caps),
                **options_for_method,
            )
            for v in arms.treatments
        ]
    readouts[primary.name] = correct_family(readouts[primary.name], options.correction)
    secondary = [m.name for m in metrics if m.role == "secondary"]
    family = [r for name in secondary for r in readouts[name]]
    corrected = iter(correct_family(family, options.correction))
    for name in secondary:
        readouts[name] = [next(corrected) for _ in readouts[name]]
    return readouts


def _guardrails(
    guard_metrics: Sequence[Metric],
    arm_stats: Mapping[str, Mapping[str, Any]],
    readouts: Mapping[str, Sequence[Any]],
    control: str,
    options: Options,
) -> tuple[GuardrailCheck, ...]:
    """Non-inferiority test when the metric has a margin, else the harm-interval check."""
    from abkit.stats.guardrails import guardrail

    checks = []
    for metric in guard_metrics:
        for result in readouts[metric.name]:
            if metric.margin is None or metric.type == "quantile":
                # a quantile's margin is read on its relative interval (the same rule)
                checks.append(
                    guardrail_check(
                        result,
                        metric.with_(mde=metric.margin or metric.mde),
                        result.variant,
                        options.alpha,
                    )
                    if metric.margin is not None
                    else guardrail_check(result, metric, result.variant, options.alpha)
                )
                continue
            c, t = arm_stats[metric.name].get(control), arm_stats[metric.name].get(result.variant)
            use_cuped = _use_cuped(options.cuped, c, t)
            if not use_cuped:
                c, t = _strip_covariate(c), _strip_covariate(t)
            outcome = guardrail(
                c,
                t,
                metric_type=metric.type,
                margin=metric.margin,
                margin_type="relative",
                higher_is_better=metric.higher_is_better,
                alpha=options.alpha,
                cuped=use_cuped,
                metric=metric.name,
            )
            checks.append(noninferiority_check(outcome, metric, result.variant))
    return tuple(checks)


def _plan(
    primary: Metric,
    decision: Decision,
    control_stats: Any,
    units: int,
    arms: Arms,
    options: Options,
    per_day: float | None,
) -> SamplePlan:
    """The sample plan for the primary metric, whatever the verdict; with CUPED or
    regression adjustment in the primary readout, also the plan without it."""
    from abkit.analysis.decision import variance_reduction_r_squared

    mde = primary.mde or DEFAULT_MDE
    plan = decision.power_plan
    needed, days = decision.sample_needed, decision.days_needed
    valid = {"sequential": " by the always-valid test", "confseq": " by the confidence sequence"}
    target = f"{mde:.1%} relative change with {DEFAULT_POWER:.0%} power"
    target += valid.get(options.method, "")
    # the readout adjusts when CUPED is on and the covariates vary (_compare's rule)
    adjusted = options.cuped and _varying_covariate(control_stats)
    r2 = variance_reduction_r_squared(control_stats) if adjusted else None
    planned = isinstance(control_stats, (MeanStats, RatioStats))

    def needs(cuped: bool) -> tuple[int | None, float | None, Any, str]:
        return power_needed(
            primary,
            control_stats,
            current_units=units,
            weights=[arms.weights[v] for v in arms.variants],
            alpha=options.alpha,
            traffic_per_day=per_day,
            cuped=cuped,
            method=options.method,
        )

    if plan is None and planned:
        needed, days, plan, target = needs(adjusted)
    raw_needed = raw_days = raw_total = None
    n_total = getattr(plan, "n_total", None)
    if r2 is not None and planned:
        raw_needed, raw_days, raw_plan, _ = needs(False)
        raw_total = getattr(raw_plan, "n_total", None)
        if raw_total == n_total:  # the decision planned without the adjustment
            r2 = raw_needed = raw_days = raw_total = None
    return SamplePlan(
        metric=primary.name,
        n_total=int(n_total) if n_total else None,
        mde=mde,
        power=DEFAULT_POWER,
        alpha=options.alpha,
        target=target,
        units_collected=units,
        sample_needed=needed,
        days_needed=days,
        information_fraction=(
            decision.information_fraction
            if decision.information_fraction is not None
            else (min(units / int(n_total), 1.0) if n_total else None)
        ),
        r_squared=r2,
        n_total_without_cuped=int(raw_total) if raw_total else None,
        sample_needed_without_cuped=raw_needed,
        days_needed_without_cuped=raw_days,
        information_fraction_without_cuped=(
            min(units / int(raw_total), 1.0) if raw_total else None
        ),
    )


def _impact(
    metrics: Sequence[Metric],
    primary: Metric,
    readouts: Mapping[str, Sequence[Any]],
    arm_stats: Mapping[str, Mapping[str, Any]],
    decision: Decision,
    arms: Arms,
    options: Options,
    per_day: float | None,
) -> Impact | None:
    assumptions = options.business
    impact_metric = next((m for m in metrics if m.name == assumptions.metric), None)
    if assumptions.metric is not None and impact_metric is None:
        raise ConfigError(
            f"business.metric {assumptions.metric!r} is not among the analysed metrics",
            field="business.metric",
        )
    if impact_metric is None:
        impact_metric = next((m for m in metrics if m.name == "revenue_per_user"), primary)
    if not arms.treatments:
        return None
    best = decision.winner or _best_arm(readouts[primary.name], primary) or arms.treatments[0]
    result = next(r for r in readouts[impact_metric.name] if r.variant == best)
    return project_impact(
        metric=impact_metric,
        variant=best,
        result=result,
        control_stats=arm_stats[impact_metric.name].get(arms.control),
        assumptions=assumptions,
        observed_units_per_day=per_day,
        experiment_traffic=arms.traffic,
    )


def _best_arm(results: Sequence[Any], metric: Metric) -> str | None:
    ok = [r for r in results if r.rel_lift is not None]
    if not ok:
        return None
    sign = 1.0 if metric.higher_is_better else -1.0
    return str(max(ok, key=lambda r: sign * r.rel_lift).variant)


def _segment_results(
    by_segment: Mapping[str, Mapping[str | None, Aggregates]],
    metrics: Sequence[Metric],
    caps: Mapping[str, float],
    arms: Arms,
    options: Options,
) -> tuple[SegmentResult, ...]:
    """Fixed-horizon readouts per segment value, corrected per dimension and metric."""
    from abkit.stats.family import correct_family

    out: list[SegmentResult] = []
    for name, parts in by_segment.items():
        for m in metrics:
            family: list[tuple[str, Any]] = []
            for value, agg in sorted(parts.items(), key=lambda kv: str(kv[0])):
                stats = {v: s.stats for v, s in agg.metrics.get(m.name, {}).items()}
                for v in arms.treatments:
                    family.append(
                        (
                            str(value),
                            _compare(
                                m,
                                stats.get(arms.control),
                                stats.get(v),
                                variant=v,
                                alpha=options.alpha,
                                cuped=options.cuped,
                                method="fixed",
                                cap=_cap_text(m, caps),
                            ),
                        )
                    )
            adjusted = correct_family([r for _, r in family], options.correction)
            out += [
                SegmentResult(segment=name, value=val, result=r)
                for (val, _), r in zip(family, adjusted, strict=True)
            ]
    return tuple(out)


def _day_iso(day: int) -> str:
    return from_us(day * MICROS_PER_DAY).date().isoformat()


def _daily_rows(
    overall: Aggregates, metrics: Sequence[Metric], control: str, alpha: float
) -> tuple[DailyRow, ...]:
    """Cumulative mean per arm and day; treatment rows carry the cumulative relative lift.

    A quantile metric's points are computed per cumulative day in the database
    (:func:`abkit.analysis.sql.quantile_daily`, at most
    :data:`~abkit.analysis.sql.QUANTILE_DAILY_MAX_POINTS` days): its rows appear on those
    days only, with the quantile as the value and the clustered quantile comparison."""
    from abkit.stats.estimators import arm_mean
    from abkit.stats.readout import compare

    types = {m.name: m.type for m in metrics}
    latest: dict[tuple[str, str], Any] = {}
    by_day: dict[int, list[Any]] = {}
    for point in overall.daily:
        by_day.setdefault(point.day, []).append(point)
    rows: list[DailyRow] = []
    for day in sorted(by_day):
        fresh = {(point.metric, point.variant) for point in by_day[day]}
        for point in by_day[day]:
            latest[(point.metric, point.variant)] = point.stats
        for (metric, variant), stats in sorted(latest.items()):
            kind = types[metric]
            base = latest.get((metric, control))
            if kind == "quantile":
                if (metric, variant) not in fresh:  # no point computed for this day
                    continue
                value, rel, lo, hi = _daily_quantile(base, stats, variant != control, alpha)
            else:
                try:
                    value = arm_mean(stats, kind)
                except (NotEnoughDataError, ValueError, ZeroDivisionError):
                    value = None
                rel = lo = hi = None
                if variant != control and base is not None:
                    r = compare(
                        _strip_covariate(base),
                        _strip_covariate(stats),
                        metric_type=kind,
                        alpha=alpha,
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


def _daily_quantile(
    base: Any, stats: Any, treated: bool, alpha: float
) -> tuple[float | None, float | None, float | None, float | None]:
    """One quantile point: (quantile, relative lift, its interval) against ``base``."""
    from abkit.errors import AbkitError
    from abkit.stats.quantile import QuantileStats, compare_quantiles

    value = float(stats.estimate) if math.isfinite(stats.estimate) else None
    if not treated or not isinstance(base, QuantileStats):
        return value, None, None, None
    try:
        q = compare_quantiles(base, stats, alpha=alpha)
    except (AbkitError, ValueError):  # too few units or no interval yet on that day
        return value, None, None, None
    lo, hi = q.rel_ci if q.rel_ci is not None else (None, None)
    return value, q.rel_lift, lo, hi


def _facts(
    key: str,
    exp: Experiment | None,
    registered: bool,
    conn: Connected,
    arms: Arms,
    overall: Aggregates,
    options: Options,
    per_day: float | None,
    spec_version: str | None,
    span_days: float,
) -> ExperimentFacts:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return ExperimentFacts(
        key=key,
        control=arms.control,
        variants=arms.variants,
        weights=arms.weights,
        traffic=arms.traffic,
        registered=registered,
        dialect=conn.dialect,
        units={v: overall.units.get(v, 0) for v in arms.variants},
        first_exposure=None if overall.first_us is None else from_us(overall.first_us).isoformat(),
        last_exposure=None if overall.last_us is None else from_us(overall.last_us).isoformat(),
        days=round(span_days, 3),
        units_per_day=per_day,
        description=getattr(exp, "description", "") if exp is not None else "",
        hypothesis=getattr(exp, "hypothesis", "") if exp is not None else "",
        owner=getattr(exp, "owner", "") if exp is not None else "",
        status=str(getattr(exp, "status", "") or "") if exp is not None else "",
        start=iso(getattr(exp, "start", None)),
        end=iso(getattr(exp, "end", None)),
        tags=tuple(getattr(exp, "tags", ()) or ()),
        payloads=({v.name: v.payload for v in exp.variants} if exp is not None else {}),
        namespace=getattr(exp, "namespace", None),
        spec_version=spec_version,
        since=None if options.since_us is None else from_us(options.since_us).isoformat(),
        until=None if options.until_us is None else from_us(options.until_us).isoformat(),
        source=conn.source,
    )


# ------------------------------------------------------------------------- analyze
def analyze(
    db: Any,
    experiment: str | Experiment,
    metrics: Sequence[Metric] | str | Path | None = None,
    *,
    guardrails: Sequence[Metric | str] | None = None,
    method: str = "fixed",
    alpha: float = 0.05,
    segments: Sequence[str] | str = (),
    correction: str = "holm",
    cuped: bool = True,
    traffic_per_day: float | None = None,
    business: BusinessAssumptions | Mapping[str, Any] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    source: Source | str | Path | None = None,
    spec_version: str | None = None,
    refresh: RefreshMode | None = None,
    refresh_lookback: timedelta | None = timedelta(hours=48),
) -> AnalysisResult:
    """Analyse ``experiment`` (a key or an ``Experiment``) in ``db``.

    ``db``: a SQLAlchemy URL, a :class:`~abkit.store.store.Store`, a
    :class:`~abkit.analysis.runner.QueryRunner`, or a URL of a registered runner
    (``spark://...``). ``source``: a :class:`~abkit.analysis.sources.Source` (or its TOML
    file) naming the user's own tables; default abkit's store. ``metrics``: ``Metric``
    objects, a TOML file, or ``None`` for conversion rate (primary), revenue per user,
    orders per user and average order value. The primary metric is the one with
    ``role="primary"`` (else the first non-guardrail one). ``guardrails``: metrics or names
    (library or listed metrics) that must not get significantly worse. ``method``:
    ``fixed``, ``sequential`` or ``bayesian``. ``segments``: exposure attribute names (e.g.
    ``"platform"``) to break the primary metric and the guardrails down by (fixed-horizon
    readouts, corrected per dimension); an attribute no exposure carries is an error.
    ``since``/``until``: an as-of readout window (module docstring). ``traffic_per_day``:
    exposed units per day (default: observed) for the sample still needed and the impact
    projection; ``business``: :class:`BusinessAssumptions`. ``spec_version``: the
    experiment spec version the inputs came from, stated in the result.

    ``refresh``: keep the experiment's per-unit aggregates in abkit's store and bring them up
    to date with the rows ingested since the last refresh (:mod:`abkit.analysis.incremental`;
    same numbers as a full analysis): ``"auto"`` merges when it can and rebuilds otherwise,
    ``"incremental"`` raises when a rebuild is needed, ``"full"`` rebuilds; ``None`` (the
    default) reads every row and writes nothing. ``refresh_lookback``: events arriving later
    than this behind the latest merged time trigger a rebuild (``None``: never). The result's
    ``experiment.refresh`` says what was done and why.
    """
    if refresh is not None:
        from abkit.analysis.incremental import check_mode

        refresh = check_mode(refresh)
    options = _options(
        method=method,
        alpha=alpha,
        correction=correction,
        cuped=cuped,
        segments=segments,
        since=since,
        until=until,
        business=business,
        traffic_per_day=traffic_per_day,
    )
    all_metrics, primary, guard_metrics = resolve_metrics(metrics, guardrails)
    opened: Store | None = None
    if refresh is not None and source is None and isinstance(db, str):
        # the cache is kept in the store itself, read through SQLAlchemy (not a replica)
        scheme = db.partition("://")[0].partition("+")[0].lower()
        if scheme in ("sqlite", "postgresql", "postgres", "duckdb"):
            db = opened = open_store(db, create=False)
    with contextlib.ExitStack() as cleanup, _connect(db, source) as conn:
        if opened is not None:
            cleanup.callback(opened.close)
        exp, registered = _configuration(conn, experiment)
        key = experiment if isinstance(experiment, str) else experiment.key
        ends = [to_us(exp.end)] if exp is not None and exp.end is not None else []
        ends += [options.until_us] if options.until_us is not None else []
        scope = Scope(key, end_us=min(ends) if ends else None, since_us=options.since_us)
        refreshing = (
            None
            if refresh is None
            else _Refresh(
                refresh,
                refresh_lookback,
                to_us(exp.end) if exp is not None and exp.end is not None else None,
            )
        )
        overall, by_segment, refreshed = _read(conn, scope, all_metrics, options, refreshing)

    arms = _arms(exp, overall)
    quality, arm_stats = _quality(overall, arms, all_metrics)
    units = sum(overall.units.get(v, 0) for v in arms.variants)
    first, last = overall.first_us or 0, overall.last_us or 0
    span_days = max((last - first) / MICROS_PER_DAY, 1.0)
    observed_per_day = units / span_days if units else None
    per_day = options.traffic_per_day if options.traffic_per_day is not None else observed_per_day

    readouts = _readouts(all_metrics, primary, arm_stats, overall.caps, arms, options)
    checks = _guardrails(guard_metrics, arm_stats, readouts, arms.control, options)
    decision = decide(
        primary=primary,
        primary_results={r.variant: r for r in readouts[primary.name]},
        guardrails=checks,
        srm_detected=quality.srm_detected,
        srm_note=quality.warnings[0] if quality.srm_detected else "",
        control_stats=arm_stats[primary.name].get(arms.control),
        current_units=units,
        weights=[arms.weights[v] for v in arms.variants],
        alpha=options.alpha,
        traffic_per_day=per_day,
        method=options.method,
    )
    plan = _plan(
        primary, decision, arm_stats[primary.name].get(arms.control), units, arms, options, per_day
    )
    facts = _facts(
        key, exp, registered, conn, arms, overall, options, per_day, spec_version, span_days
    )
    if refreshed:
        facts = dataclasses.replace(facts, refresh=refreshed)
    return AnalysisResult(
        experiment=facts,
        quality=quality,
        metrics=tuple(r for m in all_metrics for r in readouts[m.name]),
        guardrails=checks,
        segments=_segment_results(
            by_segment, [primary, *guard_metrics], overall.caps, arms, options
        ),
        decision=decision,
        impact=_impact(all_metrics, primary, readouts, arm_stats, decision, arms, options, per_day),
        daily=_daily_rows(overall, all_metrics, arms.control, options.alpha),
        primary=primary.name,
        roles={m.name: m.role for m in all_metrics},
        arm_stats=arm_stats,
        method=options.method,
        alpha=options.alpha,
        correction=options.correction,
        cuped=options.cuped,
        metric_defs=tuple(MetricInfo.of(m, cap=overall.caps.get(m.name)) for m in all_metrics),
        plan=plan,
    )


__all__ = [
    "AnalysisResult",
    "DailyRow",
    "ExperimentFacts",
    "MetricInfo",
    "SamplePlan",
    "SegmentResult",
    "analyze",
    "resolve_metrics",
]
