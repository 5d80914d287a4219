"""In-place upgrades of an older store, one version step at a time.

Each step is a function ``(connection, tables) -> None`` that runs
inside the same transaction that then records the new ``schema_version``; SQLite and
PostgreSQL both run DDL transactionally, so a failed upgrade leaves the old store intact.
Steps never read the *current* table definitions for what they add: they spell out the
columns of their own version, so later schema changes cannot alter what an old step does;
they take only the store's table names (prefix and schema) from ``tables``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn, DDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from abkit.store.schema import Tables


class AddColumn(DDLElement):
    """``ALTER TABLE t ADD COLUMN c`` as a Core DDL construct (SQLAlchemy has no built-in)."""

    inherit_cache = False

    def __init__(self, table: Table, column: Column) -> None:
        self.table = table
        self.column = column


@compiles(AddColumn)
def _compile_add_column(element: AddColumn, compiler: DDLCompiler, **kw: Any) -> str:
    table = compiler.preparer.format_table(element.table)
    column = compiler.process(CreateColumn(element.column), **kw)
    return "ALTER TABLE " + table + " ADD COLUMN " + column


def _v1_to_v2(conn: Connection, tables: Tables) -> None:
    """Version 2: resumable, claimable ingest batches."""
    batches_name, schema, prefix = tables.ingest_batches.name, tables.schema, tables.prefix
    for column in (
        Column("params_hash", String(64), nullable=True),
        Column("owner", String(255), nullable=True),
        Column("heartbeat_at_us", BigInteger, nullable=True),
        Column("message", Text, nullable=True),
    ):
        # Each column belongs to a throw-away Table so the dialect can render its type.
        table = Table(batches_name, MetaData(schema=schema), column)
        conn.execute(AddColumn(table, column))
    # Existing batches are finished business: a v1 "running" batch cannot be resumed
    # because v1 recorded no parameters, so the ingestor starts such files afresh.
    batches = Table(
        batches_name,
        MetaData(schema=schema),
        Column("content_hash", String(64)),
        Column("status", String(16)),
    )
    Index(f"ix_{prefix}ingest_batches_content", batches.c.content_hash, batches.c.status).create(
        conn
    )
    quarantine = Table(
        tables.quarantine.name,
        MetaData(schema=schema),
        Column("source", Text),
        Column("batch_id", BigInteger),
    )
    Index(f"ix_{prefix}quarantine_source", quarantine.c.source, quarantine.c.batch_id).create(conn)


def _v2_to_v3(conn: Connection, tables: Tables) -> None:
    """Version 3: batch parameters, the quarantine's resolved state, a covering index."""
    schema, prefix = tables.schema, tables.prefix
    for table_name, column in (
        (tables.ingest_batches.name, Column("params", Text, nullable=True)),
        (tables.quarantine.name, Column("resolved_at_us", BigInteger, nullable=True)),
        (tables.quarantine.name, Column("resolved_batch_id", Integer, nullable=True)),
    ):
        conn.execute(AddColumn(Table(table_name, MetaData(schema=schema), column), column))
    events = Table(
        tables.events.name,
        MetaData(schema=schema),
        Column("unit_id", String(255)),
        Column("event_type", String(255)),
        Column("ts_us", BigInteger),
        Column("value", Float(precision=53)),
    )
    covering = Index(
        f"ix_{prefix}events_unit_type_ts_value",
        events.c.unit_id,
        events.c.event_type,
        events.c.ts_us,
        events.c.value,
    )
    covering.create(conn)
    # The v2 index on (unit_id, event_type, ts_us) is a prefix of the new one.
    Index(f"ix_{prefix}events_unit_type_ts", events.c.unit_id).drop(conn)


def _v3_to_v4(conn: Connection, tables: Tables) -> None:
    """Version 4: the per-unit cache registry and the ``batch_id`` indexes (incremental
    refresh)."""
    schema, prefix = tables.schema, tables.prefix
    for name in (tables.events.name, tables.exposures.name):
        table = Table(name, MetaData(schema=schema), Column("batch_id", Integer))
        kind = "events" if name == tables.events.name else "exposures"
        index = f"ix_{prefix}{kind}_batch"
        # idempotent: a store created by a build that already had the index keeps it
        if index not in {i["name"] for i in inspect(conn).get_indexes(name, schema=schema)}:
            Index(index, table.c.batch_id).create(conn)
    Table(
        f"{prefix}unit_caches",
        MetaData(schema=schema),
        Column("experiment", String(255), primary_key=True),
        Column("definition", String(64), nullable=False),
        Column("table_name", String(128), nullable=False),
        Column("columns", Text, nullable=False),
        Column("watermark", BigInteger, nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("max_ts_us", BigInteger, nullable=True),
        Column("units", BigInteger, nullable=False),
        Column("built_at_us", BigInteger, nullable=False),
        Column("refreshed_at_us", BigInteger, nullable=False),
    ).create(conn, checkfirst=True)


# version N -> the step that upgrades a version-N store to N + 1
MIGRATIONS: dict[int, Callable[[Connection, Tables], None]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
}
