"""Run abkit's analysis on Apache Spark: a local session, a standalone cluster or Spark Connect.

One code path serves all three: each statement is compiled by
:class:`~abkit.engines.spark_dialect.SparkDialect` into Spark SQL with named ``:param``
markers, and executed with ``session.sql(text, args=params)``, Spark's own parameter
binding, on whatever :class:`pyspark.sql.SparkSession` the user has: a classic session
(``local[*]`` or ``spark://host:7077``) or a Spark Connect session (``sc://host:15002``).
Only the few result rows (per arm and day) come back to Python.

>>> analyze("spark://10.0.0.5:7077", "ranker-v2")        # doctest: +SKIP
>>> analyze("sc://spark-connect:15002", "ranker-v2")     # doctest: +SKIP
>>> analyze(SparkRunner(spark), "ranker-v2")             # doctest: +SKIP  (a session you have)

The tables are looked up by name in the session's catalog (``abkit_exposures``,
``abkit_events``, ``abkit_exposure_attributes`` and, when present, ``abkit_experiments``):
tables of a metastore, or temporary views the caller registered on that session
(:func:`register_views` makes them from rows or from an abkit store, for small data and
tests; big data lives in Parquet/Delta/Hive tables).

pyspark is imported only when a runner is opened (``pip install 'abkit[spark]'``, plus a
Java 17 runtime for a classic session).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Column, MetaData, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.schema import Table
from sqlalchemy.sql.util import find_tables

from abkit.analysis.incremental import RefreshReport
from abkit.analysis.sources import Relations
from abkit.analysis.sql import Scope, UnitSource
from abkit.engines import spark_cache
from abkit.engines.spark_dialect import SparkDialect
from abkit.errors import ConfigError, StoreError
from abkit.metrics.definitions import Metric
from abkit.vocabulary import RefreshMode

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from abkit.store.schema import Tables

Row = tuple[Any, ...]

SCHEMES = ("spark", "sc")
_DIALECT = SparkDialect()


def _safe_where(url: str) -> str:
    """``scheme://host:port`` of a Spark URL: Connect URLs carry tokens after ``/;``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def compile_statement(stmt: Select[Any]) -> tuple[str, dict[str, Any]]:
    """Spark SQL text with ``:name`` markers, and the values to bind to them."""
    compiled = stmt.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    return str(compiled), dict(compiled.params)


