"""Fixtures for the engine tests: one real Spark standalone cluster with a Spark Connect
server for the whole session, and one experiment stored in SQLite and in DuckDB.

In CI (``CI=true``) a missing Java runtime or pyspark fails the run; on a developer machine
the Spark tests are skipped with the reason shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
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
    path = tmp_path_factory.mktemp("engines")
    sqlite_url = f"sqlite:///{path / 'abkit.db'}"
    duckdb_url = f"duckdb:///{path / 'abkit.duckdb'}"
    _store_experiment(sqlite_url, sim)
    _store_experiment(duckdb_url, sim)
    return StoredExperiment(HOSTILE_KEY, sqlite_url, duckdb_url, _metrics(), ("platform",))


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


def store_views(session: Any, url: str) -> list[str]:
    """Register the analysis tables of the store at ``url`` as temporary views."""
    from abkit.engines.spark import register_store_views
    from abkit.store.store import open_store

    store = open_store(url, create=False)
    try:
        return register_store_views(session, store.engine, store.tables)
    finally:
        store.close()
