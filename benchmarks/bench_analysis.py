"""Analysis speed on every engine, each beside its own bare aggregation, in one run.

    python benchmarks/bench_analysis.py --units 100000 1000000 \
        --engines sqlite sqlite+duckdb postgres duckdb spark --tea-tasting

For each size a simulated experiment (``abkit.simulate``, generated in chunks of
100,000 units so the generator stays small; about 10 events per unit) is loaded into a
SQLite file, a DuckDB file and a throw-away PostgreSQL server (``abkit.testing.postgres``);
Spark reads the same rows from Parquet files on a throw-away standalone cluster
(``abkit.testing.spark``: one master, one worker on loopback). Then, per engine:

* **abkit**: ``analyze()`` with five metrics (conversion rate, revenue per user capped at
  its 99th percentile, orders per user, average order value, click-through rate), CUPED
  covariates, quality checks and the daily series: wall time, and peak Python memory from
  one more run under ``tracemalloc`` (everything Python and numpy allocate during the
  call; tracing would slow the timed runs);
* **bare**: one hand-written statement computing the same per-unit and then per-arm sums
  (first exposure, single-variant units, window and pre-period sums of every metric,
  CTR's included; no cap, no daily series, no quality counts) through the same runner: the
  floor for that engine;
* the ratio abkit / bare (the goal is at most 1.3).

abkit and bare are timed alternately ``--repeat`` times (3) and the medians are shown: on a
shared machine one run of either can be slowed by the host, and the first run after the
other engines were loaded meets a cold page cache (SQLite's analysis took 113 s cold and
57 s warm).

Engines: ``sqlite`` is SQLite's own engine; ``sqlite+duckdb`` is DuckDB executing over the
same SQLite file (:mod:`abkit.engines.duckdb_sqlite`); ``duckdb-tables`` is a DuckDB file
of plain tables, as a warehouse holds them (no keys, no indexes, appended with DuckDB's own
bulk insert), read through a :class:`~abkit.analysis.sources.Source`: the growth run's
engine, since an abkit DuckDB store's primary-key and secondary indexes make loading 100M
events take hours on 2 cores; ``spark`` also reports the
partitions of the events table and the shuffle bytes written per analysis (from the
driver's REST status API). ``--tea-tasting`` adds the peer: tea-tasting on the DuckDB file,
end to end from events (its per-unit table built in DuckDB, then its analysis).

Every engine's sums are checked against the first engine's and against its own bare
statement to 1e-9, so all do the same work.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK_UNITS = 100_000
WINDOW_US = 7 * 24 * 3_600_000_000
KEY = "bench-checkout"
ENGINES = ("sqlite", "sqlite+duckdb", "postgres", "duckdb", "duckdb-tables", "spark")


def five_metrics() -> list[Any]:
    from abkit.metrics.library import builtin_metric

    return [
        builtin_metric("conversion_rate").with_(role="primary"),
        builtin_metric("revenue_per_user"),  # p99 cap
        builtin_metric("orders_per_user"),
        builtin_metric("average_order_value"),
        builtin_metric("click_through_rate"),
    ]


def impressions_for(events_per_unit: float) -> float:
    # per unit: 0.14 purchases + 0.14 pre-period + 0.005 late + 0.5 + 0.5 errors
    # + impressions × 1.08 (8% clicked)
    return max((events_per_unit - 1.285) / 1.08, 0.0)


def generate_chunks(units: int, events: int) -> Iterator[Any]:
    from abkit.simulate import TrueEffect, simulate_experiment

    imp = impressions_for(events / units)
    for k, start in enumerate(range(0, units, CHUNK_UNITS)):
        yield simulate_experiment(
            min(CHUNK_UNITS, units - start),
            key=KEY,
            effects=TrueEffect(conversion_lift=0.05, order_value_lift=0.02),
            impressions=imp,
            unit_prefix=f"c{k}-",
            seed=1000 + k,
        )


# ------------------------------------------------------------------ the bare aggregation
def bare_statement(tables: Any) -> Any:
    """Per unit, then per arm: the sums the five metrics need, and nothing else.

    Per unit: the window and pre-period (CUPED covariate) sums of purchases, revenue, clicks
    and impressions, as abkit's readout uses them (CTR, a ratio, has CUPED too: pre-period
    clicks and impressions). Returns one row per variant: ``n``, then for conversion
    (y, x, xy), revenue (y, y², xy), orders (y, y², xy), AOV (num, den, num·den) and CTR
    (num, den, num·den, pre num, pre den, pre num·num, pre den·den).
    """
    from sqlalchemy import and_, case, func, literal, select

    from abkit.analysis.constructs import to_double

    ex, ev = tables.exposures, tables.events
    first = (
        select(
            ex.c.unit_id,
            func.min(ex.c.ts_us).label("first_us"),
            func.min(ex.c.variant).label("variant"),
            func.max(ex.c.variant).label("variant_max"),
        )
        .where(ex.c.experiment == literal(KEY))
        .group_by(ex.c.unit_id)
        .subquery("first")
    )
    window = literal(WINDOW_US)
    inside = and_(ev.c.ts_us >= first.c.first_us, ev.c.ts_us < first.c.first_us + window)
    before = and_(ev.c.ts_us < first.c.first_us, ev.c.ts_us >= first.c.first_us - window)

    def total(kind: str, period: Any, value: bool = False) -> Any:
        what = to_double(func.coalesce(ev.c.value, 0.0)) if value else to_double(1)
        return func.sum(case((and_(ev.c.event_type == literal(kind), period), what), else_=0.0))

    unit = (
        select(
            first.c.variant,
            total("purchase", inside, value=True).label("rev"),
            total("purchase", before, value=True).label("rev_x"),
            total("purchase", inside).label("orders"),
            total("purchase", before).label("orders_x"),
            total("click", inside).label("clicks"),
            total("impression", inside).label("imps"),
            total("click", before).label("clicks_x"),
            total("impression", before).label("imps_x"),
        )
        .select_from(
            first.outerjoin(
                ev,
                and_(
                    ev.c.unit_id == first.c.unit_id,
                    ev.c.event_type.in_(
                        [literal("purchase"), literal("click"), literal("impression")]
                    ),
                ),
            )
        )
        .where(first.c.variant == first.c.variant_max)
        .group_by(first.c.unit_id, first.c.variant)
        .subquery("unit")
    )
    conv = case((unit.c.orders > 0, 1.0), else_=0.0)
    conv_x = case((unit.c.orders_x > 0, 1.0), else_=0.0)
    s = func.sum
    return (
        select(
            unit.c.variant,
            func.count().label("n"),
            s(conv),
            s(conv_x),
            s(conv * conv_x),
            s(unit.c.rev),
            s(unit.c.rev * unit.c.rev),
            s(unit.c.rev * unit.c.rev_x),
            s(unit.c.orders),
            s(unit.c.orders * unit.c.orders),
            s(unit.c.orders * unit.c.orders_x),
            s(unit.c.rev),
            s(unit.c.orders),
            s(unit.c.rev * unit.c.orders),
            s(unit.c.clicks),
            s(unit.c.imps),
            s(unit.c.clicks * unit.c.imps),
            s(unit.c.clicks_x),
            s(unit.c.imps_x),
            s(unit.c.clicks_x * unit.c.clicks),
            s(unit.c.imps_x * unit.c.imps),
        )
        .group_by(unit.c.variant)
        .order_by(unit.c.variant)
    )


# ------------------------------------------------------------------ checks
def db_numbers(result: Any) -> dict[str, dict[str, Any]]:
    """The uncapped sums abkit computed, in the bare statement's shape (revenue: capped)."""
    out: dict[str, dict[str, Any]] = {}
    for variant, n in result.experiment.units.items():
        s = {name: result.arm_stats[name][variant] for name in result.arm_stats}
        out[variant] = {
            "n": n,
            "orders_per_user": (
                s["orders_per_user"].sum,
                s["orders_per_user"].sum_sq,
                s["orders_per_user"].cross_sum,
            ),
            "average_order_value": (
                s["average_order_value"].num_sum,
                s["average_order_value"].den_sum,
                s["average_order_value"].num_den_sum,
            ),
            "click_through_rate": (
                s["click_through_rate"].num_sum,
                s["click_through_rate"].den_sum,
                s["click_through_rate"].num_den_sum,
                s["click_through_rate"].pre_num_sum,
                s["click_through_rate"].pre_den_sum,
                s["click_through_rate"].pre_num_num_sum,
                s["click_through_rate"].pre_den_den_sum,
            ),
            "conversion_rate": (
                s["conversion_rate"].sum,
                s["conversion_rate"].cov_sum,
                s["conversion_rate"].cross_sum,
            ),
        }
    return out


