"""Open, version and write the abkit SQL store.

:func:`open_store` connects, prepares the connection through the store's dialect
(:mod:`abkit.store.dialects`: one module per database, holding its bulk insert, conflict
detection, connection settings and locks) and creates or upgrades the tables in place.
``readonly=True`` opens existing tables for reading only: no DDL, no upgrade, and the
database refuses writes. ``prefix`` and ``schema`` place the tables (``abkit_`` and the
default schema unless told otherwise).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Table, create_engine, insert, inspect, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from abkit.errors import ConfigError, StoreError
from abkit.locations import default_store_url
from abkit.store.dialects import Dialect, InsertResult, dialect_class
from abkit.store.migrations import MIGRATIONS
from abkit.store.schema import DEFAULT_PREFIX, SCHEMA_VERSION, Tables, build_tables
from abkit.timeutil import now_us

DEFAULT_URL = "sqlite:///abkit.db"


class UnknownExperimentError(ConfigError, StoreError):
    """An experiment key the store does not know: a ConfigError on the ``experiment``
    field (a did-you-mean and the known keys in the message), and a StoreError for code
    that treats "not registered" as a store answer."""


def normalise_url(url: str) -> str:
    """Accept ``postgres://``/``postgresql://`` and route them to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Store:
    """An opened abkit store: ``engine``, ``tables`` (with their ``prefix`` and ``schema``),
    the ``dialect`` that writes to it, and the write helpers.

    A store opened with ``readonly=True`` refuses :meth:`write` (and its database refuses
    writes on every connection).
    """

    def __init__(
        self,
        engine: Engine,
        tables: Tables | None = None,
        *,
        dialect: Dialect | None = None,
        readonly: bool = False,
    ) -> None:
        self.engine = engine
        self.dialect = dialect or dialect_class(engine.dialect.name)(engine)
        self.tables = tables or build_tables(sequences=self.dialect.sequences)
        self.dialect_name = engine.dialect.name
        self.readonly = readonly

    # -- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def prefix(self) -> str:
        """The prefix of every table name (``abkit_`` by default)."""
        return self.tables.prefix

    @property
    def schema(self) -> str | None:
        """The database schema holding the tables (``None``: the connection's default)."""
        return self.tables.schema

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
        if self.readonly:
            raise StoreError(f"{self.url} was opened read-only: no writes")
        with self.engine.connect() as conn:
            conn.execution_options(abkit_write=True)
            with conn.begin():
                yield conn

    def exclusive(
        self, key: str, on_wait: Callable[[], None] | None = None
    ) -> AbstractContextManager[None]:
        """A lock named ``key`` held for a ``with`` block, released if the holder dies.

        PostgreSQL: a session advisory lock; SQLite and DuckDB: a ``flock`` file beside
        the database. ``on_wait`` is called once when another holder makes this wait.
        """
        return self.dialect.exclusive(f"{self.schema or ''}.{self.prefix}:{key}", on_wait)

    # -- schema versioning -------------------------------------------------------------
    def schema_version(self) -> int | None:
        with self.engine.connect() as conn:
            return _read_version(conn, self.tables)

    def _check_readable(self) -> None:
        """Read-only open: the tables must exist at this abkit's schema version."""
        try:
            version = self.schema_version()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.url}: {one_line(exc)}") from exc
        where = f"{self.schema}.{self.prefix}*" if self.schema else f"{self.prefix}*"
        if version is None:
            raise StoreError(f"{self.url}: no abkit tables ({where}) to read")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.url}: the tables {where} have schema version {version}, this abkit "
                f"reads version {SCHEMA_VERSION}; "
                + (
                    "upgrade abkit"
                    if version > SCHEMA_VERSION
                    else "open the store once for writing (abkit ingest) to upgrade it"
                )
            )

    def _prepare(self) -> None:
        try:
            # A current store needs no write: a reader must not queue behind a writer
            # (SQLite's write lock) just to learn that nothing needs creating.
            if self.schema_version() == SCHEMA_VERSION:
                return
            with self.write() as conn:
                self.dialect.lock_schema(conn)
                version = _read_version(conn, self.tables)
                if version is None:
                    names = set(inspect(conn).get_table_names(schema=self.schema))
                    ours = {t.name for t in self.tables.metadata.sorted_tables}
                    if names & ours:
                        raise StoreError(
                            f"{self.url}: abkit tables exist but {self.tables.meta.name} has "
                            "no schema_version; this is not a store abkit can upgrade"
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
                        MIGRATIONS[step](conn, self.tables)
                    conn.execute(
                        update(self.tables.meta)
                        .where(self.tables.meta.c.key == "schema_version")
                        .values(value=str(SCHEMA_VERSION))
                    )
                    # Tables added by later versions (none yet beyond columns).
                    self.tables.metadata.create_all(conn, checkfirst=True)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.url}: {one_line(exc)}") from exc

    # -- experiments registry snapshot ---------------------------------------------------
    def register_experiments(self, experiments: Iterable[Any]) -> int:
        """Insert or replace experiment configs (``Experiment`` objects or their dicts)."""
        table = self.tables.experiments
        now = now_us()
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
        """The registered :class:`abkit.assignment.config.Experiment` named ``key``.

        An unknown key is a :class:`~abkit.errors.ConfigError` with a did-you-mean and the
        keys that are registered.
        """
        from abkit.assignment.config import Experiment

        table = self.tables.experiments
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.config).where(table.c.key == key)).first()
            if row is None:
                known = sorted(conn.execute(select(table.c.key)).scalars())
        if row is None:
            raise UnknownExperimentError(
                unknown_key_message(key, known, self.url), field="experiment"
            )
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
        deduplicates within a chunk). ``key=None`` appends every row (quarantine). Runs
        inside ``conn``'s transaction (the caller commits) through the dialect's fast path;
        see :meth:`abkit.store.dialects.base.Dialect.insert_new`.
        """
        return self.dialect.insert_new(conn, table, columns, rows, key)

    def append_columns(
        self, conn: Connection, table: Table, data: Mapping[str, Sequence[Any]]
    ) -> int:
        """Append rows known to be new, given column-wise (name -> values), in ``conn``'s
        transaction through the dialect's bulk path (DuckDB: a registered frame)."""
        return self.dialect.append_columns(conn, table, data)


