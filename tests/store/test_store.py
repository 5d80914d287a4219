"""The store: creation, versioning and in-place upgrade, the bulk write path."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    inspect,
    select,
    update,
)

from abkit.errors import ConfigError, StoreError
from abkit.store.schema import SCHEMA_VERSION, build_tables
from abkit.store.store import open_store

EVENT_COLUMNS = (
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


def event(i: int, content: str = "h", value: float = 1.0) -> tuple:
    return (f"e{i:05d}", f"u{i}", "click", value, None, 1_000 + i, None, content, 1)


def test_open_creates_every_contract_table_and_version(db_url):
    store = open_store(db_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 4
        names = set(inspect(store.engine).get_table_names())
        assert {
            "abkit_meta",
            "abkit_experiments",
            "abkit_exposures",
            "abkit_exposure_attributes",
            "abkit_events",
            "abkit_quarantine",
            "abkit_ingest_batches",
            "abkit_unit_caches",
        } <= names
        assert store.tables.events.name == "abkit_events"
    finally:
        store.close()
    # Reopening is a no-op.
    again = open_store(db_url)
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_sqlite_pragmas(sqlite_url):
    store = open_store(sqlite_url)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 60_000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_newer_store_is_refused(db_url):
    store = open_store(db_url)
    with store.write() as conn:
        conn.execute(update(store.tables.meta).values(value="99"))
    store.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this abkit understands"):
        open_store(db_url)


def test_foreign_tables_without_version_are_refused(sqlite_url):
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE abkit_events (x INTEGER)")
    engine.dispose()
    with pytest.raises(StoreError, match="no schema_version"):
        open_store(sqlite_url)


def _v1_store(url: str) -> None:
    """A store exactly as version 1 (the initial schema) wrote it, with data in it."""
    metadata = MetaData()
    meta = Table(
        "abkit_meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text)
    )
    batches = Table(
        "abkit_ingest_batches",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("source", Text, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("path", Text),
        Column("content_hash", String(64)),
        Column("status", String(16), nullable=False),
        Column("rows_read", BigInteger, nullable=False),
        Column("accepted", BigInteger, nullable=False),
        Column("duplicates", BigInteger, nullable=False),
        Column("quarantined", BigInteger, nullable=False),
        Column("columns", Text),
        Column("started_at_us", BigInteger, nullable=False),
        Column("finished_at_us", BigInteger),
    )
    current = build_tables()
    for table in (
        current.experiments,
        current.exposures,
        current.exposure_attributes,
        current.events,
    ):
        table.to_metadata(metadata)
    # Version 1's events index (version 3 replaced it with a covering one).
    events = metadata.tables["abkit_events"]
    events.indexes = {i for i in events.indexes if i.name != "ix_abkit_events_unit_type_ts_value"}
    Index("ix_abkit_events_unit_type_ts", events.c.unit_id, events.c.event_type, events.c.ts_us)
    Table(
        "abkit_quarantine",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("batch_id", Integer, nullable=False),
        Column("source", Text, nullable=False),
        Column("row_number", BigInteger),
        Column("raw", Text, nullable=False),
        Column("reason_code", String(64), nullable=False),
        Column("reason", Text, nullable=False),
        Column("field", String(255)),
        Column("quarantined_at_us", BigInteger, nullable=False),
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(insert(meta).values(key="schema_version", value="1"))
        conn.execute(
            insert(batches).values(
                source="old.csv",
                kind="events",
                status="committed",
                rows_read=1,
                accepted=1,
                duplicates=0,
                quarantined=0,
                started_at_us=1,
            )
        )
        conn.execute(
            insert(metadata.tables["abkit_events"]).values(
                dict(zip(EVENT_COLUMNS, event(1), strict=True))
            )
        )
    engine.dispose()


def test_v1_store_is_upgraded_in_place(db_url, tmp_path):
    _v1_store(db_url)
    store = open_store(db_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        columns = {c["name"] for c in inspect(store.engine).get_columns("abkit_ingest_batches")}
        assert {"params_hash", "owner", "heartbeat_at_us", "message", "params"} <= columns
        quarantine = {c["name"] for c in inspect(store.engine).get_columns("abkit_quarantine")}
        assert {"resolved_at_us", "resolved_batch_id"} <= quarantine
        indexes = {i["name"] for i in inspect(store.engine).get_indexes("abkit_ingest_batches")}
        assert "ix_abkit_ingest_batches_content" in indexes
        with store.engine.connect() as conn:
            (old,) = conn.execute(select(store.tables.ingest_batches)).all()
            assert (old.source, old.status, old.owner) == ("old.csv", "committed", None)
            assert conn.execute(select(store.tables.events.c.event_id)).scalars().all() == [
                "e00001"
            ]
    finally:
        store.close()
    # The upgraded store takes new ingests.
    path = tmp_path / "new.csv"
    path.write_text("unit_id,event_type,timestamp\nu,click,1704067200\n")
    from abkit.ingest.ingestor import ingest

    assert ingest(path, db=db_url).accepted == 1


def test_insert_new_counts_new_duplicate_and_conflicting_rows(db_url):
    store = open_store(db_url)
    try:
        table = store.tables.events
        with store.write() as conn:
            first = store.insert_new(conn, table, EVENT_COLUMNS, [event(i) for i in range(10)])
        assert (first.inserted, first.duplicates, first.conflicts) == (10, 0, ())
        rows = [event(i) for i in range(5, 15)]
        rows[2] = event(7, content="other", value=2.0)  # id e00007 exists with other content
        with store.write() as conn:
            second = store.insert_new(conn, table, EVENT_COLUMNS, rows)
        assert (second.inserted, second.duplicates, second.conflicts) == (5, 4, (2,))
        with store.engine.connect() as conn:
            values = {r[0]: r[1] for r in conn.execute(select(table.c.event_id, table.c.value))}
        assert len(values) == 15 and values["e00007"] == 1.0  # the stored row was kept
        # A failed transaction writes nothing.
        with pytest.raises(RuntimeError), store.write() as conn:
            store.insert_new(conn, table, EVENT_COLUMNS, [event(i) for i in range(100, 110)])
            raise RuntimeError("boom")
        with store.engine.connect() as conn:
            assert len(conn.execute(select(table.c.event_id)).all()) == 15
    finally:
        store.close()


def test_experiments_registry_snapshot(db_url):
    store = open_store(db_url)
    try:
        config = {
            "key": "checkout",
            "variants": [{"name": "control"}, {"name": "new"}],
            "salt": "s",
        }
        assert store.register_experiments([config]) == 1
        store.register_experiments([{**config, "salt": "t"}])  # replace, not duplicate
        assert store.experiment_configs() == {"checkout": {**config, "salt": "t"}}
        with store.engine.connect() as conn:
            stored = conn.execute(select(store.tables.experiments.c.config)).scalars().all()
        assert [json.loads(s)["salt"] for s in stored] == ["t"]
        pytest.importorskip("abkit.assignment.config")
        with pytest.raises(StoreError, match="not registered"):
            store.get_experiment("missing")
        with pytest.raises(ConfigError) as info:
            store.get_experiment("chekout")
        assert info.value.location.field == "experiment"
        assert str(info.value).endswith("; did you mean 'checkout'?; known: checkout")
    finally:
        store.close()


def test_bad_urls_are_store_errors(tmp_path):
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not a url at all")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")


def test_default_url_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ABKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    store = open_store()
    try:
        assert store.dialect_name == "sqlite" and (tmp_path / "env.db").exists()
    finally:
        store.close()


def test_two_bulk_writes_in_one_transaction(db_url):
    store = open_store(db_url)
    try:
        with store.write() as conn:
            a = store.insert_new(conn, store.tables.events, EVENT_COLUMNS, [event(1), event(2)])
            b = store.insert_new(conn, store.tables.events, EVENT_COLUMNS, [event(2), event(3)])
        assert (a.inserted, b.inserted, b.duplicates) == (2, 1, 1)
    finally:
        store.close()


def test_readers_do_not_create_a_missing_store(tmp_path):
    """A typo in a path must not leave an empty store behind for the next command."""
    from abkit.errors import StoreError
    from abkit.store.store import open_store

    for url in (f"sqlite:///{tmp_path / 'typo.db'}", f"duckdb:///{tmp_path / 'typo.duckdb'}"):
        with pytest.raises(StoreError, match="no abkit store at"):
            open_store(url, create=False)
    assert list(tmp_path.iterdir()) == []
    created = open_store(f"sqlite:///{tmp_path / 'new.db'}")  # writers still create it
    created.engine.dispose()
    assert (tmp_path / "new.db").exists()


def test_analyze_and_quarantine_cli_refuse_a_missing_store(tmp_path):
    import subprocess
    import sys

    for args in (["analyze", "--experiment", "x"], ["quarantine"]):
        done = subprocess.run(
            [sys.executable, "-m", "abkit", *args, "--db", f"sqlite:///{tmp_path / 'nope.db'}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "no abkit store at" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_quarantine_cli_finds_the_demo_store(tmp_path, monkeypatch, capsys):
    from abkit.cli.main import main

    monkeypatch.delenv("ABKIT_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["quarantine"]) == 2
    assert "looked for abkit.db and abkit-demo.db" in capsys.readouterr().err
    open_store(f"sqlite:///{tmp_path / 'abkit-demo.db'}").close()
    assert main(["quarantine"]) == 0
    assert "no quarantined rows match" in capsys.readouterr().out
    assert not (tmp_path / "abkit.db").exists()


def test_v2_store_gets_the_covering_events_index(db_url):
    _v1_store(db_url)
    open_store(db_url).close()  # v1 -> v2 -> v3 in one transaction
    indexes = {
        i["name"]: i["column_names"]
        for i in inspect(create_engine(db_url)).get_indexes("abkit_events")
    }
    assert indexes["ix_abkit_events_unit_type_ts_value"] == [
        "unit_id",
        "event_type",
        "ts_us",
        "value",
    ]
    assert "ix_abkit_events_unit_type_ts" not in indexes
