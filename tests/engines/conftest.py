"""Fixtures for the engine tests: one real Spark standalone cluster with a Spark Connect
server for the whole session, and one experiment stored in SQLite and in DuckDB (and, for
the source tests, the same rows in a user's own shape on Spark).

In CI (``CI=true``) a missing Java runtime or pyspark fails the run; on a developer machine
the Spark tests are skipped with the reason shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Hostile on purpose: quotes, a backslash (Spark reads ``\\`` in a string literal as an
# escape), a comment marker and a statement separator. Both stay bound values.
HOSTILE_KEY = "checkout\\'; DROP TABLE abkit_events; --"
HOSTILE_EVENT = "it's a \\ `weird` event; --"


@dataclass(frozen=True)
class StoredExperiment:
    key: str
    sqlite_url: str
    duckdb_url: str
    metrics: tuple[Any, ...]
    segments: tuple[str, ...]


def _metrics() -> tuple[Any, ...]:
    from abkit.metrics.definitions import mean
    from abkit.metrics.library import builtin_metric

    return (
        builtin_metric("conversion_rate").with_(role="primary"),
        builtin_metric("revenue_per_user"),  # the p99 cap
        builtin_metric("orders_per_user"),
        builtin_metric("average_order_value"),  # ratio
        builtin_metric("click_through_rate"),  # ratio of two event types
        mean("weird_per_user", HOSTILE_EVENT, aggregate="count", window="7d"),
    )


def _store_experiment(url: str, sim: Any) -> None:
    from abkit.simulate import load_simulation
    from abkit.store.store import open_store

    store = open_store(url)
    load_simulation(sim, store, via="bulk")
    # a few events whose type is the hostile name, inside and before the window
    exposures = sim.exposures.sort_values("ts_us").drop_duplicates("unit_id").head(60)
    rows = [
        {
            "event_id": f"weird-{i}",
            "unit_id": unit,
            "event_type": HOSTILE_EVENT,
            "value": None,
            "currency": None,
            "ts_us": int(ts) + (i % 3 - 1) * 3_600_000_000,
            "properties": None,
            "content_hash": "0" * 32,
            "batch_id": 0,
        }
        for i, (unit, ts) in enumerate(zip(exposures.unit_id, exposures.ts_us, strict=True))
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(store.tables.events), rows)
    store.close()


@pytest.fixture(scope="session")
def stored_experiment(tmp_path_factory: pytest.TempPathFactory) -> StoredExperiment:
    """600 units in three arms with contaminated units, late events, segments and a
    hostile key, in SQLite and in DuckDB (the same rows)."""
    from abkit.simulate import TrueEffect, simulate_experiment

    sim = simulate_experiment(
        600,
        key=HOSTILE_KEY,
        variants=("control", "treatment", "t2"),
        effects=TrueEffect(conversion_lift=0.2, order_value_lift=0.1),
        multiple_exposure_rate=0.03,
        days=6,
        seed=11,
    )
    # whole milliseconds, so a source holding epoch milliseconds carries the same times
    for frame in (sim.exposures, sim.events):
        frame["ts_us"] = frame["ts_us"] // 1000 * 1000
        frame["timestamp"] = frame["ts_us"].astype("datetime64[us]").dt.tz_localize("UTC")
    path = tmp_path_factory.mktemp("engines")
    sqlite_url = f"sqlite:///{path / 'abkit.db'}"
    duckdb_url = f"duckdb:///{path / 'abkit.duckdb'}"
    _store_experiment(sqlite_url, sim)
    _store_experiment(duckdb_url, sim)
    return StoredExperiment(HOSTILE_KEY, sqlite_url, duckdb_url, _metrics(), ("platform",))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Spark Connect test stops the classic session (a process holds one of the two
    well, not both): it runs after every test that uses the classic one."""
    items.sort(key=lambda item: item.name.startswith("test_spark_connect"))


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[Any]:
    """A master, a worker and a Spark Connect server on loopback, for the whole session."""
    from abkit.testing.spark import SparkUnavailable, TemporarySparkCluster

    try:
        cluster = TemporarySparkCluster(cores=2, connect=True)
    except SparkUnavailable as exc:
        if IN_CI:
            pytest.fail(f"Java and pyspark are required in CI: {exc}")
        pytest.skip(str(exc))
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def spark_session(spark_cluster: Any) -> Iterator[Any]:
    """A classic session whose executors run on the standalone cluster."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(spark_cluster.master_url).appName("abkit-tests")
    for key, value in spark_cluster.spark_conf().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()


def export_parquet(url: str, lake: Path) -> Path:
    """The store's analysis tables as Parquet folders ``lake/<table>/`` (a data lake's
    layout), typed like the store's columns; NULL stays NULL."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy import BigInteger, Float, Integer, select

    from abkit.store.store import open_store

    def arrow_type(column: Any) -> Any:
        if isinstance(column.type, BigInteger):
            return pa.int64()
        if isinstance(column.type, Integer):
            return pa.int32()
        if isinstance(column.type, Float):
            return pa.float64()
        return pa.string()

    store = open_store(url, create=False)
    t = store.tables
    try:
        with store.engine.connect() as conn:
            for table in (t.exposures, t.exposure_attributes, t.events, t.experiments):
                schema = pa.schema([(c.name, arrow_type(c)) for c in table.columns])
                rows = [dict(r._mapping) for r in conn.execute(select(table))]
                (lake / table.name).mkdir(parents=True)
                pq.write_table(
                    pa.Table.from_pylist(rows, schema=schema), lake / table.name / "part-0.parquet"
                )
    finally:
        store.close()
    return lake


