"""Incremental refresh on Spark: each experiment's unit cache kept as Parquet files.

The cache holds what it holds in a store (:mod:`abkit.analysis.incremental`): one row per
exposed unit, ``unit_id, variant, variant_max, day, first_us`` and one DOUBLE column per
aggregate of the metrics' plan, before caps. Stages 4-6 of the analysis then read it
instead of joining every event to its unit.

**Where.** Spark tables without a transactional format (Delta, Iceberg) have no
``UPDATE``, so the cache is not merged in place: a refresh writes the whole merged cache (one
row per unit, about a tenth of the events' rows in the benchmark) beside the previous one,
then a one-line manifest naming it::

    <cache_location>/<sha256 of the experiment key, 16 hex>/
        d0/  d1/    the cache's rows (Parquet): two slots, used in turn
        m0/  m1/    the manifest (JSON) of the version in the slot of the same number

Version ``n`` lives in slot ``n % 2``. A refresh writes version ``n + 1`` into the other
slot (over version ``n - 1``), then that slot's manifest; a reader takes the manifest with
the highest version. A refresh killed before its manifest is written leaves version ``n``
the latest, its slot untouched; killed while writing the manifest, the same (Spark's
overwrite deletes the old manifest before the new one's files appear at the job's commit).
Storage stays at two copies of the cache.

**Arrival.** As in a store, every row carries the ``batch_id`` of the load that wrote it,
and loads append batches with increasing ids. The watermark is the largest ``batch_id``
present; the cache holds the rows at or below it. A refresh first counts the rows at or
below the cached watermark in each table: another count than the manifest's means a batch
was rewritten or deleted, or rows were appended with an old ``batch_id``, and the cache is
rebuilt. A store also compares its ingest batches' status and waits for unfinished ones;
Spark tables keep no such record, so a load should finish a batch in both tables (events,
exposures: two jobs) before a refresh runs: a refresh between the two merges the half
written, and the next one finds changed counts and rebuilds (correct, but a rebuild). Rows
without a ``batch_id`` have no arrival order: the readout is then a full analysis, and says
so.

**Merging** uses the store's statements (:func:`~abkit.analysis.incremental.recompute_query`,
:func:`~abkit.analysis.incremental.delta_cte`,
:func:`~abkit.analysis.incremental.merged_aggregates`): the new rows are checkpointed on
the executors, the units whose new exposures change their row are recomputed from all
their rows, every other unit with new events gets the aggregates of those events added to
its row, and the rest is copied. The store's rebuild rules apply, the batch status aside: a
changed metric definition (the hash of the statements Spark runs), ``refresh='full'``,
changed rows at or below the watermark, and events later than the lookback behind the
latest merged time. "Units recomputed" counts the units whose new exposures changed their
row, including any that thereby left the readout's scope.

**Concurrency.** Refreshes of one experiment are serialised by a lock file on the machine
of the Python process that calls ``analyze`` (the driver of a classic session, the client
of a Spark Connect one), held while the caller reads: two processes there, one merges and
the other then finds its version. Processes on *different* machines sharing a cache
location must not refresh the same experiment at the same moment (run the controller from
one place): Spark has no lock service, and nothing here detects it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    union_all,
)

from abkit.analysis import sql
from abkit.analysis.incremental import (
    AS_OF,
    REBUILD_DEFINITION,
    REBUILD_NO_CACHE,
    REBUILD_REQUESTED,
    REBUILD_ROWS_CHANGED,
    CacheLayout,
    Rebuild,
    RefreshReport,
    as_of_miss,
    cache_layout,
    check_mode,
    delta_cte,
    late_rebuild,
    lookback_micros,
    merged_aggregates,
    recompute_query,
    refused,
    rows_upto,
    timed_event_types,
)
from abkit.analysis.sources import Relations
from abkit.errors import StoreError
from abkit.metrics.definitions import Metric
from abkit.store.schema import ID_LENGTH, KEY_LENGTH
from abkit.timeutil import now_us
from abkit.vocabulary import RefreshMode

if TYPE_CHECKING:
    from abkit.engines.spark import SparkRunner

MANIFEST_SCHEMA = (
    "version BIGINT, definition STRING, watermark BIGINT, events BIGINT, exposures BIGINT, "
    "max_ts_us BIGINT, built_at_us BIGINT"
)


@dataclass(frozen=True)
class Manifest:
    """One version of a cache: what it was computed for, up to which batch, and the row
    counts at or below that batch when it was (the rebuild check)."""

    version: int
    definition: str
    watermark: int
    events: int
    exposures: int
    max_ts_us: int | None
    built_at_us: int

    def row(self) -> tuple[Any, ...]:
        return (
            self.version,
            self.definition,
            self.watermark,
            self.events,
            self.exposures,
            self.max_ts_us,
            self.built_at_us,
        )


def cache_folder(location: str, experiment: str) -> str:
    """The folder of ``experiment``'s cache under ``location``."""
    return f"{location.rstrip('/')}/{hashlib.sha256(experiment.encode()).hexdigest()[:16]}"


