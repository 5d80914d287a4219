"""Open, version and write the abkit SQL store.

Everything that depends on the database dialect lives in this module: connection
settings (SQLite WAL, busy timeout, ``BEGIN IMMEDIATE`` for writers), the schema
upgrade lock, and the bulk write path :meth:`Store.insert_new`:

* SQLite: the raw DBAPI ``executemany`` of ``INSERT OR IGNORE`` (compiled once from a
  Core ``insert().prefix_with("OR IGNORE")``) on the engine's own connection; new rows
  are counted with ``sqlite3.Connection.total_changes``. SQLAlchemy's generic
  executemany costs about three times more per row, which is why this bypass exists.
* PostgreSQL: psycopg ``COPY`` into a temporary staging table, then one
  ``INSERT ... SELECT ... ORDER BY key ON CONFLICT DO NOTHING`` (Core
  ``postgresql.insert().from_select().on_conflict_do_nothing()``). The ``ORDER BY`` makes
  concurrent writers take row locks in the same order, so they cannot deadlock on
  overlapping keys; the statement's row count is the exact number of new rows.
* Other dialects (DuckDB...): a portable Core fallback (look up existing keys, insert
  the rest) that is correct for a single writer.

After a write that skipped rows, rows whose key exists with a *different*
``content_hash`` are reported as conflicts so the caller can quarantine them.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from abkit.errors import StoreError
from abkit.store.migrations import MIGRATIONS
from abkit.store.schema import SCHEMA_VERSION, Tables, build_tables

DEFAULT_URL = "sqlite:///abkit.db"
ENV_URL = "ABKIT_DATABASE_URL"
# SQLite writers wait this long for the write lock before giving up: several ingesting
# processes take turns per chunk (a chunk holds the lock for well under a second).
SQLITE_BUSY_TIMEOUT_MS = 120_000
# Any fixed 64-bit number: the PostgreSQL advisory lock serialising schema creation.
_PG_SCHEMA_LOCK = 0x61626B6974  # "abkit"
# Keys per ``IN (...)`` lookup: well under SQLite's 32766-variable limit.
_LOOKUP_SLICE = 5_000
_STAGE_NUMBERS = itertools.count(1)


@dataclass(frozen=True)
class InsertResult:
    """Outcome of :meth:`Store.insert_new`.

    ``inserted + duplicates + len(conflicts) == rows given``; ``conflicts`` are indexes
    into the rows given whose key already exists with a different content hash, and
    ``stored_hashes`` the content hash stored under each conflicting id (by id).
    """

    inserted: int
    duplicates: int
    conflicts: tuple[int, ...] = field(default=())
    stored_hashes: Mapping[str, str] = field(default_factory=dict)


def normalise_url(url: str) -> str:
    """Accept ``postgres://``/``postgresql://`` and route them to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _install_sqlite_listeners(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below issue BEGIN itself: pysqlite's implicit
        # transactions would start too late (at the first INSERT) and as DEFERRED.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers (the analysis) run while an ingest writes; NORMAL sync is
        # durable against process crashes (kill -9), which is what WAL promises.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE): a DEFERRED transaction
        # that reads and then writes can fail at once with "database is locked" when
        # another process holds the lock, because waiting could deadlock.
        if conn.get_execution_options().get("abkit_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Store:
    """An opened abkit store: ``engine``, ``tables``, ``dialect_name`` and write helpers."""

    def __init__(self, engine: Engine, tables: Tables | None = None) -> None:
        self.engine = engine
        self.tables = tables or build_tables()
        self.dialect_name = engine.dialect.name
        self._sqlite_sql: dict[tuple[str, tuple[str, ...]], tuple[str, tuple[int, ...]]] = {}

    # -- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside one write transaction (committed on success).

        On SQLite the transaction starts with ``BEGIN IMMEDIATE``: it waits (busy
        timeout) for other writers instead of failing half-way.
        """
        with self.engine.connect() as conn:
            conn.execution_options(abkit_write=True)
            with conn.begin():
                yield conn

    # -- schema versioning -------------------------------------------------------------
    def schema_version(self) -> int | None:
        with self.engine.connect() as conn:
            return _read_version(conn, self.tables)

    def _prepare(self) -> None:
        try:
            with self.write() as conn:
                if self.dialect_name == "postgresql":
                    # Concurrent first opens would otherwise race on CREATE TABLE.
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
                version = _read_version(conn, self.tables)
                if version is None:
                    names = set(inspect(conn).get_table_names())
                    ours = {t.name for t in self.tables.metadata.sorted_tables}
                    if names & ours:
                        raise StoreError(
                            f"{self.url}: abkit tables exist but abkit_meta has no "
                            "schema_version; this is not a store abkit can upgrade"
                        )
                    self.tables.metadata.create_all(conn)
                    conn.execute(
                        insert(self.tables.meta).values(
                            key="schema_version", value=str(SCHEMA_VERSION)
                        )
                    )
                elif version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.url}: the store has schema version {version}, newer than "
                        f"this abkit understands ({SCHEMA_VERSION}); upgrade abkit"
                    )
                elif version < SCHEMA_VERSION:
                    for step in range(version, SCHEMA_VERSION):
                        if step not in MIGRATIONS:
                            raise StoreError(f"{self.url}: no upgrade from schema version {step}")
                        MIGRATIONS[step](conn)
                    conn.execute(
                        update(self.tables.meta)
                        .where(self.tables.meta.c.key == "schema_version")
                        .values(value=str(SCHEMA_VERSION))
                    )
                    # Tables added by later versions (none yet beyond columns).
                    self.tables.metadata.create_all(conn, checkfirst=True)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.url}: {_one_line(exc)}") from exc

    # -- experiments registry snapshot ---------------------------------------------------
    def register_experiments(self, experiments: Iterable[Any]) -> int:
        """Insert or replace experiment configs (``Experiment`` objects or their dicts)."""
        table = self.tables.experiments
        now = to_us_now()
        count = 0
        with self.write() as conn:
            for experiment in experiments:
                data = experiment if isinstance(experiment, Mapping) else experiment.to_dict()
                key = str(data["key"])
                config = json.dumps(data, sort_keys=True, default=str)
                existing = conn.execute(select(table.c.key).where(table.c.key == key)).first()
                if existing is None:
                    conn.execute(insert(table).values(key=key, config=config, updated_at_us=now))
                else:
                    conn.execute(
                        update(table)
                        .where(table.c.key == key)
                        .values(config=config, updated_at_us=now)
                    )
                count += 1
        return count

    def experiment_configs(self) -> dict[str, dict[str, Any]]:
        """Every registered experiment as its ``to_dict()`` data, by key."""
        table = self.tables.experiments
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.key, table.c.config)).all()
        return {key: json.loads(config) for key, config in rows}

    def get_experiment(self, key: str) -> Any:
        """The registered :class:`abkit.assignment.config.Experiment` named ``key``."""
        from abkit.assignment.config import Experiment

        table = self.tables.experiments
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.config).where(table.c.key == key)).first()
        if row is None:
            raise StoreError(f"experiment {key!r} is not registered in {self.url}")
        return Experiment.from_dict(json.loads(row[0]))

    # -- bulk writes ------------------------------------------------------------------------
    def insert_new(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        key: Sequence[str] | None = ("event_id",),
    ) -> InsertResult:
        """Insert the rows whose ``key`` is not in ``table`` yet; count and classify the rest.

        ``rows`` are tuples in ``columns`` order and must have distinct keys (the caller
        deduplicates within a chunk). ``key=None`` appends every row (quarantine).
        Runs inside ``conn``'s transaction: the caller commits.
        """
        if not rows:
            return InsertResult(0, 0)
        columns = tuple(columns)
        key = tuple(key) if key else ()
        stage: Table | None = None
        if self.dialect_name == "sqlite":
            inserted = self._sqlite_insert(conn, table, columns, rows, bool(key))
        elif self.dialect_name == "postgresql":
            inserted, stage = self._pg_insert(conn, table, columns, rows, key)
        else:
            inserted = self._generic_insert(conn, table, columns, rows, key)
        if not 0 <= inserted <= len(rows):
            raise StoreError(
                f"{table.name}: the driver reported {inserted} new rows out of {len(rows)}"
            )
        conflicts: tuple[int, ...] = ()
        stored: dict[str, str] = {}
        if inserted < len(rows) and key == ("event_id",) and "content_hash" in table.c:
            if stage is not None:
                stored = self._pg_conflicts(conn, table, stage)
            else:
                stored = self._conflicts(conn, table, columns, rows)
            id_pos = columns.index("event_id")
            conflicts = tuple(i for i, row in enumerate(rows) if row[id_pos] in stored)
        duplicates = len(rows) - inserted - len(conflicts)
        return InsertResult(inserted, duplicates, conflicts, stored)

    def _sqlite_insert(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
        ignore: bool,
    ) -> int:
        cache_key = (table.name + ("!" if ignore else ""), columns)
        if cache_key not in self._sqlite_sql:
            stmt = insert(table)
            if ignore:
                stmt = stmt.prefix_with("OR IGNORE")
            compiled = stmt.compile(dialect=self.engine.dialect, column_keys=list(columns))
            order = tuple(columns.index(name) for name in compiled.positiontup or ())
            self._sqlite_sql[cache_key] = (str(compiled), order)
        sql, order = self._sqlite_sql[cache_key]
        if order != tuple(range(len(columns))):
            rows = [tuple(row[i] for i in order) for row in rows]
        raw = conn.connection.driver_connection
        before = raw.total_changes
        cursor = raw.cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()
        return int(raw.total_changes - before)

    def _pg_insert(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
        key: tuple[str, ...],
    ) -> tuple[int, Table | None]:
        from psycopg import sql as pgsql
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        raw = conn.connection.driver_connection
        if not key:
            target = table
        else:
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
        copy_sql = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(target.name), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
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

    def _pg_conflicts(
        self,
        conn: Connection,
        table: Table,
        stage: Table,
    ) -> dict[str, str]:
        """Staged ids stored with another content hash (id -> stored hash): one join."""
        stmt = (
            select(stage.c.event_id, table.c.content_hash)
            .join(table, table.c.event_id == stage.c.event_id)
            .where(table.c.content_hash != stage.c.content_hash)
        )
        return {r[0]: r[1] for r in conn.execute(stmt)}

    def _generic_insert(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
        key: tuple[str, ...],
    ) -> int:
        if key:
            positions = [columns.index(k) for k in key]
            existing = self._existing_keys(conn, table, key, [row[positions[0]] for row in rows])
            rows = [row for row in rows if tuple(row[p] for p in positions) not in existing]
        if rows:
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return len(rows)

    def _existing_keys(
        self, conn: Connection, table: Table, key: tuple[str, ...], first_values: list[Any]
    ) -> set[tuple[Any, ...]]:
        found: set[tuple[Any, ...]] = set()
        stmt = select(*[table.c[k] for k in key]).where(
            table.c[key[0]].in_(bindparam("values", expanding=True))
        )
        unique = list(dict.fromkeys(first_values))
        for start in range(0, len(unique), _LOOKUP_SLICE):
            part = unique[start : start + _LOOKUP_SLICE]
            found.update(tuple(r) for r in conn.execute(stmt, {"values": part}))
        return found

    def _conflicts(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
    ) -> dict[str, str]:
        """Ids among ``rows`` stored with another content hash (id -> stored hash)."""
        id_pos = columns.index("event_id")
        hash_pos = columns.index("content_hash")
        stored: dict[str, str] = {}
        ids = [row[id_pos] for row in rows]
        if self.dialect_name == "sqlite":
            # One statement for the whole chunk: the ids travel as one JSON array and
            # json_each() turns it into a table (a 50,000-item IN list would cost more to
            # build than to run).
            listed = func.json_each(bindparam("ids")).table_valued("value")
            stmt = select(table.c.event_id, table.c.content_hash).join(
                listed, table.c.event_id == listed.c.value
            )
            stored = {r[0]: r[1] for r in conn.execute(stmt, {"ids": json.dumps(ids)})}
        else:
            stmt = select(table.c.event_id, table.c.content_hash).where(
                table.c.event_id.in_(bindparam("ids", expanding=True))
            )
            for start in range(0, len(ids), _LOOKUP_SLICE):
                part = ids[start : start + _LOOKUP_SLICE]
                stored.update({r[0]: r[1] for r in conn.execute(stmt, {"ids": part})})
        return {
            row[id_pos]: stored[row[id_pos]]
            for row in rows
            if stored.get(row[id_pos], row[hash_pos]) != row[hash_pos]
        }


def _one_line(exc: BaseException) -> str:
    """The driver's own message on one line (no SQLAlchemy background link, no hints).

    psycopg spreads a refused connection over three lines; the CLI promises one.
    """
    message = str(getattr(exc, "orig", None) or exc)
    first, *rest = [line.strip() for line in message.splitlines() if line.strip()] or [""]
    hint = next((line for line in rest if not line.startswith("(Background")), "")
    return f"{first} ({hint})" if hint else first


def _read_version(conn: Connection, tables: Tables) -> int | None:
    if not inspect(conn).has_table(tables.meta.name):
        return None
    value = conn.execute(
        select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")
    ).scalar()
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise StoreError(f"abkit_meta.schema_version is not an integer: {value!r}") from exc


def to_us_now() -> int:
    """Now, as UTC epoch microseconds."""
    return time.time_ns() // 1_000


def default_url() -> str:
    return os.environ.get(ENV_URL) or DEFAULT_URL


def open_store(url: str | Store | None = None, *, create: bool = True) -> Store:
    """Open (creating or upgrading in place) the store at ``url``.

    ``url`` defaults to ``$ABKIT_DATABASE_URL`` or ``sqlite:///abkit.db``. A store written
    by a newer abkit is refused with :class:`~abkit.errors.StoreError`. Readers pass
    ``create=False``: a SQLite or DuckDB file that does not exist is then an error rather
    than a new, empty store left behind by a typo in the path.
    """
    if isinstance(url, Store):
        return url
    raw_url = url or default_url()
    try:
        normalised = normalise_url(raw_url)
        parsed = make_url(normalised)
    except Exception as exc:
        raise StoreError(f"not a database URL: {raw_url!r} ({exc})") from exc
    kwargs: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend in ("sqlite", "duckdb") and not create:
        database = parsed.database
        if database and database != ":memory:" and not os.path.exists(database):
            raise StoreError(
                f"no abkit store at {database!r}: check the path, or load data first "
                "with abkit ingest (or abkit demo)"
            )
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            parent = os.path.dirname(os.path.abspath(database))
            if not os.path.isdir(parent):
                raise StoreError(
                    f"cannot create the SQLite store {database!r}: {parent} does not exist"
                )
    try:
        engine = create_engine(normalised, **kwargs)
    except Exception as exc:  # missing driver, bad options
        raise StoreError(f"cannot open the store {raw_url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _install_sqlite_listeners(engine)
    # DuckDB has no SERIAL: its surrogate keys come from explicit sequences.
    store = Store(engine, build_tables(sequences=engine.dialect.name == "duckdb"))
    store._prepare()
    return store
