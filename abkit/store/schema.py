"""SQLAlchemy Core schema of the abkit store.

Timestamps are UTC epoch microseconds in BIGINT columns named ``*_us``. Integer time makes
windows (``ts_us - first_us <= window``) and daily buckets (``ts_us // 86_400_000_000``)
the same arithmetic on SQLite, PostgreSQL, DuckDB and warehouses, so one query gives
identical answers everywhere; :func:`to_us` and :func:`from_us` convert.

Every table name carries the ``abkit_`` prefix so the store can share a warehouse schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

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

SCHEMA_VERSION = 2
"""Version 1: the initial schema. Version 2: ingest batches gained ``params_hash``, ``owner``,
``heartbeat_at_us`` and ``message`` (resumable, claimable batches; see ``abkit.store.migrations``)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROS_PER_DAY = 86_400_000_000


def to_us(moment: datetime) -> int:
    """UTC epoch microseconds of a timezone-aware datetime (exact, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    """Inverse of :func:`to_us`: a UTC datetime."""
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=int(micros))


# Lengths bound what a row may hold; validation rejects longer values with a message
# before they reach the database (PostgreSQL would raise, SQLite would store anything).
KEY_LENGTH = 255
ID_LENGTH = 255
EVENT_ID_LENGTH = 128


@dataclass(frozen=True)
class Tables:
    """The store's tables, built on one ``MetaData``."""

    metadata: MetaData
    meta: Table
    experiments: Table
    exposures: Table
    exposure_attributes: Table
    events: Table
    quarantine: Table
    ingest_batches: Table


def build_tables(*, sequences: bool = False) -> Tables:
    """The tables on a fresh ``MetaData``.

    ``sequences=True`` gives the two surrogate keys explicit sequences, for engines such
    as DuckDB that have no SERIAL/AUTOINCREMENT; SQLite and PostgreSQL use their native
    autoincrement (so existing stores need no sequence objects).
    """

    def surrogate_key(table: str) -> Column:
        if sequences:
            return Column("id", Integer, Sequence(f"{table}_id_seq"), primary_key=True)
        return Column("id", Integer, primary_key=True, autoincrement=True)

    metadata = MetaData()
    meta = Table(
        "abkit_meta",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )
    experiments = Table(
        "abkit_experiments",
        metadata,
        Column("key", String(KEY_LENGTH), primary_key=True),
        Column("config", Text, nullable=False),  # JSON of Experiment.to_dict()
        Column("updated_at_us", BigInteger, nullable=False),
    )
    exposures = Table(
        "abkit_exposures",
        metadata,
        Column("event_id", String(EVENT_ID_LENGTH), primary_key=True),
        Column("experiment", String(KEY_LENGTH), nullable=False),
        Column("unit_id", String(ID_LENGTH), nullable=False),
        Column("variant", String(KEY_LENGTH), nullable=False),
        Column("ts_us", BigInteger, nullable=False),
        Column("content_hash", String(32), nullable=False),
        Column("batch_id", Integer, nullable=False),
        Index("ix_abkit_exposures_experiment_unit", "experiment", "unit_id", "ts_us"),
        Index("ix_abkit_exposures_experiment_variant", "experiment", "variant"),
    )
    exposure_attributes = Table(
        "abkit_exposure_attributes",
        metadata,
        Column("event_id", String(EVENT_ID_LENGTH), primary_key=True),
        Column("name", String(KEY_LENGTH), primary_key=True),
        Column("value", Text, nullable=True),
        Index("ix_abkit_exposure_attributes_name", "name", "event_id"),
    )
    events = Table(
        "abkit_events",
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
        Index("ix_abkit_events_unit_type_ts", "unit_id", "event_type", "ts_us"),
        Index("ix_abkit_events_type_ts", "event_type", "ts_us"),
    )
    quarantine = Table(
        "abkit_quarantine",
        metadata,
        surrogate_key("abkit_quarantine"),
        Column("batch_id", Integer, nullable=False),
        Column("source", Text, nullable=False),
        Column("row_number", BigInteger, nullable=True),
        Column("raw", Text, nullable=False),  # the row as received, JSON text
        Column("reason_code", String(64), nullable=False),
        Column("reason", Text, nullable=False),
        Column("field", String(KEY_LENGTH), nullable=True),
        Column("quarantined_at_us", BigInteger, nullable=False),
        Index("ix_abkit_quarantine_batch", "batch_id"),
        Index("ix_abkit_quarantine_reason", "reason_code"),
        Index("ix_abkit_quarantine_source", "source", "batch_id"),
    )
    ingest_batches = Table(
        "abkit_ingest_batches",
        metadata,
        surrogate_key("abkit_ingest_batches"),
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
        Index("ix_abkit_ingest_batches_source", "source", "id"),
        Index("ix_abkit_ingest_batches_content", "content_hash", "status"),
    )
    return Tables(
        metadata=metadata,
        meta=meta,
        experiments=experiments,
        exposures=exposures,
        exposure_attributes=exposure_attributes,
        events=events,
        quarantine=quarantine,
        ingest_batches=ingest_batches,
    )


TABLES = build_tables()