def _slot(folder: str, kind: str, version: int) -> str:
    return f"{folder}/{kind}{version % 2}"


def _columns(layout: CacheLayout) -> list[Column[Any]]:
    return [
        Column("unit_id", String(ID_LENGTH)),
        Column("variant", String(KEY_LENGTH)),
        Column("variant_max", String(KEY_LENGTH)),
        Column("day", BigInteger),
        Column("first_us", BigInteger),
        *[Column(name, Double) for name in layout.names.values()],
    ]


def _cache_rows(values: Any, layout: CacheLayout) -> Any:
    """The cache's columns from ``values`` (a relation with them), aggregates as DOUBLE
    (exact for sums and counts below 2^53; every version has one schema)."""
    return select(
        *[values.c[c] for c in sql.UNIT_COLUMNS],
        *[cast(values.c[n], Double).label(n) for n in layout.names.values()],
    )


@contextmanager
def _driver_lock(folder: str) -> Iterator[None]:
    """An exclusive lock on this machine for the cache in ``folder`` (see the module)."""
    digest = hashlib.sha256(folder.encode()).hexdigest()[:24]
    path = Path(tempfile.gettempdir()) / f"abkit-spark-cache-{digest}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the unit cache's lock file {path}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise StoreError(f"cannot lock the unit cache's lock file {path}: {exc}") from exc
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_manifest(runner: SparkRunner, folder: str) -> Manifest | None:
    """The latest complete version of the cache in ``folder``, if any."""
    # a line missing a required field is not a manifest abkit wrote: ignored
    rows = [
        r
        for r in runner.read_json(folder, MANIFEST_SCHEMA)
        if None not in (r[0], r[1], r[2], r[3], r[4], r[6])
    ]
    if not rows:
        return None
    latest = max(rows, key=lambda r: int(r[0]))
    return Manifest(
        version=int(latest[0]),
        definition=str(latest[1]),
        watermark=int(latest[2]),
        events=int(latest[3]),
        exposures=int(latest[4]),
        max_ts_us=None if latest[5] is None else int(latest[5]),
        built_at_us=int(latest[6]),
    )


@dataclass(frozen=True)
class _Cache:
    """One experiment's cache: where it lives, what it is computed from, and how."""

    runner: SparkRunner
    folder: str
    layout: CacheLayout
    rel: Relations
    scope: sql.Scope  # the cache's (the experiment's configured end), not an as-of readout's
    metrics: tuple[Metric, ...]
    cuped: bool

    def unit_values(self, rel: Relations) -> Any:
        """Stages 1-3 of the metrics over ``rel``: the CTE of the per-unit rows."""
        cte, _ = sql._unit_values_cte(rel, self.scope, self.metrics, cuped=self.cuped, segment=None)
        return cte


def _count(runner: SparkRunner, table: Any, *where: Any) -> int:
    rows = runner.run(select(func.count()).select_from(table).where(*where))
    return int(rows[0][0] or 0) if rows else 0


@dataclass(frozen=True)
class _Arrival:
    top: int  # the largest batch id in the data (0: no rows)
    below: tuple[int, int]  # events, exposures in batches at or below the cache's watermark
    total: tuple[int, int]  # events, exposures
    unbatched: int  # rows without a batch id (both tables)
    anonymous: int  # rows without a unit id (both tables)


