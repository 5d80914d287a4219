"""Store dialects, table placement (prefix, schema) and read-only opening."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import DBAPIError

from abkit.errors import StoreError
from abkit.ingest.ingestor import ingest
from abkit.store.dialects import dialect_class
from abkit.store.dialects.base import Dialect
from abkit.store.dialects.duckdb import DuckdbDialect
from abkit.store.dialects.postgresql import PostgresqlDialect, advisory_key
from abkit.store.dialects.sqlite import SqliteDialect
from abkit.store.schema import SCHEMA_VERSION
from abkit.store.store import open_store

CSV = "unit_id,event_type,value,timestamp\nu1,buy,2.5,2024-01-01T00:00:00Z\n"


def test_each_database_has_its_registered_module():
    assert dialect_class("sqlite") is SqliteDialect
    assert dialect_class("postgresql") is PostgresqlDialect
    assert dialect_class("duckdb") is DuckdbDialect
    assert dialect_class("trino") is Dialect  # unregistered: the portable base
    assert DuckdbDialect.sequences and not SqliteDialect.sequences
    # Advisory keys are signed 64-bit and stable across processes (a hash, not hash()).
    assert advisory_key("ingest:abc") == advisory_key("ingest:abc")
    assert -(2**63) <= advisory_key("x") < 2**63 and advisory_key("x") != advisory_key("y")


def test_a_prefix_places_every_table_and_keeps_stores_apart(db_url, tmp_path):
    data = tmp_path / "e.csv"
    data.write_text(CSV)
    with open_store(db_url, prefix="exp_") as store:
        assert store.prefix == "exp_" and store.tables.events.name == "exp_events"
        report = ingest(data, db=store)
        assert report.accepted == 1
    names = set(inspect(create_engine(db_url)).get_table_names())
    assert {"exp_events", "exp_meta", "exp_ingest_batches", "exp_quarantine"} <= names
    assert "abkit_events" not in names
    # The default prefix sees an empty store of its own beside it.
    with open_store(db_url) as default, default.engine.connect() as conn:
        assert conn.execute(select(default.tables.events)).all() == []


@pytest.mark.postgres
def test_a_schema_holds_the_tables_on_postgresql(postgres_url, tmp_path):
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA analytics"))
    engine.dispose()
    data = tmp_path / "e.csv"
    data.write_text(CSV)
    with open_store(postgres_url, schema="analytics") as store:
        assert store.schema == "analytics" and store.schema_version() == SCHEMA_VERSION
        assert ingest(data, db=store).accepted == 1
    with (
        open_store(postgres_url, schema="analytics", readonly=True) as reader,
        reader.engine.connect() as conn,
    ):
        assert len(conn.execute(select(reader.tables.events)).all()) == 1
    inspector = inspect(
        create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    )
    assert "abkit_events" in inspector.get_table_names(schema="analytics")
    assert "abkit_events" not in inspector.get_table_names()


@pytest.mark.parametrize("bad", ["abkit-", "1x", "a b", "x;drop", "é"])
def test_prefix_and_schema_are_checked_identifiers(sqlite_url, bad):
    with pytest.raises(StoreError, match="letters, digits and underscores"):
        open_store(sqlite_url, prefix=bad)
    with pytest.raises(StoreError, match="letters, digits and underscores"):
        open_store(sqlite_url, schema=bad)


def test_read_only_runs_no_ddl_and_refuses_writes(db_url, tmp_path):
    with pytest.raises(StoreError, match=r"no abkit (tables|store)"):
        open_store(db_url, readonly=True)  # nothing there yet, and nothing created
    if db_url.startswith("postgres"):
        assert not inspect(create_engine(db_url)).get_table_names()
    data = tmp_path / "e.csv"
    data.write_text(CSV)
    ingest(data, db=db_url)
    with open_store(db_url, readonly=True) as store:
        assert store.readonly
        with store.engine.connect() as conn:
            assert len(conn.execute(select(store.tables.events)).all()) == 1
        with pytest.raises(StoreError, match="read-only"), store.write():
            pass
        # Even around the Store API, the database refuses a write on this engine.
        with (
            pytest.raises(DBAPIError, match=r"(?i)read.only|readonly"),
            store.engine.begin() as conn,
        ):
            conn.execute(store.tables.meta.delete())


def test_read_only_refuses_a_missing_file_and_an_old_version(tmp_path):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(StoreError, match="no abkit store"):
        open_store(missing, readonly=True)
    assert not (tmp_path / "none.db").exists()
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with open_store(url) as store, store.write() as conn:
        conn.execute(store.tables.meta.update().values(value="2"))
    with pytest.raises(StoreError, match="schema version 2, this abkit reads version 4"):
        open_store(url, readonly=True)


def test_append_columns_writes_column_wise_data(db_url):
    with open_store(db_url) as store, store.write() as conn:
        count = store.append_columns(
            conn,
            store.tables.events,
            {
                "event_id": ["a", "b"],
                "unit_id": ["u1", "u2"],
                "event_type": ["buy", "buy"],
                "value": [1.0, 2.0],
                "ts_us": [1, 2],
                "content_hash": ["h", "h"],
                "batch_id": [0, 0],
            },
        )
        assert count == 2
        assert conn.execute(select(store.tables.events.c.event_id)).scalars().all() == ["a", "b"]


def test_duckdb_store_ingests_and_appends(tmp_path):
    pytest.importorskip("duckdb_engine")
    url = f"duckdb:///{tmp_path / 'd.duckdb'}"
    data = tmp_path / "e.csv"
    data.write_text(CSV)
    report = ingest(data, db=url)
    assert report.accepted == 1
    with open_store(url) as store:
        assert isinstance(store.dialect, DuckdbDialect)
        with store.write() as conn:
            store.append_columns(
                conn,
                store.tables.exposure_attributes,
                {"event_id": ["x", "y"], "name": ["p", "p"], "value": ["ios", "web"]},
            )
        with store.engine.connect() as conn:
            rows = conn.execute(select(store.tables.exposure_attributes.c.value)).scalars().all()
        assert sorted(rows) == ["ios", "web"]
    assert ingest(data, db=url).files[0].status == "skipped"
