"""The analysis query: per-unit aggregates, then per-arm sufficient statistics, in the database.

One SQLAlchemy Core construction serves every dialect (SQLite, PostgreSQL, DuckDB and the
warehouses reachable through SQLAlchemy). Every value that comes from a user (experiment
key, event types, windows, caps) is a **bound parameter**, so a name such as
``x'; DROP TABLE abkit_events; --`` is compared as text, never executed.

The query, stage by stage (all timestamps are BIGINT epoch microseconds):

1. ``abkit_first`` - per unit of the experiment: first exposure time, smallest and largest
   variant seen. Exposures at or after the experiment's end are
   ignored.
2. ``abkit_units`` - every unit with its first exposure; units whose smallest and largest
   variant differ (seen in two or more variants) are **excluded** (they are contaminated:
   no arm's effect can be attributed to them): they are aggregated like the others, kept
   apart by a ``single`` flag in the final GROUP BY and dropped in Python, and counted by
   the quality checks. ``day = first_us // 86_400_000_000`` is the UTC day of first exposure.
3. ``abkit_unit_values`` - a LEFT JOIN of units to their events of the metrics' event types;
   for each metric measure, conditional aggregates over the events in the unit's window
   ``first <= ts < first + window`` (and ``ts < end``), over the pre-period
   ``first - lookback <= ts < first`` (CUPED covariate; for a ratio metric both its
   numerator and its denominator), and counts of the events outside
   the window (before first exposure; after the window or the end). Units without events
   get zeros. An aggregate shared by several metrics (the purchases in a 7-day window feed
   conversion, orders and AOV) is computed once.
4. ``abkit_unit_metrics`` - the per-unit metric value ``y`` (0/1 for proportions, capped
   sums and counts for means, numerator and denominator ``d`` for ratios) and covariate
   ``x`` (ratios: pre-period numerator ``x`` and denominator ``e``), cast to double
   precision so every engine does the same float arithmetic.
5. The final ``GROUP BY variant, day, single [, segment]``: ``n, Σy, Σy², Σx, Σx², Σxy, Σd, Σd²,
   Σyd`` (ratios add ``Σe, Σe², Σxe, Σxd, Σey, Σed`` for delta-method CUPED) and the
   outside-window counts. Python receives only these rows (a few per day and
   arm) and adds the days up into totals and a cumulative daily series.

Percentile caps are computed by a first pass over stage 3: the nearest-rank percentile
(the smallest value whose rank ``r`` satisfies ``100·r >= p·N``) of the non-zero per-unit
values pooled across arms, with ``ROW_NUMBER() OVER (ORDER BY v)``; nearest-rank rather than
interpolation so every engine returns the same stored value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Double,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from abkit.metrics.definitions import MICROS_PER_HOUR, Measure, Metric
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.store.schema import MICROS_PER_DAY, Tables

MISSING_SEGMENT = "(missing)"


def _p(value: Any, type_: Any) -> ColumnElement[Any]:
    """A bound parameter with an explicit type (PostgreSQL needs it for arithmetic)."""
    return literal(value, type_)


def _dbl(expr: Any) -> ColumnElement[Any]:
    return cast(expr, Double())


def _one() -> ColumnElement[Any]:
    # typed literals: an untyped 1.0 is NUMERIC on PostgreSQL, whose SUM is exact but slow
    return _p(1.0, Double())


def _zero() -> ColumnElement[Any]:
    return _p(0.0, Double())


def _col(i: int, what: str) -> str:
    """Name of a per-metric column of stages 4-5 (``m{i}_{what}``)."""
    return f"m{i}_{what}"


def _has_covariate(metric: Metric, ratio_cuped: bool) -> bool:
    """Whether the query computes the metric's pre-period (CUPED) columns.

    Mean and proportion metrics always get the covariate ``x``; ratio metrics get the
    pre-period numerator ``x`` and denominator ``e`` (delta-method CUPED,
    :mod:`abkit.stats.estimators`) only when ``ratio_cuped`` asks for them: they cost six
    more sums per ratio metric, and an analysis without CUPED has no use for them.
    """
    return metric.supports_cuped or (ratio_cuped and metric.kind == "ratio")


def _in_types(events: Any, measure: Measure) -> ColumnElement[bool]:
    return events.c.event_type.in_([_p(t, String()) for t in measure.event_types])


def _measure_aggregate(
    events: Any, measure: Measure, in_period: ColumnElement[bool], first_us: Any
) -> ColumnElement[Any]:
    """Per-unit aggregate of one measure over the events where ``in_period`` holds."""
    cond = and_(_in_types(events, measure), in_period)
    if measure.aggregate == "sum":
        return func.sum(case((cond, _dbl(func.coalesce(events.c.value, _zero()))), else_=_zero()))
    if measure.aggregate in ("count", "converted"):
        return func.sum(case((cond, 1), else_=0))
    # hours_to_first: the earliest qualifying event; NULL when the unit has none
    return func.min(case((cond, events.c.ts_us - first_us), else_=None))


def _measure_value(measure: Measure, raw: Any, *, min_count: int | None = None) -> Any:
    """Stage 4: per-unit value of a measure from its stage-3 aggregate, as a double."""
    if min_count is not None:  # proportion
        return case((raw >= _p(min_count, Integer()), _one()), else_=_zero())
    if measure.aggregate == "converted":
        return case((raw > 0, _one()), else_=_zero())
    if measure.aggregate == "hours_to_first":
        return _dbl(func.coalesce(raw, 0)) / _p(float(MICROS_PER_HOUR), Double())
    return _dbl(raw)


def _capped(value: Any, cap: float | None) -> Any:
    if cap is None:
        return value
    bound = _p(float(cap), Double())
    return case((value > bound, bound), else_=value)


def _base_ctes(
    tables: Tables,
    experiment: str,
    metrics: Sequence[Metric],
    *,
    end_us: int | None,
    segment: str | None,
    ratio_cuped: bool = False,
) -> Any:
    """Stages 1-3: the ``abkit_unit_values`` CTE and, per ``(metric index, tag)``
    (``num``, ``den``, ``pre_num``, ``pre_den``, ``before``, ``after``), its column name."""
    exposures, events = tables.exposures, tables.events
    exp_filter = [exposures.c.experiment == _p(experiment, String())]
    if end_us is not None:
        exp_filter.append(exposures.c.ts_us < _p(end_us, BigInteger()))
    first = (
        select(
            exposures.c.unit_id,
            func.min(exposures.c.ts_us).label("first_us"),
            func.min(exposures.c.variant).label("variant"),
            func.max(exposures.c.variant).label("variant_max"),
        )
        .where(*exp_filter)
        .group_by(exposures.c.unit_id)
        .cte("abkit_first")
    )
    unit_cols = [
        first.c.unit_id,
        first.c.first_us,
        first.c.variant,
        (first.c.first_us // _p(MICROS_PER_DAY, BigInteger())).label("day"),
    ]
    # Contaminated units (variant != variant_max) are not filtered out with a WHERE: a
    # predicate comparing two aggregates gets a tiny default selectivity from
    # PostgreSQL's planner (which pushes it down into this GROUP BY wherever it is
    # written), and the planner then probes the events index once per unit instead of
    # hash-joining. They are carried as a ``single`` flag into the final GROUP BY and
    # dropped in Python.
    units_q = select(*unit_cols, first.c.variant_max)
    if segment is not None:
        seg = _segment_cte(tables, experiment, first, segment, end_us)
        units_q = units_q.add_columns(
            func.coalesce(seg.c.segment, _p(MISSING_SEGMENT, String())).label("segment")
        ).outerjoin(seg, seg.c.unit_id == first.c.unit_id)
    units = units_q.cte("abkit_units")

    all_types: list[str] = []
    for metric in metrics:
        all_types += [t for t in metric.event_types if t not in all_types]
    join_on = [
        events.c.unit_id == units.c.unit_id,
        events.c.event_type.in_([_p(t, String()) for t in all_types]),
    ]
    first_us = units.c.first_us
    end = _p(end_us, BigInteger()) if end_us is not None else None
    columns: list[Any] = [units.c.unit_id, units.c.variant, units.c.variant_max, units.c.day]
    if segment is not None:
        columns.append(units.c.segment)
    # Metrics often share aggregates (conversion, orders, revenue and AOV all read the
    # purchases in the same window): each distinct aggregate is computed once per joined
    # row, which is where the engine spends its time, and metrics point at it by name.
    names: dict[tuple[Any, ...], str] = {}
    plan: dict[tuple[int, str], str] = {}

    def add(index: int, tag: str, key: tuple[Any, ...], build: Any) -> None:
        if key not in names:
            names[key] = f"a{len(names)}"
            columns.append(build().label(names[key]))
        plan[(index, tag)] = names[key]

    for i, metric in enumerate(metrics):
        after_first = events.c.ts_us >= first_us
        window = [after_first]
        if metric.window_us is not None:
            window.append(events.c.ts_us < first_us + _p(metric.window_us, BigInteger()))
        if end is not None:
            window.append(events.c.ts_us < end)
        in_window = and_(*window)
        pre = and_(
            events.c.ts_us < first_us,
            events.c.ts_us >= first_us - _p(metric.pre_period_us, BigInteger()),
        )
        measures = [("num", metric.numerator)]
        if metric.denominator is not None:
            measures.append(("den", metric.denominator))
        for tag, measure in measures:
            # "count" and "converted" share one SQL aggregate (the count)
            agg = "count" if measure.aggregate == "converted" else measure.aggregate
            types = tuple(sorted(measure.event_types))
            add(
                i,
                tag,
                ("window", types, agg, metric.window_us),
                lambda m=measure, w=in_window: _measure_aggregate(events, m, w, first_us),
            )
            if _has_covariate(metric, ratio_cuped):
                add(
                    i,
                    f"pre_{tag}",
                    ("pre", types, agg, metric.pre_period_us),
                    lambda m=measure, p=pre: _measure_aggregate(events, m, p, first_us),
                )
        all_types = tuple(sorted({t for _, m in measures for t in m.event_types}))
        any_type = or_(*[_in_types(events, m) for _, m in measures])
        add(
            i,
            "before",
            ("before", all_types),
            lambda a=any_type: func.sum(case((and_(a, events.c.ts_us < first_us), 1), else_=0)),
        )
        add(
            i,
            "after",
            ("after", all_types, metric.window_us),
            lambda a=any_type, f=after_first, w=in_window: func.sum(
                case((and_(a, f, ~w), 1), else_=0)
            ),
        )
    group = [units.c.unit_id, units.c.variant, units.c.variant_max, units.c.day]
    if segment is not None:
        group.append(units.c.segment)
    cte = (
        select(*columns)
        .select_from(units.outerjoin(events, and_(*join_on)))
        .group_by(*group)
        .cte("abkit_unit_values")
    )
    return cte, plan


def _segment_cte(
    tables: Tables, experiment: str, first: Any, segment: str, end_us: int | None
) -> Any:
    """Per unit, the value of attribute ``segment`` on its first exposure (MIN on ties)."""
    exposures, attrs = tables.exposures, tables.exposure_attributes
    cond = [
        exposures.c.experiment == _p(experiment, String()),
        exposures.c.unit_id == first.c.unit_id,
        exposures.c.ts_us == first.c.first_us,
    ]
    if end_us is not None:
        cond.append(exposures.c.ts_us < _p(end_us, BigInteger()))
    return (
        select(exposures.c.unit_id, func.min(attrs.c.value).label("segment"))
        .select_from(
            first.join(exposures, and_(*cond)).join(
                attrs,
                and_(
                    attrs.c.event_id == exposures.c.event_id,
                    attrs.c.name == _p(segment, String()),
                ),
            )
        )
        .group_by(exposures.c.unit_id)
        .cte("abkit_segment")
    )


def _raw_numerator(metric: Metric, values: Any, plan: dict[tuple[int, str], str], i: int) -> Any:
    col = values.c[plan[(i, "num")]]
    if metric.kind == "proportion":
        return _measure_value(metric.numerator, col, min_count=metric.min_count)
    return _measure_value(metric.numerator, col)


def percentile_caps_query(
    tables: Tables,
    experiment: str,
    metrics: Sequence[Metric],
    index: int,
    *,
    end_us: int | None = None,
) -> Any:
    """First pass: the nearest-rank ``cap_percentile`` of metric ``index``'s non-zero values."""
    metric = metrics[index]
    assert metric.cap_percentile is not None
    values, plan = _base_ctes(tables, experiment, [metric], end_us=end_us, segment=None)
    v = _raw_numerator(metric, values, plan, 0)
    # contaminated units count as zero (see the note in _base_ctes on why not WHERE)
    v = case((values.c.variant == values.c.variant_max, v), else_=_zero())
    nonzero = select(v.label("v")).where(v != _zero()).subquery("abkit_nonzero")
    ranked = select(
        nonzero.c.v,
        func.row_number().over(order_by=nonzero.c.v).label("rn"),
        func.count().over().label("cnt"),
    ).subquery("abkit_ranked")
    return select(func.min(ranked.c.v)).where(
        ranked.c.rn * 100 >= _dbl(ranked.c.cnt) * _p(float(metric.cap_percentile), Double())
    )