def store_views(session: Any, url: str) -> list[str]:
    """Register the analysis tables of the store at ``url`` as temporary views."""
    from abkit.engines.spark import register_store_views
    from abkit.store.store import open_store

    store = open_store(url, create=False)
    try:
        return register_store_views(session, store.engine, store.tables)
    finally:
        store.close()


# The user's own tables on Spark, for the source tests: names a careless query would break
# on (reserved words, mixed case, ``$``), a schema-qualified table (the session's
# ``global_temp`` database), native TIMESTAMP times for exposures, epoch milliseconds for
# events; the attributes are columns of the exposures (wide), not abkit's long table.
USER_SCHEMA = "global_temp"
USER_EXPOSURES = "Order"
USER_EVENTS = "select"
USER_EXPOSURES_DDL = (
    "`from` STRING, `Group` STRING, `select` STRING, `timestamp` TIMESTAMP, "
    "`exposure$id` STRING, `platform` STRING, `country` STRING"
)
USER_EVENTS_DDL = "`from` STRING, `Kind` STRING, `value` DOUBLE, `currency` STRING, `at$ms` BIGINT"


def user_rows(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The store's exposures and events as a user would keep them (see ``USER_*_DDL``):
    times as timezone-aware ``datetime`` (TIMESTAMP) and as epoch milliseconds."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from abkit.store.store import open_store

    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    store = open_store(url, create=False)
    t = store.tables
    try:
        with store.engine.connect() as conn:
            attrs: dict[str, dict[str, Any]] = {}
            for event_id, name, value in conn.execute(
                select(t.exposure_attributes.c.event_id, t.exposure_attributes.c.name,
                       t.exposure_attributes.c.value)
            ):  # fmt: skip
                attrs.setdefault(event_id, {})[name] = value
            exposures = [
                (
                    r.unit_id,
                    r.experiment,
                    r.variant,
                    epoch + timedelta(microseconds=r.ts_us),
                    r.event_id,
                    attrs.get(r.event_id, {}).get("platform"),
                    attrs.get(r.event_id, {}).get("country"),
                )
                for r in conn.execute(select(t.exposures))
            ]
            events = []
            for r in conn.execute(select(t.events)):
                assert r.ts_us % 1000 == 0, "the source holds whole milliseconds"
                events.append((r.unit_id, r.event_type, r.value, r.currency, r.ts_us // 1000))
    finally:
        store.close()
    return exposures, events


def register_user_tables(session: Any, url: str) -> None:
    """The rows of :func:`user_rows` as ``global_temp.`Order``` and ``select`` on ``session``."""
    exposures, events = user_rows(url)
    session.createDataFrame(exposures, schema=USER_EXPOSURES_DDL).createOrReplaceGlobalTempView(
        USER_EXPOSURES
    )
    session.createDataFrame(events, schema=USER_EVENTS_DDL).createOrReplaceTempView(USER_EVENTS)


def user_source() -> Any:
    """The :class:`~abkit.analysis.sources.Source` reading :func:`register_user_tables`'s tables:
    exposures from the qualified table (native TIMESTAMP), events through a SQL query with
    bound parameters (epoch milliseconds); one parameter is a hostile text."""
    from abkit.analysis.sources import EventMapping, ExposureMapping, Source, TableRef

    return Source(
        ExposureMapping(
            table=TableRef(USER_EXPOSURES, schema=USER_SCHEMA),
            unit="from",
            experiment="Group",
            variant="select",
            timestamp="timestamp",
            event_id="exposure$id",
            attributes=("platform", "country"),
        ),
        EventMapping(
            # the user's own SQL: their names, their quoting; values are :parameters
            query=(
                f"SELECT * FROM `{USER_EVENTS}` "
                "WHERE (`value` IS NULL OR `value` >= :floor) AND `Kind` <> :absent"
            ),
            unit="from",
            event_type="Kind",
            value="value",
            currency="currency",
            timestamp="at$ms",
            timestamp_encoding="ms",
        ),
        params={"floor": 0.0, "absent": HOSTILE_KEY},
        name="warehouse",
    )


def catalog_listing(session: Any) -> set[tuple[str, ...]]:
    """Every database, and every table or view of the current and ``global_temp`` databases."""
    listed: set[tuple[str, ...]] = {
        ("database", str(r[0])) for r in session.sql("SHOW DATABASES").collect()
    }
    for where in ("", f" IN {USER_SCHEMA}"):
        listed |= {
            ("table", str(r[0]), str(r[1])) for r in session.sql(f"SHOW TABLES{where}").collect()
        }
    return listed
