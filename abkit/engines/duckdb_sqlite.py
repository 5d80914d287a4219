"""The embedded default at columnar speed: DuckDB runs the analysis over the SQLite store.

SQLite stays the store: several concurrent writers, WAL, nothing lost on ``kill -9``
(:mod:`abkit.store`). Only the analysis changes engine. DuckDB attaches the SQLite file
**read-only** through its ``sqlite_scanner`` extension, and the same SQLAlchemy statements,
compiled for DuckDB, run on its vectorised, multi-threaded hash aggregation instead of
SQLite's row-at-a-time sort-and-group:

* :class:`ColumnarReplica` (the default): a DuckDB file beside the store holds the
  analysis columns, brought up to date from SQLite's new rows each time it is opened,
  and the statements run on DuckDB's own columnar tables (12-14x SQLite, measured);
* :class:`DuckDBOverSQLite`: the statements read SQLite directly through the scanner
  (4-5x SQLite; SQLite's row decoding is then the bottleneck). Used when another process
  holds the replica.

Only the few result rows reach Python, so Python's memory stays flat whatever the size
of the store. Measurements and the design: docs/engines.md.

The extension comes from the package index, never downloaded at run time: the
``duckdb-extension-sqlite-scanner`` package ships the binary built for one DuckDB
version, and DuckDB is started with extension auto-install and auto-load off, so
nothing is fetched from the network. When the package is missing or was built for a
different DuckDB version, :func:`open_runner` returns ``None`` and the analysis runs on
SQLite as before (same numbers, slower); :func:`status` says why.

``ABKIT_SQLITE_ENGINE=sqlite`` forces SQLite's own engine (for comparisons);
``ABKIT_SQLITE_ENGINE=duckdb`` makes a missing or mismatched extension an error instead
of a silent fallback.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Float, column, create_engine, event, func, literal, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Select
from sqlalchemy.sql.schema import Table

from abkit.analysis.runner import SQLAlchemyRunner
from abkit.errors import ConfigError, StoreError
from abkit.store.schema import Tables, build_tables

EXTENSION_PACKAGE = "duckdb_extension_sqlite_scanner"
ENGINE_VARIABLE = "ABKIT_SQLITE_ENGINE"
ATTACHED = "abkit_sqlite"

Row = tuple[Any, ...]


@dataclass(frozen=True)
class ScannerStatus:
    """Whether DuckDB can read SQLite here: the extension's path, or why not."""

    path: Path | None
    reason: str = ""


def status() -> ScannerStatus:
    """Find the ``sqlite_scanner`` binary built for the installed DuckDB version."""
    try:
        import duckdb
    except ImportError:
        return ScannerStatus(None, "duckdb is not installed")
    spec = importlib_util.find_spec(EXTENSION_PACKAGE)
    if spec is None or spec.origin is None:
        return ScannerStatus(None, "the duckdb-extension-sqlite-scanner package is not installed")
    folder = Path(spec.origin).parent / "extensions"
    wanted = folder / f"v{duckdb.__version__}" / "sqlite_scanner.duckdb_extension"
    if wanted.exists():
        return ScannerStatus(wanted)
    built = sorted(p.parent.name for p in folder.glob("v*/sqlite_scanner.duckdb_extension"))
    return ScannerStatus(
        None,
        f"duckdb-extension-sqlite-scanner is built for DuckDB {', '.join(built) or '?'}, "
        f"not {duckdb.__version__}",
    )


