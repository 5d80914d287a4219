"""The execution seam: every statement the analysis runs goes through a :class:`QueryRunner`.

The analysis builds SQLAlchemy Core statements (:mod:`abkit.analysis.sql`) and never touches
a connection itself. A runner compiles each statement for its dialect (the per-dialect rules
of :mod:`abkit.analysis.constructs` apply at that point), executes it with the user's values
as bound parameters, and returns plain tuples in the order of the statement's selected
columns. :class:`SQLAlchemyRunner` serves every SQLAlchemy engine (SQLite, PostgreSQL,
DuckDB, ...); other engines (Spark) implement the same two members in ``abkit.engines``.

A runner is read-only by contract: the analysis only issues ``SELECT`` statements through it.
Failures surface as :class:`abkit.errors.StoreError` (one line, naming where).

URL schemes that SQLAlchemy does not know (``spark://``, ``sc://``) are opened by factories
registered with :func:`register_runner`, so the engine that provides them lives outside this
package and depends on it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import FromClause, Select

from abkit.errors import ConfigError, StoreError

Row = tuple[Any, ...]


@runtime_checkable
class QueryRunner(Protocol):
    """Executes the analysis' ``SELECT`` statements on one engine.

    ``dialect`` is the SQLAlchemy dialect the statements are compiled with (its ``name``
    selects the ``@compiles`` rule of each construct); ``where`` names the database in
    messages and in the result (no credentials); ``run`` returns every row as a tuple in the
    order of ``stmt.selected_columns``.
    """

    @property
    def dialect(self) -> Dialect: ...

    @property
    def where(self) -> str: ...

    def run(self, stmt: Select[Any]) -> list[Row]: ...


@runtime_checkable
class MaterializingRunner(Protocol):
    """A runner that can keep a statement's result for the statements that follow.

    For an engine that computes a ``WITH`` clause again at every reference (Spark inlines
    CTEs): the analysis then computes its per-unit values (stages 1-3) once with
    ``materialized`` and reads them from the returned relation for the caps, the per-arm
    sums and the unit percentiles, instead of joining every event to its unit twice. The
    relation has the columns of ``stmt`` (by their keys) and is dropped when the context
    exits. Engines that materialise a CTE referenced twice on their own (DuckDB,
    PostgreSQL, SQLite) do not offer it.
    """

    def materialized(self, stmt: Select[Any]) -> AbstractContextManager[FromClause]: ...


class SQLAlchemyRunner:
    """A :class:`QueryRunner` over one open SQLAlchemy connection (one snapshot per analysis
    on engines that give one per connection)."""

    def __init__(self, connection: Connection, *, where: str | None = None) -> None:
        self._connection = connection
        self._where = where if where is not None else _safe_url(connection)

    @property
    def dialect(self) -> Dialect:
        return self._connection.dialect

    @property
    def where(self) -> str:
        return self._where

    def run(self, stmt: Select[Any]) -> list[Row]:
        try:
            return [tuple(row) for row in self._connection.execute(stmt)]
        except SQLAlchemyError as exc:
            # a failed statement aborts the transaction (PostgreSQL): end it, so the caller
            # may go on (a missing registry table only means "not registered")
            self._connection.rollback()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"the analysis query failed on {self._where}: {first}") from exc


def _safe_url(connection: Connection) -> str:
    return connection.engine.url.render_as_string(hide_password=True)


def as_mappings(stmt: Select[Any], rows: Sequence[Row]) -> list[Mapping[str, Any]]:
    """Rows keyed by the statement's column labels (what the runner returned, by name)."""
    keys = [str(column.key) for column in stmt.selected_columns]
    return [dict(zip(keys, row, strict=True)) for row in rows]


RunnerFactory = Callable[[str], QueryRunner]
ENTRY_POINT_GROUP = "abkit.runners"
SESSION_ENTRY_POINT_GROUP = "abkit.session_runners"
_FACTORIES: dict[str, RunnerFactory] = {}


def register_runner(scheme: str, factory: RunnerFactory) -> None:
    """Open URLs starting with ``scheme + "://"`` with ``factory(url)`` in ``analyze``."""
    if not scheme or "://" in scheme:
        raise ValueError(f"a scheme is the part before '://', got {scheme!r}")
    _FACTORIES[scheme.lower()] = factory


def registered_runner(url: str, *, store_tables: bool = True) -> QueryRunner | None:
    """The runner a registered factory opens for ``url``, or ``None`` (a SQLAlchemy URL).

    Factories come from :func:`register_runner` or from the ``abkit.runners`` entry-point
    group (name = scheme), so an installed engine is found without being imported first.
    ``store_tables=False`` (the analysis reads the user's own tables) skips a factory
    marked ``store_only`` (it serves abkit's store tables only, e.g. a replica of them), so
    nothing is opened or created for a database that holds no store.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    if scheme not in _FACTORIES:
        from importlib.metadata import entry_points

        for entry in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
            _FACTORIES[scheme] = entry.load()
            break
    factory = _FACTORIES.get(scheme)
    if factory is None or (not store_tables and getattr(factory, "store_only", False)):
        return None
    return factory(url)


def session_runner(session: Any) -> QueryRunner:
    """The runner for an engine's own session object (a ``SparkSession``): the factory
    registered in the ``abkit.session_runners`` entry-point group under the name of the
    object's top-level package (``pyspark``). The caller keeps owning the session."""
    from importlib.metadata import entry_points

    package = type(session).__module__.partition(".")[0]
    for entry in entry_points(group=SESSION_ENTRY_POINT_GROUP, name=package):
        runner: QueryRunner = entry.load()(session)
        return runner
    raise ConfigError(
        f"db must be a database URL, a Store or a QueryRunner, got a {type(session).__name__}"
    )