class SparkRunner:
    """A :class:`~abkit.analysis.runner.QueryRunner` on one Spark session.

    ``stop_on_close``: stop the session in :meth:`close` (set for Spark Connect sessions
    that :func:`open_runner` created; a classic session is left running, since starting
    executors again costs far more than the analysis).

    ``cache_location``: the folder (any path Spark writes: local, HDFS, S3...) under which
    ``analyze(..., refresh=...)`` keeps each experiment's unit cache as Parquet
    (:mod:`abkit.engines.spark_cache`); by default the session's
    ``spark.abkit.cacheLocation``, else ``abkit_unit_caches`` under its warehouse folder.
    """

    def __init__(
        self,
        session: SparkSession,
        *,
        where: str | None = None,
        stop_on_close: bool = False,
        cache_location: str | None = None,
    ) -> None:
        self._session = session
        self._where = where if where is not None else _session_where(session)
        self._stop_on_close = stop_on_close
        self._cache_location = cache_location
        self._found: set[str] = set()  # tables already seen in the session's catalog

    @property
    def dialect(self) -> Dialect:
        return _DIALECT

    @property
    def where(self) -> str:
        return self._where

    @property
    def session(self) -> SparkSession:
        return self._session

    def run(self, stmt: Select[Any]) -> list[Row]:
        text, params = self._checked(stmt)
        with self._failing("the analysis query"):
            rows = self._session.sql(text, args=params).collect()
        return [tuple(row) for row in rows]

    @contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """Spark's and py4j's errors as a :class:`StoreError` naming ``what`` failed."""
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        try:
            yield
        except (PySparkException, Py4JError) as exc:
            raise StoreError(f"{what} failed on {self._where}: {_first_line(exc)}") from exc

    # ------------------------------------------------------------- unit caches
    @property
    def cache_location(self) -> str:
        """Where the unit caches live (see the class)."""
        if self._cache_location is None:
            with self._failing("reading the session's configuration"):
                conf = self._session.conf
                found = conf.get("spark.abkit.cacheLocation", None)
                if not found:
                    warehouse = conf.get("spark.sql.warehouse.dir", None) or "spark-warehouse"
                    found = f"{str(warehouse).rstrip('/')}/abkit_unit_caches"
            self._cache_location = str(found)
        return self._cache_location

    def unit_cache(
        self,
        rel: Relations,
        scope: Scope,
        metrics: Sequence[Metric],
        *,
        cuped: bool,
        mode: RefreshMode,
        lookback: timedelta | None,
        cache_scope: Scope,
    ) -> AbstractContextManager[tuple[UnitSource | None, RefreshReport]]:
        """The experiment's unit cache under :attr:`cache_location`, refreshed
        (:class:`~abkit.analysis.incremental.CachingRunner`, :mod:`abkit.engines.spark_cache`)."""
        return spark_cache.cached_units(
            self,
            rel,
            scope,
            metrics,
            cuped=cuped,
            mode=mode,
            lookback=lookback,
            cache_scope=cache_scope,
        )

    def write_parquet(self, stmt: Any, path: str) -> None:
        """``stmt``'s rows written as Parquet to the folder ``path``, replacing it."""
        text, params = self._checked(stmt)
        with self._failing(f"writing {path}"):
            self._session.sql(text, args=params).write.mode("overwrite").parquet(path)

    @contextmanager
    def parquet_view(self, path: str, columns: Sequence[Column]) -> Iterator[Table]:
        """The Parquet folder ``path`` as a temporary view with ``columns``, dropped on exit."""
        name = f"abkit_cache_{uuid.uuid4().hex[:16]}"
        view = Table(name, MetaData(), *[Column(c.name, c.type) for c in columns])
        with self._failing(f"reading {path}"):
            # the schema given: Spark need not open a file's footer to infer it
            frame = self._session.read.schema(spark_schema(view)).parquet(path)
            frame.createOrReplaceTempView(name)
        self._found.add(self._quoted(name))
        try:
            yield view
        finally:
            self._found.discard(self._quoted(name))
            with contextlib.suppress(Exception):  # a stopped session holds nothing
                self._session.catalog.dropTempView(name)

    def read_json(self, folder: str, schema: str) -> list[Row]:
        """The JSON lines of every ``*.json`` file under ``folder`` (at any depth; Spark
        skips ``_``- and ``.``-prefixed entries, such as an unfinished job's
        ``_temporary``), with the DDL ``schema``; none when the folder does not exist."""
        from pyspark.errors import AnalysisException

        if self._missing(folder):
            return []
        with self._failing(f"reading {folder}"):
            reader = self._session.read.schema(schema)
            options = {"recursiveFileLookup": "true", "pathGlobFilter": "*.json"}
            try:  # a Connect session analyses the read only when the rows are collected
                return [tuple(row) for row in reader.options(**options).json(folder).collect()]
            except AnalysisException as exc:
                # the error's name: getCondition() since Spark 4, getErrorClass() before
                named = getattr(exc, "getCondition", None) or exc.getErrorClass
                if named() == "PATH_NOT_FOUND":
                    return []
                raise

    def _missing(self, path: str) -> bool:
        """Whether ``path`` surely does not exist, asked of Hadoop's file system on a classic
        session (Spark's reader logs a warning with a stack trace for a missing folder
        before it raises). ``False`` when it cannot tell (Spark Connect has no JVM here)."""
        try:  # a Connect session raises on sparkContext, and has no _jvm
            jvm = getattr(self._session, "_jvm", None)
            context = getattr(self._session.sparkContext, "_jsc", None)
            if jvm is None or context is None:
                return False
            hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
            file_system = hadoop_path.getFileSystem(context.hadoopConfiguration())
            return not bool(file_system.exists(hadoop_path))
        except Exception:  # any failure of this shortcut: let the reader find out
            return False

    def write_json(self, rows: Sequence[Row], schema: str, path: str) -> None:
        """``rows`` written as one JSON-lines file in the folder ``path``, replacing it."""
        with self._failing(f"writing {path}"):
            frame = self._session.createDataFrame([tuple(r) for r in rows], schema=schema)
            frame.coalesce(1).write.mode("overwrite").json(path)

    @staticmethod
    def _quoted(name: str) -> str:
        return _DIALECT.identifier_preparer.quote_identifier(name)

    @contextmanager
    def materialized(self, stmt: Select[Any]) -> Iterator[Table]:
        """``stmt``'s result cached in the cluster as a temporary view, read by the
        statements of the ``with`` block (:class:`~abkit.analysis.runner.MaterializingRunner`).

        Spark inlines a ``WITH`` clause at each reference, so without this a readout with
        a percentile cap joins every event to its unit twice (once for the cap, once for
        the sums). The rows are kept by a local checkpoint (the executors' block stores,
        spilling to disk) and the view is dropped and the blocks released on exit.
        """
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        name = f"abkit_units_{uuid.uuid4().hex[:16]}"
        text, params = self._checked(stmt)
        catalog = self._session.catalog
        with self._failing("the analysis query"):
            # a checkpoint, not cache(): the rows are computed now and the view reads them
            # (its plan is the checkpoint's scan), where a cached plan must be matched again
            # by every statement, which a parameterised query's plan is not
            frame = self._session.sql(text, args=params).localCheckpoint(eager=True)
            frame.createOrReplaceTempView(name)
        self._found.add(self._quoted(name))
        try:
            yield Table(
                name,
                MetaData(),
                *[Column(str(c.key), c.type) for c in stmt.selected_columns],
            )
        finally:
            self._found.discard(self._quoted(name))
            try:
                catalog.dropTempView(name)
                frame.unpersist()
            except (PySparkException, Py4JError):  # a stopped session holds nothing
                pass

    def _checked(self, stmt: Select[Any]) -> tuple[str, dict[str, Any]]:
        """``stmt`` compiled (:func:`compile_statement`), once every table it reads is known
        to the catalog; a missing one is a :class:`StoreError` naming it."""
        missing = self._missing_table(stmt)
        if missing is not None:
            raise StoreError(
                f"the analysis query failed on {self._where}: table or view {missing} not found"
            )
        return compile_statement(stmt)

    def _missing_table(self, stmt: Select[Any]) -> str | None:
        """The first table of ``stmt`` that the session's catalog does not have, if any.

        Asked before running: a statement on a missing table makes Spark log a long ERROR
        record (its analyzer's stack) before it raises, and the analysis looks up the
        optional registry table ``abkit_experiments`` on every run. A catalog that cannot
        answer ``tableExists`` lets the statement run (and Spark report what is missing).
        """
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        preparer = _DIALECT.identifier_preparer
        for table in find_tables(stmt):
            parts = [*(table.schema.split(".") if table.schema else ()), table.name]
            name = ".".join(preparer.quote_identifier(p) for p in parts)
            if name in self._found:
                continue
            try:
                exists = bool(self._session.catalog.tableExists(name))
            except (PySparkException, Py4JError):
                return None
            if not exists:
                return name
            self._found.add(name)
        return None

    def close(self) -> None:
        if self._stop_on_close:
            self._session.stop()