def aggregates_query(
    tables: Tables,
    experiment: str,
    metrics: Sequence[Metric],
    *,
    caps: dict[str, float] | None = None,
    end_us: int | None = None,
    segment: str | None = None,
    ratio_cuped: bool = False,
) -> Any:
    """Stages 1-5: one row per (variant, day[, segment]) with every metric's sums.

    ``ratio_cuped=True`` adds the pre-period numerator and denominator sums of ratio
    metrics (the :class:`RatioStats` covariate fields) for delta-method CUPED.
    """
    caps = caps or {}
    values, plan = _base_ctes(
        tables, experiment, metrics, end_us=end_us, segment=segment, ratio_cuped=ratio_cuped
    )
    single = case((values.c.variant == values.c.variant_max, 1), else_=0).label("single")
    stage4: list[Any] = [values.c.variant, values.c.day, single]
    if segment is not None:
        stage4.append(values.c.segment)
    for i, metric in enumerate(metrics):
        cap = metric.cap if metric.cap is not None else caps.get(metric.name)
        y = _capped(_raw_numerator(metric, values, plan, i), cap)
        stage4.append(y.label(_col(i, "y")))
        if _has_covariate(metric, ratio_cuped):
            # the pre-period value is built exactly like y (same measure, same cap)
            pre = values.c[plan[(i, "pre_num")]]
            if metric.kind == "proportion":
                x = _measure_value(metric.numerator, pre, min_count=metric.min_count)
            else:
                x = _capped(_measure_value(metric.numerator, pre), cap)
            stage4.append(x.label(_col(i, "x")))
        if metric.denominator is not None:
            d = _measure_value(metric.denominator, values.c[plan[(i, "den")]])
            stage4.append(d.label(_col(i, "d")))
            if _has_covariate(metric, ratio_cuped):
                e = _measure_value(metric.denominator, values.c[plan[(i, "pre_den")]])
                stage4.append(e.label(_col(i, "e")))
        stage4.append(values.c[plan[(i, "before")]].label(_col(i, "before")))
        stage4.append(values.c[plan[(i, "after")]].label(_col(i, "after")))
    per_unit = select(*stage4).cte("abkit_unit_metrics")

    keys = [per_unit.c.variant, per_unit.c.day, per_unit.c.single]
    if segment is not None:
        keys.append(per_unit.c.segment)
    out: list[Any] = [*keys, func.count().label("n")]
    for i, metric in enumerate(metrics):
        y = per_unit.c[_col(i, "y")]
        out += [func.sum(y).label(f"m{i}_sy"), func.sum(y * y).label(f"m{i}_syy")]
        if _has_covariate(metric, ratio_cuped):
            x = per_unit.c[_col(i, "x")]
            out += [
                func.sum(x).label(f"m{i}_sx"),
                func.sum(x * x).label(f"m{i}_sxx"),
                func.sum(x * y).label(f"m{i}_sxy"),
            ]
        if metric.denominator is not None:
            d = per_unit.c[_col(i, "d")]
            out += [
                func.sum(d).label(f"m{i}_sd"),
                func.sum(d * d).label(f"m{i}_sdd"),
                func.sum(y * d).label(f"m{i}_syd"),
            ]
            if _has_covariate(metric, ratio_cuped):
                # ratio CUPED: the pre-period denominator e and the cross moments of (x, e)
                # with (y, d) that the delta-method linearisation needs
                e = per_unit.c[_col(i, "e")]
                out += [
                    func.sum(e).label(f"m{i}_se"),
                    func.sum(e * e).label(f"m{i}_see"),
                    func.sum(x * e).label(f"m{i}_sxe"),
                    func.sum(x * d).label(f"m{i}_sxd"),
                    func.sum(e * y).label(f"m{i}_sey"),
                    func.sum(e * d).label(f"m{i}_sed"),
                ]
        out += [
            func.sum(_dbl(per_unit.c[_col(i, "before")])).label(f"m{i}_before"),
            func.sum(_dbl(per_unit.c[_col(i, "after")])).label(f"m{i}_after"),
        ]
    return select(*out).group_by(*keys).order_by(*keys)


