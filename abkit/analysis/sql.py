"""The analysis query: per-unit aggregates, then per-arm sufficient statistics, in the database.

One SQLAlchemy Core construction serves every engine; what an engine spells differently is
a construct of :mod:`abkit.analysis.constructs`, and statements execute through a
:class:`~abkit.analysis.runner.QueryRunner`. Every value that comes from a user (experiment
key, event types, windows, caps, dates) is a **bound parameter**, so a name such as
``x'; DROP TABLE abkit_events; --`` is compared as text, never executed. The tables come from
a :class:`~abkit.analysis.sources.Relations` (abkit's store or the user's own tables), whose
columns are already named and typed as below.

The query, stage by stage (all timestamps are BIGINT epoch microseconds):

1. ``abkit_first`` - per unit of the experiment: first exposure time, smallest and largest
   variant seen, over exposures in the readout period (before the experiment's end and the
   ``until`` of an as-of readout; units first exposed before ``since`` are left out).
2. ``abkit_units`` - every unit with its first exposure; units whose smallest and largest
   variant differ (seen in two or more variants) are **excluded** (they are contaminated:
   no arm's effect can be attributed to them): they are aggregated like the others, kept
   apart by a ``single`` flag in the final GROUP BY and dropped in Python, and counted by
   the quality checks. ``day`` is the UTC day of first exposure (:class:`DayBucket`).
3. ``abkit_unit_values`` - a LEFT JOIN of units to their events of the metrics' event types;
   for each metric measure, conditional aggregates over the events in the unit's window
   ``first <= ts < first + window`` (and ``ts < end``), over the pre-period
   ``first - lookback <= ts < first`` (CUPED covariate), and counts of the events outside
   the window (before first exposure; after the window or the end). Units without events
   get zeros. An aggregate shared by several metrics (the purchases in a 7-day window feed
   conversion, orders and AOV) is computed once. Per engine (:data:`UNIT_GROUPING`) the
   aggregate is grouped by ``unit_id`` alone, and either joined back to ``abkit_units``
   (``abkit_unit_sums``) or selected with the unit's columns as they are (SQLite).
4. ``abkit_caps`` - one row: each percentile cap, the nearest-rank percentile
   (:class:`NearestRank`: the smallest value whose rank ``r`` satisfies ``100·r >= p·N``) of
   the metric's non-zero per-unit window values pooled across arms (contaminated units count
   as zero), computed from stage 3 in the same statement.
5. ``abkit_unit_metrics`` - the per-unit values each metric's kind declares
   (:mod:`abkit.metrics.kinds`: ``y``, ``x``, ``d``, ``e``...), as doubles, capped where the
   kind says so.
6. The final ``GROUP BY variant, day, single [, segment]``: ``n``, the first and last first
   exposure, each kind's per-arm sums (``Σy, Σy², Σxy, ...``) and the outside-window counts.
   Python receives only these rows (a few per day and arm) and adds the days up into totals
   and a cumulative daily series.

A kind whose per-arm statistics are not sums (an :class:`ArmPercentile`, a quantile) is not
additive across days: :func:`order_statistics_query` computes it over the whole period, per
arm, with ``ROW_NUMBER()`` partitioned by arm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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
    true,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, FromClause

from abkit.analysis.constructs import day_bucket, nearest_rank, to_double
from abkit.analysis.runner import MaterializingRunner, QueryRunner, as_mappings
from abkit.analysis.sources import Relations
from abkit.errors import ConfigError, DataError
from abkit.metrics.definitions import Measure, Metric
from abkit.metrics.kinds import ArmPercentile, ArmSum, EventQuantile, UnitValue, is_additive
from abkit.timeutil import MICROS_PER_HOUR

MISSING_SEGMENT = "(missing)"


@dataclass(frozen=True)
class Scope:
    """Which exposures and events a readout reads (bounds in epoch microseconds).

    ``end_us`` is exclusive (the experiment's end or an as-of ``until``, whichever is
    first); units first exposed before ``since_us`` are left out.
    """

    experiment: str
    end_us: int | None = None
    since_us: int | None = None


UnitGrouping = Literal["all", "join-back", "bare"]
"""How stage 3 groups the joined rows of a unit. ``all``: by the unit's five columns.
``join-back``: by ``unit_id`` alone, then joined back to ``abkit_units`` for the unit's
other columns. ``bare``: by ``unit_id`` alone with the other columns selected as they are,
which SQLite allows ("bare columns" take the value of one row of the group; every row of a
unit's group carries the same unit columns, so any row gives the right value)."""

UNIT_GROUPING: Mapping[str, UnitGrouping] = {"duckdb": "join-back", "sqlite": "bare"}
"""Per dialect, how stage 3 groups (other dialects: ``all``). At 1M units and 10M events
(5 metrics, CUPED, p99 cap), measured side by side: grouping by the unit alone and joining
back took DuckDB's statement from 4.9 s to 4.35 s and SQLite's analysis from 68.3 s to
56.3 s (docs/engines.md, "Where the time goes at 10M events"); SQLite's bare columns then
save the join back, which SQLite ran by materializing the sums and building an automatic
index on them: the statement alone 60.2-62.1 s -> 56.8-59.0 s.
Not PostgreSQL: on tables without statistics yet (just loaded) its planner estimates one
unit and nests the join-back over an aggregate it re-runs per unit, quadratic in the units;
and it rejects bare columns. Not Spark: not measured."""

UNIT_COLUMNS = ("unit_id", "variant", "variant_max", "day", "first_us")
"""The per-unit columns of ``abkit_unit_values`` before the aggregates ``a{k}``."""

UnitSource = Callable[[Mapping[tuple[Any, ...], str]], FromClause]
"""Per-unit values read from somewhere other than the events (the cache of
:mod:`abkit.analysis.incremental`): given a plan's aggregates (key -> column name ``a{k}``),
a relation with the columns of ``abkit_unit_values`` (``unit_id, variant, variant_max, day,
first_us`` and those ``a{k}``; no segment)."""


ArmRows = Callable[[Sequence[Metric], bool], list[Mapping[str, Any]]]
"""Stage-6 rows of an unsegmented readout from somewhere other than one statement (the unit
cache's rollup, :mod:`abkit.analysis.incremental`): given the metrics and ``cuped``, exactly
the rows :func:`aggregates_query` would return, caps included."""


def _p(value: Any, type_: Any) -> ColumnElement[Any]:
    """A bound parameter with an explicit type (PostgreSQL needs it for arithmetic)."""
    return literal(value, type_)


def _one() -> ColumnElement[Any]:
    # typed literals: an untyped 1.0 is NUMERIC on PostgreSQL, whose SUM is exact but slow
    return _p(1.0, Double())


def _zero() -> ColumnElement[Any]:
    return _p(0.0, Double())


def _count_where(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    """How many joined rows satisfy ``cond``, summed as a double: exact below 2**53, and
    DuckDB sums integers into a 128-bit HUGEINT, which made stage 3 of the benchmark's
    statement (12 sums, 8 of them counts) take 22% more CPU than with doubles."""
    return func.sum(case((cond, _one()), else_=_zero()))


def _col(i: int, what: str) -> str:
    """Name of a per-metric column (``m{i}_{what}``)."""
    return f"m{i}_{what}"


def _in_types(events: FromClause, measure: Measure) -> ColumnElement[bool]:
    return events.c.event_type.in_([_p(t, String()) for t in measure.event_types])


def _measure_aggregate(
    events: FromClause, measure: Measure, in_period: ColumnElement[bool], first_us: Any
) -> ColumnElement[Any]:
    """Per-unit aggregate of one measure over the events where ``in_period`` holds."""
    cond = and_(_in_types(events, measure), in_period)
    if measure.aggregate == "sum":
        return func.sum(
            case((cond, to_double(func.coalesce(events.c.value, _zero()))), else_=_zero())
        )
    if measure.aggregate in ("count", "converted"):
        return _count_where(cond)
    # hours_to_first: the earliest qualifying event; NULL when the unit has none
    return func.min(case((cond, events.c.ts_us - first_us), else_=None))


def _measure_value(measure: Measure, raw: Any, *, min_count: int | None = None) -> Any:
    """Per-unit value of a measure from its stage-3 aggregate, as a double."""
    if min_count is not None:  # an indicator
        return case((raw >= _p(min_count, Integer()), _one()), else_=_zero())
    if measure.aggregate == "converted":
        return case((raw > 0, _one()), else_=_zero())
    if measure.aggregate == "hours_to_first":
        return to_double(func.coalesce(raw, 0)) / _p(float(MICROS_PER_HOUR), Double())
    return to_double(raw)


def _capped(value: Any, bound: Any) -> Any:
    if bound is None:
        return value
    return case((value > bound, bound), else_=value)


def _first_cte(rel: Relations, scope: Scope) -> CTE:
    exposures = rel.exposures
    where = [exposures.c.experiment == _p(scope.experiment, String())]
    if scope.end_us is not None:
        where.append(exposures.c.ts_us < _p(scope.end_us, BigInteger()))
    first = (
        select(
            exposures.c.unit_id,
            func.min(exposures.c.ts_us).label("first_us"),
            func.min(exposures.c.variant).label("variant"),
            func.max(exposures.c.variant).label("variant_max"),
        )
        .where(*where)
        .group_by(exposures.c.unit_id)
    )
    if scope.since_us is not None:
        first = first.having(func.min(exposures.c.ts_us) >= _p(scope.since_us, BigInteger()))
    return first.cte("abkit_first")


def _segment_cte(rel: Relations, scope: Scope, first: CTE, segment: str) -> CTE:
    """Per unit, the value of attribute ``segment`` on its first exposure (MIN on ties)."""
    exposures = rel.exposures
    cond = [
        exposures.c.experiment == _p(scope.experiment, String()),
        exposures.c.unit_id == first.c.unit_id,
        exposures.c.ts_us == first.c.first_us,
    ]
    if segment in rel.attribute_columns:
        value = to_text(exposures.c[rel.attribute_columns[segment]])
        return (
            select(exposures.c.unit_id, func.min(value).label("segment"))
            .select_from(first.join(exposures, and_(*cond)))
            .group_by(exposures.c.unit_id)
            .cte("abkit_segment")
        )
    attrs = rel.attributes
    if attrs is None:
        raise ConfigError(
            f"this source declares no exposure attributes; cannot segment by {segment!r}"
        )
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


def to_text(value: Any) -> Any:
    return cast(value, String())


def known_attributes_query(rel: Relations, scope: Scope) -> Select[Any]:
    """The exposure attribute names seen in the experiment (long-form attributes)."""
    exposures, attrs = rel.exposures, rel.attributes
    assert attrs is not None
    return (
        select(attrs.c.name)
        .select_from(attrs.join(exposures, attrs.c.event_id == exposures.c.event_id))
        .where(exposures.c.experiment == _p(scope.experiment, String()))
        .distinct()
        .order_by(attrs.c.name)
    )


class _Plan:
    """Stage-3 columns, each distinct aggregate computed once and named ``a{k}``."""

    def __init__(self) -> None:
        self.columns: list[Any] = []
        self.names: dict[tuple[Any, ...], str] = {}
        self.by_metric: dict[tuple[int, str], str] = {}

    def add(self, index: int, tag: str, key: tuple[Any, ...], expr: ColumnElement[Any]) -> None:
        if key not in self.names:
            self.names[key] = f"a{len(self.names)}"
            self.columns.append(expr.label(self.names[key]))
        self.by_metric[(index, tag)] = self.names[key]


def read_event_types(metrics: Sequence[Metric]) -> list[str]:
    """Every event type stages 1-3 read for ``metrics``: their measures' and their
    covariates' (a prediction score, another metric's pre-period), in first-seen order."""
    out: list[str] = []
    for metric in metrics:
        cov_types = [t for c in metric.covariates if c.measure for t in c.measure.event_types]
        out += [t for t in (*metric.event_types, *cov_types) if t not in out]
    return out


def _unit_values_cte(
    rel: Relations,
    scope: Scope,
    metrics: Sequence[Metric],
    *,
    cuped: bool,
    segment: str | None,
    grouping: UnitGrouping = "all",
    first: CTE | None = None,
) -> tuple[CTE, _Plan]:
    """Stages 1-3: the ``abkit_unit_values`` CTE and where each metric's aggregates are.
    ``grouping``: how stage 3 groups a unit's joined rows (:data:`UnitGrouping`, the
    same rows whichever is chosen). ``first``: stage 1 of
    ``rel.exposures`` when the caller has it already (``unit_id, first_us, variant,
    variant_max``; the incremental merge reads it from its unit cache), instead of grouping
    the exposures again."""
    events = rel.events
    if first is None:
        first = _first_cte(rel, scope)
    units_q = select(
        first.c.unit_id,
        first.c.first_us,
        first.c.variant,
        day_bucket(first.c.first_us).label("day"),
        # Contaminated units (variant != variant_max) are not filtered out with a WHERE: a
        # predicate comparing two aggregates gets a tiny default selectivity from
        # PostgreSQL's planner (which pushes it down into this GROUP BY wherever it is
        # written), and the planner then probes the events index once per unit instead of
        # hash-joining. They are carried as a ``single`` flag and dropped in Python.
        first.c.variant_max,
    )
    if segment is not None:
        seg = _segment_cte(rel, scope, first, segment)
        units_q = units_q.add_columns(
            func.coalesce(seg.c.segment, _p(MISSING_SEGMENT, String())).label("segment")
        ).outerjoin(seg, seg.c.unit_id == first.c.unit_id)
    units = units_q.cte("abkit_units")

    all_types = read_event_types(metrics)
    first_us = units.c.first_us
    end = _p(scope.end_us, BigInteger()) if scope.end_us is not None else None
    group: list[Any] = [
        units.c.unit_id,
        units.c.variant,
        units.c.variant_max,
        units.c.day,
        units.c.first_us,
    ]
    if segment is not None:
        group.append(units.c.segment)
    plan = _Plan()
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
        covariate = metric.kind_spec.has_covariate(metric, cuped)
        values = metric.kind_spec.unit_values(metric, covariate=covariate)
        measures = {
            name: metric.numerator if name == "numerator" else metric.denominator
            for name in metric.kind_spec.measures
        }
        periods = {(v.measure, v.period) for v in values.values()}
        for name, measure in measures.items():
            assert measure is not None
            # "count" and "converted" share one SQL aggregate (the count)
            agg = "count" if measure.aggregate == "converted" else measure.aggregate
            types = tuple(sorted(measure.event_types))
            if (name, "window") in periods:
                plan.add(
                    i,
                    f"{name}/window",
                    ("window", types, agg, metric.window_us),
                    _measure_aggregate(events, measure, in_window, first_us),
                )
            if (name, "pre") in periods:
                plan.add(
                    i,
                    f"{name}/pre",
                    ("pre", types, agg, metric.pre_period_us),
                    _measure_aggregate(events, measure, pre, first_us),
                )
        for value in values.values():
            if value.measure == "covariate":
                for tag, key, expr in _covariate_aggregates(metric, value.index, events, first_us):
                    plan.add(i, tag, key, expr)
        read = tuple(sorted({t for m in measures.values() if m for t in m.event_types}))
        any_type = or_(*[_in_types(events, m) for m in measures.values() if m is not None])
        plan.add(
            i,
            "before",
            ("before", read),
            _count_where(and_(any_type, events.c.ts_us < first_us)),
        )
        plan.add(
            i,
            "after",
            ("after", read, metric.window_us),
            _count_where(and_(any_type, after_first, ~in_window)),
        )
    join_on = and_(
        events.c.unit_id == units.c.unit_id,
        events.c.event_type.in_([_p(t, String()) for t in all_types]),
    )
    joined = units.outerjoin(events, join_on)
    if grouping != "join-back":
        # "bare": the other unit columns depend on unit_id (see UnitGrouping)
        by = [units.c.unit_id] if grouping == "bare" else group
        cte = (
            select(*group, *plan.columns).select_from(joined).group_by(*by).cte("abkit_unit_values")
        )
        return cte, plan
    # Grouped by the unit alone, then joined back to the unit's other columns (they depend
    # on the unit): the hash table over ~10 joined rows per unit carries one key, not five.
    sums = (
        select(units.c.unit_id, *plan.columns)
        .select_from(joined)
        .group_by(units.c.unit_id)
        .cte("abkit_unit_sums")
    )
    cte = (
        select(*group, *[sums.c[c.name] for c in plan.columns])
        .select_from(units.join(sums, sums.c.unit_id == units.c.unit_id))
        .cte("abkit_unit_values")
    )
    return cte, plan


def _covariate_aggregates(
    metric: Metric, index: int, events: FromClause, first_us: Any
) -> list[tuple[str, tuple[Any, ...], ColumnElement[Any]]]:
    """Stage 3 for declared covariate ``index`` (:class:`~abkit.metrics.definitions.
    Covariate`), as (tag, key, expression) for :meth:`_Plan.add`: a metric's pre-period
    aggregate (the same key as that metric's own CUPED column, so it is computed once), or
    the sum and the number of a model's prediction events before the first exposure (their
    mean is taken in stage 5; sums, so an incremental cache can add them up)."""
    cov = metric.covariates[index]
    if cov.measure is None:
        raise ConfigError(
            f"metric {metric.name!r}: covariate {cov.label!r} is not resolved "
            "(abkit.metrics.bind_covariates, which analyze() applies)",
            field="covariates",
        )
    tag = f"covariate{index}"
    types = tuple(sorted(cov.measure.event_types))
    if cov.source == "prediction":
        cond = and_(
            _in_types(events, cov.measure), events.c.ts_us < first_us, events.c.value.is_not(None)
        )
        return [
            (
                f"{tag}/sum",
                ("prediction", types, "sum"),
                func.sum(case((cond, to_double(events.c.value)), else_=_zero())),
            ),
            (f"{tag}/count", ("prediction", types, "count"), _count_where(cond)),
        ]
    lookback = cov.lookback_us or metric.pre_period_us
    pre = and_(events.c.ts_us < first_us, events.c.ts_us >= first_us - _p(lookback, BigInteger()))
    agg = "count" if cov.measure.aggregate == "converted" else cov.measure.aggregate
    return [
        (tag, ("pre", types, agg, lookback), _measure_aggregate(events, cov.measure, pre, first_us))
    ]


def _unit_value(
    metric: Metric, value: UnitValue, values: FromClause, plan: _Plan, i: int, cap: Any
) -> Any:
    if value.measure == "covariate":
        cov = metric.covariates[value.index]
        assert cov.measure is not None  # bound (checked in stage 3)
        tag = f"covariate{value.index}"
        if cov.source == "prediction":  # the mean prediction; none before exposure: 0
            total = values.c[plan.by_metric[(i, f"{tag}/sum")]]
            count = values.c[plan.by_metric[(i, f"{tag}/count")]]
            return case((count > 0, to_double(total) / to_double(count)), else_=_zero())
        raw = values.c[plan.by_metric[(i, tag)]]
        if cov.min_count is not None:
            return _measure_value(cov.measure, raw, min_count=cov.min_count)
        bound = None if cov.cap is None else _p(float(cov.cap), Double())
        return _capped(_measure_value(cov.measure, raw), bound)
    measure = metric.numerator if value.measure == "numerator" else metric.denominator
    assert measure is not None
    raw = values.c[plan.by_metric[(i, f"{value.measure}/{value.period}")]]
    if value.indicator:
        return _measure_value(measure, raw, min_count=metric.min_count)
    out = _measure_value(measure, raw)
    return _capped(out, cap) if value.capped else out


def _caps_cte(
    values: FromClause, plan: _Plan, metrics: Sequence[Metric], cap_values: Mapping[str, float]
) -> tuple[CTE | None, dict[int, Any]]:
    """Stage 4: the one-row CTE of percentile caps; per metric index, its cap expression."""
    bounds: dict[int, Any] = {}
    columns: list[Any] = []
    for i, metric in enumerate(metrics):
        if metric.cap is not None:
            bounds[i] = _p(float(metric.cap), Double())
        elif metric.name in cap_values:
            bounds[i] = _p(float(cap_values[metric.name]), Double())
        elif metric.cap_percentile is not None:
            columns.append(percentile_cap(metric, values, plan, i).label(f"cap{i}"))
    if not columns:
        return None, bounds
    caps = select(*columns).cte("abkit_caps")
    for i in range(len(metrics)):
        if f"cap{i}" in caps.c:
            bounds[i] = caps.c[f"cap{i}"]
    return caps, bounds


def cap_population(metric: Metric, values: FromClause, plan: _Plan, i: int) -> Any:
    """The per-unit value whose non-zero entries a percentile cap of metric ``i`` ranks: its
    window numerator, zero for a contaminated unit (see the note in ``_unit_values_cte`` on
    why not a WHERE)."""
    raw = _unit_value(metric, UnitValue("numerator"), values, plan, i, None)
    return case((values.c.variant == values.c.variant_max, raw), else_=_zero())


def percentile_cap(metric: Metric, values: FromClause, plan: _Plan, i: int) -> Any:
    """Metric ``i``'s percentile cap over ``values``: the nearest rank of the non-zero
    :func:`cap_population` values (``NULL`` when every value is zero)."""
    assert metric.cap_percentile is not None
    v = cap_population(metric, values, plan, i)
    nonzero = select(v.label("v")).where(v != _zero()).subquery(f"abkit_nonzero_{i}")
    return nearest_rank(nonzero, "v", metric.cap_percentile)


def capped_values(
    metric: Metric, values: FromClause, plan: _Plan, i: int, *, cuped: bool
) -> list[Any]:
    """The per-unit values of metric ``i`` that its cap bounds, uncapped."""
    covariate = metric.kind_spec.has_covariate(metric, cuped)
    return [
        _unit_value(metric, value, values, plan, i, None)
        for value in metric.kind_spec.unit_values(metric, covariate=covariate).values()
        if value.capped
    ]


def percentile_capped(metrics: Sequence[Metric]) -> list[int]:
    """Indexes of the metrics whose cap is a percentile of the data (it moves as data
    arrive), not a fixed value."""
    return [i for i, m in enumerate(metrics) if m.cap is None and m.cap_percentile is not None]


def without_percentile_caps(metrics: Sequence[Metric]) -> tuple[Metric, ...]:
    """The metrics with their percentile caps removed (fixed caps kept)."""
    capped = set(percentile_capped(metrics))
    return tuple(m.with_(cap_percentile=None) if i in capped else m for i, m in enumerate(metrics))


def aggregates_query(
    rel: Relations,
    scope: Scope,
    metrics: Sequence[Metric],
    *,
    cuped: bool = True,
    segment: str | None = None,
    caps: Mapping[str, float] | None = None,
    unit_source: UnitSource | None = None,
    grouping: UnitGrouping = "all",
) -> Select[Any]:
    """Stages 1-6: one row per (variant, day, single[, segment]) with every metric's sums.

    Only the additive part of each kind is here; ``caps`` gives percentile caps already
    computed (a segmented query reuses the overall caps), the others are computed in the
    statement and returned as ``m{i}_cap``. ``grouping``: see :data:`UnitGrouping`.
    """
    cte, plan = _unit_values_cte(
        rel, scope, metrics, cuped=cuped, segment=segment, grouping=grouping
    )
    # stages 1-3 replaced by a cache of them when given (abkit.analysis.incremental)
    values: FromClause = cte if unit_source is None else unit_source(plan.names)
    caps_cte, bounds = _caps_cte(values, plan, metrics, caps or {})
    single = case((values.c.variant == values.c.variant_max, 1), else_=0).label("single")
    stage5: list[Any] = [values.c.variant, values.c.day, single, values.c.first_us]
    if segment is not None:
        stage5.append(values.c.segment)
    sums: list[tuple[int, str, ArmSum]] = []
    zero_one: set[str] = set()  # the stage-5 columns that are 0 or 1 (indicators)
    for i, metric in enumerate(metrics):
        covariate = metric.kind_spec.has_covariate(metric, cuped)
        for name, value in metric.kind_spec.unit_values(metric, covariate=covariate).items():
            stage5.append(
                _unit_value(metric, value, values, plan, i, bounds.get(i)).label(_col(i, name))
            )
            if value.indicator and value.measure != "covariate":
                zero_one.add(_col(i, name))
        for name, aggregate in metric.kind_spec.arm_aggregates(metric, covariate=covariate).items():
            if isinstance(aggregate, ArmSum):
                sums.append((i, name, aggregate))
        stage5.append(values.c[plan.by_metric[(i, "before")]].label(_col(i, "before")))
        stage5.append(values.c[plan.by_metric[(i, "after")]].label(_col(i, "after")))
        if caps_cte is not None and f"cap{i}" in caps_cte.c:
            stage5.append(caps_cte.c[f"cap{i}"].label(_col(i, "cap")))
    stage5_q = select(*stage5)
    if caps_cte is not None:
        stage5_q = stage5_q.select_from(values.join(caps_cte, true()))
    per_unit = stage5_q.cte("abkit_unit_metrics")

    keys: list[Any] = [per_unit.c.variant, per_unit.c.day, per_unit.c.single]
    if segment is not None:
        keys.append(per_unit.c.segment)
    out: list[Any] = [
        *keys,
        func.count().label("n"),
        func.min(per_unit.c.first_us).label("first_min"),
        func.max(per_unit.c.first_us).label("first_max"),
    ]
    for i, name, aggregate in sums:
        columns = [_col(i, factor) for factor in aggregate.factors]
        # v·v = v for an indicator: Σy² of a conversion is written as Σy, which the engines
        # compute once (one sum fewer per unit row; SQLite's stage 6 costs ~0.1 µs a sum)
        kept = [c for k, c in enumerate(columns) if c not in zero_one or c not in columns[:k]]
        product: ColumnElement[Any] = per_unit.c[kept[0]]
        for column in kept[1:]:
            product = product * per_unit.c[column]
        out.append(func.sum(product).label(_col(i, name)))
    for i, _metric in enumerate(metrics):
        out += [
            func.sum(to_double(per_unit.c[_col(i, "before")])).label(_col(i, "before")),
            func.sum(to_double(per_unit.c[_col(i, "after")])).label(_col(i, "after")),
        ]
        if _col(i, "cap") in per_unit.c:
            out.append(func.max(per_unit.c[_col(i, "cap")]).label(_col(i, "cap")))
    return select(*out).group_by(*keys).order_by(*keys)


def order_statistics_query(
    rel: Relations,
    scope: Scope,
    metrics: Sequence[Metric],
    index: int,
    *,
    cuped: bool = True,
    segment: str | None = None,
    caps: Mapping[str, float] | None = None,
    unit_source: UnitSource | None = None,
) -> Select[Any]:
    """The non-sum aggregates (:class:`ArmPercentile`) of metric ``index``, per arm over the
    whole period: one row per (variant, single[, segment]) with ``m{i}_{name}`` columns.

    Nearest-rank as in :class:`~abkit.analysis.constructs.NearestRank`, with the ranks
    partitioned by arm so an engine sorts each arm separately.
    """
    metric = metrics[index]
    cte, plan = _unit_values_cte(rel, scope, [metric], cuped=cuped, segment=segment)
    values: FromClause = cte if unit_source is None else unit_source(plan.names)
    bound = metric.cap if metric.cap is not None else (caps or {}).get(metric.name)
    covariate = metric.kind_spec.has_covariate(metric, cuped)
    single = case((values.c.variant == values.c.variant_max, 1), else_=0).label("single")
    keys: list[Any] = [values.c.variant, single]
    if segment is not None:
        keys.append(values.c.segment)
    unit_values = metric.kind_spec.unit_values(metric, covariate=covariate)
    columns = [
        _unit_value(
            metric, v, values, plan, 0, None if bound is None else _p(bound, Double())
        ).label(name)
        for name, v in unit_values.items()
    ]
    per_unit = select(*keys, *columns).subquery("abkit_unit_metrics")
    part = [per_unit.c.variant, per_unit.c.single]
    if segment is not None:
        part.append(per_unit.c.segment)
    subs: list[tuple[str, Any]] = []
    for name, aggregate in metric.kind_spec.arm_aggregates(metric, covariate=covariate).items():
        if not isinstance(aggregate, ArmPercentile):
            continue
        v = per_unit.c[aggregate.value]
        ranked = select(
            *part,
            v.label("v"),
            func.row_number().over(partition_by=part, order_by=v).label("rn"),
            func.count().over(partition_by=part).label("cnt"),
        ).subquery(f"abkit_ranked_{name}")
        rkeys = [ranked.c[c.key] for c in part]
        chosen = (
            select(*rkeys, func.min(ranked.c.v).label("v"))
            .where(
                ranked.c.rn * 100
                >= to_double(ranked.c.cnt) * _p(float(aggregate.percent), Double())
            )
            .group_by(*rkeys)
            .subquery(f"abkit_os_{name}")
        )
        subs.append((name, chosen))
    if not subs:
        raise ValueError(f"metric {metric.name!r} has no order statistic")
    base = subs[0][1]
    base_keys = [base.c[c.key] for c in part]
    stmt = select(*base_keys, *[sub.c.v.label(_col(index, name)) for name, sub in subs])
    for _, sub in subs[1:]:
        stmt = stmt.join_from(base, sub, and_(*[sub.c[c.key] == base.c[c.key] for c in part]))
    return stmt.order_by(*base_keys)


# ------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MetricSums:
    """One metric's statistics for one arm, plus the events excluded as outside the window."""

    stats: Any  # the kind's sufficient statistics (MeanStats, RatioStats, ...)
    events_before_exposure: int
    events_after_window: int


@dataclass(frozen=True)
class DailyPoint:
    """Cumulative statistics of one metric and arm up to and including ``day``."""

    day: int  # UTC days since 1970-01-01 of first exposure
    variant: str
    metric: str
    stats: Any


@dataclass(frozen=True)
class Aggregates:
    """Everything the database returns for one analysis (one segment value at most).

    ``units`` counts the analysed (single-variant) units per arm; ``contaminated`` the units
    seen in two or more variants, by their smallest variant; ``first_us``/``last_us`` bound
    the first exposures of every unit read.
    """

    units: dict[str, int]
    metrics: dict[str, dict[str, MetricSums]]  # metric -> variant -> sums
    daily: tuple[DailyPoint, ...] = ()
    caps: dict[str, float] = field(default_factory=dict)
    contaminated: dict[str, int] = field(default_factory=dict)
    first_us: int | None = None
    last_us: int | None = None


def _num(value: Any) -> float:
    return 0.0 if value is None else float(value)


def stored_unit_source(
    table: FromClause, stored: Mapping[tuple[Any, ...], str], where: Any = None
) -> UnitSource:
    """The :data:`UnitSource` reading per-unit values kept in ``table`` (its rows matching
    ``where``, when given): ``stored`` says which column holds each aggregate (by the
    plan's key), and a statement's own plan names are mapped onto those columns."""

    def unit_source(names: Mapping[tuple[Any, ...], str]) -> FromClause:
        columns: list[Any] = [table.c[c] for c in UNIT_COLUMNS]
        for key, name in names.items():
            column = stored.get(key)
            if column is None:  # cannot happen: the plans come from the same metrics
                raise ValueError(f"the stored unit values have no column for {key!r}")
            columns.append(table.c[column].label(name))
        query = select(*columns)
        if where is not None:
            query = query.where(where)
        return query.subquery("abkit_unit_values")

    return unit_source


def _reads_units_again(
    metrics: Sequence[Metric], caps: Mapping[str, float] | None, cuped: bool
) -> bool:
    """Whether one readout reads the per-unit values more than once: a percentile cap
    computed in the statement (stage 4 and stage 5 both read them) or a unit percentile
    (a second statement)."""
    if not caps and percentile_capped(metrics):
        return True
    return any(
        isinstance(a, ArmPercentile)
        for m in metrics
        for a in m.kind_spec.arm_aggregates(
            m, covariate=m.kind_spec.has_covariate(m, cuped)
        ).values()
    )


def fetch_aggregates(
    runner: QueryRunner,
    rel: Relations,
    scope: Scope,
    metrics: Sequence[Metric],
    *,
    cuped: bool = True,
    segment: str | None = None,
    caps: Mapping[str, float] | None = None,
    daily: bool = True,
    unit_source: UnitSource | None = None,
    arm_rows: ArmRows | None = None,
) -> dict[str | None, Aggregates]:
    """Run the analysis statements; one :class:`Aggregates` per segment value (key ``None``
    when not segmented). Additive kinds' days are added up in ascending order, which also
    yields the cumulative daily series; non-additive kinds get their whole-period
    statistics from :func:`order_statistics_query` and no daily points. ``arm_rows``
    (unsegmented, no ``caps`` given) supplies the stage-6 rows instead of the statement."""
    metrics = tuple(metrics)
    if (
        unit_source is None
        and arm_rows is None
        and segment is None
        and isinstance(runner, MaterializingRunner)
        and _reads_units_again(metrics, caps, cuped)
    ):
        cte, plan = _unit_values_cte(rel, scope, metrics, cuped=cuped, segment=None)
        with runner.materialized(select(cte)) as units:
            return fetch_aggregates(
                runner,
                rel,
                scope,
                metrics,
                cuped=cuped,
                caps=caps,
                daily=daily,
                unit_source=stored_unit_source(units, plan.names),
            )
    if arm_rows is not None and segment is None and not caps:
        rows = arm_rows(metrics, cuped)
    else:
        stmt = aggregates_query(
            rel,
            scope,
            metrics,
            cuped=cuped,
            segment=segment,
            caps=caps,
            unit_source=unit_source,
            grouping=UNIT_GROUPING.get(runner.dialect.name, "all"),
        )
        rows = as_mappings(stmt, runner.run(stmt))
    found_caps = dict(caps or {})
    for i, metric in enumerate(metrics):
        key = _col(i, "cap")
        value = next((r[key] for r in rows if r.get(key) is not None), None)
        if value is not None:  # no non-zero value: nothing to cap
            found_caps[metric.name] = float(value)
    covariates = [m.kind_spec.has_covariate(m, cuped) for m in metrics]
    additive = [
        is_additive(m.kind_spec, m, covariate=c) for m, c in zip(metrics, covariates, strict=True)
    ]
    order_stats: dict[int, dict[tuple[str | None, str], Mapping[str, Any]]] = {}
    quantile_points: list[DailyPoint] = []
    for i, metric in enumerate(metrics):
        aggregates = metric.kind_spec.arm_aggregates(metric, covariate=covariates[i]).values()
        if any(isinstance(a, EventQuantile) for a in aggregates):
            found, days = quantile_aggregates(
                runner, rel, scope, metric, i, segment=segment, daily=daily
            )
            order_stats.setdefault(i, {}).update(found)
            quantile_points += days
        if not any(isinstance(a, ArmPercentile) for a in aggregates):
            continue
        os_stmt = order_statistics_query(
            rel,
            scope,
            metrics,
            i,
            cuped=cuped,
            segment=segment,
            caps=found_caps,
            unit_source=unit_source,
        )
        order_stats.setdefault(i, {}).update(
            {
                (r["segment"] if segment is not None else None, str(r["variant"])): r
                for r in as_mappings(os_stmt, runner.run(os_stmt))
                if int(r["single"]) == 1
            }
        )

    running: dict[tuple[str | None, str], dict[str, Any]] = {}
    contaminated: dict[str | None, dict[str, int]] = {}
    bounds: dict[str | None, list[int]] = {}
    daily_points: dict[str | None, list[DailyPoint]] = {}
    for row in rows:
        seg = row["segment"] if segment is not None else None
        variant = str(row["variant"])
        n = int(row["n"])
        if row["first_min"] is None:  # every unit of the group lacks an exposure time
            raise DataError(
                f"{n:,} units of variant {variant!r} have no readable exposure time: the "
                "exposures' timestamp column is NULL or did not parse (check the source's "
                "timestamp mapping and timestamp_encoding)",
                field="exposures.timestamp",
            )
        span = bounds.setdefault(seg, [int(row["first_min"]), int(row["first_max"])])
        span[0], span[1] = min(span[0], int(row["first_min"])), max(span[1], int(row["first_max"]))
        if int(row["single"]) != 1:  # units exposed to more than one variant: excluded
            counts = contaminated.setdefault(seg, {})
            counts[variant] = counts.get(variant, 0) + n
            continue
        state = running.setdefault(
            (seg, variant), {"n": 0, "sums": {}, "stats": {}, "before": {}, "after": {}}
        )
        state["n"] += n
        for i, metric in enumerate(metrics):
            state["before"][metric.name] = state["before"].get(metric.name, 0) + int(
                _num(row[_col(i, "before")])
            )
            state["after"][metric.name] = state["after"].get(metric.name, 0) + int(
                _num(row[_col(i, "after")])
            )
            names = metric.kind_spec.arm_aggregates(metric, covariate=covariates[i])
            row_sums = {k: _num(row[_col(i, k)]) for k, a in names.items() if isinstance(a, ArmSum)}
            if not additive[i]:  # sums add up; the statistics are built once, below
                totals = state["sums"].setdefault(metric.name, {})
                for k, v in row_sums.items():
                    totals[k] = totals.get(k, 0.0) + v
                continue
            piece = metric.kind_spec.stats(n, row_sums)
            prev = state["stats"].get(metric.name)
            state["stats"][metric.name] = piece if prev is None else prev + piece
            if daily:
                daily_points.setdefault(seg, []).append(
                    DailyPoint(
                        day=int(row["day"]),
                        variant=variant,
                        metric=metric.name,
                        stats=state["stats"][metric.name],
                    )
                )

    if quantile_points:  # non-additive: computed in the database per cumulative day
        daily_points.setdefault(None, []).extend(quantile_points)
    out: dict[str | None, Aggregates] = {}
    for (seg, variant), state in sorted(running.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        lo, hi = bounds[seg]
        agg = out.setdefault(
            seg,
            Aggregates(
                units={},
                metrics={},
                daily=tuple(daily_points.get(seg, ())),
                caps=found_caps,
                contaminated=contaminated.get(seg, {}),
                first_us=lo,
                last_us=hi,
            ),
        )
        agg.units[variant] = state["n"]
        for i, metric in enumerate(metrics):
            stats = state["stats"].get(metric.name)
            if not additive[i]:
                names = metric.kind_spec.arm_aggregates(metric, covariate=covariates[i])
                row = order_stats.get(i, {}).get((seg, variant), {})
                sums: dict[str, Any] = dict(state["sums"].get(metric.name, {}))
                sums.update(
                    {
                        k: _num(row.get(_col(i, k)))
                        for k, a in names.items()
                        if isinstance(a, ArmPercentile)
                    }
                )
                quantiles = {
                    k: row.get(_col(i, k)) for k, a in names.items() if isinstance(a, EventQuantile)
                }
                # no events with a value in the arm: no statistics
                stats = (
                    None
                    if any(q is None for q in quantiles.values())
                    else metric.kind_spec.stats(state["n"], {**sums, **quantiles})
                )
            agg.metrics.setdefault(metric.name, {})[variant] = MetricSums(
                stats=stats,
                events_before_exposure=state["before"][metric.name],
                events_after_window=state["after"][metric.name],
            )
    for seg, counts in contaminated.items():  # a segment value with only contaminated units
        if seg not in out:
            lo, hi = bounds[seg]
            out[seg] = Aggregates(
                units={}, metrics={}, caps=found_caps, contaminated=counts, first_us=lo, last_us=hi
            )
    return out


# ------------------------------------------------------------------------ quantiles
# The cumulative daily series of a quantile is computed for at most this many days (evenly
# spaced, always including the last): each point re-ranks every value up to its day.
QUANTILE_DAILY_MAX_POINTS = 31


def _scoped_values(
    rel: Relations, scope: Scope, metric: Metric, *, segment: str | None = None
) -> Any:
    """The values a quantile metric ranks, for single-variant units: one row per value with
    ``unit_id``, ``variant``, ``day`` (UTC day of the unit's first exposure), ``segment``
    (when segmented; :data:`MISSING_SEGMENT` for a unit without the attribute) and ``v``.

    ``quantile_of="event"``: each of the metric's events with a value in its unit's
    window. ``quantile_of="unit"``: one row per unit, the numerator measure over the window
    (stages 1-3 of the analysis query, so units without an event count as 0).
    """
    from abkit.metrics.kinds.quantile import quantile_of

    if quantile_of(metric) == "unit":
        values, plan = _unit_values_cte(rel, scope, [metric], cuped=False, segment=segment)
        columns = [values.c.unit_id, values.c.variant, values.c.day]
        if segment is not None:
            columns.append(values.c.segment)
        y = _unit_value(metric, UnitValue("numerator"), values, plan, 0, None)
        return (
            select(*columns, to_double(y).label("v"))
            .where(values.c.variant == values.c.variant_max)
            .subquery("abkit_scoped")
        )
    events = rel.events
    first = _first_cte(rel, scope)
    window = [
        events.c.ts_us >= first.c.first_us,
        _in_types(events, metric.numerator),
        events.c.value.is_not(None),
    ]
    if metric.window_us is not None:
        window.append(events.c.ts_us < first.c.first_us + _p(metric.window_us, BigInteger()))
    if scope.end_us is not None:
        window.append(events.c.ts_us < _p(scope.end_us, BigInteger()))
    cols: list[Any] = [first.c.unit_id, first.c.variant, day_bucket(first.c.first_us).label("day")]
    joined: Any = first.join(events, events.c.unit_id == first.c.unit_id)
    if segment is not None:
        seg = _segment_cte(rel, scope, first, segment)
        cols.append(func.coalesce(seg.c.segment, _p(MISSING_SEGMENT, String())).label("segment"))
        joined = joined.outerjoin(seg, seg.c.unit_id == first.c.unit_id)
    return (
        select(*cols, to_double(events.c.value).label("v"))
        .select_from(joined)
        .where(first.c.variant == first.c.variant_max, *window)
        .subquery("abkit_scoped")
    )


def _ranked(values: Any, keys: Sequence[str]) -> Any:
    """Each value with its rank ``rn`` and the count ``cnt`` within its partition ``keys``."""
    part = [values.c[k] for k in keys]
    return select(
        *part,
        values.c.unit_id,
        values.c.v,
        func.row_number().over(partition_by=part, order_by=values.c.v).label("rn"),
        func.count().over(partition_by=part).label("cnt"),
    ).subquery("abkit_ranked")


def _key_of(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(int(row[k]) if k == "upto" else str(row[k]) for k in keys)


def _key_matches(ranked: Any, keys: Sequence[str], key: tuple[Any, ...]) -> list[Any]:
    return [
        ranked.c[k] == (_p(v, BigInteger()) if k == "upto" else _p(v, String()))
        for k, v in zip(keys, key, strict=True)
    ]


def _quantile_passes(
    runner: QueryRunner, values: Any, keys: Sequence[str], probability: float, alpha: float
) -> dict[tuple[Any, ...], Any]:
    """:class:`~abkit.stats.quantile.QuantileStats` per partition ``keys`` of ``values``,
    in two statements (the three passes of :mod:`abkit.stats.quantile`):

    1. ``ROW_NUMBER()``/``COUNT()`` per partition give the nearest-rank estimate
       ``q̂ = min{v : rn >= p·cnt}`` as a window ``MIN`` over the partition; grouped by
       unit, ``n_i`` and ``s_i = #{v <= q̂}``; grouped by partition, ``n``, ``Σn``,
       ``Σn²``, ``Σs``, ``Σs²``, ``Σs·n`` and ``q̂``;
    2. the order statistics at the bracketing ranks :func:`bracket_ranks` computes from
       pass 1 (a partition with fewer than 2 units gets no bracket, hence no interval).
    """
    from abkit.errors import NotEnoughDataError
    from abkit.stats.quantile import QuantileStats, bracket_ranks, with_bracket

    ranked = _ranked(values, keys)
    part = [ranked.c[k] for k in keys]
    at_or_above = ranked.c.rn >= ranked.c.cnt * _p(probability, Double())
    marked = select(
        *part,
        ranked.c.unit_id,
        ranked.c.v,
        func.min(case((at_or_above, ranked.c.v), else_=None)).over(partition_by=part).label("q"),
    ).subquery("abkit_marked")
    mpart = [marked.c[k] for k in keys]
    per_unit = (
        select(
            *mpart,
            func.min(marked.c.q).label("q"),
            to_double(func.count()).label("n_i"),
            to_double(func.sum(case((marked.c.v <= marked.c.q, 1), else_=0))).label("s_i"),
        )
        .group_by(*mpart, marked.c.unit_id)
        .subquery("abkit_unit_counts")
    )
    upart = [per_unit.c[k] for k in keys]
    n_i, s_i = per_unit.c.n_i, per_unit.c.s_i
    first_pass = (
        select(
            *upart,
            func.min(per_unit.c.q).label("q"),
            func.count().label("n"),
            func.sum(n_i).label("events"),
            func.sum(n_i * n_i).label("events_sq"),
            func.sum(s_i).label("below"),
            func.sum(s_i * s_i).label("below_sq"),
            func.sum(s_i * n_i).label("below_events"),
        )
        .group_by(*upart)
        .order_by(*upart)
    )
    arms: dict[tuple[Any, ...], Any] = {}
    for row in as_mappings(first_pass, runner.run(first_pass)):
        arms[_key_of(row, keys)] = QuantileStats(
            probability=probability,
            estimate=float(row["q"]),
            n=int(row["n"]),
            **{
                k: float(row[k])
                for k in ("events", "events_sq", "below", "below_sq", "below_events")
            },
        )
    ranks: dict[tuple[Any, ...], tuple[int, int]] = {}
    for key, stats in arms.items():
        try:
            ranks[key] = bracket_ranks(stats, alpha)
        except NotEnoughDataError:  # fewer than 2 units: no interval for this partition
            continue
    if not ranks:
        return arms
    second_pass = select(*part, ranked.c.rn, ranked.c.v).where(
        or_(
            *[
                and_(
                    *_key_matches(ranked, keys, key),
                    ranked.c.rn.in_([_p(lo, BigInteger()), _p(hi, BigInteger())]),
                )
                for key, (lo, hi) in ranks.items()
            ]
        )
    )
    found: dict[tuple[tuple[Any, ...], int], float] = {
        (_key_of(r, keys), int(r["rn"])): float(r["v"])
        for r in as_mappings(second_pass, runner.run(second_pass))
    }
    for key, (lo, hi) in ranks.items():
        arms[key] = with_bracket(
            arms[key], lower_value=found[(key, lo)], upper_value=found[(key, hi)], alpha=alpha
        )
    return arms


def quantile_daily_days(days: Sequence[int], limit: int = QUANTILE_DAILY_MAX_POINTS) -> list[int]:
    """The days of first exposure a quantile's cumulative daily series is computed for:
    every day when there are at most ``limit``, else ``limit`` evenly spaced ones (the
    first and the last included)."""
    ordered = sorted(set(days))
    if len(ordered) <= limit:
        return ordered
    step = (len(ordered) - 1) / (limit - 1)
    return sorted({ordered[round(j * step)] for j in range(limit)})


def quantile_stats(
    runner: QueryRunner,
    rel: Relations,
    scope: Scope,
    metric: Metric,
    probability: float,
    *,
    alpha: float = 0.05,
    segment: str | None = None,
) -> dict[Any, Any]:
    """Per arm (per ``(segment value, variant)`` when segmented) the
    :class:`~abkit.stats.quantile.QuantileStats` of the ``probability`` quantile of the
    metric's values (:func:`_scoped_values`: event values clustered by unit, or one value
    per unit), computed in the database (:func:`_quantile_passes`). Python receives a few
    rows per arm, never the events."""
    values = _scoped_values(rel, scope, metric, segment=segment)
    if segment is None:
        found = _quantile_passes(runner, values, ["variant"], probability, alpha)
        return {key[0]: s for key, s in found.items()}
    return _quantile_passes(runner, values, ["segment", "variant"], probability, alpha)


def quantile_daily(
    runner: QueryRunner,
    rel: Relations,
    scope: Scope,
    metric: Metric,
    probability: float,
    *,
    alpha: float = 0.05,
    limit: int = QUANTILE_DAILY_MAX_POINTS,
) -> dict[tuple[int, str], Any]:
    """The cumulative daily series of a quantile, ``{(day, variant): QuantileStats}``.

    A quantile is not additive, so each point is computed from scratch, in the database:
    the point of day ``d`` ranks the values of the units first exposed on or before ``d``
    (the cohort definition of every other metric's cumulative series). One statement lists
    the days of first exposure; :func:`quantile_daily_days` keeps at most ``limit``; the
    values are joined to those days (``day <= upto``) and :func:`_quantile_passes` runs
    once, partitioned by ``(upto, variant)``. Cost: two statements, which rank up to
    ``limit`` copies of the values (each point re-ranks its whole cumulative population).
    """
    # A CTE referenced twice (the days and the join), which SQLite (3.35+) and PostgreSQL
    # materialize once: inlined, SQLite re-reads the events for every day.
    values = select(_scoped_values(rel, scope, metric)).cte("abkit_values")
    listed = select(values.c.day).distinct()
    days = quantile_daily_days([int(r[0]) for r in runner.run(listed)], limit)
    if not days:
        return {}
    upto = (
        select(values.c.day.label("upto"))
        .where(values.c.day.in_([_p(d, BigInteger()) for d in days]))
        .distinct()
        .subquery("abkit_days")
    )
    cumulative = (
        select(upto.c.upto, values.c.variant, values.c.unit_id, values.c.v)
        .select_from(values.join(upto, values.c.day <= upto.c.upto))
        .subquery("abkit_cumulative")
    )
    found = _quantile_passes(runner, cumulative, ["upto", "variant"], probability, alpha)
    return {(int(key[0]), str(key[1])): s for key, s in found.items()}


def quantile_aggregates(
    runner: QueryRunner,
    rel: Relations,
    scope: Scope,
    metric: Metric,
    index: int,
    *,
    segment: str | None = None,
    daily: bool = True,
) -> tuple[dict[tuple[str | None, str], dict[str, Any]], list[DailyPoint]]:
    """Every quantile aggregate of metric ``index`` (what :func:`fetch_aggregates` merges):
    per ``(segment value or None, variant)`` the row ``{m{index}_{name}: QuantileStats}``,
    and, when ``daily`` and not segmented, the cumulative daily points
    (:func:`quantile_daily`). The series' last point ranks every unit, so it is the
    overall statistics: with the series, the overall passes are not run again."""
    rows: dict[tuple[str | None, str], dict[str, Any]] = {}
    points: list[DailyPoint] = []
    for name, aggregate in metric.kind_spec.arm_aggregates(metric, covariate=False).items():
        if not isinstance(aggregate, EventQuantile):
            continue
        found: dict[Any, Any]
        if daily and segment is None:
            series = quantile_daily(runner, rel, scope, metric, aggregate.probability)
            points += [
                DailyPoint(day=day, variant=variant, metric=metric.name, stats=stats)
                for (day, variant), stats in sorted(series.items())
            ]
            last = max((day for day, _ in series), default=None)
            found = {v: s for (day, v), s in series.items() if day == last}
        else:
            found = quantile_stats(
                runner, rel, scope, metric, aggregate.probability, segment=segment
            )
        for key, stats in found.items():
            seg, variant = (None, key) if segment is None else key
            rows.setdefault((seg, str(variant)), {})[_col(index, name)] = stats
    return rows, points
