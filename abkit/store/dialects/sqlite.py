"""SQLite: WAL, a busy timeout, ``BEGIN IMMEDIATE`` for writers, a raw executemany fast path.

Bulk insert is the raw DBAPI ``executemany`` of ``INSERT OR IGNORE`` (compiled once from a
Core ``insert().prefix_with("OR IGNORE")``) on the engine's own connection; new rows are
counted with ``sqlite3.Connection.total_changes``. SQLAlchemy's generic executemany costs
about three times more per row, which is why this bypass exists. Conflict detection sends
a chunk's ids as one JSON array that ``json_each()`` turns into a table (a 50,000-item IN
list would cost more to build than to run). Exclusive locks are ``flock`` files beside
the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, event, func, insert, select
from sqlalchemy.engine import URL, Connection, Engine

from abkit.errors import StoreError
from abkit.store.dialects.base import Row, register
from abkit.store.dialects.files import FileDialect

# Writers wait this long for the write lock before giving up: several ingesting processes
# take turns per chunk (a chunk holds the lock for well under a second).
BUSY_TIMEOUT_MS = 120_000


def _database(url: URL) -> str | None:
    database = url.database
    return database if database and database != ":memory:" else None


@register
class SqliteDialect(FileDialect):
    name = "sqlite"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, tuple[int, ...]]] = {}

    @classmethod
    def engine_options(cls, url: URL, *, readonly: bool) -> dict[str, Any]:
        database = _database(url)
        if database is not None:
            parent = os.path.dirname(os.path.abspath(database))
            if not os.path.isdir(parent):
                raise StoreError(
                    f"cannot create the SQLite store {database!r}: {parent} does not exist"
                )
        return {}

    def prepare_engine(self, *, readonly: bool) -> None:
        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: object) -> None:
            # Let SQLAlchemy's "begin" event below issue BEGIN itself: pysqlite's implicit
            # transactions would start too late (at the first INSERT) and as DEFERRED.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            if readonly:
                # SQLite itself refuses any write on this connection.
                cursor.execute("PRAGMA query_only = ON")
            else:
                # WAL lets readers (the analysis) run while an ingest writes; NORMAL sync
                # is durable against process crashes (kill -9), which is what WAL promises.
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front (BEGIN IMMEDIATE): a DEFERRED
            # transaction that reads and then writes can fail at once with "database is
            # locked" when another process holds the lock, because waiting could deadlock.
            if conn.get_execution_options().get("abkit_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

    def _insert(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Row],
        key: tuple[str, ...],
    ) -> tuple[int, Table | None]:
        cache_key = (table.fullname + ("!" if key else ""), columns)
        if cache_key not in self._compiled:
            stmt = insert(table)
            if key:
                stmt = stmt.prefix_with("OR IGNORE")
            compiled = stmt.compile(dialect=self.engine.dialect, column_keys=list(columns))
            order = tuple(columns.index(name) for name in compiled.positiontup or ())
            self._compiled[cache_key] = (str(compiled), order)
        sql, order = self._compiled[cache_key]
        if order != tuple(range(len(columns))):
            rows = [tuple(row[i] for i in order) for row in rows]
        raw = conn.connection.driver_connection
        if raw is None:  # pragma: no cover - a live connection always has one
            raise StoreError("the SQLite connection is closed")
        before = raw.total_changes
        cursor = raw.cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()
        return int(raw.total_changes - before), None

    def _stored_hashes(self, conn: Connection, table: Table, ids: list[Any]) -> dict[str, str]:
        listed = func.json_each(bindparam("ids")).table_valued("value")
        stmt = select(table.c.event_id, table.c.content_hash).join(
            listed, table.c.event_id == listed.c.value
        )
        return {r[0]: r[1] for r in conn.execute(stmt, {"ids": json.dumps(ids)})}
