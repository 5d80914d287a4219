"""abkit's analysis on a real Spark standalone cluster and through Spark Connect.

The same ``analyze(...)`` (segments, ratio metrics, CUPED, the percentile cap, the daily
series, a hostile experiment key and event name) must give the same ``to_dict()`` on Spark
as on SQLite and DuckDB, to 1e-9 on every leaf.

Each full analysis costs tens of seconds of Spark scheduling on a small machine, so the two
that run are chosen to cover every pair once: the classic session on the standalone
cluster reads a :class:`~abkit.analysis.sources.Source` (the user's own tables), and Spark
Connect (whose server also runs on that cluster) reads abkit's own tables from Parquet
files, by running the Spark recipe of docs/analysis.md as written. The SQL differs only by
the relations read; the runner differs only by the session kind.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Double, column, literal, select, table, union_all

from abkit.analysis.analyze import analyze
from abkit.analysis.constructs import day_bucket, epoch_micros, nearest_rank
from abkit.engines.spark import SparkRunner, compile_statement, open_runner
from abkit.errors import StoreError
from abkit.testing.compare import ENGINE_FIELDS, assert_same_readout
from abkit.testing.recipes import recipe, with_values

from .conftest import (
    HOSTILE_EVENT,
    HOSTILE_KEY,
    StoredExperiment,
    catalog_listing,
    export_parquet,
    register_user_tables,
    store_views,
    user_source,
)

# one xdist worker runs every Spark test (make test: --dist loadgroup): one cluster, and the
# Connect test, which stops the classic session, after the others (conftest)
pytestmark = pytest.mark.xdist_group("spark")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"


def assert_same(expected: Any, got: Any) -> None:
    assert_same_readout(got, expected)


class RecordingRunner(SparkRunner):
    """A :class:`SparkRunner` that keeps the text of every statement it runs."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.statements: list[str] = []
        self.materialized_statements: list[str] = []

    def run(self, stmt: Any) -> list[tuple[Any, ...]]:
        self.statements.append(compile_statement(stmt)[0])
        return super().run(stmt)

    def materialized(self, stmt: Any) -> Any:
        self.materialized_statements.append(compile_statement(stmt)[0])
        return super().materialized(stmt)


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
    """Day buckets (negative times and day boundaries), nearest-rank percentiles, and a
    source's times to epoch microseconds from every encoding."""
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

    # a source's times: native TIMESTAMP (an instant), TIMESTAMP_NTZ (read as UTC), epoch
    # seconds (fractional DOUBLE or BIGINT) and milliseconds, before 1970 included
    times = [0, 1_704_067_200_123_456, -86_400_000_001, 1_700_000_000_999_999]
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    rows = [
        (
            epoch + timedelta(microseconds=us),
            (epoch + timedelta(microseconds=us)).replace(tzinfo=None),
            (us // 1000) / 1000,
            us // 1_000_000,
            us // 1000,
        )
        for us in times
    ]
    ddl = "ltz TIMESTAMP, ntz TIMESTAMP_NTZ, s DOUBLE, s_int BIGINT, ms BIGINT"
    spark_session.createDataFrame(rows, schema=ddl).createOrReplaceTempView("abkit_test_times")
    src = table("abkit_test_times", *[column(c) for c in ("ltz", "ntz", "s", "s_int", "ms")])
    got_times = runner.run(
        select(
            epoch_micros(src.c.ltz, "timestamp"),
            epoch_micros(src.c.ntz, "timestamp"),
            epoch_micros(src.c.s, "s"),
            epoch_micros(src.c.s_int, "s"),
            epoch_micros(src.c.ms, "ms"),
        )
    )
    assert sorted(got_times) == sorted(
        (us, us, us // 1000 * 1000, us // 1_000_000 * 1_000_000, us // 1000 * 1000) for us in times
    )


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


def test_standalone_cluster_reads_the_users_tables_only(
    spark_session: Any, stored_experiment: StoredExperiment, reference: dict[str, Any]
) -> None:
    """The full analysis on the standalone cluster, from the same rows in the user's own
    shape (a qualified table, reserved and mixed-case names, native TIMESTAMP exposures,
    wide attribute columns, an events query over epoch milliseconds with bound parameters,
    one of them hostile): the store's readout on SQLite and DuckDB; abkit only reads."""
    register_user_tables(spark_session, stored_experiment.sqlite_url)
    # abkit's registry gives the configured weights; its other tables must not be needed
    assert "abkit_experiments" in store_views(spark_session, stored_experiment.sqlite_url)
    for name in ("abkit_exposures", "abkit_exposure_attributes", "abkit_events"):
        spark_session.catalog.dropTempView(name)
    before = catalog_listing(spark_session)
    runner = RecordingRunner(spark_session)
    got = analyze(
        runner,
        stored_experiment.key,
        list(stored_experiment.metrics),
        segments=stored_experiment.segments,
        source=user_source(),
    ).to_dict()
    assert got["experiment"]["source"].startswith("warehouse (exposures: global_temp.Order")
    assert_same(reference, got)
    # read-only: only queries ran, and the catalog is as it was (the per-unit values,
    # cached once for the percentile cap and the sums, were dropped)
    assert catalog_listing(spark_session) == before
    assert len(runner.materialized_statements) == 1
    assert runner.statements and all(
        text.lstrip().upper().startswith(("SELECT", "WITH"))
        for text in runner.statements + runner.materialized_statements
    )
    read = " ".join(runner.statements)
    assert "`global_temp`.`Order`" in read and "FROM `select`" in read
    assert HOSTILE_KEY not in read and HOSTILE_EVENT not in read


def test_master_url_opens_the_active_session(spark_cluster: Any, spark_session: Any) -> None:
    runner = open_runner(spark_cluster.master_url)
    assert runner.session is spark_session and runner.where == spark_cluster.master_url
    assert runner.run(select(literal(HOSTILE_KEY))) == [(HOSTILE_KEY,)]
    runner.close()  # a classic session stays up for the next analysis
    assert runner.run(select(literal(1))) == [(1,)]


def test_missing_table_is_a_store_error(spark_session: Any) -> None:
    missing = select(column("x")).select_from(table("abkit_nowhere"))
    with pytest.raises(StoreError, match="table or view `abkit_nowhere` not found"):
        SparkRunner(spark_session).run(missing)
    with (
        pytest.raises(StoreError, match="table or view `abkit_nowhere` not found"),
        SparkRunner(spark_session).materialized(missing),
    ):
        pass


def test_spark_connect_recipe_matches(
    spark_cluster: Any,
    spark_session: Any,
    stored_experiment: StoredExperiment,
    reference: dict[str, Any],
    tmp_path: Path,
) -> None:
    """docs/analysis.md's Spark recipe, run as written through Spark Connect (whose server
    runs its jobs on the cluster), on abkit's own tables read from Parquet files."""
    spark_session.stop()  # one classic and one Connect session do not share a process well
    url = spark_cluster.connect_url
    lake = export_parquet(stored_experiment.sqlite_url, tmp_path / "lake")
    code = with_values(
        recipe(DOCS, "spark"),
        SPARK=repr(url),
        LAKE=repr(str(lake)),
        EXPERIMENT=repr(stored_experiment.key),
        METRICS="list(metrics)",
    )
    namespace: dict[str, Any] = {"metrics": stored_experiment.metrics}
    try:
        exec(compile(code, f"{DOCS}:spark", "exec"), namespace)
        assert_same(reference, namespace["result"].to_dict())
        runner = open_runner(url)  # the URL form finds the same Connect session
        assert runner.session is namespace["spark"] and runner.where == url
        assert runner.run(select(literal(HOSTILE_KEY))) == [(HOSTILE_KEY,)]
        # the unit cache through Connect: built, then read by a tick
        cached = SparkRunner(namespace["spark"], cache_location=str(tmp_path / "caches"))
        for note in ("full rebuild: no cache yet", "incremental (0 new events"):
            result = analyze(
                cached,
                stored_experiment.key,
                list(stored_experiment.metrics),
                segments=stored_experiment.segments,
                refresh="auto",
            )
            assert result.experiment.refresh.startswith(note)
            assert_same_readout(result.to_dict(), reference, ignore={*ENGINE_FIELDS, "refresh"})
    finally:
        # A Connect client left open runs clean-up calls at interpreter exit; once the
        # cluster fixture has stopped the server they retry for minutes and hold the exit.
        if "spark" in namespace:
            namespace["spark"].stop()
