"""Incremental refresh equals a full analysis; what must rebuild does (abkit.analysis.incremental)."""

from __future__ import annotations

import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    Table,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)

from abkit.analysis.analyze import analyze
from abkit.analysis.incremental import _tail_percentile
from abkit.assignment.hashing import event_id
from abkit.errors import ConfigError, NotEnoughDataError, StoreError
from abkit.ingest.validate import EXPOSURE_COLUMNS
from abkit.metrics import mean
from abkit.simulate import TrueEffect, simulate_experiment
from abkit.stats.outliers import nearest_rank_percentile
from abkit.store.store import Store, open_store
from abkit.testing.arrivals import (
    DAY_US,
    EVENT_COLUMNS,
    HOUR_US,
    Batch,
    random_batches,
    simulation_rows,
    timely_batches,
)
from abkit.testing.compare import assert_same_readout, leaves
from abkit.timeutil import from_us

SIM = simulate_experiment(
    300,
    effects=TrueEffect(conversion_lift=0.2, guardrail_effect=0.1),
    multiple_exposure_rate=0.05,
    repeat_exposures=0.5,
    seed=11,
)
KEY = SIM.experiment.key
# a percentile cap (nearest rank over the cache) and a CUPED covariate on every kind
METRICS = [m.with_(cap_percentile=95.0) if m.name == "revenue_per_user" else m for m in SIM.metrics]

EXPOSURES, EVENTS = simulation_rows(SIM)


def _write(store: Store, batch: int, exposures: list[Any], events: list[Any]) -> None:
    """One batch, deduplicated by event id like the ingest (a resent row is a duplicate)."""
    with store.write() as conn:
        for table, columns, rows in (
            (store.tables.exposures, EXPOSURE_COLUMNS, exposures),
            (store.tables.events, EVENT_COLUMNS, events),
        ):
            seen: dict[str, tuple[Any, ...]] = {}
            for row in rows:
                seen.setdefault(row[0], (*row, batch))
            if seen:
                store.insert_new(conn, table, columns, list(seen.values()))


def _assert_same(incremental: Any, full: Any) -> None:
    """Every leaf of ``to_dict()`` equal to 1e-9 (the refresh note aside)."""
    want = full.to_dict()
    assert len(dict(leaves(want))) > 300
    assert_same_readout(incremental.to_dict(), want, ignore={"refresh"}, rel=1e-9, abs_=1e-12)


def _replay(
    store: Store,
    batches: list[tuple[list[Any], list[Any]]],
    *,
    lookback: timedelta | None,
) -> list[str]:
    """Write the batches one by one, refreshing after each; every readout equals the full
    analysis. Returns the refresh notes."""
    store.register_experiments([SIM.experiment])
    notes = []
    for number, (exposures, events) in enumerate(batches, start=1):
        _write(store, number, exposures, events)
        with store.engine.connect() as conn:
            if conn.execute(select(store.tables.exposures.c.unit_id).limit(1)).first() is None:
                continue  # no exposure yet: nothing to analyse
        try:
            full = analyze(store, KEY, METRICS)
        except NotEnoughDataError:  # too few units yet (a ratio's denominator is zero)
            with pytest.raises(NotEnoughDataError):
                analyze(store, KEY, METRICS, refresh="auto", refresh_lookback=lookback)
            continue
        inc = analyze(store, KEY, METRICS, refresh="auto", refresh_lookback=lookback)
        _assert_same(inc, full)
        notes.append(inc.experiment.refresh)
    return notes


def _random_batches(seed: int, n: int, duplicates: float) -> list[Batch]:
    return random_batches(EXPOSURES, EVENTS, seed, n, duplicates)


def _timely_batches(seed: int, n: int, delay_hours: float) -> list[Batch]:
    return timely_batches(EXPOSURES, EVENTS, seed, n, delay_hours)