def _arrival(runner: SparkRunner, rel: Relations, upto: int) -> _Arrival:
    """What has arrived, with ``upto`` the cache's watermark: one statement, one pass over
    each table (each a Spark job of its own otherwise)."""
    bound = literal(upto, BigInteger())
    parts = [
        select(
            literal(i, BigInteger()).label("t"),
            func.max(t.c.batch_id).label("top"),
            func.count(case((t.c.batch_id <= bound, 1))).label("below"),
            func.count().label("total"),
            func.count(case((t.c.batch_id.is_(None), 1))).label("unbatched"),
            func.count(case((t.c.unit_id.is_(None), 1))).label("anonymous"),
        )
        for i, t in enumerate((rel.events, rel.exposures))
    ]
    found = {int(r[0]): r[1:] for r in runner.run(select(union_all(*parts).subquery()))}
    tops = [int(found[i][0]) for i in found if found[i][0] is not None]
    return _Arrival(
        top=max(tops, default=0),
        below=(int(found[0][1] or 0), int(found[1][1] or 0)),
        total=(int(found[0][2] or 0), int(found[1][2] or 0)),
        unbatched=int(found[0][3] or 0) + int(found[1][3] or 0),
        anonymous=int(found[0][4] or 0) + int(found[1][4] or 0),
    )


@dataclass(frozen=True)
class _Staged:
    events: int  # new events of the types the metrics read (covariates' included)
    exposures: int  # new exposures of the experiment
    late: int  # new events of the measures' types more than the lookback behind the latest
    newest: int | None  # the latest of those events and of the exposures


def _staged_counts(
    runner: SparkRunner,
    nev: Any,
    nex: Any,
    scope: sql.Scope,
    metrics: Sequence[Metric],
    latest: int | None,
    lookback_us: int | None,
) -> _Staged:
    """What the rows of ``nev`` and ``nex`` hold (the staged ones, or all of them for a
    rebuild's latest time), in one statement: the events of every type the metrics read,
    the late ones and the latest time among their own measures' types
    (:func:`~abkit.analysis.incremental.timed_event_types`)."""
    typed = nev.c.event_type.in_(sql.read_event_types(metrics))
    timed = nev.c.event_type.in_(timed_event_types(metrics))
    late: Any = literal(0, BigInteger())
    if latest is not None and lookback_us is not None:
        bound = literal(latest - lookback_us, BigInteger())
        late = func.count(case((and_(timed, nev.c.ts_us < bound), 1)))
    events = select(
        func.count(case((typed, 1))).label("events"),
        late.label("late"),
        func.max(case((timed, nev.c.ts_us))).label("newest"),
    ).subquery("abkit_new_events")
    ours = nex.c.experiment == literal(scope.experiment, String())
    exposures = select(
        func.count(case((ours, 1))).label("exposures"),
        func.max(case((ours, nex.c.ts_us))).label("newest"),
    ).subquery("abkit_new_exposures")
    row = runner.run(
        select(events.c.events, exposures.c.exposures, events.c.late, events.c.newest)
        .add_columns(exposures.c.newest.label("newest_exposure"))
        .select_from(events.join(exposures, literal(True)))
    )[0]
    times = [int(v) for v in row[3:] if v is not None]
    return _Staged(
        events=int(row[0] or 0),
        exposures=int(row[1] or 0),
        late=int(row[2] or 0),
        newest=max(times) if times else None,
    )


def _rebuild(cache: _Cache, previous: Manifest | None, arrival: _Arrival) -> Manifest:
    upto = rows_upto(cache.rel, arrival.top)
    return _commit(
        cache,
        _cache_rows(cache.unit_values(upto), cache.layout),
        version=1 if previous is None else previous.version + 1,
        watermark=arrival.top,
        counts=arrival.total,
        newest=_staged_counts(
            cache.runner,
            upto.events,
            upto.exposures,
            cache.scope,
            cache.metrics,
            None,
            None,
        ).newest,
        built_at_us=now_us(),
    )


def _commit(
    cache: _Cache,
    rows: Any,
    *,
    version: int,
    watermark: int,
    counts: tuple[int, int],
    newest: int | None,
    built_at_us: int,
) -> Manifest:
    """Write ``rows`` as version ``version``, then its manifest (the commit point)."""
    data = _slot(cache.folder, "d", version)
    cache.runner.write_parquet(rows, data)
    manifest = Manifest(
        version=version,
        definition=cache.layout.definition,
        watermark=watermark,
        events=counts[0],
        exposures=counts[1],
        max_ts_us=newest,
        built_at_us=built_at_us,
    )
    cache.runner.write_json([manifest.row()], MANIFEST_SCHEMA, _slot(cache.folder, "m", version))
    return manifest


