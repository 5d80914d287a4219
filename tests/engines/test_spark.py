"""abkit's analysis on a real Spark standalone cluster and through Spark Connect.

The same ``analyze(...)`` (segments, ratio metrics, CUPED, the percentile cap, the daily
series, a hostile experiment key and event name) must give the same ``to_dict()`` on Spark
as on SQLite and DuckDB, to 1e-9 on every leaf.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import BigInteger, Double, literal, select, union_all

from abkit.analysis.analyze import analyze
from abkit.analysis.constructs import day_bucket, nearest_rank
from abkit.engines.spark import SparkRunner, compile_statement, open_runner
from abkit.errors import StoreError

from .conftest import HOSTILE_EVENT, HOSTILE_KEY, StoredExperiment, store_views

# where each engine names itself; everything else must agree
ENGINE_FIELDS = {"dialect", "source", "database", "where"}


def assert_same(expected: Any, got: Any, path: str = "") -> None:
    """Equal leaf by leaf: floats to 1e-9 (relative or absolute), the rest exactly."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), path
        assert set(expected) == set(got), (path, set(expected) ^ set(got))
        for key in expected:
            if key not in ENGINE_FIELDS:
                assert_same(expected[key], got[key], f"{path}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(expected) == len(got), path
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(expected, float) and isinstance(got, float):
        assert (math.isnan(expected) and math.isnan(got)) or math.isclose(
            expected, got, rel_tol=1e-9, abs_tol=1e-9
        ), (path, expected, got)
    else:
        assert expected == got, (path, expected, got)


def _analysis(db: Any, exp: StoredExperiment) -> dict[str, Any]:
    return analyze(db, exp.key, list(exp.metrics), segments=exp.segments).to_dict()


@pytest.fixture(scope="module")
def reference(stored_experiment: StoredExperiment) -> dict[str, Any]:
    """SQLite's result (its own engine, not the DuckDB replica), checked once against DuckDB's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ABKIT_SQLITE_ENGINE", "sqlite")
        expected = _analysis(stored_experiment.sqlite_url, stored_experiment)
        assert expected["experiment"]["dialect"] == "sqlite"
    assert_same(expected, _analysis(stored_experiment.duckdb_url, stored_experiment))
    # the data exercise what the comparison is for
    assert expected["daily"], "no daily series"
    assert expected["segments"], "no segment results"
    assert any(m["metric"] == "weird_per_user" for m in expected["metrics"])
    return expected


def test_constructs_on_spark(spark_session: Any) -> None:
    """Day buckets (negative times and day boundaries) and nearest-rank percentiles."""
    runner = SparkRunner(spark_session)
    day = 86_400_000_000
    times = [0, 1, day - 1, day, 20_000 * day - 1, 20_000 * day, -1, -day, -day - 1]
    buckets = union_all(
        *[select(day_bucket(literal(t, BigInteger())).label("d")) for t in times]
    ).subquery()
    assert sorted(r[0] for r in runner.run(select(buckets.c.d))) == sorted(t // day for t in times)

    values = [5.0, 1.0, 3.0, 3.0, 2.0, 9.0, 7.0, 3.0]
    data = union_all(*[select(literal(v, Double()).label("v")) for v in values]).subquery("vals")
    percents = [1.0, 12.5, 25.0, 37.5, 50.0, 62.5, 90.0, 99.0]
    row = runner.run(
        select(*[nearest_rank(data, "v", p).label(f"p{i}") for i, p in enumerate(percents)])
    )[0]
    ordered = sorted(values)
    for p, got in zip(percents, row, strict=True):
        # nearest rank: the smallest value whose rank r satisfies 100·r >= p·N
        rank = next(r for r in range(1, len(ordered) + 1) if 100 * r >= p * len(ordered))
        assert got == ordered[rank - 1], p


def test_hostile_values_are_bound(spark_session: Any) -> None:
    runner = SparkRunner(spark_session)
    stmt = select(literal(HOSTILE_KEY).label("k"), literal(HOSTILE_EVENT).label("e"))
    text, params = compile_statement(stmt)
    assert (
        HOSTILE_KEY not in text
        and "DROP" not in text
        and set(params.values())
        == {
            HOSTILE_KEY,
            HOSTILE_EVENT,
        }
    )
    assert runner.run(stmt) == [(HOSTILE_KEY, HOSTILE_EVENT)]


def test_standalone_cluster_matches_sqlite_and_duckdb(
    spark_session: Any, stored_experiment: StoredExperiment, reference: dict[str, Any]
) -> None:
    assert "abkit_events" in store_views(spark_session, stored_experiment.sqlite_url)
    assert_same(reference, _analysis(SparkRunner(spark_session), stored_experiment))


def test_master_url_opens_the_active_session(spark_cluster: Any, spark_session: Any) -> None:
    runner = open_runner(spark_cluster.master_url)
    assert runner.session is spark_session and runner.where == spark_cluster.master_url
    assert runner.run(select(literal(HOSTILE_KEY))) == [(HOSTILE_KEY,)]
    runner.close()  # a classic session stays up for the next analysis
    assert runner.run(select(literal(1))) == [(1,)]


def test_missing_table_is_a_store_error(spark_session: Any) -> None:
    from sqlalchemy import column, table

    with pytest.raises(StoreError, match="abkit_nowhere"):
        SparkRunner(spark_session).run(select(column("x")).select_from(table("abkit_nowhere")))


def test_spark_connect_matches(
    spark_cluster: Any,
    spark_session: Any,
    stored_experiment: StoredExperiment,
    reference: dict[str, Any],
) -> None:
    from pyspark.sql import SparkSession

    spark_session.stop()  # one classic and one Connect session do not share a process well
    url = spark_cluster.connect_url
    session = SparkSession.builder.remote(url).getOrCreate()
    try:
        store_views(session, stored_experiment.sqlite_url)
        runner = open_runner(url)
        assert runner.session is session and runner.where == url
        assert_same(reference, _analysis(runner, stored_experiment))
    finally:
        # A Connect client left open runs clean-up calls at interpreter exit; once the
        # cluster fixture has stopped the server they retry for minutes and hold the exit.
        session.stop()
