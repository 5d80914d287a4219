"""PostgreSQL (psycopg 3): ``COPY`` into a staging table, ordered upsert, advisory locks.

Bulk insert: psycopg ``COPY`` into a temporary staging table, then one
``INSERT ... SELECT ... ORDER BY key ON CONFLICT DO NOTHING`` (Core
``postgresql.insert().from_select().on_conflict_do_nothing()``). The ``ORDER BY`` makes
concurrent writers take row locks in the same order, so they cannot deadlock on
overlapping keys; the statement's row count is the exact number of new rows. Conflicts
are one join of the staging table against the target.

Exclusive locks are session-level advisory locks on a connection held for the lock's
duration: the server releases them when that session ends, including when the client
process is killed.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, MetaData, Table, event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from abkit.store.dialects.base import Dialect, Row, register

# Any fixed 64-bit number: the transaction-level advisory lock serialising schema creation.
SCHEMA_LOCK = 0x61626B6974  # "abkit"
_STAGE_NUMBERS = itertools.count(1)


def advisory_key(key: str) -> int:
    """A signed 64-bit advisory-lock key from the first 8 bytes of SHA-256(``key``)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)


@register
class PostgresqlDialect(Dialect):
    name = "postgresql"
    cross_process_locks = True

    def prepare_engine(self, *, readonly: bool) -> None:
        if not readonly:
            return

        @event.listens_for(self.engine, "connect")
        def _read_only_session(dbapi_connection: Any, _record: object) -> None:
            # The server refuses any write in this session, whatever the caller runs.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()

    def lock_schema(self, conn: Connection) -> None:
        # Concurrent first opens would otherwise race on CREATE TABLE.
        conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))

    def _insert(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Row],
        key: tuple[str, ...],
    ) -> tuple[int, Table | None]:
        from psycopg import sql as pgsql

        raw: Any = conn.connection.driver_connection
        target = table
        if key:
            # A per-transaction staging table (dropped at commit) shaped like the target.
            # A unique name: several calls may share one transaction.
            target = Table(
                f"abkit_stage_{next(_STAGE_NUMBERS)}_{table.name}",
                MetaData(),
                *[Column(name, table.c[name].type) for name in columns],
                prefixes=["TEMPORARY"],
                postgresql_on_commit="DROP",
            )
            target.create(conn, checkfirst=False)
        names = [pgsql.Identifier(target.schema, target.name)] if target.schema else []
        copy_sql = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            names[0] if names else pgsql.Identifier(target.name),
            pgsql.SQL(", ").join(map(pgsql.Identifier, columns)),
        )
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        if not key:
            return len(rows), None
        source = select(*[target.c[name] for name in columns]).order_by(
            *[target.c[name] for name in key]
        )
        stmt = (
            pg_insert(table)
            .from_select(list(columns), source)
            .on_conflict_do_nothing(index_elements=list(key))
        )
        # SQLAlchemy keeps the row count of an INSERT only when asked to.
        inserted = conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount
        return int(inserted), target

    def _conflicts(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Row],
        staged: Table | None,
    ) -> dict[str, str]:
        if staged is None:
            return super()._conflicts(conn, table, columns, rows, staged)
        stmt = (
            select(staged.c.event_id, table.c.content_hash)
            .join(table, table.c.event_id == staged.c.event_id)
            .where(table.c.content_hash != staged.c.content_hash)
        )
        return {r[0]: r[1] for r in conn.execute(stmt)}

    @contextmanager
    def exclusive(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        number = advisory_key(key)
        conn = self.engine.connect()
        try:
            got = conn.execute(select(func.pg_try_advisory_lock(number))).scalar()
            if not got:
                if on_wait is not None:
                    on_wait()
                conn.execute(select(func.pg_advisory_lock(number)))
            # Session locks outlive the transaction: end it so the session is not left
            # "idle in transaction" for the whole ingest.
            conn.commit()
        except BaseException:
            conn.close()
            raise
        try:
            yield
        finally:
            try:
                conn.execute(select(func.pg_advisory_unlock(number)))
                conn.commit()
            except Exception as exc:  # the session is gone: the server released the lock
                conn.invalidate(exc)
            finally:
                conn.close()


__all__ = ["SCHEMA_LOCK", "PostgresqlDialect", "advisory_key"]
