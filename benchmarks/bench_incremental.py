"""Incremental refresh against a full analysis, after 1% more data.

    python benchmarks/bench_incremental.py --units 1000000 --engines sqlite duckdb spark

Per engine: the simulated experiment of ``bench_analysis.py`` (five metrics, CUPED, a p99
cap; about 10 events per unit) is loaded into a store; the newest 1% of its events and of its exposures (by event time: new units and the
latest events of running ones) are held back; the
unit cache is built (``analyze(refresh="full")``); the held rows are then ingested as a
new batch (``batch_id`` 1) and timed:

* **full**: ``analyze()`` reading every row (no cache), the baseline;
* **incremental**: ``analyze(refresh="auto")``: merge the new batch into the per-unit cache
  and its per-arm rollup, then the caps from the cache and the sums from the rollup,
  corrected by the units above a cap;
* **no-op tick**: the same again with nothing new (a controller tick between ingests).

``spark``: the rows are loaded into a DuckDB store, exported as Parquet (the held rows as a
second file with ``batch_id`` 1) and read by a standalone cluster on loopback (one worker,
2 cores); the cache is Parquet under the work folder (:mod:`abkit.engines.spark_cache`).

The incremental result is compared with the full one on every leaf of ``to_dict()``
(1e-9, the refresh note aside). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analysis import KEY, SparkBench, export_parquet, five_metrics, generate_chunks


def max_difference(a: Any, b: Any) -> tuple[float, int]:
    """(largest relative difference of float leaves, leaves that differ otherwise)."""
    from abkit.testing.compare import leaves

    x, y = dict(leaves(a.to_dict())), dict(leaves(b.to_dict()))
    worst, other = 0.0, int(x.keys() != y.keys())
    for path, value in y.items():
        if path == "/experiment/refresh" or path not in x:
            continue
        got = x[path]
        if isinstance(value, float) and isinstance(got, float):
            if math.isnan(value) and math.isnan(got):
                continue
            scale = max(abs(value), abs(got), 1e-300)
            worst = max(worst, abs(got - value) / scale if abs(got - value) > 1e-12 else 0.0)
        elif got != value:
            other += 1
    return worst, other


def hold_back(store: Any, share: float) -> tuple[int, int]:
    """Move the newest ``share`` of the events and of the exposures (by event time) to
    holding tables: the data a later ingest brings."""
    from sqlalchemy import MetaData, Table, delete, func, insert, select

    t = store.tables
    held = {}
    with store.write() as conn:
        for table in (t.events, t.exposures):
            total = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
            cut = conn.execute(
                select(table.c.ts_us)
                .order_by(table.c.ts_us.desc())
                .limit(1)
                .offset(int(total * share))
            ).scalar()
            where = table.c.ts_us > cut
            copy = Table(
                f"held_{table.name}",
                MetaData(schema=store.schema),
                *[c._copy() for c in table.columns],
            )
            copy.drop(conn, checkfirst=True)
            copy.create(conn)
            conn.execute(insert(copy).from_select(list(table.c.keys()), select(table).where(where)))
            conn.execute(delete(table).where(where))
            held[table.name] = copy
        counts = tuple(
            int(conn.execute(select(func.count()).select_from(c)).scalar() or 0)
            for c in held.values()
        )
    store._held = held
    return counts[0], counts[1]


def arrive(store: Any) -> None:
    """The held rows arrive as batch 1."""
    from sqlalchemy import insert, literal, select

    t = store.tables
    with store.write() as conn:
        for table in (t.events, t.exposures):
            copy = store._held[table.name]
            columns = [c.name for c in table.columns if c.name != "batch_id"]
            conn.execute(
                insert(table).from_select(
                    [*columns, "batch_id"],
                    select(*[copy.c[c] for c in columns], literal(1).label("batch_id")),
                )
            )
            copy.drop(conn)


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def export_batches(store: Any, workdir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The DuckDB store's tables (batch 0) and its held rows (as batch 1) as Parquet: the
    lake Spark reads, before and after the new batch lands."""
    from sqlalchemy import literal, select

    base = export_parquet(store, workdir)
    new = {}
    with store.engine.connect() as conn:
        for table in (store.tables.events, store.tables.exposures):
            held = store._held[table.name]
            rows = select(
                *[
                    literal(1).label("batch_id") if c.name == "batch_id" else held.c[c.name]
                    for c in table.columns
                ]
            )
            path = workdir / f"new_{table.name}.parquet"
            text = str(rows.compile(conn, compile_kwargs={"literal_binds": True}))
            # DuckDB's COPY takes no bound parameters; the statement is abkit's own
            conn.exec_driver_sql(f"COPY ({text}) TO '{path}' (FORMAT parquet)")
            new[table.name] = path
    return base, new