def _merge(
    cache: _Cache,
    manifest: Manifest,
    arrival: _Arrival,
    lookback_us: int | None,
) -> tuple[Manifest, tuple[int, int, int]]:
    """Version ``manifest.version + 1``: the cache merged with batches (watermark of
    ``manifest``, ``arrival.top``]; and (new events, new exposures, units recomputed)."""
    runner, layout, rel, scope = cache.runner, cache.layout, cache.rel, cache.scope
    old, watermark = manifest.watermark, arrival.top
    ev, ex = rel.events, rel.exposures
    upto = rows_upto(rel, watermark)
    batch = [literal(old, BigInteger()), literal(watermark, BigInteger())]
    with ExitStack() as stack:
        current = stack.enter_context(
            runner.parquet_view(_slot(cache.folder, "d", manifest.version), _columns(layout))
        )
        # the new rows, computed once on the executors and read by every statement below
        nev = stack.enter_context(
            runner.materialized(
                select(ev.c.unit_id, ev.c.event_type, ev.c.value, ev.c.ts_us).where(
                    ev.c.batch_id > batch[0], ev.c.batch_id <= batch[1]
                )
            )
        )
        nex = stack.enter_context(
            runner.materialized(
                select(ex.c.unit_id, ex.c.experiment, ex.c.variant, ex.c.ts_us).where(
                    ex.c.batch_id > batch[0], ex.c.batch_id <= batch[1]
                )
            )
        )
        latest = manifest.max_ts_us
        counted = _staged_counts(runner, nev, nex, scope, cache.metrics, latest, lookback_us)
        if counted.late:
            assert latest is not None and lookback_us is not None  # no bound, nothing late
            raise late_rebuild(counted.late, lookback_us, latest)
        # the cached rows of the units with new rows, a few percent of the cache: found in
        # one pass over it (the new ids broadcast), then joined instead of the whole cache
        ours = nex.c.experiment == literal(scope.experiment, String())
        new_ids = union_all(select(nev.c.unit_id), select(nex.c.unit_id).where(ours))
        touched_rows = stack.enter_context(
            runner.materialized(
                select(
                    current.c.unit_id, current.c.first_us, current.c.variant, current.c.variant_max
                ).where(current.c.unit_id.in_(new_ids))
            )
        )
        # the units whose row the new exposures change: recomputed from all their rows
        recompute = None
        if counted.exposures:
            staged = Relations(exposures=nex, events=nev)
            first = sql._first_cte(staged, sql.Scope(scope.experiment, end_us=scope.end_us))
            recompute = stack.enter_context(
                runner.materialized(recompute_query(first, touched_rows))
            )
        recomputed = 0 if recompute is None else _count(runner, recompute)
        cte, _ = delta_cte(upto, nev, recompute, touched_rows, scope, cache.metrics, cache.cuped)
        names = list(layout.names.values())
        delta = stack.enter_context(
            runner.materialized(select(*[cte.c[c] for c in (*sql.UNIT_COLUMNS, *names)]))
        )
        merged = merged_aggregates(layout.rules, current, delta)
        joined = current.outerjoin(delta, delta.c.unit_id == current.c.unit_id)
        kept = select(
            *[current.c[c] for c in sql.UNIT_COLUMNS],
            *[cast(merged[n], Double).label(n) for n in names],
        )
        # the delta (a few percent of the units) sent to every task of the cache's scan: by
        # its size alone (tens of MB) Spark would shuffle the whole cache to join it
        kept = kept.with_hint(delta, "BROADCAST(%(name)s)", "spark")
        rows: Any = kept.select_from(joined)
        if recompute is not None and recomputed:
            kept = (
                kept.select_from(
                    joined.outerjoin(recompute, recompute.c.unit_id == current.c.unit_id)
                )
                .where(recompute.c.unit_id.is_(None))
                .with_hint(recompute, "BROADCAST(%(name)s)", "spark")
            )
            ux = upto.exposures
            exposed = (
                select(*ux.c)
                .where(
                    ux.c.experiment == literal(scope.experiment, String()),
                    ux.c.unit_id.in_(select(recompute.c.unit_id)),
                )
                .subquery("abkit_touched_exposures")
            )
            redo = cache.unit_values(Relations(exposures=exposed, events=upto.events))
            rows = select(union_all(kept, _cache_rows(redo, layout)).subquery("abkit_merged"))
        found = counted.newest
        newest = found if latest is None or (found is not None and found > latest) else latest
        written = _commit(
            cache,
            rows,
            version=manifest.version + 1,
            watermark=watermark,
            counts=arrival.total,
            newest=newest,
            built_at_us=manifest.built_at_us,
        )
    return written, (counted.events, counted.exposures, recomputed)


