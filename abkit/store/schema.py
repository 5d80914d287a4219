"""SQLAlchemy Core schema of the abkit store.

Timestamps are UTC epoch microseconds in BIGINT columns named ``*_us``. Integer time makes
windows (``ts_us - first_us <= window``) and daily buckets (``ts_us // 86_400_000_000``)
the same arithmetic on SQLite, PostgreSQL, DuckDB and warehouses, so one query gives
identical answers everywhere; :mod:`abkit.timeutil` converts.

Every table name carries a prefix (``abkit_`` unless the store is opened with another) and
may live in a named database schema, so the store can share a warehouse with other tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 4
"""Version 1: the initial schema. Version 2: ingest batches gained ``params_hash``, ``owner``,
``heartbeat_at_us`` and ``message`` (resumable, claimable batches). Version 3: batches keep
their ``params`` (column map, time zone), quarantined rows a resolved state
(``resolved_at_us``, ``resolved_batch_id``), and the events index on (unit, type, time)
covers ``value``. Version 4: the registry of per-unit caches (``unit_caches``, incremental
refresh, :mod:`abkit.analysis.incremental`) and indexes on the ``batch_id`` of events and
exposures (a refresh reads the rows that arrived since its watermark). See
``abkit.store.migrations``."""

# Lengths bound what a row may hold; validation rejects longer values with a message
# before they reach the database (PostgreSQL would raise, SQLite would store anything).
KEY_LENGTH = 255
ID_LENGTH = 255
EVENT_ID_LENGTH = 128

DEFAULT_PREFIX = "abkit_"
# Prefixes and schema names are identifiers, quoted by SQLAlchemy anyway; the pattern
# keeps them portable (unquoted-safe everywhere) and short enough for index names.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


@dataclass(frozen=True)
class Tables:
    """The store's tables, built on one ``MetaData``, with the prefix and schema they use."""

    metadata: MetaData
    meta: Table
    experiments: Table
    exposures: Table
    exposure_attributes: Table
    events: Table
    quarantine: Table
    ingest_batches: Table
    unit_caches: Table
    prefix: str = DEFAULT_PREFIX
    schema: str | None = None


def check_identifier(value: str, what: str) -> str:
    """``value`` if it is a portable SQL identifier (letters, digits, ``_``), else ValueError."""
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be letters, digits and underscores (at most 40, "
            "not starting with a digit)"
        )
    return value


