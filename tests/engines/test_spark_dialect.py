"""The Spark SQL dialect, compile-only: no value in the text, Spark's spellings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import BigInteger, String, column, literal, select, table

from abkit.analysis.constructs import day_bucket, epoch_micros, nearest_rank, to_double
from abkit.engines.spark import compile_statement as compile_spark
from abkit.engines.spark import spark_schema
from abkit.store.schema import build_tables

events = table("abkit_events", column("ts_us"), column("value"), column("event_type"))


@given(st.text(min_size=1))
def test_user_values_are_bound_never_rendered(value: str) -> None:
    stmt = select(events.c.value).where(events.c.event_type == literal(value, String()))
    text, params = compile_spark(stmt)
    assert list(params.values()) == [value]
    assert ":param_1" in text
    if len(value) > 3:  # short values may occur in the SQL by chance
        assert value not in text


def test_identifiers_are_backticked_and_escaped() -> None:
    odd = table("we`ird", column("a`b"))
    text, _ = compile_spark(select(odd.c["a`b"]))
    assert "`we``ird`.`a``b`" in text


def test_day_bucket_is_integer_division() -> None:
    text, _ = compile_spark(select(day_bucket(events.c.ts_us)))
    assert "DIV 86400000000" in text and "pmod(" in text and "/" not in text


def test_percentile_is_an_ordered_set_aggregate() -> None:
    values = select(events.c.value.label("v")).subquery("vals")
    text, params = compile_spark(select(nearest_rank(values, "v", 99.0)))
    assert "percentile_disc(:param_1) WITHIN GROUP (ORDER BY" in text
    assert "row_number" not in text.lower()
    assert params == {"param_1": 0.99}


def test_types_and_epochs_use_spark_names() -> None:
    ts = column("created_at")
    text, _ = compile_spark(
        select(
            to_double(events.c.value),
            epoch_micros(ts, "timestamp"),
            epoch_micros(ts, "ms"),
            literal(5, BigInteger()),
        )
    )
    assert "CAST(`abkit_events`.`value` AS DOUBLE)" in text
    assert "unix_micros(CAST(`created_at` AS TIMESTAMP))" in text
    assert "CAST(round(`created_at` * :param_1) AS BIGINT)" in text


def test_store_tables_map_to_spark_schemas() -> None:
    schema = spark_schema(build_tables().events)
    assert schema.startswith("`event_id` STRING, `unit_id` STRING, `event_type` STRING")
    assert "`value` DOUBLE" in schema and "`ts_us` BIGINT" in schema


class _Conf:
    def get(self, key: str, default: object = None) -> object:
        return "local[2]" if key == "spark.master" else default


class FakeSession:
    """Stands for a SparkSession: only its package name and ``conf`` are read here."""

    __module__ = "pyspark.sql.session"
    conf = _Conf()


def test_a_session_object_finds_the_spark_runner() -> None:
    from abkit.analysis.runner import session_runner
    from abkit.engines.spark import SparkRunner

    session = FakeSession()
    runner = session_runner(session)
    assert isinstance(runner, SparkRunner) and runner.session is session
    assert runner.where == "local[2]" and runner.dialect.name == "spark"