def _quoted_text(value: str) -> str:
    """A SQL string literal: DuckDB's ATTACH and LOAD take no bound parameters."""
    if "\x00" in value:
        raise ConfigError(f"a file path cannot contain NUL: {value!r}", field="db")
    return "'" + value.replace("'", "''") + "'"


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL; ``None`` for in-memory databases."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0].lower() != "sqlite":
        return None
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def duckdb_engine_over(path: Path, extension: Path, *, database: str = ":memory:") -> Engine:
    """A DuckDB engine on ``database`` with the SQLite file ``path`` attached read-only as
    ``abkit_sqlite`` (the default catalog when ``database`` is in memory)."""
    engine = _duckdb_engine(database)

    @event.listens_for(engine, "connect")
    def _attach(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        _attach_sqlite(cursor, path, extension)
        if database == ":memory:":
            cursor.execute(f"USE {ATTACHED}")
        cursor.close()

    return engine


def _duckdb_engine(database: str) -> Engine:
    return create_engine(
        f"duckdb:///{database}",
        connect_args={
            "config": {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        },
        poolclass=StaticPool,
    )


def _attach_sqlite(cursor: Any, path: Path, extension: Path) -> None:
    """Load the scanner and attach ``path`` read-only as ``abkit_sqlite`` (~0.25 s: DuckDB
    checks the extension's signature each time a database loads it)."""
    cursor.execute(f"LOAD {_quoted_text(str(extension))}")
    cursor.execute(f"ATTACH {_quoted_text(str(path))} AS {ATTACHED} (TYPE sqlite, READ_ONLY)")


class _DuckDBRunner:
    """The :class:`~abkit.analysis.runner.QueryRunner` part shared by both ways of reading
    the store: statements run on one DuckDB connection held until :meth:`close`."""

    # Only abkit's store tables are replicated or mapped: a declared source (the user's own
    # tables) is read by SQLite itself (see abkit.analysis.analyze).
    store_only = True

    def __init__(self, engine: Engine, connection: Connection, where: str) -> None:
        self._engine = engine
        self._connection = connection
        self._runner = SQLAlchemyRunner(connection, where=where)

    @property
    def dialect(self) -> Dialect:
        return self._runner.dialect

    @property
    def where(self) -> str:
        return self._runner.where

    def run(self, stmt: Select[Any]) -> list[Row]:
        return self._runner.run(stmt)

    def close(self) -> None:
        self._connection.close()
        self._engine.dispose()


class DuckDBOverSQLite(_DuckDBRunner):
    """DuckDB executing each statement directly over the SQLite file (no copy)."""

    def __init__(self, path: Path, extension: Path) -> None:
        if not path.exists():
            raise StoreError(f"no SQLite store at {path}")
        engine = duckdb_engine_over(path, extension)
        super().__init__(engine, engine.connect(), f"sqlite:///{path} (via DuckDB)")


# Columns the analysis never reads: long text that would only cost copy time and disk.
NOT_REPLICATED = frozenset({"properties", "content_hash", "batch_id"})
SOURCE_ROWID = "abkit_source_rowid"
SOURCE_ROWID_EXPR = "rowid"
_SQLITE = sqlite.dialect()


def _replicated(table: Table) -> list[Any]:
    return [c for c in table.columns if c.name not in NOT_REPLICATED]


def _duckdb_type(col: Any, dialect: Dialect) -> str:
    if isinstance(col.type, Float):
        return "DOUBLE"
    return str(col.type.compile(dialect=dialect))


def _source_state(
    path: Path, replicated: tuple[Table, ...], registry: Table
) -> tuple[dict[str, int | None], list[tuple[str, ...]]]:
    """The largest rowid of each replicated table of the SQLite file ``path`` and its
    registry's rows as text, read by the standard library's SQLite (read-only)."""
    source = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
    try:
        tops = {
            t.name: source.execute(
                _sqlite_text(select(func.max(column(SOURCE_ROWID_EXPR))).select_from(t))
            ).fetchone()[0]
            for t in replicated
        }
        rows = source.execute(
            _sqlite_text(select(*registry.columns).order_by(*registry.primary_key))
        ).fetchall()
    finally:
        source.close()
    return tops, [tuple(map(str, row)) for row in rows]


def _sqlite_text(stmt: Select[Any]) -> str:
    """SQLite's text of a statement of abkit's own (identifiers quoted, no parameters)."""
    return str(stmt.compile(dialect=_SQLITE, compile_kwargs={"literal_binds": True}))


_OPEN_REPLICAS: set[Path] = set()
_OPEN_LOCK = threading.Lock()


def replica_path(path: Path) -> Path:
    """Where the columnar replica of the SQLite store ``path`` lives: beside it."""
    return path.with_name(path.name + ".analysis.duckdb")


class ColumnarReplica(_DuckDBRunner):
    """A :class:`~abkit.analysis.runner.QueryRunner` on a DuckDB replica of the store.

    The replica is a DuckDB file beside the SQLite file with the analysis columns of
    exposures, exposure attributes and events (each row with its SQLite ``rowid``) and a
    copy of the experiment registry. Opening it brings it up to date first: the rows whose
    ``rowid`` is above the largest one already copied are appended, read by SQLite through
    its rowid B-tree (``sqlite_query``), so a refresh costs in proportion to what arrived.
    This is exact because the store is insert-only and SQLite has one writer at a time: a
    transaction that commits later gives its rows larger rowids than every row visible
    before it. A source whose largest rowid went down (rows deleted, file replaced) is
    copied again in full. The largest rowids and the registry are read first with Python's
    ``sqlite3``: when nothing is new, the scanner is not loaded at all. The analysis then
    runs on DuckDB's own columnar tables.

    DuckDB lets one process write a database file: a second analysis opening the same
    replica at the same moment gets :class:`ReplicaBusy` (and the caller falls back to
    reading SQLite directly).
    """

    def __init__(self, path: Path, extension: Path, tables: Tables) -> None:
        # DuckDB locks the file against other processes; within this one, connections
        # to a file share one database, so a second analysis is turned away here.
        self._file = replica_path(path).resolve()
        with _OPEN_LOCK:
            if self._file in _OPEN_REPLICAS:
                raise ReplicaBusy(f"another analysis in this process holds the replica of {path}")
            _OPEN_REPLICAS.add(self._file)
        # released once: by close(), a failed open, or when an unclosed replica is collected
        self._release = weakref.finalize(self, _OPEN_REPLICAS.discard, self._file)
        try:
            # The scanner is loaded only when something must be copied (most opens of a
            # replica find nothing new, and loading the scanner is most of their cost).
            engine = _duckdb_engine(str(self._file))
            try:
                connection = engine.connect()
            except DBAPIError as exc:
                engine.dispose()
                raise ReplicaBusy(
                    f"cannot open the analysis replica of {path}: {exc.orig}"
                ) from exc
        except BaseException:
            self._release()
            raise
        super().__init__(engine, connection, f"sqlite:///{path} (DuckDB replica)")
        self.appended: dict[str, int] = {}
        try:
            replicated = (tables.exposures, tables.exposure_attributes, tables.events)
            tops, registry = _source_state(path, replicated, tables.experiments)
            with connection.begin():
                copied = {t.name: self._copied(t) for t in replicated}
                registry_stale = self._registry_rows(tables.experiments) != registry
            if registry_stale or any(
                not copied[t.name][0] or tops[t.name] != copied[t.name][1] for t in replicated
            ):
                _attach_sqlite(connection.connection.driver_connection, path, extension)
            with connection.begin():
                for table in replicated:
                    exists, last = copied[table.name]
                    self.appended[table.name] = self._refresh(table, tops[table.name], exists, last)
                if registry_stale:
                    self._copy_registry(tables.experiments)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def _source_rows(self, table: Table, after: int | None) -> str:
        """SQLite's query for the rows of ``table`` above rowid ``after`` (text for
        ``sqlite_query``: abkit's own identifiers, quoted by SQLite's dialect, and an int)."""
        columns: list[Any] = [column(SOURCE_ROWID_EXPR).label(SOURCE_ROWID), *_replicated(table)]
        stmt = select(*columns).select_from(table)
        if after is not None:
            stmt = stmt.where(column(SOURCE_ROWID_EXPR) > literal(int(after), BigInteger()))
        return _sqlite_text(stmt)

    def _holds(self, table: Table) -> bool:
        return bool(
            self._connection.exec_driver_sql(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND table_name = ?",
                (table.name,),
            ).scalar()
        )

    def _copied(self, table: Table) -> tuple[bool, int | None]:
        """Whether the replica holds ``table``, and the largest source rowid it copied."""
        if not self._holds(table):
            return False, None
        name = self._engine.dialect.identifier_preparer.quote(table.name)
        copied = self._connection.exec_driver_sql(
            f"SELECT max({SOURCE_ROWID}) FROM {name}"
        ).scalar()
        return True, None if copied is None else int(copied)

    def _registry_rows(self, table: Table) -> list[tuple[str, ...]] | None:
        """The replica's copy of the registry, as text (``None`` before the first copy)."""
        if not self._holds(table):
            return None
        rows = self._connection.execute(select(*table.columns).order_by(*table.primary_key))
        return [tuple(map(str, row)) for row in rows]

    def _refresh(self, table: Table, top: int | None, exists: bool, copied: int | None) -> int:
        """Append the rows of ``table`` that arrived since the last refresh (SQLite's
        largest rowid is now ``top``; the replica holds ``table`` up to rowid ``copied``);
        their count."""
        conn = self._connection
        name = self._engine.dialect.identifier_preparer.quote(table.name)
        if copied is not None and (top is None or top < copied):
            conn.exec_driver_sql(f"DROP TABLE {name}")  # rows went away: copy again
            exists, copied = False, None
        before = (
            0
            if not exists
            else int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar() or 0)
        )
        # sqlite_query types nothing (every value arrives as text): cast each column to
        # the store's declared type, floats as DOUBLE (never a 4-byte REAL)
        preparer = self._engine.dialect.identifier_preparer
        typed = [f"CAST({SOURCE_ROWID} AS BIGINT) AS {SOURCE_ROWID}"] + [
            f"CAST({preparer.quote(c.name)} AS {_duckdb_type(c, self._engine.dialect)}) "
            f"AS {preparer.quote(c.name)}"
            for c in _replicated(table)
        ]
        rows = f"SELECT {', '.join(typed)} FROM sqlite_query(?, ?)"
        query = (ATTACHED, self._source_rows(table, copied))
        if not exists:
            # the first copy scans the attached table: typed, and read in parallel
            # (the scanner reads rowid but cannot seek on it, hence sqlite_query below)
            scanned = ", ".join(
                [f"rowid AS {SOURCE_ROWID}"] + [preparer.quote(c.name) for c in _replicated(table)]
            )
            conn.exec_driver_sql(
                f"CREATE TABLE {name} AS SELECT {scanned} FROM {ATTACHED}.main.{name}"
            )
        elif top is not None and (copied is None or top > copied):
            conn.exec_driver_sql(f"INSERT INTO {name} {rows}", query)
        after = int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar() or 0)
        return after - before

    def _copy_registry(self, table: Table) -> None:
        name = self._engine.dialect.identifier_preparer.quote(table.name)
        self._connection.exec_driver_sql(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM sqlite_query(?, ?)",
            (ATTACHED, f"SELECT * FROM {_SQLITE.identifier_preparer.quote(table.name)}"),
        )


