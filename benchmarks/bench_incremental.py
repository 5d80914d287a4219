"""Incremental refresh against a full analysis, after 1% more data.

    python benchmarks/bench_incremental.py --units 1000000 --engines sqlite duckdb

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

The incremental result is compared with the full one on every leaf of ``to_dict()``
(1e-9, the refresh note aside). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analysis import KEY, five_metrics, generate_chunks


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


def run(engine: str, units: int, events: int, share: float, workdir: Path) -> dict[str, Any]:
    from abkit.analysis.analyze import analyze
    from abkit.simulate import load_simulation
    from abkit.store.store import open_store

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
    incremental, t_inc = timed(lambda: analyze(store, KEY, metrics, refresh="auto"))
    print(f"  {engine}: {incremental.experiment.refresh} in {t_inc:.2f} s", file=sys.stderr)
    tick, t_tick = timed(lambda: analyze(store, KEY, metrics, refresh="auto"))
    full, t_full = timed(lambda: analyze(store, KEY, metrics))
    worst, other = max_difference(incremental, full)
    store.close()
    return {
        "engine": engine,
        "units": units,
        "events": n_events,
        "new_events": new_events,
        "new_exposures": new_exposures,
        "build": build,
        "full": t_full,
        "incremental": t_inc,
        "tick": t_tick,
        "note": incremental.experiment.refresh,
        "tick_note": tick.experiment.refresh,
        "worst": worst,
        "other": other,
    }


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
