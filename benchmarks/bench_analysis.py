"""Warehouse-native analysis: five metrics in the database vs a pandas in-memory groupby.

    python benchmarks/bench_analysis.py --units 100000 1000000 --events 1000000 10000000

For each size a simulated experiment (``abkit.analysis.simulate``, generated and loaded in
chunks of 100,000 units so the generator itself stays small) is loaded into SQLite,
PostgreSQL (a throw-away server from ``abkit.testing.postgres``) and DuckDB. Then, in the
same run:

* ``abkit analyze`` on each engine with five metrics (conversion rate, revenue per user
  capped at its 99th percentile, orders per user, average order value, click-through
  rate), CUPED covariates, quality checks and the daily series: wall time and peak Python
  memory (``tracemalloc``, everything allocated by Python and numpy during the call);
* the same statistics computed by pandas from the same rows held in memory (first exposure
  per unit, contamination filter, window and pre-period joins, per-unit then per-arm sums,
  the p99 cap): wall time (untraced) and peak Python memory (traced, a second run),
  which includes the frames pandas needs in memory.

The pandas sums are checked against the database's to 1e-9 so both sides do the same
work. Prints a Markdown table; memory of the database path should not grow with units.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK_UNITS = 100_000
WINDOW_US = 7 * 24 * 3_600_000_000
KEY = "bench-checkout"


def five_metrics():
    from abkit.metrics.library import builtin_metric

    return [
        builtin_metric("conversion_rate").with_(role="primary"),
        builtin_metric("revenue_per_user"),  # p99 cap: one extra pass
        builtin_metric("orders_per_user"),
        builtin_metric("average_order_value"),
        builtin_metric("click_through_rate"),
    ]


def impressions_for(events_per_unit: float) -> float:
    # per unit: 0.14 purchases + 0.14 pre-period + 0.005 late + 0.5 + 0.5 errors
    # + impressions × 1.08 (8% clicked)
    return max((events_per_unit - 1.285) / 1.08, 0.0)


def generate_chunks(units: int, events: int):
    from abkit.analysis.simulate import TrueEffect, simulate_experiment

    imp = impressions_for(events / units)
    for k, start in enumerate(range(0, units, CHUNK_UNITS)):
        n = min(CHUNK_UNITS, units - start)
        yield simulate_experiment(
            n,
            key=KEY,
            effects=TrueEffect(conversion_lift=0.05, order_value_lift=0.02),
            impressions=imp,
            unit_prefix=f"c{k}-",
            seed=1000 + k,
        )


def pandas_baseline(exposures, events):
    """Every number ``analyze`` takes from the database, computed in memory by pandas."""
    import numpy as np

    first = exposures.groupby("unit_id").agg(
        first=("ts_us", "min"), vmin=("variant", "min"), vmax=("variant", "max")
    )
    first = first[first.vmin == first.vmax]
    ev = events[events.event_type.isin(["purchase", "click", "impression"])]
    ev = ev.join(first, on="unit_id", how="inner")
    inside = ev[(ev.ts_us >= ev["first"]) & (ev.ts_us < ev["first"] + WINDOW_US)]
    pre = ev[(ev.ts_us < ev["first"]) & (ev.ts_us >= ev["first"] - WINDOW_US)]

    def per_unit(frame, kind, how):
        part = frame[frame.event_type == kind]
        grouped = part.groupby("unit_id")
        s = grouped.value.sum() if how == "sum" else grouped.size().astype(float)
        return s.reindex(first.index, fill_value=0.0).to_numpy()

    rev, orders = per_unit(inside, "purchase", "sum"), per_unit(inside, "purchase", "count")
    rev_x, orders_x = per_unit(pre, "purchase", "sum"), per_unit(pre, "purchase", "count")
    clicks, imps = per_unit(inside, "click", "count"), per_unit(inside, "impression", "count")
    nonzero = np.sort(rev[rev != 0])
    cap = nonzero[math.ceil(0.99 * len(nonzero)) - 1] if len(nonzero) else None
    rev_c = np.minimum(rev, cap) if cap is not None else rev
    rev_xc = np.minimum(rev_x, cap) if cap is not None else rev_x
    conv, conv_x = (orders > 0).astype(float), (orders_x > 0).astype(float)
    arm = first.vmin.to_numpy()
    out = {}
    for variant in np.unique(arm):
        m = arm == variant
        out[variant] = {
            "n": int(m.sum()),
            "conversion_rate": (conv[m].sum(), conv_x[m].sum(), (conv[m] * conv_x[m]).sum()),
            "revenue_per_user": (
                rev_c[m].sum(),
                (rev_c[m] ** 2).sum(),
                (rev_c[m] * rev_xc[m]).sum(),
            ),
            "orders_per_user": (
                orders[m].sum(),
                (orders[m] ** 2).sum(),
                (orders[m] * orders_x[m]).sum(),
            ),
            "average_order_value": (rev[m].sum(), orders[m].sum(), (rev[m] * orders[m]).sum()),
            "click_through_rate": (clicks[m].sum(), imps[m].sum(), (clicks[m] * imps[m]).sum()),
        }
    return out


def db_numbers(result):
    out = {}
    for variant, n in result.experiment.units.items():
        s = {name: result.arm_stats[name][variant] for name in result.arm_stats}
        out[variant] = {
            "n": n,
            "conversion_rate": (
                s["conversion_rate"].sum,
                s["conversion_rate"].cov_sum,
                s["conversion_rate"].cross_sum,
            ),
            "revenue_per_user": (
                s["revenue_per_user"].sum,
                s["revenue_per_user"].sum_sq,
                s["revenue_per_user"].cross_sum,
            ),
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
            ),
        }
    return out


def check_same(a, b, label):
    for variant in a:
        assert a[variant]["n"] == b[variant]["n"], (label, variant)
        for metric, values in a[variant].items():
            if metric == "n":
                continue
            for x, y in zip(values, b[variant][metric], strict=True):
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (
                    label,
                    variant,
                    metric,
                    x,
                    y,
                )


def traced(fn):
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, wall, peak


def run_size(units: int, events: int, engines: list[str], workdir: Path, pg) -> list[dict]:
    import pandas as pd

    from abkit.analysis.analyze import analyze
    from abkit.analysis.simulate import load_simulation
    from abkit.store.store import open_store

    stores = {}
    for engine in engines:
        if engine == "sqlite":
            stores[engine] = open_store(f"sqlite:///{workdir / f'bench-{units}.db'}")
        elif engine == "postgres":
            stores[engine] = open_store(pg.create_database())
        elif engine == "duckdb":
            stores[engine] = open_store(f"duckdb:///{workdir / f'bench-{units}.duckdb'}")
    ex_parts, ev_parts = [], []
    load_time = dict.fromkeys(engines, 0.0)
    n_events = 0
    for sim in generate_chunks(units, events):
        for engine, store in stores.items():
            t0 = time.perf_counter()
            load_simulation(sim, store, via="bulk")
            load_time[engine] += time.perf_counter() - t0
        ex_parts.append(sim.exposures[["unit_id", "variant", "ts_us"]])
        ev_parts.append(sim.events[["unit_id", "event_type", "value", "ts_us"]])
        n_events += len(sim.events)
        print(
            f"  loaded {sum(len(p) for p in ex_parts):,} exposures, {n_events:,} events",
            file=sys.stderr,
        )
    rows = []
    metrics = five_metrics()
    reference = None
    _warm_up()
    for engine, store in stores.items():
        result, wall, peak = traced(lambda store=store: analyze(store, KEY, metrics))
        numbers = db_numbers(result)
        reference = reference or numbers
        check_same(reference, numbers, engine)
        rows.append(
            dict(
                units=units,
                events=n_events,
                engine=engine,
                wall=wall,
                peak=peak,
                load=load_time[engine],
            )
        )
        print(f"  {engine}: {wall:.2f} s, peak {peak / 1e6:.1f} MB", file=sys.stderr)
        store.close()

    # pandas: time untraced, then memory traced (tracemalloc slows allocation-heavy code)
    def baseline():
        exposures = pd.concat(ex_parts, ignore_index=True)
        evs = pd.concat(ev_parts, ignore_index=True)
        return pandas_baseline(exposures, evs)

    gc.collect()
    t0 = time.perf_counter()
    numbers = baseline()
    wall = time.perf_counter() - t0
    _, _, peak = traced(baseline)
    if reference is not None:
        check_same(reference, numbers, "pandas")
    rows.append(
        dict(
            units=units,
            events=n_events,
            engine="pandas (in memory)",
            wall=wall,
            peak=peak,
            load=None,
        )
    )
    print(f"  pandas: {wall:.2f} s, peak {peak / 1e6:.1f} MB", file=sys.stderr)
    return rows


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--events", type=int, nargs="+", default=None, help="events per size (default 10 per unit)"
    )
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgres", "duckdb"])
    parser.add_argument(
        "--workdir", default=None, help="where the SQLite/DuckDB files go (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    events = args.events or [10 * u for u in args.units]
    if len(events) != len(args.units):
        parser.error("give one --events per --units")

    from contextlib import nullcontext

    pg_ctx = nullcontext(None)
    if "postgres" in args.engines:
        from abkit.testing.postgres import TemporaryPostgres

        pg_ctx = TemporaryPostgres()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp, pg_ctx as pg:
        for units, n_events in zip(args.units, events, strict=True):
            print(f"size {units:,} units / {n_events:,} events", file=sys.stderr)
            rows += run_size(units, n_events, args.engines, Path(tmp), pg)

    print(
        "| units | events | engine | analysis wall (s) | vs pandas | peak Python memory (MB) | load (s) |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|")
    for row in rows:
        base = next(
            r for r in rows if r["units"] == row["units"] and r["engine"].startswith("pandas")
        )
        ratio = row["wall"] / base["wall"]
        load = "" if row["load"] is None else f"{row['load']:.0f}"
        print(
            f"| {row['units']:,} | {row['events']:,} | {row['engine']} | {row['wall']:.2f} | "
            f"{ratio:.2f}× | {row['peak'] / 1e6:.1f} | {load} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