def build_tables(
    *, prefix: str = DEFAULT_PREFIX, schema: str | None = None, sequences: bool = False
) -> Tables:
    """The tables on a fresh ``MetaData``: ``{prefix}events`` etc., in ``schema`` if given.

    ``sequences=True`` gives the two surrogate keys explicit sequences, for engines such
    as DuckDB that have no SERIAL/AUTOINCREMENT; SQLite and PostgreSQL use their native
    autoincrement (so existing stores need no sequence objects).
    """

    if prefix:
        check_identifier(prefix, "table prefix")
    if schema is not None:
        check_identifier(schema, "schema")
    p = prefix

    def surrogate_key(table: str) -> Column:
        if sequences:
            return Column("id", Integer, Sequence(f"{table}_id_seq"), primary_key=True)
        return Column("id", Integer, primary_key=True, autoincrement=True)

    metadata = MetaData(schema=schema)
    meta = Table(
        f"{p}meta",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )
    experiments = Table(
        f"{p}experiments",
        metadata,
        Column("key", String(KEY_LENGTH), primary_key=True),
        Column("config", Text, nullable=False),  # JSON of Experiment.to_dict()
        Column("updated_at_us", BigInteger, nullable=False),
    )
    exposures = Table(
        f"{p}exposures",
        metadata,
        Column("event_id", String(EVENT_ID_LENGTH), primary_key=True),
        Column("experiment", String(KEY_LENGTH), nullable=False),
        Column("unit_id", String(ID_LENGTH), nullable=False),
        Column("variant", String(KEY_LENGTH), nullable=False),
        Column("ts_us", BigInteger, nullable=False),
        Column("content_hash", String(32), nullable=False),
        Column("batch_id", Integer, nullable=False),
        Index(f"ix_{p}exposures_experiment_unit", "experiment", "unit_id", "ts_us"),
        Index(f"ix_{p}exposures_experiment_variant", "experiment", "variant"),
        # v4: the rows that arrived since an incremental refresh's watermark
        Index(f"ix_{p}exposures_batch", "batch_id"),
    )
    exposure_attributes = Table(
        f"{p}exposure_attributes",
        metadata,
        Column("event_id", String(EVENT_ID_LENGTH), primary_key=True),
        Column("name", String(KEY_LENGTH), primary_key=True),
        Column("value", Text, nullable=True),
        Index(f"ix_{p}exposure_attributes_name", "name", "event_id"),
    )
    events = Table(
        f"{p}events",
        metadata,
        Column("event_id", String(EVENT_ID_LENGTH), primary_key=True),
        Column("unit_id", String(ID_LENGTH), nullable=False),
        Column("event_type", String(KEY_LENGTH), nullable=False),
        Column("value", Float(precision=53), nullable=True),
        Column("currency", String(16), nullable=True),
        Column("ts_us", BigInteger, nullable=False),
        Column("properties", Text, nullable=True),  # JSON text
        Column("content_hash", String(32), nullable=False),
        Column("batch_id", Integer, nullable=False),
        # v3: covering (value included) for the analysis join on unit and event type, which
        # reads ts_us and value; it replaces v2's (unit_id, event_type, ts_us), its prefix.
        Index(f"ix_{p}events_unit_type_ts_value", "unit_id", "event_type", "ts_us", "value"),
        Index(f"ix_{p}events_type_ts", "event_type", "ts_us"),
        Index(f"ix_{p}events_batch", "batch_id"),  # v4, as for exposures
    )
    quarantine = Table(
        f"{p}quarantine",
        metadata,
        surrogate_key(f"{p}quarantine"),
        Column("batch_id", Integer, nullable=False),
        Column("source", Text, nullable=False),
        Column("row_number", BigInteger, nullable=True),
        Column("raw", Text, nullable=False),  # the row as received, JSON text
        Column("reason_code", String(64), nullable=False),
        Column("reason", Text, nullable=False),
        Column("field", String(KEY_LENGTH), nullable=True),
        Column("quarantined_at_us", BigInteger, nullable=False),
        # v3: set when the row was later accepted (a fixed export re-ingested).
        Column("resolved_at_us", BigInteger, nullable=True),
        Column("resolved_batch_id", Integer, nullable=True),
        Index(f"ix_{p}quarantine_batch", "batch_id"),
        Index(f"ix_{p}quarantine_reason", "reason_code"),
        Index(f"ix_{p}quarantine_source", "source", "batch_id"),
    )
    ingest_batches = Table(
        f"{p}ingest_batches",
        metadata,
        surrogate_key(f"{p}ingest_batches"),
        Column("source", Text, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("path", Text, nullable=True),
        Column("content_hash", String(64), nullable=True),
        Column("status", String(16), nullable=False),  # running | committed | failed
        Column("rows_read", BigInteger, nullable=False, default=0),
        Column("accepted", BigInteger, nullable=False, default=0),
        Column("duplicates", BigInteger, nullable=False, default=0),
        Column("quarantined", BigInteger, nullable=False, default=0),
        Column("columns", Text, nullable=True),  # JSON {column: type} for drift reports
        Column("started_at_us", BigInteger, nullable=False),
        Column("finished_at_us", BigInteger, nullable=True),
        # v2: what makes a run resumable. params_hash fingerprints the options that change
        # the result (kind, mapping, timezone...), so a resumed run continues the same
        # work; owner ("host:pid:nonce") and heartbeat tell a dead run from a live one.
        Column("params_hash", String(64), nullable=True),
        Column("owner", String(255), nullable=True),
        Column("heartbeat_at_us", BigInteger, nullable=True),
        Column("message", Text, nullable=True),  # why a batch failed, or a note
        # v3: JSON of the options that shaped the rows (column map, time zone, kind), so an
        # export of its quarantined rows can be written in abkit's own terms.
        Column("params", Text, nullable=True),
        Index(f"ix_{p}ingest_batches_source", "source", "id"),
        Index(f"ix_{p}ingest_batches_content", "content_hash", "status"),
    )
    unit_caches = unit_caches_table(metadata, p)
    return Tables(
        metadata=metadata,
        meta=meta,
        experiments=experiments,
        exposures=exposures,
        exposure_attributes=exposure_attributes,
        events=events,
        quarantine=quarantine,
        ingest_batches=ingest_batches,
        unit_caches=unit_caches,
        prefix=prefix,
        schema=schema,
    )


def unit_caches_table(metadata: MetaData, prefix: str) -> Table:
    """v4: one row per experiment whose per-unit aggregates are cached (incremental refresh).

    The per-unit rows live in ``table_name`` (created by :mod:`abkit.analysis.incremental`,
    its columns depend on the metrics); ``definition`` hashes what they depend on (the
    aggregates, the readout scope), ``watermark`` is the last ingest batch merged and
    ``fingerprint`` what the batches up to it looked like (a changed batch means a rebuild).
    """
    return Table(
        f"{prefix}unit_caches",
        metadata,
        Column("experiment", String(KEY_LENGTH), primary_key=True),
        Column("definition", String(64), nullable=False),
        Column("table_name", String(128), nullable=False),
        Column("columns", Text, nullable=False),  # JSON [[column, merge rule, key], ...]
        Column("watermark", BigInteger, nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("max_ts_us", BigInteger, nullable=True),  # latest event time merged
        Column("units", BigInteger, nullable=False),
        Column("built_at_us", BigInteger, nullable=False),
        Column("refreshed_at_us", BigInteger, nullable=False),
    )