def _session_where(session: SparkSession) -> str:
    """Where a session runs, for messages: its master URL (``local[*]``, ``spark://...``)."""
    from pyspark.errors import PySparkException

    try:
        master = session.conf.get("spark.master", None)
    except PySparkException:  # a Connect server may hide its configuration
        master = None
    if not master:
        return "spark"
    return _safe_where(master) if "://" in master else master


def open_runner(url: str) -> SparkRunner:
    """Open ``spark://host:port`` (a standalone master) or ``sc://host:port`` (Spark Connect).

    A classic session is ``getOrCreate``'d: an active session on the same master is reused,
    with its configuration (memory, executors) as its creator set it.
    """
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"a Spark URL starts with spark:// or sc://, got {_safe_where(url)!r}", field="db"
        )
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "analysing on Spark needs pyspark: pip install 'abkit[spark]'", field="db"
        ) from exc
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        if scheme == "sc":
            session = SparkSession.builder.remote(url).getOrCreate()
        else:
            session = SparkSession.builder.master(url).appName("abkit").getOrCreate()
    except (PySparkException, Py4JError, OSError) as exc:
        raise StoreError(f"cannot open Spark at {_safe_where(url)}: {_first_line(exc)}") from exc
    return SparkRunner(session, where=_safe_where(url), stop_on_close=scheme == "sc")


def runner_for_session(session: SparkSession) -> SparkRunner:
    """The runner for a session the caller owns (never stopped by abkit)."""
    return SparkRunner(session)


# ----------------------------------------------------------------------------- views
def spark_schema(table: Table) -> str:
    """A Spark DDL schema (``"event_id STRING, ts_us BIGINT, ..."``) for a SQLAlchemy table."""
    preparer = _DIALECT.identifier_preparer
    return ", ".join(
        f"{preparer.quote(c.name)} {c.type.compile(dialect=_DIALECT)}" for c in table.columns
    )


def register_view(session: SparkSession, table: Table, rows: Iterable[Sequence[Any]]) -> None:
    """Register ``rows`` (in ``table``'s column order) as a temporary view named like it.

    The column types are the table's, in Spark's names; ``None`` stays SQL NULL. For small
    data (tests, examples): the rows travel through the driver.
    """
    frame = session.createDataFrame([tuple(r) for r in rows], schema=spark_schema(table))
    frame.createOrReplaceTempView(table.name)


def register_store_views(session: SparkSession, engine: Engine, tables: Tables) -> list[str]:
    """Copy an abkit store's analysis tables into temporary views of the same names.

    Returns the view names (a table missing from the store is skipped). Every row goes
    through the driver: meant for tests and small stores; big data lives in Spark's own
    tables (Parquet, Delta, Hive) under these names.
    """
    present = set(sa_inspect(engine).get_table_names())
    names: list[str] = []
    with engine.connect() as conn:
        for table in (
            tables.exposures,
            tables.exposure_attributes,
            tables.events,
            tables.experiments,
        ):
            if table.name not in present:
                continue
            register_view(session, table, conn.execute(select(table)).all())
            names.append(table.name)
    return names
