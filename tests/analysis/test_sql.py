"""The analysis SQL on hand-computed data: windows, pre-period, caps, exclusions, segments.

Every expected number below is worked out by hand from the rows in ``_rows``; the same
query runs on SQLite, PostgreSQL and DuckDB.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select

from abkit.analysis import sql
from abkit.analysis.sources import store_relations
from abkit.metrics.definitions import mean, proportion, ratio
from abkit.metrics.library import builtin_metric
from abkit.stats.sufficient import MeanStats, RatioStats

from .conftest import DAY, HOUR, T0, fetch, store_for, write_rows

W = "7d"
METRICS = (
    proportion("conv", "purchase", window=W),
    mean("revenue", "purchase", window=W),
    mean("orders", "purchase", aggregate="count", window=W),
    ratio("aov", ("purchase", "sum"), ("purchase", "count"), window=W),
    proportion("repeat", "purchase", window=W, min_count=2),
    ratio("ctr", ("click", "count"), ("impression", "count"), window=W),
    builtin_metric("time_to_convert"),
    mean("revenue_cap25", "purchase", window=W, cap=25),
    mean("revenue_p50", "purchase", window=W, cap_percentile=50),
)


def _ex(eid, unit, variant, ts, experiment="exp"):
    return {
        "event_id": eid,
        "experiment": experiment,
        "unit_id": unit,
        "variant": variant,
        "ts_us": ts,
    }


def _ev(eid, unit, kind, ts, value=None):
    return {"event_id": eid, "unit_id": unit, "event_type": kind, "value": value, "ts_us": ts}


def _rows(experiment: str = "exp", purchase: str = "purchase"):
    ex = [
        _ex("xa1", "a", "control", T0 + 1 * HOUR, experiment),
        _ex("xa2", "a", "control", T0 + 5 * HOUR, experiment),  # repeat, same variant
        _ex("xb", "b", "control", T0 + 25 * HOUR, experiment),  # day 1
        _ex("xc", "c", "treatment", T0 + 3 * HOUR, experiment),
        _ex("xd1", "d", "treatment", T0 + 2 * HOUR, experiment),  # d: two variants
        _ex("xd2", "d", "control", T0 + 4 * HOUR, experiment),
        _ex("xe", "e", "treatment", T0 + 49 * HOUR, experiment),  # day 2
        _ex("xz", "z", "control", T0, "other-experiment"),
    ]
    ev = [
        _ev("a1", "a", purchase, T0 + 2 * HOUR, 10.0),
        _ev("a2", "a", purchase, T0 + 30 * HOUR, 30.0),
        _ev("a3", "a", purchase, T0 - 2 * HOUR, 5.0),  # pre-period
        _ev("a4", "a", purchase, T0 + 1 * HOUR + 8 * DAY, 100.0),  # after the window
        _ev("a5", "a", "click", T0 + 3 * HOUR),
        _ev("a6", "a", "impression", T0 + 2 * HOUR),
        _ev("a7", "a", "impression", T0 + 4 * HOUR),
        _ev("b1", "b", purchase, T0 + 20 * HOUR, 7.0),  # pre-period of b
        _ev("b2", "b", purchase, T0 + 25 * HOUR - 8 * DAY, 1000.0),  # before the lookback
        _ev("c1", "c", purchase, T0 + 3 * HOUR, 20.0),  # exactly at exposure: counts
        _ev("c2", "c", purchase, T0 + 3 * HOUR + 7 * DAY, 60.0),  # window end: excluded
        _ev("c3", "c", "impression", T0 + 4 * HOUR),
        _ev("d1", "d", purchase, T0 + 3 * HOUR, 999.0),  # contaminated unit
        _ev("e1", "e", purchase, T0 + 50 * HOUR, 50.0),
        _ev("e2", "e", purchase, T0 + 51 * HOUR, None),  # an order without a value
        _ev("n1", "nobody", purchase, T0 + 2 * HOUR, 1.0),  # never exposed
    ]
    attrs = [
        {"event_id": "xa1", "name": "platform", "value": "ios"},
        {"event_id": "xa2", "name": "platform", "value": "android"},  # not the first
        {"event_id": "xb", "name": "platform", "value": "web"},
        {"event_id": "xc", "name": "platform", "value": "ios"},
    ]
    return ex, ev, attrs


@pytest.fixture
def loaded(any_url):
    store = store_for(any_url)
    write_rows(store, *_rows())
    return store


def _fetch(store, experiment="exp", metrics=METRICS, **kwargs):
    return fetch(store, experiment, metrics, **kwargs)


def test_per_arm_sums_match_hand_computation(loaded):
    agg = _fetch(loaded)[None]
    assert agg.units == {"control": 2, "treatment": 2}
    m = {name: {v: s.stats for v, s in arms.items()} for name, arms in agg.metrics.items()}
    # conversion: a converts (x: a bought pre-period, b bought pre-period), b does not
    assert m["conv"]["control"] == MeanStats(2, 1.0, 1.0, 2.0, 2.0, 1.0)
    assert m["conv"]["treatment"] == MeanStats(2, 2.0, 2.0, 0.0, 0.0, 0.0)
    # revenue: a 10+30 (x 5), b 0 (x 7); c 20, e 50 + NULL
    assert m["revenue"]["control"] == MeanStats(2, 40.0, 1600.0, 12.0, 74.0, 200.0)
    assert m["revenue"]["treatment"] == MeanStats(2, 70.0, 2900.0, 0.0, 0.0, 0.0)
    assert m["orders"]["control"] == MeanStats(2, 2.0, 4.0, 2.0, 2.0, 2.0)
    assert m["orders"]["treatment"] == MeanStats(2, 3.0, 5.0, 0.0, 0.0, 0.0)
    assert m["aov"]["control"] == RatioStats(2, 40.0, 1600.0, 2.0, 4.0, 80.0)
    assert m["aov"]["treatment"] == RatioStats(2, 70.0, 2900.0, 3.0, 5.0, 120.0)
    assert m["repeat"]["control"].sum == 1.0 and m["repeat"]["treatment"].sum == 1.0
    assert m["ctr"]["control"] == RatioStats(2, 1.0, 1.0, 2.0, 4.0, 2.0)
    assert m["ctr"]["treatment"] == RatioStats(2, 0.0, 0.0, 1.0, 1.0, 0.0)
    # time to convert: a 1 h, c 0 h (purchase at exposure), e 1 h
    assert m["time_to_convert"]["control"] == RatioStats(2, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert m["time_to_convert"]["treatment"] == RatioStats(2, 1.0, 1.0, 2.0, 2.0, 1.0)
    # absolute cap 25: a 40 -> 25, e 50 -> 25; the covariate is capped the same way
    assert m["revenue_cap25"]["control"] == MeanStats(2, 25.0, 625.0, 12.0, 74.0, 125.0)
    assert m["revenue_cap25"]["treatment"] == MeanStats(2, 45.0, 1025.0, 0.0, 0.0, 0.0)
    # nearest-rank p50 of the non-zero values {20, 40, 50} is 40
    assert agg.caps == {"revenue_p50": 40.0}
    assert m["revenue_p50"]["treatment"] == MeanStats(2, 60.0, 2000.0, 0.0, 0.0, 0.0)


def test_events_outside_the_window_are_counted(loaded):
    agg = _fetch(loaded)[None]
    rev = agg.metrics["revenue"]
    # control: a3, b1, b2 before exposure; a4 after the window. treatment: c2 at the end.
    assert (rev["control"].events_before_exposure, rev["control"].events_after_window) == (3, 1)
    assert (rev["treatment"].events_before_exposure, rev["treatment"].events_after_window) == (0, 1)
    ctr = agg.metrics["ctr"]
    assert ctr["control"].events_after_window == 0


def test_daily_series_is_cumulative_by_day_of_first_exposure(loaded):
    agg = _fetch(loaded)[None]
    conv = sorted(
        (p.day - T0 // DAY, p.variant, p.stats.n, p.stats.sum)
        for p in agg.daily
        if p.metric == "conv"
    )
    assert conv == [
        (0, "control", 1, 1.0),
        (0, "treatment", 1, 1.0),
        (1, "control", 2, 1.0),
        (2, "treatment", 2, 2.0),
    ]


def test_contamination_is_counted(loaded):
    agg = _fetch(loaded)[None]
    # d's smallest variant name is "control": it is counted there, and excluded
    assert agg.contaminated == {"control": 1}
    assert agg.units == {"control": 2, "treatment": 2}
    assert (agg.first_us, agg.last_us) == (T0 + HOUR, T0 + 49 * HOUR)


def test_segments_use_the_first_exposure_attribute(loaded):
    parts = _fetch(loaded, segment="platform", daily=False)
    assert set(parts) == {"ios", "web", sql.MISSING_SEGMENT}
    assert parts["ios"].units == {"control": 1, "treatment": 1}  # a (not android), c
    assert parts["web"].units == {"control": 1}
    assert parts[sql.MISSING_SEGMENT].units == {"treatment": 1}  # e has no attribute
    assert parts["ios"].metrics["revenue"]["control"].stats.sum == 40.0


def test_experiment_end_cuts_exposures_and_events(loaded):
    agg = _fetch(loaded, end_us=T0 + 26 * HOUR)[None]
    assert agg.units == {"control": 2, "treatment": 1}  # e (T0+49h) is after the end
    rev = agg.metrics["revenue"]
    assert rev["control"].stats.sum == 10.0  # a's purchase at T0+30h is after the end
    assert rev["control"].events_after_window == 2


def test_hostile_names_are_data_not_sql(any_url):
    store = store_for(any_url)
    key = "x'; DROP TABLE abkit_events; --"
    kind = 'purchase"); DELETE FROM abkit_exposures; --'
    write_rows(store, *_rows(experiment=key, purchase=kind))
    metric = mean("rev'; DROP TABLE abkit_exposures; --", kind, window=W, cap_percentile=50)
    with store.engine.connect() as conn:
        stmt = sql.aggregates_query(store_relations(store.tables), sql.Scope(key), [metric])
        compiled = str(stmt.compile(conn))
    agg = fetch(store, key, [metric])[None]
    assert "DROP" not in compiled and "DELETE" not in compiled  # values travel as parameters
    assert agg.units == {"control": 2, "treatment": 2}
    assert agg.metrics[metric.name]["control"].stats.sum == 40.0
    names = set(inspect(store.engine).get_table_names())
    assert {"abkit_events", "abkit_exposures"} <= names
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.tables.events)).scalar() == 16


@pytest.mark.parametrize("probability", [0.5, 0.95])
def test_quantile_passes_equal_the_python_reference(any_url, probability):
    """Clustered events (units with 1 to 6 events): the three database passes give the
    QuantileStats of abkit.stats.quantile's reference, on every dialect."""
    import numpy as np

    from abkit.analysis.runner import SQLAlchemyRunner
    from abkit.stats.quantile import quantile_stats_from_events

    rng = np.random.default_rng(8)
    ex, ev, truth = [], [], {"control": ([], []), "treatment": ([], [])}
    for i in range(120):
        variant = "control" if i % 2 else "treatment"
        unit = f"u{i}"
        ex.append(_ex(f"x{i}", unit, variant, T0 + i))
        for j in range(int(rng.integers(1, 7))):
            value = float(np.round(rng.lognormal(3.0, 0.5), 3))
            ev.append(_ev(f"e{i}-{j}", unit, "request", T0 + i + j + 1, value))
            truth[variant][0].append(value)
            truth[variant][1].append(unit)
        ev.append(_ev(f"n{i}", unit, "request", T0 + i + 50))  # no value: not counted
    ev.append(_ev("late", "u0", "request", T0 + 30 * DAY, 1e9))  # outside the 7-day window
    store = store_for(any_url)
    write_rows(store, ex, ev)
    metric = mean("latency", "request", window=W)
    with store.engine.connect() as conn:
        got = sql.quantile_stats(
            SQLAlchemyRunner(conn),
            store_relations(store.tables),
            sql.Scope("exp"),
            metric,
            probability,
        )
    for variant, (values, units) in truth.items():
        assert got[variant] == quantile_stats_from_events(values, units, probability)


@pytest.mark.parametrize("segment", [None, "platform"])
def test_every_unit_grouping_gives_the_same_sums(loaded, segment):
    """Stage 3's groupings (sql.UnitGrouping) are plans of one result: each one the engine
    accepts (bare columns only where UNIT_GROUPING chooses them) gives the same rows."""
    from typing import get_args

    dialect = loaded.engine.dialect.name
    scope = sql.Scope("exp")
    rel = store_relations(loaded.tables)
    found = {}
    for grouping in get_args(sql.UnitGrouping):
        if grouping == "bare" and sql.UNIT_GROUPING.get(dialect) != "bare":
            continue
        statement = sql.aggregates_query(rel, scope, METRICS, segment=segment, grouping=grouping)
        with loaded.engine.connect() as conn:
            found[grouping] = [dict(r) for r in conn.execute(statement).mappings()]
    assert len(found) == (3 if dialect == "sqlite" else 2)
    reference = found.pop("all")
    assert len(reference) >= 3  # several (variant, day, single[, segment]) groups
    for grouping, rows in found.items():
        assert rows == reference, grouping  # small exact values: any summing order agrees