def unknown_key_message(key: str, known: Sequence[str], where: str, shown: int = 20) -> str:
    """``experiment 'chekout' is not registered in URL; did you mean 'checkout'? known: ...``"""
    import difflib

    if not known:
        return f"experiment {key!r} is not registered in {where} (no experiment is)"
    parts = [f"experiment {key!r} is not registered in {where}"]
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        parts.append(f"did you mean {close[0]!r}?")
    more = f" (and {len(known) - shown:,} more)" if len(known) > shown else ""
    parts.append("known: " + ", ".join(known[:shown]) + more)
    return "; ".join(parts)


def one_line(exc: BaseException) -> str:
    """The driver's own message on one line (no SQLAlchemy background link, no hints).

    psycopg spreads a refused connection over three lines; the CLI promises one.
    """
    message = str(getattr(exc, "orig", None) or exc)
    first, *rest = [line.strip() for line in message.splitlines() if line.strip()] or [""]
    hint = next((line for line in rest if not line.startswith("(Background")), "")
    return f"{first} ({hint})" if hint else first


def _read_version(conn: Connection, tables: Tables) -> int | None:
    if not inspect(conn).has_table(tables.meta.name, schema=tables.schema):
        return None
    value = conn.execute(
        select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")
    ).scalar()
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise StoreError(f"{tables.meta.name}.schema_version is not an integer: {value!r}") from exc


def open_store(
    url: str | Store | None = None,
    *,
    create: bool = True,
    readonly: bool = False,
    prefix: str = DEFAULT_PREFIX,
    schema: str | None = None,
) -> Store:
    """Open (creating or upgrading in place) the store at ``url``.

    ``url`` defaults to :func:`default_store_url` (``$ABKIT_DATABASE_URL``, else
    ``abkit.db`` or the demo's ``abkit-demo.db`` in this folder). A store written
    by a newer abkit is refused with :class:`~abkit.errors.StoreError`. Readers pass
    ``create=False``: a SQLite or DuckDB file that does not exist is then an error rather
    than a new, empty store left behind by a typo in the path. ``readonly=True`` (which
    implies ``create=False``) runs no DDL and no upgrade: the tables must exist at this
    abkit's schema version, and every connection refuses writes. ``prefix`` and ``schema``
    name where the tables are (``{schema}.{prefix}events``...).
    """
    if isinstance(url, Store):
        return url
    raw_url = url or default_store_url(create=create and not readonly)
    try:
        normalised = normalise_url(raw_url)
        parsed = make_url(normalised)
    except Exception as exc:
        raise StoreError(f"not a database URL: {raw_url!r} ({exc})") from exc
    try:
        cls = dialect_class(parsed.get_dialect().name)
    except Exception as exc:  # an unknown scheme or a missing driver
        raise StoreError(f"cannot open the store {raw_url!r}: {one_line(exc)}") from exc
    if cls.file_based and (readonly or not create):
        database = parsed.database
        if database and database != ":memory:" and not os.path.exists(database):
            raise StoreError(
                f"no abkit store at {database!r}: check the path, or load data first "
                "with abkit ingest (or abkit demo)"
            )
    try:
        tables = build_tables(prefix=prefix, schema=schema, sequences=cls.sequences)
        engine = create_engine(normalised, **cls.engine_options(parsed, readonly=readonly))
    except ValueError as exc:  # a bad prefix or schema name
        raise StoreError(f"cannot open the store {raw_url!r}: {exc}") from exc
    except Exception as exc:  # missing driver, bad options
        raise StoreError(f"cannot open the store {raw_url!r}: {exc}") from exc
    dialect = cls(engine)
    dialect.prepare_engine(readonly=readonly)
    store = Store(engine, tables, dialect=dialect, readonly=readonly)
    try:
        if readonly:
            store._check_readable()
        else:
            store._prepare()
    except BaseException:
        store.close()
        raise
    return store