def run_spark(units: int, events: int, share: float, workdir: Path) -> dict[str, Any]:
    """The rows in a DuckDB store exported as Parquet and read by a standalone cluster on
    loopback; the cache under ``workdir`` (:mod:`abkit.engines.spark_cache`)."""
    from abkit.analysis.analyze import analyze
    from abkit.engines.spark import SparkRunner
    from abkit.simulate import load_simulation
    from abkit.store.store import open_store

    store = open_store(f"duckdb:///{workdir / f'incremental-spark-{units}.duckdb'}")
    n_events = 0
    for sim in generate_chunks(units, events):
        load_simulation(sim, store, via="bulk")
        n_events += len(sim.events)
    new_events, new_exposures = hold_back(store, share)
    base, new = export_batches(store, workdir)
    store.close()
    metrics = five_metrics()
    with ExitStack() as stack:
        spark = SparkBench(stack)
        spark.load(base)
        runner = SparkRunner(spark.session, cache_location=str(workdir / "spark-caches"))
        _, build = timed(lambda: analyze(runner, KEY, metrics, refresh="full"))
        print(f"  spark: cache built in {build:.1f} s", file=sys.stderr)
        for name, path in new.items():  # the new batch lands: each table reads both files
            frame = spark.session.read.parquet(str(base[name]), str(path))
            frame.createOrReplaceTempView(name)
        row = after_arrival("spark", runner, metrics)
    return {**row, **sizes(units, n_events, new_events, new_exposures), "build": build}


def sizes(units: int, events: int, new_events: int, new_exposures: int) -> dict[str, int]:
    return {
        "units": units,
        "events": events,
        "new_events": new_events,
        "new_exposures": new_exposures,
    }


def after_arrival(engine: str, db: Any, metrics: Any) -> dict[str, Any]:
    """Once the new batch has landed: the refresh, a tick with nothing new, then the full
    analysis (the baseline), and how far the refresh's readout is from it."""
    from abkit.analysis.analyze import analyze

    incremental, t_inc = timed(lambda: analyze(db, KEY, metrics, refresh="auto"))
    print(f"  {engine}: {incremental.experiment.refresh} in {t_inc:.2f} s", file=sys.stderr)
    tick, t_tick = timed(lambda: analyze(db, KEY, metrics, refresh="auto"))
    full, t_full = timed(lambda: analyze(db, KEY, metrics))
    worst, other = max_difference(incremental, full)
    return {
        "engine": engine,
        "full": t_full,
        "incremental": t_inc,
        "tick": t_tick,
        "note": incremental.experiment.refresh,
        "tick_note": tick.experiment.refresh,
        "worst": worst,
        "other": other,
    }


def run(engine: str, units: int, events: int, share: float, workdir: Path) -> dict[str, Any]:
    from abkit.analysis.analyze import analyze
    from abkit.simulate import load_simulation
    from abkit.store.store import open_store

    if engine == "spark":
        return run_spark(units, events, share, workdir)
    suffix = "db" if engine == "sqlite" else "duckdb"
    store = open_store(f"{engine}:///{workdir / f'incremental-{units}.{suffix}'}")
    n_events = 0
    for sim in generate_chunks(units, events):
        load_simulation(sim, store, via="bulk")
        n_events += len(sim.events)
        print(f"  {engine}: loaded {n_events:,} events", file=sys.stderr)
    new_events, new_exposures = hold_back(store, share)
    metrics = five_metrics()
    _, build = timed(lambda: analyze(store, KEY, metrics, refresh="full"))
    print(f"  {engine}: cache built in {build:.1f} s", file=sys.stderr)
    arrive(store)
    row = after_arrival(engine, store, metrics)
    store.close()
    return {**row, **sizes(units, n_events, new_events, new_exposures), "build": build}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--events-per-unit", type=float, default=10.0)
    parser.add_argument("--engines", nargs="+", default=["sqlite", "duckdb"])
    parser.add_argument("--new", type=float, default=0.01, help="share of new data (0.01)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for engine in args.engines:
            rows.append(
                run(engine, args.units, int(args.units * args.events_per_unit), args.new, Path(tmp))
            )
    print(
        "| engine | units | events | new events | new exposures | cache build | full analyze() "
        "| incremental | ratio | no-op tick | max rel. diff | other diffs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['engine']} | {r['units']:,} | {r['events']:,} | {r['new_events']:,} "
            f"| {r['new_exposures']:,} | {r['build']:.2f} s | {r['full']:.2f} s "
            f"| {r['incremental']:.2f} s | {r['incremental'] / r['full']:.1%} "
            f"| {r['tick']:.2f} s | {r['worst']:.1e} | {r['other']} |"
        )
    for r in rows:
        print(f"\n{r['engine']}: {r['note']}; then {r['tick_note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