def exposure_counts_query(tables: Tables, experiment: str, *, end_us: int | None = None) -> Any:
    """Per variant of first exposure: units, contaminated units, exposure rows."""
    exposures = tables.exposures
    cond = [exposures.c.experiment == _p(experiment, String())]
    if end_us is not None:
        cond.append(exposures.c.ts_us < _p(end_us, BigInteger()))
    first = (
        select(
            exposures.c.unit_id,
            func.min(exposures.c.variant).label("variant"),
            func.max(exposures.c.variant).label("variant_max"),
            func.count().label("rows"),
            func.min(exposures.c.ts_us).label("first_us"),
        )
        .where(*cond)
        .group_by(exposures.c.unit_id)
        .subquery("abkit_first")
    )
    multi = case((first.c.variant != first.c.variant_max, 1), else_=0)
    return (
        select(
            first.c.variant,
            func.count().label("units"),
            func.sum(multi).label("multi"),
            func.sum(_dbl(first.c.rows)).label("rows"),
            func.min(first.c.first_us).label("first_us"),
            func.max(first.c.first_us).label("last_us"),
        )
        .group_by(first.c.variant)
        .order_by(first.c.variant)
    )


# ------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MetricSums:
    """One metric's statistics for one arm, plus the events excluded as outside the window."""

    stats: MeanStats | RatioStats
    events_before_exposure: int
    events_after_window: int