def _refresh(
    cache: _Cache, mode: RefreshMode, lookback: timedelta | None
) -> tuple[Manifest | None, RefreshReport]:
    """The version to read (``None``: none can serve, the report says why) and what was done."""
    manifest = read_manifest(cache.runner, cache.folder)
    arrival = _arrival(cache.runner, cache.rel, 0 if manifest is None else manifest.watermark)
    if arrival.unbatched:
        # their arrival order is unknown: no watermark can say whether they were merged
        reason = f"{arrival.unbatched:,} rows have no batch_id"
        return None, RefreshReport(mode, "full analysis", reason)
    if arrival.anonymous:
        # the full analysis groups them as one unit; a merge cannot key a row by NULL
        reason = f"{arrival.anonymous:,} rows have no unit_id"
        return None, RefreshReport(mode, "full analysis", reason)
    watermark = arrival.top
    try:
        if mode == "full":
            raise Rebuild(REBUILD_REQUESTED)
        if manifest is None:
            raise Rebuild(REBUILD_NO_CACHE)
        if manifest.definition != cache.layout.definition:
            raise Rebuild(REBUILD_DEFINITION)
        if watermark < manifest.watermark or arrival.below != (
            manifest.events,
            manifest.exposures,
        ):
            raise Rebuild(REBUILD_ROWS_CHANGED)
        if watermark == manifest.watermark:
            return manifest, RefreshReport(mode, "incremental", watermark=watermark)
        merged, counts = _merge(cache, manifest, arrival, lookback_micros(lookback))
        return merged, RefreshReport(mode, "incremental", "", *counts, watermark=watermark)
    except Rebuild as why:
        if mode == "incremental":
            raise refused(cache.scope.experiment, why) from None
        built = _rebuild(cache, manifest, arrival)
        return built, RefreshReport(mode, "full rebuild", str(why.args[0]), watermark=watermark)


@contextmanager
def cached_units(
    runner: SparkRunner,
    rel: Relations,
    scope: sql.Scope,
    metrics: Sequence[Metric],
    *,
    cuped: bool,
    mode: RefreshMode,
    lookback: timedelta | None,
    cache_scope: sql.Scope,
) -> Iterator[tuple[sql.UnitSource | None, RefreshReport]]:
    """Refresh the experiment's cache under ``runner.cache_location``; yield the
    :data:`~abkit.analysis.sql.UnitSource` reading it and the report (as
    :func:`abkit.analysis.incremental.cached_units`, whose scope rules it follows)."""
    mode = check_mode(mode)
    if (cache_scope.experiment, cache_scope.since_us) != (scope.experiment, scope.since_us):
        raise ValueError("the cache's scope differs from the readout's in more than its end")
    layout = cache_layout(runner.dialect, rel, cache_scope, metrics, cuped)
    folder = cache_folder(runner.cache_location, scope.experiment)
    cache = _Cache(runner, folder, layout, rel, cache_scope, tuple(metrics), cuped)
    if scope.end_us is not None and scope.end_us != cache_scope.end_us:
        # a replayed clock (until in the past of the data) cannot use the cache: say so
        # before refreshing, as a store does, and leave the cache as it is
        every = _staged_counts(
            runner,
            rel.events,
            rel.exposures,
            cache_scope,
            metrics,
            None,
            None,
        )
        if every.newest is not None and every.newest >= scope.end_us:
            yield None, RefreshReport(mode, "full analysis", f"{AS_OF} (not refreshed)")
            return
    with _driver_lock(folder):
        manifest, report = _refresh(cache, mode, lookback)
        if manifest is None:
            yield None, report
            return
        missed = as_of_miss(mode, scope, cache_scope, manifest.max_ts_us, report)
        if missed is not None:
            yield None, missed
            return
        with runner.parquet_view(_slot(folder, "d", manifest.version), _columns(layout)) as table:
            yield sql.stored_unit_source(table, layout.names), report