def bare_numbers(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        v = [float(x or 0.0) for x in row[2:]]
        out[str(row[0])] = {
            "n": int(row[1]),
            "conversion_rate": tuple(v[0:3]),
            "orders_per_user": tuple(v[6:9]),
            "average_order_value": tuple(v[9:12]),
            "click_through_rate": tuple(v[12:19]),
        }
    return out


def check_same(a: dict[str, Any], b: dict[str, Any], label: str) -> None:
    assert set(a) == set(b), (label, set(a) ^ set(b))
    for variant in a:
        assert a[variant]["n"] == b[variant]["n"], (label, variant)
        for metric, values in a[variant].items():
            if metric == "n":
                continue
            for x, y in zip(values, b[variant][metric], strict=True):
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (label, variant, metric)


def interleaved(
    abkit: Callable[[], Any], bare: Callable[[], Any], repeat: int
) -> tuple[Any, float, Any, float, int]:
    """(abkit's value, its median wall seconds, bare's value, its median wall seconds, abkit's
    peak traced bytes). The two are timed alternately ``repeat`` times, so that a shared
    machine's load and a cold page cache (the first run after loading other engines) weigh
    on both alike and the median drops them; then abkit runs once more under
    ``tracemalloc`` for its peak, since tracing every allocation slows its Python part."""
    walls: tuple[list[float], list[float]] = ([], [])
    value = bare_value = None
    for _ in range(repeat):
        value, wall = timed(abkit)
        walls[0].append(wall)
        bare_value, wall = timed(bare)
        walls[1].append(wall)
    gc.collect()
    tracemalloc.start()
    try:
        abkit()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return value, statistics.median(walls[0]), bare_value, statistics.median(walls[1]), peak


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


# ------------------------------------------------------------------ Spark
class SparkBench:
    """A standalone cluster and a session on it, with the driver's REST API for the stages.

    One worker (``ABKIT_BENCH_EXECUTOR_MB`` of executor memory, 2 cores), the JVMs with
    their default JIT (a long aggregation wins back the C2 compiler's warm-up).
    """

    def __init__(self, stack: ExitStack) -> None:
        from pyspark.sql import SparkSession

        from abkit.testing.spark import TemporarySparkCluster, free_port

        memory = int(os.environ.get("ABKIT_BENCH_EXECUTOR_MB", "2048"))
        self.cluster = stack.enter_context(
            TemporarySparkCluster(connect=False, executor_memory_mb=memory, quick_jvm=False)
        )
        self.ui_port = free_port()
        builder = SparkSession.builder.master(self.cluster.master_url).appName("abkit-bench")
        conf = self.cluster.spark_conf()
        conf.update({"spark.ui.enabled": "true", "spark.ui.port": str(self.ui_port)})
        conf["spark.driver.memory"] = "1g"
        for key, value in conf.items():
            builder = builder.config(key, value)
        self.session = builder.getOrCreate()
        self.session.sparkContext.setLogLevel("ERROR")
        stack.callback(self.session.stop)

    def load(self, parquet: dict[str, Path]) -> dict[str, int]:
        """Register each Parquet file as a view; returns the partitions of each."""
        parts = {}
        for name, path in parquet.items():
            frame = self.session.read.parquet(str(path))
            frame.createOrReplaceTempView(name)
            parts[name] = frame.rdd.getNumPartitions()
        return parts

    def _get(self, what: str) -> Any:
        app = self.session.sparkContext.applicationId
        url = f"http://127.0.0.1:{self.ui_port}/api/v1/applications/{app}/{what}"
        with urllib.request.urlopen(url, timeout=120) as response:
            return json.load(response)

    def snapshot(self) -> dict[str, Any]:
        """The completed stages and each executor's cumulative counters, so far."""
        return {
            "stages": {s["stageId"]: s for s in self._get("stages?status=complete")},
            "executors": {e["id"]: e for e in self._get("allexecutors")},
        }

    def work_between(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """How the work of what ran between two snapshots divides: stages, tasks per stage
        (= partitions), input and shuffle bytes, and per executor its tasks and shuffles."""
        stages = [s for sid, s in after["stages"].items() if sid not in before["stages"]]
        tasks = [int(s.get("numTasks", 0)) for s in stages]
        executors = []
        for eid, e in sorted(after["executors"].items()):
            if eid == "driver":
                continue
            b = before["executors"].get(eid, {})

            def delta(key: str, e: dict[str, Any] = e, b: dict[str, Any] = b) -> int:
                return int(e.get(key, 0)) - int(b.get(key, 0))

            executors.append(
                {
                    "id": eid,
                    "cores": int(e.get("totalCores", 0)),
                    "tasks": delta("totalTasks"),
                    "task_s": delta("totalDuration") / 1000,
                    "input": delta("totalInputBytes"),
                    "shuffle_read": delta("totalShuffleRead"),
                    "shuffle_write": delta("totalShuffleWrite"),
                }
            )
        return {
            "stages": len(stages),
            "tasks": sum(tasks),
            "max_partitions": max(tasks, default=0),
            "one_task_stages": sum(1 for t in tasks if t == 1),
            "input": sum(int(s.get("inputBytes", 0)) for s in stages),
            "shuffle_read": sum(int(s.get("shuffleReadBytes", 0)) for s in stages),
            "shuffle_write": sum(int(s.get("shuffleWriteBytes", 0)) for s in stages),
            "executors": executors,
        }


def export_parquet(store: Any, workdir: Path) -> dict[str, Path]:
    """The DuckDB store's analysis tables as Parquet files (through the store's own
    connection: DuckDB lets one configuration open a file per process)."""
    out = {}
    t = store.tables
    with store.engine.connect() as conn:
        # the registry too: the SRM check reads the configured weights, as on the other engines
        for table in (t.exposures, t.exposure_attributes, t.events, t.experiments):
            path = workdir / f"{table.name}.parquet"
            # DuckDB's COPY takes no bound parameters; both names are abkit's own
            conn.exec_driver_sql(f"COPY {table.name} TO '{path}' (FORMAT parquet)")
            out[table.name] = path
    return out


# ------------------------------------------------------------------ tea-tasting
def tea_tasting_run(duckdb_path: Path) -> tuple[float, float, dict[str, Any]]:
    """tea-tasting end to end from events: its per-unit table (built by DuckDB from an ibis
    expression, fetched as a DataFrame), then its analysis.

    Same five metrics with the same CUPED covariates as abkit (the pre-period value of each
    mean, and of both numerator and denominator of each ratio); no percentile cap
    (tea-tasting has none), no daily series, no quality counts.
    """
    import ibis
    import tea_tasting as tt

    con = ibis.duckdb.connect(str(duckdb_path), read_only=True)
    ex, ev = con.table("abkit_exposures"), con.table("abkit_events")
    first = (
        ex.filter(ex.experiment == KEY)
        .group_by("unit_id")
        .aggregate(first_us=ex.ts_us.min(), variant=ex.variant.min(), variant_max=ex.variant.max())
    )
    first = first.filter(first.variant == first.variant_max)
    joined = first.left_join(ev, first.unit_id == ev.unit_id)
    inside = (joined.ts_us >= joined.first_us) & (joined.ts_us < joined.first_us + WINDOW_US)
    before = (joined.ts_us < joined.first_us) & (joined.ts_us >= joined.first_us - WINDOW_US)
    purchase = joined.event_type == "purchase"

    def count(cond: Any) -> Any:
        return ibis.cases((cond, 1.0), else_=0.0).sum()

    def total(cond: Any) -> Any:
        return ibis.cases((cond, joined.value.fill_null(0.0)), else_=0.0).sum()

    t0 = time.perf_counter()
    users = (
        joined.group_by([joined.unit_id, joined.variant])
        .aggregate(
            orders=count(purchase & inside),
            orders_x=count(purchase & before),
            revenue=total(purchase & inside),
            revenue_x=total(purchase & before),
            clicks=count((joined.event_type == "click") & inside),
            impressions=count((joined.event_type == "impression") & inside),
            clicks_x=count((joined.event_type == "click") & before),
            impressions_x=count((joined.event_type == "impression") & before),
        )
        .mutate(
            converted=ibis.cases((ibis._.orders > 0, 1.0), else_=0.0),
            converted_x=ibis.cases((ibis._.orders_x > 0, 1.0), else_=0.0),
        )
    )
    # the per-unit table as a pandas frame (ibis 12's own Arrow export is broken here)
    frame = con.con.sql(ibis.to_sql(users, dialect="duckdb")).df()
    build = time.perf_counter() - t0
    experiment = tt.Experiment(
        conversion=tt.Mean("converted", "converted_x"),
        revenue=tt.Mean("revenue", "revenue_x"),
        orders=tt.Mean("orders", "orders_x"),
        aov=tt.RatioOfMeans("revenue", "orders", "revenue_x", "orders_x"),
        ctr=tt.RatioOfMeans("clicks", "impressions", "clicks_x", "impressions_x"),
    )
    t0 = time.perf_counter()
    result = experiment.analyze(frame, control="control")
    analyse = time.perf_counter() - t0
    con.disconnect()
    return build, analyse, {"result": result}


# ------------------------------------------------------------------ one size
def load_stores(
    units: int, events: int, engines: list[str], workdir: Path, pg: Any
) -> tuple[dict[str, Any], int, dict[str, float]]:
    """Generate the experiment chunk by chunk into each store. PostgreSQL is filled at the
    end with ``COPY`` from the DuckDB store's rows (the store's ``executemany`` bulk path
    takes most of an hour for 10M events on a shared machine; ``COPY`` is how a warehouse
    is loaded anyway), then ``ANALYZE``d."""
    from abkit.simulate import load_simulation
    from abkit.store.store import open_store

    wanted = {
        "sqlite": "sqlite",
        "sqlite+duckdb": "sqlite",
        "postgres": "postgres",
        "duckdb-tables": "duckdb-tables",
    }
    kinds = {wanted.get(e, "duckdb") for e in engines}  # spark and tea-tasting read DuckDB's
    stores: dict[str, Any] = {}
    if "duckdb-tables" in kinds:
        stores["duckdb-tables"] = WarehouseTables(workdir / f"tables-{units}.duckdb")
    if "sqlite" in kinds:
        stores["sqlite"] = open_store(f"sqlite:///{workdir / f'bench-{units}.db'}")
    if "postgres" in kinds or "duckdb" in kinds:
        stores["duckdb"] = open_store(f"duckdb:///{workdir / f'bench-{units}.duckdb'}")
    load_time = dict.fromkeys(stores, 0.0)
    n_events = 0
    for sim in generate_chunks(units, events):
        for kind, store in stores.items():
            t0 = time.perf_counter()
            if isinstance(store, WarehouseTables):
                store.append(sim)
            else:
                load_simulation(sim, store, via="bulk")
            load_time[kind] += time.perf_counter() - t0
        n_events += len(sim.events)
        print(f"  loaded {n_events:,} events", file=sys.stderr)
    if "postgres" in kinds:
        t0 = time.perf_counter()
        stores["postgres"] = copy_into_postgres(stores["duckdb"], pg.create_database(), workdir)
        load_time["postgres"] = time.perf_counter() - t0
        print(f"  copied into PostgreSQL in {load_time['postgres']:.0f} s", file=sys.stderr)
    return stores, n_events, load_time


class WarehouseTables:
    """The ``duckdb-tables`` engine's data: a DuckDB file of two plain tables named with
    abkit's columns, appended with DuckDB's own bulk insert (no key, no index: how a
    warehouse keeps event tables), analysed through :func:`warehouse_source`."""

    def __init__(self, path: Path) -> None:
        import duckdb

        self.path = path
        self.experiment: Any = None
        self._con = duckdb.connect(str(path))
        self._con.execute(
            "CREATE TABLE exposures (unit_id VARCHAR, experiment VARCHAR, variant VARCHAR, "
            "ts_us BIGINT, platform VARCHAR, country VARCHAR)"
        )
        self._con.execute(
            "CREATE TABLE events (unit_id VARCHAR, event_type VARCHAR, value DOUBLE, ts_us BIGINT)"
        )

    def append(self, sim: Any) -> None:
        self.experiment = self.experiment or sim.experiment
        ex_cols = ["unit_id", "experiment", "variant", "ts_us", "platform", "country"]
        self._con.append("exposures", sim.exposures[ex_cols])
        self._con.append("events", sim.events[["unit_id", "event_type", "value", "ts_us"]])

    def close(self) -> None:
        self._con.close()


def warehouse_source() -> Any:
    from abkit.analysis.sources import EventMapping, ExposureMapping, Source, TableRef

    return Source(
        ExposureMapping(
            table=TableRef("exposures"),
            unit="unit_id",
            experiment="experiment",
            variant="variant",
            timestamp="ts_us",
            timestamp_encoding="us",
            attributes=("platform", "country"),
        ),
        EventMapping(
            table=TableRef("events"),
            unit="unit_id",
            event_type="event_type",
            value="value",
            timestamp="ts_us",
            timestamp_encoding="us",
        ),
        name="bench-tables",
    )


def copy_into_postgres(duck: Any, url: str, workdir: Path) -> Any:
    """A PostgreSQL store holding the DuckDB store's rows: CSV out of DuckDB, ``COPY`` in."""
    from abkit.store.store import open_store

    store = open_store(url)
    t = duck.tables
    raw = store.engine.raw_connection()
    try:
        for table in (t.experiments, t.exposures, t.exposure_attributes, t.events):
            path = workdir / f"{table.name}.csv"
            with duck.engine.connect() as conn:
                # our own table names and a temporary path: nothing from a user
                conn.exec_driver_sql(f"COPY {table.name} TO '{path}' (FORMAT csv, HEADER)")
            columns = ", ".join(c.name for c in table.columns)
            cursor = raw.cursor()
            cursor.execute(f"DELETE FROM {table.name}")  # the registry row open_store wrote
            with (
                cursor.copy(
                    f"COPY {table.name} ({columns}) FROM STDIN (FORMAT csv, HEADER)"
                ) as copy,
                path.open("rb") as source,
            ):
                while block := source.read(1 << 20):
                    copy.write(block)
            path.unlink()
        raw.commit()
        cursor = raw.cursor()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return store


def runner_for(engine: str, stores: dict[str, Any], stack: ExitStack) -> Any:
    from abkit.analysis.runner import SQLAlchemyRunner

    store = stores[engine]
    conn = stack.enter_context(store.engine.connect())
    return SQLAlchemyRunner(conn, where=engine)


def warehouse_runner(tables: WarehouseTables, stack: ExitStack) -> Any:
    from sqlalchemy import create_engine

    from abkit.analysis.runner import SQLAlchemyRunner

    tables.close()  # loaded: the analysis opens the file on its own
    engine = create_engine(f"duckdb:///{tables.path}")
    stack.callback(engine.dispose)
    return SQLAlchemyRunner(stack.enter_context(engine.connect()), where="duckdb-tables")


def replica_analysis(
    stores: dict[str, Any], metrics: list[Any], repeat: int
) -> tuple[Any, float, int, float, str]:
    """DuckDB's replica of the SQLite store: the first copy, then timed analyses that
    include bringing the replica up to date (nothing new here), and its own bare query."""
    from abkit.analysis.analyze import analyze
    from abkit.engines.duckdb_sqlite import ColumnarReplica, status

    found = status()
    if found.path is None:
        raise SystemExit(f"sqlite+duckdb unavailable: {found.reason}")
    path = Path(str(stores["sqlite"].engine.url.database))
    tables = stores["sqlite"].tables
    (_, copy) = timed(lambda: ColumnarReplica(path, found.path, tables).close())

    def run() -> Any:
        replica = ColumnarReplica(path, found.path, tables)
        try:
            return analyze(replica, KEY, metrics)
        finally:
            replica.close()

    def bare_run() -> Any:
        replica = ColumnarReplica(path, found.path, tables)
        try:
            return replica.run(bare_statement(tables))
        finally:
            replica.close()

    result, wall, bare_rows, bare, peak = interleaved(run, bare_run, repeat)
    check_same(db_numbers(result), bare_numbers(bare_rows), "sqlite+duckdb bare")
    return result, wall, peak, bare, f"first copy into the replica {copy:.2f} s"


def run_size(
    units: int,
    events: int,
    engines: list[str],
    workdir: Path,
    pg: Any,
    args: Any,
    spark_work: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    from abkit.analysis.analyze import analyze

    stores, n_events, load_time = load_stores(units, events, engines, workdir, pg)
    metrics = five_metrics()
    rows: list[dict[str, Any]] = []
    reference: dict[str, Any] | None = None
    _warm_up()
    for engine in engines:
        with ExitStack() as stack:
            extra = ""
            if engine == "sqlite+duckdb":
                result, wall, peak, bare, extra = replica_analysis(stores, metrics, args.repeat)
            else:
                if engine == "spark":
                    spark = SparkBench(stack)
                    from abkit.engines.spark import SparkRunner

                    parquet = export_parquet(stores["duckdb"], workdir)
                    parts = spark.load(parquet)
                    runner: Any = SparkRunner(spark.session)
                    _, cold = timed(lambda r=runner: analyze(r, KEY, metrics))
                    before = spark.snapshot()
                    analyze(runner, KEY, metrics)  # one analysis, for the cluster's work
                    work = spark.work_between(before, spark.snapshot())
                elif engine == "duckdb-tables":
                    runner = warehouse_runner(stores[engine], stack)
                else:
                    runner = runner_for(engine, stores, stack)
                if engine == "duckdb-tables":
                    source = warehouse_source()
                    stmt = bare_statement(source.relations())
                    what: Any = stores[engine].experiment
                else:
                    source = None
                    stmt = bare_statement(stores_tables(stores))
                    what = KEY
                result, wall, bare_rows, bare, peak = interleaved(
                    lambda r=runner, e=what, s=source: analyze(r, e, metrics, source=s),
                    lambda r=runner, q=stmt: r.run(q),
                    args.repeat,
                )
                if engine == "spark":
                    work.update(units=units, parts=parts, cold=cold)
                    spark_work.append(work)
                    extra = (
                        f"first (cold) analysis {cold:.1f} s; events in "
                        f"{parts['abkit_events']} partitions; {work['stages']} stages, "
                        f"{work['tasks']} tasks; shuffle write {work['shuffle_write'] / 1e6:.1f} MB"
                    )
                check_same(db_numbers(result), bare_numbers(bare_rows), f"{engine} bare")
            numbers = db_numbers(result)
            reference = reference or numbers
            check_same(reference, numbers, engine)
        kind = {"sqlite+duckdb": "sqlite"}.get(engine, engine)
        rows.append(
            dict(
                units=units,
                events=n_events,
                engine=engine,
                wall=wall,
                bare=bare,
                peak=peak,
                load=load_time.get(kind),
                note=extra,
            )
        )
        print(f"  {engine}: abkit {wall:.2f} s, bare {bare:.2f} s {extra}", file=sys.stderr)
    duck = duckdb_file(stores) if "duckdb" in stores else None
    for store in stores.values():
        store.close()
    if args.tea_tasting and duck is not None:
        build, analyse, _ = tea_tasting_run(duck)
        rows.append(
            dict(
                units=units,
                events=n_events,
                engine="tea-tasting (DuckDB)",
                wall=build + analyse,
                bare=None,
                peak=None,
                load=None,
                note=f"per-unit table {build:.2f} s + analysis {analyse:.2f} s",
            )
        )
    return rows


def duckdb_file(stores: dict[str, Any]) -> Path:
    from sqlalchemy.engine import make_url

    return Path(str(make_url(str(stores["duckdb"].url)).database))


def stores_tables(stores: dict[str, Any]) -> Any:
    return next(s.tables for s in stores.values() if not isinstance(s, WarehouseTables))


def _warm_up() -> None:
    """Import what ``analyze`` imports lazily, so the first engine is not charged for it."""
    import scipy.stats  # noqa: F401
    import statsmodels.stats.power  # noqa: F401

    import abkit.stats.estimators
    import abkit.stats.multiple
    import abkit.stats.planning
    import abkit.stats.readout
    import abkit.stats.srm  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--events", type=int, nargs="+", default=None, help="events per size (default 10 per unit)"
    )
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--tea-tasting", action="store_true", help="add tea-tasting on DuckDB")
    parser.add_argument("--workdir", default=None, help="where the files go (default: temp)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of each, alternating (median; 3)"
    )
    args = parser.parse_args(argv)
    events = args.events or [10 * u for u in args.units]
    if len(events) != len(args.units):
        parser.error("give one --events per --units")

    rows: list[dict[str, Any]] = []
    spark_work: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp, ExitStack() as stack:
        pg = None
        if "postgres" in args.engines:
            from abkit.testing.postgres import TemporaryPostgres

            pg = stack.enter_context(TemporaryPostgres())
        for units, n_events in zip(args.units, events, strict=True):
            print(f"size {units:,} units / {n_events:,} events", file=sys.stderr)
            size_dir = Path(tmp) / str(units)
            size_dir.mkdir()
            rows += run_size(units, n_events, args.engines, size_dir, pg, args, spark_work)

    print(
        "| units | events | engine | abkit (s) | bare (s) | abkit / bare | peak Python MB | notes |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---|")
    for row in rows:
        bare = "" if row["bare"] is None else f"{row['bare']:.2f}"
        ratio = "" if row["bare"] is None else f"{row['wall'] / row['bare']:.2f}×"
        peak = "" if row["peak"] is None else f"{row['peak'] / 1e6:.1f}"
        print(
            f"| {row['units']:,} | {row['events']:,} | {row['engine']} | {row['wall']:.2f} | "
            f"{bare} | {ratio} | {peak} | {row['note']} |"
        )
    print_spark_work(spark_work)
    return 0


def print_spark_work(works: list[dict[str, Any]]) -> None:
    """How one timed analysis divided on the Spark cluster (from the driver's REST API)."""
    if not works:
        return
    print()
    print(
        "| units | input partitions (events) | stages | tasks | max partitions per stage "
        "| one-task stages | input MB | shuffle write MB | shuffle read MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in works:
        print(
            f"| {w['units']:,} | {w['parts']['abkit_events']} | {w['stages']} | {w['tasks']} | "
            f"{w['max_partitions']} | {w['one_task_stages']} | {w['input'] / 1e6:.1f} | "
            f"{w['shuffle_write'] / 1e6:.1f} | {w['shuffle_read'] / 1e6:.1f} |"
        )
    print()
    print("| units | executor | cores | tasks | task time (s) | input MB | shuffle write MB "
          "| shuffle read MB |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for w in works:
        for e in w["executors"]:
            print(
                f"| {w['units']:,} | {e['id']} | {e['cores']} | {e['tasks']} | "
                f"{e['task_s']:.1f} | {e['input'] / 1e6:.1f} | {e['shuffle_write'] / 1e6:.1f} | "
                f"{e['shuffle_read'] / 1e6:.1f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
