"""Incremental refresh on Spark equals Spark's full analysis; what must rebuild does, and an
interrupted refresh leaves the previous version (abkit.engines.spark_cache)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from abkit.analysis.analyze import analyze
from abkit.engines.spark import SparkRunner, register_view
from abkit.engines.spark_cache import cache_folder, read_manifest
from abkit.errors import StoreError
from abkit.ingest.validate import EXPOSURE_COLUMNS
from abkit.metrics import mean
from abkit.simulate import TrueEffect, simulate_experiment
from abkit.store.schema import build_tables
from abkit.testing.arrivals import (
    DAY_US,
    EVENT_COLUMNS,
    Batch,
    deduplicated,
    random_batches,
    simulation_rows,
    timely_batches,
)
from abkit.testing.compare import assert_same_readout, leaves
from abkit.timeutil import from_us

# one xdist worker runs every Spark test (make test: --dist loadgroup): one cluster, and the
# Connect test, which stops the classic session, after the others (conftest)
pytestmark = pytest.mark.xdist_group("spark")

SIM = simulate_experiment(
    240,
    effects=TrueEffect(conversion_lift=0.2, guardrail_effect=0.1),
    multiple_exposure_rate=0.05,
    repeat_exposures=0.5,
    seed=23,
)
KEY = SIM.experiment.key
# a percentile cap (nearest rank over the cache), CUPED, and a prediction covariate (CUPAC)
# whose scores arrive in any batch, often after their unit was cached
METRICS = [
    *[m.with_(cap_percentile=95.0) if m.name == "revenue_per_user" else m for m in SIM.metrics],
    mean("revenue_scored", "purchase", window="7d", covariates=("prediction:revenue_model",)),
]
EXPOSURES, _EVENTS = simulation_rows(SIM)
_FIRST = {r[2]: min(x[4] for x in EXPOSURES if x[2] == r[2]) for r in EXPOSURES}
EVENTS = _EVENTS + [
    (f"score/{unit}", unit, "revenue_model", float(sum(map(ord, unit)) % 13), ts - DAY_US, "0")
    for unit, ts in sorted(_FIRST.items())
]
TABLES = build_tables()


class Lake:
    """abkit's exposures and events on Spark, appended batch by batch (temporary views
    re-registered with every row so far: a table that loads append to)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.exposures: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.batch = 0

    def append(self, exposures: list[Any], events: list[Any], *, batched: bool = True) -> None:
        """One batch (``batched=False``: rows without a batch id)."""
        if batched:
            self.batch += 1
        batch = self.batch if batched else None
        self.exposures += [(*r, batch) for r in exposures]
        self.events += [(*r, batch) for r in events]
        self.register()

    def register(self) -> None:
        for table, columns, rows in (
            (TABLES.exposures, EXPOSURE_COLUMNS, self.exposures),
            (TABLES.events, EVENT_COLUMNS, self.events),
        ):
            order = [c.name for c in table.columns]
            shaped = [
                tuple(dict(zip(columns, row, strict=True)).get(name) for name in order)
                for row in rows
            ]
            register_view(self.session, table, shaped)


@pytest.fixture
def lake(spark_session: Any) -> Any:
    found = Lake(spark_session)
    yield found
    for name in (TABLES.exposures.name, TABLES.events.name):
        spark_session.catalog.dropTempView(name)


@pytest.fixture
def runner(spark_session: Any, tmp_path: Path) -> SparkRunner:
    return SparkRunner(spark_session, cache_location=str(tmp_path / "caches"))


def _same(incremental: Any, full: Any) -> None:
    want = full.to_dict()
    assert len(dict(leaves(want))) > 300
    assert_same_readout(incremental.to_dict(), want, ignore={"refresh"}, rel=1e-9, abs_=1e-12)


def _replay(
    runner: SparkRunner, lake: Lake, batches: list[Batch], lookback: timedelta | None
) -> list[str]:
    notes = []
    for exposures, events in deduplicated(batches):
        lake.append(exposures, events)
        inc = analyze(runner, KEY, METRICS, refresh="auto", refresh_lookback=lookback)
        _same(inc, analyze(runner, KEY, METRICS))
        notes.append(inc.experiment.refresh)
    return notes