@dataclass(frozen=True)
class DailyPoint:
    """Cumulative statistics of one metric and arm up to and including ``day``."""

    day: int  # UTC days since 1970-01-01 of first exposure
    variant: str
    metric: str
    stats: MeanStats | RatioStats


@dataclass(frozen=True)
class Aggregates:
    """Everything the database returns for one analysis (one segment value at most)."""

    units: dict[str, int]
    metrics: dict[str, dict[str, MetricSums]]  # metric -> variant -> sums
    daily: tuple[DailyPoint, ...] = ()
    caps: dict[str, float] = field(default_factory=dict)


def _num(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _stats_from_row(
    metric: Metric, i: int, row: Any, *, n: int, ratio_cuped: bool = False
) -> MeanStats | RatioStats:
    m = row._mapping
    if metric.kind == "ratio":
        covariate: dict[str, float] = {}
        if _has_covariate(metric, ratio_cuped):
            covariate = {
                "pre_num_sum": _num(m[f"m{i}_sx"]),
                "pre_num_sum_sq": _num(m[f"m{i}_sxx"]),
                "pre_den_sum": _num(m[f"m{i}_se"]),
                "pre_den_sum_sq": _num(m[f"m{i}_see"]),
                "pre_num_pre_den_sum": _num(m[f"m{i}_sxe"]),
                "pre_num_num_sum": _num(m[f"m{i}_sxy"]),
                "pre_num_den_sum": _num(m[f"m{i}_sxd"]),
                "pre_den_num_sum": _num(m[f"m{i}_sey"]),
                "pre_den_den_sum": _num(m[f"m{i}_sed"]),
            }
        return RatioStats(
            n=n,
            num_sum=_num(m[f"m{i}_sy"]),
            num_sum_sq=_num(m[f"m{i}_syy"]),
            den_sum=_num(m[f"m{i}_sd"]),
            den_sum_sq=_num(m[f"m{i}_sdd"]),
            num_den_sum=_num(m[f"m{i}_syd"]),
            **covariate,
        )
    return MeanStats(
        n=n,
        sum=_num(m[f"m{i}_sy"]),
        sum_sq=_num(m[f"m{i}_syy"]),
        cov_sum=_num(m[f"m{i}_sx"]),
        cov_sum_sq=_num(m[f"m{i}_sxx"]),
        cross_sum=_num(m[f"m{i}_sxy"]),
    )


def compute_caps(
    conn: Connection,
    tables: Tables,
    experiment: str,
    metrics: Sequence[Metric],
    *,
    end_us: int | None = None,
) -> dict[str, float]:
    """Run the first pass for every metric with a percentile cap."""
    caps: dict[str, float] = {}
    for i, metric in enumerate(metrics):
        if metric.cap_percentile is None:
            continue
        value = conn.execute(
            percentile_caps_query(tables, experiment, metrics, i, end_us=end_us)
        ).scalar()
        if value is not None:  # no non-zero value: nothing to cap
            caps[metric.name] = float(value)
    return caps


def fetch_aggregates(
    conn: Connection,
    tables: Tables,
    experiment: str,
    metrics: Sequence[Metric],
    *,
    end_us: int | None = None,
    segment: str | None = None,
    caps: dict[str, float] | None = None,
    daily: bool = True,
    ratio_cuped: bool = False,
) -> dict[str | None, Aggregates]:
    """Run the analysis query; one :class:`Aggregates` per segment value (key ``None``
    when not segmented). Days are added up in ascending order, which also yields the
    cumulative daily series. ``ratio_cuped=True`` fills the covariate fields of ratio
    metrics' :class:`RatioStats` (pre-period numerator and denominator)."""
    metrics = tuple(metrics)
    if caps is None:
        caps = compute_caps(conn, tables, experiment, metrics, end_us=end_us)
    rows = conn.execute(
        aggregates_query(
            tables,
            experiment,
            metrics,
            caps=caps,
            end_us=end_us,
            segment=segment,
            ratio_cuped=ratio_cuped,
        )
    ).all()

    # (segment, variant) -> running totals, in day order
    running: dict[tuple[str | None, str], dict[str, Any]] = {}
    daily_points: dict[str | None, list[DailyPoint]] = {}
    for row in rows:
        m = row._mapping
        if int(m["single"]) != 1:  # units exposed to more than one variant: excluded
            continue
        seg = m["segment"] if segment is not None else None
        variant = str(m["variant"])
        key = (seg, variant)
        n = int(m["n"])
        state = running.setdefault(key, {"n": 0, "stats": {}, "before": {}, "after": {}})
        state["n"] += n
        for i, metric in enumerate(metrics):
            piece = _stats_from_row(metric, i, row, n=n, ratio_cuped=ratio_cuped)
            prev = state["stats"].get(metric.name)
            state["stats"][metric.name] = piece if prev is None else prev + piece
            state["before"][metric.name] = state["before"].get(metric.name, 0) + int(
                _num(m[f"m{i}_before"])
            )
            state["after"][metric.name] = state["after"].get(metric.name, 0) + int(
                _num(m[f"m{i}_after"])
            )
            if daily:
                daily_points.setdefault(seg, []).append(
                    DailyPoint(
                        day=int(m["day"]),
                        variant=variant,
                        metric=metric.name,
                        stats=state["stats"][metric.name],
                    )
                )

    out: dict[str | None, Aggregates] = {}
    for (seg, variant), state in sorted(running.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        agg = out.setdefault(
            seg, Aggregates(units={}, metrics={}, daily=tuple(daily_points.get(seg, ())), caps=caps)
        )
        agg.units[variant] = state["n"]
        for metric in metrics:
            agg.metrics.setdefault(metric.name, {})[variant] = MetricSums(
                stats=state["stats"][metric.name],
                events_before_exposure=state["before"][metric.name],
                events_after_window=state["after"][metric.name],
            )
    return out