class ReplicaBusy(StoreError):
    """Another process holds the replica file (DuckDB allows one writer per file)."""


def open_runner(url: str) -> ColumnarReplica | DuckDBOverSQLite | None:
    """DuckDB over the SQLite file of ``url``, or ``None`` to let SQLite analyse it.

    ``None`` when ``ABKIT_SQLITE_ENGINE=sqlite``, for an in-memory database, when the
    file does not exist yet (the store opens and reports it), or when the extension is
    unavailable (unless ``ABKIT_SQLITE_ENGINE=duckdb`` asks for an error).
    """
    choice = os.environ.get(ENGINE_VARIABLE, "auto").strip().lower()
    if choice not in {"auto", "duckdb", "sqlite"}:
        raise ConfigError(
            f"{ENGINE_VARIABLE} must be auto, duckdb or sqlite, got {choice!r}",
            field=ENGINE_VARIABLE,
        )
    path = _sqlite_path(url)
    if choice == "sqlite" or path is None or not path.exists():
        return None
    found = status()
    if found.path is None:
        if choice == "duckdb":
            raise ConfigError(
                f"{ENGINE_VARIABLE}=duckdb but DuckDB cannot read SQLite here: {found.reason} "
                "(pip install 'abkit[embedded]')",
                field=ENGINE_VARIABLE,
            )
        return None
    try:
        return ColumnarReplica(path, found.path, build_tables())
    except ReplicaBusy:
        return DuckDBOverSQLite(path, found.path)


# both runners read abkit's store tables only (analysis.runner.registered_runner)
open_runner.store_only = True  # type: ignore[attr-defined]