# ------------------------------------------------------------------- properties
@settings(max_examples=5)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 5),
    duplicates=st.sampled_from([0.0, 0.05, 0.3]),
)
def test_any_arrival_order_gives_the_full_analysis_sqlite(seed, n, duplicates):
    """Random arrival orders (exposures after their events, events weeks late) and resent
    rows: with no lookback bound every refresh merges, and equals the full analysis."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'abkit.db'}")
        try:
            notes = _replay(store, _random_batches(seed, n, duplicates), lookback=None)
        finally:
            store.close()
    assert notes[0].startswith(("full rebuild: no cache yet", "incremental ("))
    assert all(note.startswith("incremental (") for note in notes[1:]), notes


@settings(max_examples=4)
@given(seed=st.integers(0, 2**16), n=st.integers(3, 8), delay=st.sampled_from([1.0, 30.0]))
def test_late_events_within_the_lookback_merge_sqlite(seed, n, delay):
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'abkit.db'}")
        try:
            notes = _replay(store, _timely_batches(seed, n, delay), lookback=timedelta(hours=48))
        finally:
            store.close()
    assert all(note.startswith("incremental (") for note in notes[1:]), notes


def test_every_engine_merges_to_the_full_analysis(any_url):
    store = open_store(any_url)
    try:
        notes = _replay(store, _random_batches(5, 4, 0.1), lookback=None)
        timely = _timely_batches(6, 4, 30.0)
    finally:
        store.close()
    assert [n.split(" ")[0] for n in notes] == ["full", "incremental", "incremental", "incremental"]
    assert timely  # the time-sliced arrival is exercised on SQLite by the property above


# ------------------------------------------------------------------ rebuilds
@pytest.fixture
def loaded(sqlite_url):
    """A store with the first half of the batches analysed (cache built)."""
    store = open_store(sqlite_url)
    store.register_experiments([SIM.experiment])
    batches = _timely_batches(3, 4, 1.0)
    for number, (ex, ev) in enumerate(batches[:2], start=1):
        _write(store, number, ex, ev)
    first = analyze(store, KEY, METRICS, refresh="auto")
    assert first.experiment.refresh == "full rebuild: no cache yet for this experiment"
    yield store, batches
    store.close()


def test_events_later_than_the_lookback_rebuild(loaded):
    store, batches = loaded
    ex, ev = batches[2]
    oldest = min(r[4] for r in EVENTS)
    late = [(f"late/{i}", r[1], r[2], r[3], oldest, r[5]) for i, r in enumerate(EVENTS[:3])]
    _write(store, 3, ex, ev + late)
    result = analyze(store, KEY, METRICS, refresh="auto")
    assert result.experiment.refresh.startswith(
        "full rebuild: 3 events arrived more than 48 h late"
    )
    _assert_same(result, analyze(store, KEY, METRICS))
    # the same lateness with an unbounded lookback merges
    _write(store, 4, [], [(f"later/{i}", *r[1:]) for i, r in enumerate(late)])
    merged = analyze(store, KEY, METRICS, refresh="auto", refresh_lookback=None)
    assert merged.experiment.refresh.startswith("incremental (3 new events")
    _assert_same(merged, analyze(store, KEY, METRICS))


def test_only_units_whose_exposures_moved_are_recomputed(loaded):
    """A repeated exposure (later, same variant) merges like new events; an earlier first
    exposure, a second variant and a new unit recompute their unit."""
    store, _ = loaded
    with store.engine.connect() as conn:
        t = store.tables.exposures
        first = {
            u: (v, ts)
            for u, v, ts in conn.execute(
                select(t.c.unit_id, func.min(t.c.variant), func.min(t.c.ts_us))
                .where(t.c.experiment == KEY)
                .group_by(t.c.unit_id)
                .having(func.count(func.distinct(t.c.variant)) == 1)
                .order_by(t.c.unit_id)
                .limit(3)
            ).all()
        }
    (a, (va, ta)), (b, (vb, tb)), (c, (vc, tc)) = first.items()
    other = next(v for v in SIM.experiment.variant_names if v != vb)

    def exposure(unit: str, variant: str, ts: int) -> tuple[Any, ...]:
        return (event_id(KEY, unit, variant, ts), KEY, unit, variant, ts, "0" * 32)

    def purchase(unit: str, ts: int) -> tuple[Any, ...]:
        return (f"{unit}/extra/{ts}", unit, "purchase", 12.5, ts, "0" * 32)

    _write(store, 10, [exposure(a, va, ta + HOUR_US)], [purchase(a, ta + 2 * HOUR_US)])
    # events of any age merge (the lookback is not what this test is about)
    repeat = analyze(store, KEY, METRICS, refresh="incremental", refresh_lookback=None)
    assert repeat.experiment.refresh.startswith("incremental (1 new events, 1 new exposures")
    assert repeat.experiment.refresh.endswith("; 0 units recomputed)")
    _assert_same(repeat, analyze(store, KEY, METRICS))

    _write(
        store,
        11,
        [
            exposure(a, va, ta - HOUR_US),
            exposure(b, other, tb + HOUR_US),
            exposure("new-unit", vc, tc),
        ],
        [purchase(c, tc + HOUR_US), purchase("new-unit", tc + HOUR_US)],
    )
    moved = analyze(store, KEY, METRICS, refresh="incremental", refresh_lookback=None)
    assert moved.experiment.refresh.endswith("; 3 units recomputed)")
    _assert_same(moved, analyze(store, KEY, METRICS))


def test_late_covariate_events_merge(loaded):
    """A prediction covariate's scores (CUPAC) arriving after their units were cached merge
    like the metrics' own events: the full analysis reads the covariates' event types too."""
    store, _ = loaded
    scored = [
        *METRICS,
        mean("revenue_scored", "purchase", window="7d", covariates=("prediction:revenue_model",)),
    ]
    assert analyze(store, KEY, scored, refresh="auto").experiment.refresh.startswith("full")
    first: dict[str, int] = {}
    for row in EXPOSURES:
        first[row[2]] = min(first.get(row[2], row[4]), row[4])
    scores = [
        (f"score/{unit}", unit, "revenue_model", float(sum(map(ord, unit)) % 13), ts - DAY_US, "0")
        for unit, ts in sorted(first.items())
    ]
    _write(store, 3, [], scores)
    # scores are stamped before exposure by design: their time is no lateness (the default
    # 48 h lookback does not rebuild for them)
    merged = analyze(store, KEY, scored, refresh="incremental")
    assert merged.experiment.refresh.startswith(f"incremental ({len(scores):,} new events")
    _assert_same(merged, analyze(store, KEY, scored))


def test_a_metric_change_rebuilds_and_incremental_refuses(loaded):
    store, _ = loaded
    changed = [
        m.with_(window_us=3 * 24 * HOUR_US) if m.name == "conversion_rate" else m for m in METRICS
    ]
    with pytest.raises(StoreError, match="definitions, windows or readout scope changed"):
        analyze(store, KEY, changed, refresh="incremental")
    result = analyze(store, KEY, changed, refresh="auto")
    assert result.experiment.refresh.startswith("full rebuild: the metrics' definitions")
    _assert_same(result, analyze(store, KEY, changed))
    # a cap is computed from the cached values: changing it needs no rebuild
    capped = [m.with_(cap_percentile=90.0) if m.cap_percentile else m for m in changed]
    again = analyze(store, KEY, capped, refresh="incremental")
    assert again.experiment.refresh.startswith("incremental (0 new events")
    _assert_same(again, analyze(store, KEY, capped))


def test_deleted_rows_and_full_requests_rebuild(loaded):
    store, _ = loaded
    t = store.tables
    with store.write() as conn:
        conn.execute(delete(t.events).where(t.events.c.event_id == EVENTS[0][0]))
    result = analyze(store, KEY, METRICS, refresh="auto")
    assert result.experiment.refresh.startswith("full rebuild: rows at or below the watermark")
    _assert_same(result, analyze(store, KEY, METRICS))
    forced = analyze(store, KEY, METRICS, refresh="full")
    assert forced.experiment.refresh == "full rebuild: requested (refresh='full')"
    with pytest.raises(ConfigError, match="refresh must be one of"):
        analyze(store, KEY, METRICS, refresh="sometimes")  # type: ignore[arg-type]


def test_rows_of_a_running_batch_wait_for_its_commit(loaded):
    store, batches = loaded
    b = store.tables.ingest_batches
    with store.write() as conn:
        conn.execute(
            insert(b).values(
                id=3, source="s", kind="events", status="running", started_at_us=_now()
            )
        )
    _write(store, 3, *batches[2])
    _write(store, 4, *batches[3])  # committed, but after the running batch 3
    waiting = analyze(store, KEY, METRICS, refresh="auto")
    assert waiting.experiment.refresh.startswith("incremental (0 new events, 0 new exposures")
    with store.write() as conn:
        conn.execute(update(b).where(b.c.id == 3).values(status="committed"))
    done = analyze(store, KEY, METRICS, refresh="auto")
    assert done.experiment.refresh.startswith("incremental (") and "0 new events" not in (
        done.experiment.refresh
    )
    _assert_same(done, analyze(store, KEY, METRICS))


def test_as_of_readouts_before_the_data_are_full_analyses(loaded):
    store, _ = loaded
    until = from_us(min(r[4] for r in EXPOSURES) + 72 * HOUR_US)
    result = analyze(store, KEY, METRICS, refresh="auto", until=until)
    assert result.experiment.refresh.startswith("full analysis: an as-of readout")
    assert result.experiment.refresh.endswith("(not refreshed)")
    _assert_same(result, analyze(store, KEY, METRICS, until=until))
    later = analyze(store, KEY, METRICS, refresh="auto", until="2100-01-01")
    assert later.experiment.refresh.startswith("incremental (")
    _assert_same(later, analyze(store, KEY, METRICS, until="2100-01-01"))


def test_concurrent_refreshes_leave_a_consistent_cache(loaded):
    store, batches = loaded
    _write(store, 3, *batches[2])
    results: list[Any] = []
    errors: list[BaseException] = []

    url = str(store.engine.url)

    def run() -> None:  # each thread opens its own store, as separate processes would
        try:
            results.append(analyze(url, KEY, METRICS, refresh="auto"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 3
    notes = sorted(r.experiment.refresh for r in results)
    assert sum(n.startswith("incremental (0 new events") for n in notes) == 2, notes
    full = analyze(store, KEY, METRICS)
    for result in results:
        _assert_same(result, full)


def _now() -> int:
    from abkit.timeutil import now_us

    return now_us()


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.just(0.0), st.sampled_from([-2.5, 1.0, 7.0]), st.floats(-1e6, 1e6)),
        max_size=40,
    ),
    percent=st.floats(0.01, 99.99),
)
def test_the_cap_read_from_the_index_is_the_nearest_rank_percentile(values, percent):
    """A readout's cap comes from the tail column's index (counts, then a walk from the
    top): the same order statistic as the statement's nearest rank, with zeros left out,
    ties, and values on both sides of zero."""
    engine = create_engine("sqlite://")
    table = Table(
        "t",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("v", Double),
        Index("t_v", "v"),
    )
    with engine.begin() as conn:
        table.create(conn)
        if values:
            conn.execute(insert(table), [{"v": v} for v in values])
        assert _tail_percentile(conn, table.c.v, percent) == nearest_rank_percentile(
            values, percent
        )


# ------------------------------------------------------------------- whales
def _whale(unit: str, value: float, ts_us: int) -> tuple[Any, ...]:
    return (f"whale-{unit}", unit, "purchase", value, ts_us, "0" * 32)


def test_a_whale_above_the_cap_leaves_the_readout_exact(any_url):
    # the rollup holds uncapped sums: taking a 1e9 purchase's v² (1e18) back out for the
    # capped readout would leave rounding errors of ~100 in what remains of sum_sq
    store = open_store(any_url)
    store.register_experiments([SIM.experiment])
    first = EXPOSURES[0]
    _write(store, 1, EXPOSURES, [*EVENTS, _whale(first[2], 1e9, first[4] + HOUR_US)])
    _assert_same(analyze(store, KEY, METRICS, refresh="auto"), analyze(store, KEY, METRICS))
    store.close()


def test_a_whale_that_moves_group_leaves_the_rollup_exact(any_url):
    # no cap: a unit with a 1e8 purchase is later exposed to the other variant too, and
    # the merge takes its sums out of its old (variant, day) group of the rollup
    metrics = list(SIM.metrics)
    store = open_store(any_url)
    store.register_experiments([SIM.experiment])
    # a unit exposed once, on the busiest day: its group has other units' sums to lose
    exposures_of: dict[str, list[Any]] = {}
    for row in EXPOSURES:
        exposures_of.setdefault(row[2], []).append(row)
    days = [row[4] // DAY_US for row in EXPOSURES]
    busiest = max(set(days), key=days.count)
    _, _, unit, variant, ts_us, *_ = next(
        rows[0]
        for rows in exposures_of.values()
        if len(rows) == 1 and rows[0][4] // DAY_US == busiest
    )
    _write(store, 1, EXPOSURES, [*EVENTS, _whale(unit, 1e9, ts_us + HOUR_US)])
    _assert_same(analyze(store, KEY, metrics, refresh="auto"), analyze(store, KEY, metrics))
    other = next(v for v in SIM.experiment.variant_names if v != variant)
    moved = (f"moved-{unit}", KEY, unit, other, ts_us + 2 * HOUR_US, "0" * 32)
    _write(store, 2, [moved], [])
    incremental = analyze(store, KEY, metrics, refresh="auto")
    assert incremental.experiment.refresh.startswith("incremental")
    _assert_same(incremental, analyze(store, KEY, metrics))
    store.close()


def test_a_readout_during_an_ingest_reads_one_snapshot_segments_included(sqlite_url):
    # the cache stops below a batch still being ingested: the segments must too, or one
    # result mixes two snapshots
    from abkit.ingest.ingestor import ingest

    sim = simulate_experiment(400, seed=5)
    key, metrics = sim.experiment.key, list(sim.metrics)
    store = open_store(sqlite_url)
    store.register_experiments([sim.experiment])
    exposures = sim.exposures[["unit_id", "experiment", "variant", "timestamp", "country"]]
    events = sim.events[["unit_id", "event_type", "value", "timestamp"]].sort_values("timestamp")
    half = len(events) // 2
    ingest(exposures, db=store, kind="exposures", source_name="exposures")
    ingest(events.iloc[:half], db=store, kind="events", source_name="first half")
    before = analyze(store, key, metrics, segments=["country"])
    during: dict[str, Any] = {}

    def look(progress: Any) -> None:
        if not progress.done and progress.committed >= 300 and not during:
            during["readout"] = analyze(store, key, metrics, refresh="auto", segments=["country"])

    ingest(
        events.iloc[half:],
        db=store,
        kind="events",
        source_name="second half",
        chunk_size=100,
        progress=look,
    )
    readout = during["readout"]
    assert "wait for their ingest to finish" in readout.experiment.refresh
    _assert_same(readout, before)
    store.close()
