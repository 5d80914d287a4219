"""In-place upgrades of an older store, one version step at a time.

Each step is a function ``(connection, metadata_of_current_schema) -> None`` that runs
inside the same transaction that then records the new ``schema_version``; SQLite and
PostgreSQL both run DDL transactionally, so a failed upgrade leaves the old store intact.
Steps never read the *current* table definitions for what they add: they spell out the
columns of their own version, so later schema changes cannot alter what an old step does.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import BigInteger, Column, Index, String, Table, Text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn, DDLElement


class AddColumn(DDLElement):
    """``ALTER TABLE t ADD COLUMN c`` as a Core DDL construct (SQLAlchemy has no built-in)."""

    inherit_cache = False

    def __init__(self, table: Table, column: Column) -> None:
        self.table = table
        self.column = column


@compiles(AddColumn)
def _compile_add_column(element: AddColumn, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    table = compiler.preparer.format_table(element.table)
    column = compiler.process(CreateColumn(element.column), **kw)
    return "ALTER TABLE " + table + " ADD COLUMN " + column


def _v1_to_v2(conn: Connection) -> None:
    """Version 2: resumable, claimable ingest batches."""
    from sqlalchemy import MetaData

    for column in (
        Column("params_hash", String(64), nullable=True),
        Column("owner", String(255), nullable=True),
        Column("heartbeat_at_us", BigInteger, nullable=True),
        Column("message", Text, nullable=True),
    ):
        # Each column belongs to a throw-away Table so the dialect can render its type.
        table = Table("abkit_ingest_batches", MetaData(), column)
        conn.execute(AddColumn(table, column))
    # Existing batches are finished business: a v1 "running" batch cannot be resumed
    # because v1 recorded no parameters, so the ingestor starts such files afresh.
    batches = Table(
        "abkit_ingest_batches",
        MetaData(),
        Column("content_hash", String(64)),
        Column("status", String(16)),
    )
    Index("ix_abkit_ingest_batches_content", batches.c.content_hash, batches.c.status).create(conn)
    quarantine = Table(
        "abkit_quarantine", MetaData(), Column("source", Text), Column("batch_id", BigInteger)
    )
    Index("ix_abkit_quarantine_source", quarantine.c.source, quarantine.c.batch_id).create(conn)


# version N -> the step that upgrades a version-N store to N + 1
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2}
