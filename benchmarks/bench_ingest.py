"""Ingest throughput and peak memory against raw baselines measured in the same run.

    python benchmarks/bench_ingest.py --rows 1000000 10000000

For each size, a CSV of events is generated (1% of rows repeat an earlier event, so the
deduplication path is exercised) and loaded four ways, each in a fresh child process
whose peak RSS (``resource.getrusage(...).ru_maxrss``) is reported:

* ``abkit`` on SQLite: ``abkit.ingest.ingestor.ingest`` (validation, ids, hashes,
  quarantine, batch accounting, resumable chunks);
* raw SQLite: the stdlib ``csv`` module and ``sqlite3`` ``executemany`` of ``INSERT OR
  IGNORE`` into the same ``abkit_events`` table (same unique key and indexes, same
  pragmas), 50,000 rows per transaction, with only the conversions the table needs and a
  constant in place of the 32-character content hash (same row width, no hashing);
* ``abkit`` on PostgreSQL (a throw-away server from ``abkit.testing.postgres``);
* raw PostgreSQL: psycopg ``COPY`` into a temporary staging table, then
  ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the same table, per 50,000 rows.

Prints a Markdown table: rows/s, the ratio to the raw baseline, peak memory. With
``--repeat N`` each loader runs N times, interleaved, and its fastest run counts (on a
shared machine the slow runs measure the neighbours, not the loader).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

CHUNK = 50_000
# The raw baselines store a constant of the content hash's width, so both loaders write
# rows of the same size; abkit computes a real hash per row (its own cost).
HASH = "0" * 32
EVENT_SQL_COLUMNS = (
    "event_id",
    "unit_id",
    "event_type",
    "value",
    "currency",
    "ts_us",
    "properties",
    "content_hash",
    "batch_id",
)


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """event_id, unit_id, event_type, value, timestamp (ISO 8601 with Z); 1% repeats."""
    rng = random.Random(seed)
    base = 1_704_067_200
    with open(path, "w", newline="") as fh:
        fh.write("event_id,unit_id,event_type,value,timestamp\n")
        lines = []
        for i in range(rows):
            j = i - rng.randrange(1, 1000) if i > 1000 and rng.random() < 0.01 else i
            kind = "purchase" if j % 10 == 0 else "click"
            value = f"{(j * 7919) % 10000 / 100:.2f}" if kind == "purchase" else ""
            stamp = datetime.utcfromtimestamp(base + j // 20).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(f"ev{j:012d},user{(j * 2654435761) % 5_000_000},{kind},{value},{stamp}\n")
            if len(lines) >= 100_000:
                fh.writelines(lines)
                lines.clear()
        fh.writelines(lines)


def _rows(path: Path):
    """The raw baselines' reader: csv module, only the conversions the table needs."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        batch = []
        for event_id, unit_id, event_type, value, stamp in reader:
            ts = datetime.fromisoformat(stamp)
            ts_us = int(ts.timestamp()) * 1_000_000
            batch.append(
                (
                    event_id,
                    unit_id,
                    event_type,
                    float(value) if value else None,
                    None,
                    ts_us,
                    None,
                    HASH,
                    0,
                )
            )
            if len(batch) >= CHUNK:
                yield batch
                batch = []
        if batch:
            yield batch


def child_raw_sqlite(path: Path, url: str) -> int:
    import sqlite3

    from abkit.store.store import open_store

    open_store(url).close()  # the same abkit_events table, key and indexes
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    sql = "INSERT OR IGNORE INTO abkit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    inserted = 0
    for batch in _rows(path):
        conn.execute("BEGIN IMMEDIATE")
        before = conn.total_changes
        conn.executemany(sql, batch)
        inserted += conn.total_changes - before
        conn.execute("COMMIT")
    conn.close()
    return inserted


def child_raw_postgres(path: Path, url: str) -> int:
    import psycopg

    from abkit.store.store import open_store

    open_store(url).close()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    inserted = 0
    columns = ", ".join(EVENT_SQL_COLUMNS)
    with psycopg.connect(dsn) as conn:
        for batch in _rows(path):
            with conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE stage (LIKE abkit_events INCLUDING DEFAULTS) ON COMMIT DROP"
                )
                with cur.copy(f"COPY stage ({columns}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
                cur.execute(
                    f"INSERT INTO abkit_events ({columns}) SELECT {columns} FROM stage "
                    "ORDER BY event_id ON CONFLICT (event_id) DO NOTHING"
                )
                inserted += cur.rowcount
            conn.commit()
    return inserted


def child_abkit(path: Path, url: str) -> int:
    from abkit.ingest.ingestor import ingest

    report = ingest(path, db=url, chunk_size=CHUNK)
    assert report.rows_read == report.accepted + report.duplicates + report.quarantined
    return report.accepted


def run_child(mode: str, path: Path, url: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), url],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_main(mode: str, path: Path, url: str) -> None:
    work = {
        "abkit": child_abkit,
        "raw-sqlite": child_raw_sqlite,
        "raw-postgres": child_raw_postgres,
    }[mode]
    started = time.perf_counter()
    inserted = work(path, url)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "inserted": inserted, "peak_mb": peak_mb}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per loader, interleaved; the fastest counts (the machine may be shared)",
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, path, url = args.child
        child_main(mode, Path(path), url)
        return

    from abkit.testing.postgres import PostgresUnavailable, TemporaryPostgres

    server = None
    if not args.no_postgres:
        try:
            server = TemporaryPostgres().start()
        except PostgresUnavailable as exc:
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
    table = [
        "| backend | rows | abkit rows/s | raw baseline rows/s | abkit / raw | abkit peak MB | raw peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="abkit-bench-") as tmp:
            for rows in args.rows:
                path = Path(tmp) / f"events_{rows}.csv"
                started = time.perf_counter()
                generate(path, rows)
                print(
                    f"generated {rows:,} rows ({path.stat().st_size / 1e6:,.0f} MB) in "
                    f"{time.perf_counter() - started:.0f}s",
                    file=sys.stderr,
                )
                backends = [
                    ("SQLite", lambda name: f"sqlite:///{Path(tmp) / name}.db", "raw-sqlite")
                ]
                if server is not None:
                    backends.append(
                        ("PostgreSQL", lambda name: server.create_database(name), "raw-postgres")
                    )
                for label, make_url, raw_mode in backends:
                    raws, oursl = [], []
                    for attempt in range(args.repeat):
                        raws.append(run_child(raw_mode, path, make_url(f"raw_{rows}_{attempt}")))
                        oursl.append(run_child("abkit", path, make_url(f"abkit_{rows}_{attempt}")))
                    raw = min(raws, key=lambda r: r["seconds"])
                    ours = min(oursl, key=lambda r: r["seconds"])
                    if raw["inserted"] != ours["inserted"]:
                        raise SystemExit(
                            f"{label}: abkit stored {ours['inserted']}, raw {raw['inserted']}"
                        )
                    raw_rate = rows / raw["seconds"]
                    our_rate = rows / ours["seconds"]
                    line = (
                        f"| {label} | {rows:,} | {our_rate:,.0f} | {raw_rate:,.0f} | "
                        f"{our_rate / raw_rate:.0%} | {ours['peak_mb']:,.0f} | {raw['peak_mb']:,.0f} |"
                    )
                    print(line, file=sys.stderr)
                    table.append(line)
                path.unlink()
    finally:
        if server is not None:
            server.stop()
    print("\n".join(table))


if __name__ == "__main__":
    main()
