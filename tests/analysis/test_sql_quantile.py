"""Quantile metrics in SQL: per-unit values, segment values and the cumulative daily series.

Each test computes the same :class:`~abkit.stats.quantile.QuantileStats` from the raw rows
with :func:`abkit.stats.quantile.quantile_stats_from_events` (the reference) and asks the
database passes of :mod:`abkit.analysis.sql` for them, on SQLite, PostgreSQL and DuckDB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from abkit.analysis import sql
from abkit.analysis.runner import SQLAlchemyRunner
from abkit.analysis.sources import store_relations
from abkit.metrics.definitions import quantile
from abkit.stats.quantile import quantile_stats_from_events

from .conftest import DAY, HOUR, T0, store_for, write_rows

W = "7d"
PLATFORMS = ("ios", "android", "web", None)  # None: the unit's exposure has no attribute


def _ex(eid: str, unit: str, variant: str, ts: int) -> dict[str, Any]:
    return {"event_id": eid, "experiment": "exp", "unit_id": unit, "variant": variant, "ts_us": ts}


def _ev(eid: str, unit: str, kind: str, ts: int, value: float | None = None) -> dict[str, Any]:
    return {"event_id": eid, "unit_id": unit, "event_type": kind, "value": value, "ts_us": ts}


def _data(n_units: int = 160, seed: int = 4) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Units first exposed over 4 days, with 0 to 5 requests (latency) and 0 to 2 purchases;
    one unit is contaminated; some events fall outside the 7-day window."""
    rng = np.random.default_rng(seed)
    ex, ev, attrs, units = [], [], [], []
    for i in range(n_units):
        unit, variant = f"u{i}", ("control", "treatment")[(i // 4) % 2]
        first = T0 + (i % 4) * DAY + i * 60_000_000
        platform = PLATFORMS[i % 7 % 4]
        ex.append(_ex(f"x{i}", unit, variant, first))
        if platform is not None:
            attrs.append({"event_id": f"x{i}", "name": "platform", "value": platform})
        latencies = [float(np.round(rng.lognormal(5.0, 0.6), 2)) for _ in range(rng.integers(0, 6))]
        purchases = [float(np.round(rng.lognormal(3.5, 0.8), 2)) for _ in range(rng.integers(0, 3))]
        for j, v in enumerate(latencies):
            ev.append(_ev(f"r{i}-{j}", unit, "request", first + (j + 1) * HOUR, v))
        for j, v in enumerate(purchases):
            ev.append(_ev(f"p{i}-{j}", unit, "purchase", first + (j + 2) * HOUR, v))
        ev.append(_ev(f"late{i}", unit, "request", first + 8 * DAY, 1e6))  # outside the window
        ev.append(_ev(f"late-p{i}", unit, "purchase", first + 8 * DAY, 1e6))
        units.append((unit, variant, i % 4, platform or sql.MISSING_SEGMENT, latencies, purchases))
    # a unit seen in both arms is excluded from every arm
    ex += [_ex("xc1", "both", "control", T0), _ex("xc2", "both", "treatment", T0 + HOUR)]
    ev.append(_ev("rc", "both", "request", T0 + 2 * HOUR, 1e5))
    return ex, ev, attrs, units


def _reference(units: list[Any], p: float, *, per_unit: bool, keep: Any) -> dict[Any, Any]:
    """QuantileStats per key from the raw rows: ``keep(unit row)`` gives the key (or None)."""
    values: dict[Any, tuple[list[float], list[str]]] = {}
    for row in units:
        key = keep(row)
        if key is None:
            continue
        vs, us = values.setdefault(key, ([], []))
        unit, latencies, purchases = row[0], row[4], row[5]
        if per_unit:
            vs.append(float(sum(purchases)))  # revenue in the window, 0 without a purchase
            us.append(unit)
        else:
            vs += latencies
            us += [unit] * len(latencies)
    return {k: quantile_stats_from_events(v, u, p) for k, (v, u) in values.items() if v}


def _loaded(url: str) -> tuple[Any, list[Any]]:
    ex, ev, attrs, units = _data()
    store = store_for(url)
    write_rows(store, ex, ev, attrs)
    return store, units


P95_LATENCY = quantile("p95_latency", "request", 0.95, window=W)


def _p90_revenue():
    """p90 of revenue per user (one value per unit)."""
    return quantile(
        "p90_revenue", "purchase", 0.9, of="unit", aggregate="sum", window=W, direction="higher"
    )


def _run(store: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with store.engine.connect() as conn:
        return fn(
            SQLAlchemyRunner(conn), store_relations(store.tables), sql.Scope("exp"), *args, **kwargs
        )


@pytest.mark.parametrize("probability", [0.5, 0.9])
def test_per_unit_quantile_equals_the_reference(any_url, probability):
    """One value per unit, computed in the database (units without a purchase count as
    0), then ranked: the classical distribution-free interval's statistics."""
    store, units = _loaded(any_url)
    metric = _p90_revenue().with_(probability=probability)
    got = _run(store, sql.quantile_stats, metric, probability)
    want = _reference(units, probability, per_unit=True, keep=lambda r: r[1])
    assert set(got) == {"control", "treatment"}
    for variant in got:
        assert got[variant] == want[variant]
        assert got[variant].n == got[variant].events == 80  # every unit, one value each


@pytest.mark.parametrize("per_unit", [False, True])
def test_segment_values_get_their_own_order_statistics(any_url, per_unit):
    store, units = _loaded(any_url)
    metric = _p90_revenue() if per_unit else P95_LATENCY
    p = metric.probability
    got = _run(store, sql.quantile_stats, metric, p, segment="platform")
    want = _reference(units, p, per_unit=per_unit, keep=lambda r: (r[3], r[1]))
    assert set(got) == set(want)
    assert {seg for seg, _ in got} == {"ios", "android", "web", sql.MISSING_SEGMENT}
    for key, stats in want.items():
        assert got[key] == stats, key


@pytest.mark.parametrize("per_unit", [False, True])
def test_daily_series_is_recomputed_per_cumulative_day(any_url, per_unit):
    """The point of day d ranks the values of units first exposed on or before d."""
    store, units = _loaded(any_url)
    metric = _p90_revenue() if per_unit else P95_LATENCY
    p = metric.probability
    got = _run(store, sql.quantile_daily, metric, p)
    first_day = T0 // DAY
    assert sorted({d for d, _ in got}) == [first_day + k for k in range(4)]
    for k in range(4):
        want = _reference(
            units, p, per_unit=per_unit, keep=lambda r, k=k: r[1] if r[2] <= k else None
        )
        for variant, stats in want.items():
            assert got[(first_day + k, variant)] == stats, (k, variant)


def test_daily_points_are_bounded(any_url):
    store, units = _loaded(any_url)
    got = _run(store, sql.quantile_daily, P95_LATENCY, 0.95, limit=2)
    first_day = T0 // DAY
    assert sorted({d for d, _ in got}) == [first_day, first_day + 3]  # first and last
    want = _reference(units, 0.95, per_unit=False, keep=lambda r: r[1])
    assert got[(first_day + 3, "treatment")] == want["treatment"]


def test_daily_days_keep_the_first_and_the_last():
    assert sql.quantile_daily_days([5, 1, 3, 3]) == [1, 3, 5]
    days = sql.quantile_daily_days(range(100), limit=31)
    assert len(days) == 31 and days[0] == 0 and days[-1] == 99
    assert max(np.diff(days)) <= 4


def test_aggregates_carry_quantile_segments_and_daily_points(any_url):
    """What fetch_aggregates merges: rows per (segment value, variant) and daily points."""
    store, units = _loaded(any_url)
    rows, points = _run(store, sql.quantile_aggregates, P95_LATENCY, 3, segment="platform")
    assert points == []  # no daily series per segment value
    want = _reference(units, 0.95, per_unit=False, keep=lambda r: (r[3], r[1]))
    assert rows[("web", "control")] == {"m3_quantile": want[("web", "control")]}
    rows, points = _run(store, sql.quantile_aggregates, P95_LATENCY, 0)
    overall = _reference(units, 0.95, per_unit=False, keep=lambda r: r[1])
    # the series' last point is the overall statistics (not computed twice)
    assert rows == {(None, v): {"m0_quantile": overall[v]} for v in ("control", "treatment")}
    assert _run(store, sql.quantile_aggregates, P95_LATENCY, 0, daily=False) == (rows, [])
    assert len(points) == 8 and {p.metric for p in points} == {"p95_latency"}