def test_every_arrival_merges_to_the_full_analysis(
    runner: SparkRunner, lake: Lake, spark_session: Any
) -> None:
    """Random arrival (exposures after their events, events weeks late, rows resent and
    deduplicated) and ticks with nothing new: each readout equals the full one. A refresh
    killed after writing its rows but before its manifest (rows planted in the next slot)
    leaves the previous version in use, and the next merge writes over them."""
    *batches, last = random_batches(EXPOSURES, EVENTS, seed=5, n=4, duplicates=0.1)
    notes = _replay(runner, lake, batches, lookback=None)
    assert notes[0] == "full rebuild: no cache yet for this experiment"
    assert all(n.startswith("incremental (") for n in notes[1:]), notes
    assert not notes[1].endswith("; 0 units recomputed)")  # new units came with batch 2
    folder = cache_folder(runner.cache_location, KEY)
    manifest = read_manifest(runner, folder)
    assert manifest is not None and (manifest.version, manifest.watermark) == (3, 3)
    assert (manifest.events, manifest.exposures) == (len(lake.events), len(lake.exposures))
    full = analyze(runner, KEY, METRICS)
    tick = analyze(runner, KEY, METRICS, refresh="incremental")
    assert (
        tick.experiment.refresh == "incremental (0 new events, 0 new exposures; 0 units recomputed)"
    )
    _same(tick, full)
    assert read_manifest(runner, folder) == manifest
    spark_session.range(5).write.mode("overwrite").parquet(f"{folder}/d0")  # version 4's slot
    _same(analyze(runner, KEY, METRICS, refresh="incremental"), full)
    seen = {r[0] for r in lake.events}
    last_events = [r for r in last[1] if r[0] not in seen]
    lake.append([r for r in last[0] if r[0] not in {x[0] for x in lake.exposures}], last_events)
    merged = analyze(runner, KEY, METRICS, refresh="incremental", refresh_lookback=None)
    assert merged.experiment.refresh.startswith(f"incremental ({len(last_events):,} new events")
    _same(merged, analyze(runner, KEY, METRICS))
    after = read_manifest(runner, folder)
    assert after is not None and (after.version, after.watermark) == (4, 4)


def test_late_events_and_as_of_readouts(runner: SparkRunner, lake: Lake) -> None:
    """Late events within the lookback merge, beyond it rebuild; an as-of readout before
    the latest data is a full analysis."""
    batches = timely_batches(EXPOSURES, EVENTS, seed=3, n=2, delay_hours=30.0)
    notes = _replay(runner, lake, batches, lookback=timedelta(hours=48))
    assert notes[1].startswith("incremental ("), notes
    oldest = min(r[4] for r in EVENTS)
    late = [(f"late/{i}", r[1], r[2], r[3], oldest, r[5]) for i, r in enumerate(EVENTS[:3])]
    lake.append([], late)
    result = analyze(runner, KEY, METRICS, refresh="auto")
    assert result.experiment.refresh.startswith("full rebuild: 3 events arrived more than 48 h")
    _same(result, analyze(runner, KEY, METRICS))
    until = from_us(min(r[4] for r in EXPOSURES) + 72 * 3_600_000_000)
    as_of = analyze(runner, KEY, METRICS, refresh="auto", until=until)
    assert as_of.experiment.refresh == (
        "full analysis: an as-of readout (until) at or before the latest data: the cache "
        "holds every row (not refreshed)"
    )
    # an until after every row (the controller's "until now") is served by the cache
    now = from_us(max(r[4] for r in lake.events + lake.exposures) + 3_600_000_000)
    served = analyze(runner, KEY, METRICS, refresh="incremental", until=now)
    assert served.experiment.refresh.startswith("incremental (0 new events")
    _same(served, analyze(runner, KEY, METRICS, until=now))


def test_what_cannot_merge_rebuilds(runner: SparkRunner, lake: Lake) -> None:
    first, second = deduplicated(random_batches(EXPOSURES, EVENTS, seed=9, n=2, duplicates=0.0))
    lake.append(*first)
    assert analyze(runner, KEY, METRICS, refresh="auto").experiment.refresh.startswith("full")
    # another metric definition: incremental refuses, auto rebuilds
    changed = [m.with_(window_us=3 * 86_400_000_000) if m.role == "primary" else m for m in METRICS]
    with pytest.raises(StoreError, match="definitions, windows or readout scope changed"):
        analyze(runner, KEY, changed, refresh="incremental")
    rebuilt = analyze(runner, KEY, changed, refresh="auto")
    assert rebuilt.experiment.refresh == (
        "full rebuild: the metrics' definitions, windows or readout scope changed"
    )
    _same(rebuilt, analyze(runner, KEY, changed))
    # a row of a merged batch deleted: the counts at or below the watermark differ
    lake.events.pop(0)
    lake.append(*second)
    result = analyze(runner, KEY, changed, refresh="auto")
    assert result.experiment.refresh.startswith("full rebuild: rows at or below the watermark")
    _same(result, analyze(runner, KEY, changed))
    assert analyze(runner, KEY, changed, refresh="full").experiment.refresh == (
        "full rebuild: requested (refresh='full')"
    )
    # a row without a unit id: the full analysis groups such rows as one unit
    lake.append([], [("anonymous", None, *lake.events[0][2:-1])])
    anonymous = analyze(runner, KEY, changed, refresh="auto")
    assert anonymous.experiment.refresh == "full analysis: 1 rows have no unit_id"
    lake.events.pop()
    # a row without a batch id: no watermark can say whether it was merged
    lake.append([], [("unbatched", *lake.events[0][1:-1])], batched=False)
    unbatched = analyze(runner, KEY, changed, refresh="auto")
    assert unbatched.experiment.refresh == "full analysis: 1 rows have no batch_id"
