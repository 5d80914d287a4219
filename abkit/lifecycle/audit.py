"""The lifecycle's own tables in the store: spec versions seen, the audit trail, the status.

They live beside the store's tables, with the store's prefix and schema, on their own
SQLAlchemy Core ``MetaData`` (the store's schema version does not cover them; they are
created on first write with ``checkfirst``):

* ``{prefix}spec_versions(experiment, version PK, file, file_hash, content, seen_at_us)``:
  every version of every spec seen, ``version`` the SHA-256 of the entry's canonical JSON;
* ``{prefix}audit(action_key PK, experiment, action, actor, at_us, from_version,
  to_version, reason, evidence)``: one row per action. ``action_key`` is the SHA-256 of
  (experiment, the version acted on, action, its place among the experiment's entries):
  two controllers that decide the same action from the same state write the same key, and
  only one of them acts. The count is in the key because a spec's content can come back to
  an earlier version (pause, resume, pause; a rollback undone by restoring the previous
  file): the same action on that version is then a new action, not a repeat. (A place,
  kept in the evidence as ``audit_sequence``, not the latest entry's time: clocks need not
  agree.) A proposal (an action that changes nothing) is recorded once per version it was
  made on;
* ``{prefix}lifecycle_status(experiment PK, evaluated_at_us, verdict, units, stage,
  spec_version, summary)``: the controller's last look, for ``abkit experiments``.

:func:`lifecycle_lock` serialises controllers: a PostgreSQL transaction-level advisory lock,
SQLite's ``BEGIN IMMEDIATE`` write transaction (through :meth:`Store.write`); other
dialects rely on the unique ``action_key`` alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from abkit.errors import StoreError
from abkit.store.store import Store, open_store
from abkit.timeutil import from_us, to_us

# Any fixed 64-bit number distinct from the store's schema lock: "abkitlc".
_PG_CONTROLLER_LOCK = 0x61626B69746C63


@dataclass(frozen=True)
class LifecycleTables:
    metadata: MetaData
    spec_versions: Table
    audit: Table
    status: Table


def lifecycle_tables(store: Store) -> LifecycleTables:
    """The lifecycle tables with the store's prefix and schema."""
    prefix, schema = store.tables.prefix, store.tables.schema
    metadata = MetaData(schema=schema)
    spec_versions = Table(
        f"{prefix}spec_versions",
        metadata,
        Column("experiment", String(255), primary_key=True),
        Column("version", String(64), primary_key=True),
        Column("file", Text),
        Column("file_hash", String(64)),
        Column("content", Text, nullable=False),
        Column("seen_at_us", BigInteger, nullable=False),
    )
    audit = Table(
        f"{prefix}audit",
        metadata,
        Column("action_key", String(64), primary_key=True),
        Column("experiment", String(255), nullable=False, index=True),
        Column("action", String(32), nullable=False),
        Column("actor", String(255), nullable=False),
        Column("at_us", BigInteger, nullable=False),
        Column("from_version", String(64)),
        Column("to_version", String(64)),
        Column("reason", Text, nullable=False),
        Column("evidence", Text),
    )
    status = Table(
        f"{prefix}lifecycle_status",
        metadata,
        Column("experiment", String(255), primary_key=True),
        Column("evaluated_at_us", BigInteger, nullable=False),
        Column("verdict", String(32)),
        Column("units", Integer),
        Column("stage", Integer),
        Column("traffic", Float),
        Column("spec_version", String(64)),
        Column("summary", Text),
    )
    return LifecycleTables(metadata, spec_versions, audit, status)


@dataclass(frozen=True)
class AuditEntry:
    """One action on one experiment, with why and the evidence (JSON-safe mapping);
    ``action_key`` identifies it once recorded (module docstring)."""

    experiment: str
    action: str
    actor: str
    at: datetime
    from_version: str | None
    to_version: str | None
    reason: str
    evidence: Mapping[str, Any]
    action_key: str | None = None  # set when recorded (:func:`record_action`)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_key": self.action_key,
            "experiment": self.experiment,
            "action": self.action,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }


@contextmanager
def lifecycle_lock(store: Store) -> Iterator[Connection]:
    """A write transaction that one controller at a time holds (module docstring)."""
    with store.write() as conn:
        if store.dialect_name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_PG_CONTROLLER_LOCK)))
        lifecycle_tables(store).metadata.create_all(conn, checkfirst=True)
        yield conn


def record_spec_version(
    conn: Connection,
    store: Store,
    *,
    experiment: str,
    version: str,
    content: str,
    file: str | None,
    file_hash: str | None,
    seen_at: datetime,
) -> bool:
    """Remember a spec version (True when it was new); ``content`` is the entry's
    :func:`abkit.lifecycle.spec.canonical_json`."""
    table = lifecycle_tables(store).spec_versions
    exists = conn.execute(
        select(table.c.version).where(
            (table.c.experiment == experiment) & (table.c.version == version)
        )
    ).first()
    if exists is not None:
        return False
    conn.execute(
        insert(table).values(
            experiment=experiment,
            version=version,
            file=file,
            file_hash=file_hash,
            content=content,
            seen_at_us=to_us(seen_at),
        )
    )
    return True


def action_key(experiment: str, from_version: str | None, action: str, earlier: int) -> str:
    """The audit row's key: ``earlier`` is its place among the experiment's entries."""
    text = "\x1f".join((experiment, from_version or "", action, str(earlier)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_action(conn: Connection, store: Store, entry: AuditEntry) -> AuditEntry | None:
    """Insert an audit entry; returns it with its key, or None when it repeats: another
    controller recorded the same action from the same state, or the same proposal was
    made on this version already (module docstring). The caller has checked, under the
    lifecycle lock, that the spec is at ``entry.from_version``."""
    table = lifecycle_tables(store).audit
    mine = table.c.experiment == entry.experiment
    if entry.to_version == entry.from_version:  # a proposal: once per version
        made = conn.execute(
            select(table.c.action_key).where(
                mine,
                table.c.action == entry.action,
                table.c.from_version == entry.from_version,
                table.c.to_version == entry.to_version,
            )
        ).first()
        if made is not None:
            return None
    # the place of the entry among the experiment's, not its time: clocks of two hosts
    # (or a replayed `now`) need not agree on which came last
    earlier = _next_sequence(conn, table, entry.experiment)
    key = action_key(entry.experiment, entry.from_version, entry.action, earlier)
    if conn.execute(select(table.c.action_key).where(table.c.action_key == key)).first():
        return None
    try:
        with conn.begin_nested():
            conn.execute(
                insert(table).values(
                    action_key=key,
                    experiment=entry.experiment,
                    action=entry.action,
                    actor=entry.actor,
                    at_us=to_us(entry.at),
                    from_version=entry.from_version,
                    to_version=entry.to_version,
                    reason=entry.reason,
                    evidence=json.dumps(
                        {**entry.evidence, SEQUENCE: earlier}, sort_keys=True, default=str
                    ),
                )
            )
    except IntegrityError:  # another controller recorded it between our check and insert
        return None
    return replace(entry, action_key=key)


# the entry's place among its experiment's, kept in its evidence (the table has no column
# for it): 0, 1, 2, ... in the order recorded
SEQUENCE = "audit_sequence"


def _next_sequence(conn: Connection, table: Table, experiment: str) -> int:
    """One past the highest place recorded (at least the number of entries: rows written
    before places were kept count by number). Deleting rows never brings back a place
    already used, so a new action never takes the key of an old one."""
    places = [
        json.loads(text or "{}").get(SEQUENCE)
        for (text,) in conn.execute(
            select(table.c.evidence).where(table.c.experiment == experiment)
        )
    ]
    known = [p for p in places if isinstance(p, int)]
    return max(len(places), max(known, default=-1) + 1)


def record_status(
    conn: Connection,
    store: Store,
    *,
    experiment: str,
    at: datetime,
    verdict: str | None,
    units: int | None,
    stage: int | None,
    traffic: float,
    spec_version: str,
    summary: str,
) -> None:
    """Upsert the controller's last look at an experiment."""
    table = lifecycle_tables(store).status
    values = {
        "evaluated_at_us": to_us(at),
        "verdict": verdict,
        "units": units,
        "stage": stage,
        "traffic": traffic,
        "spec_version": spec_version,
        "summary": summary,
    }
    found = conn.execute(select(table.c.experiment).where(table.c.experiment == experiment))
    if found.first() is None:
        conn.execute(insert(table).values(experiment=experiment, **values))
    else:
        conn.execute(update(table).where(table.c.experiment == experiment).values(**values))


def _exists(conn: Connection, table: Table) -> bool:
    return bool(inspect(conn).has_table(table.name, schema=table.schema))


def read_audit(store: Store, experiment: str | None = None) -> list[AuditEntry]:
    """The audit trail, oldest first (empty when no controller ever ran)."""
    table = lifecycle_tables(store).audit
    with store.engine.connect() as conn:
        if not _exists(conn, table):
            return []
        query = select(table).order_by(table.c.at_us, table.c.action_key)
        if experiment is not None:
            query = query.where(table.c.experiment == experiment)
        rows = conn.execute(query).mappings().all()
    return [
        AuditEntry(
            experiment=r["experiment"],
            action=r["action"],
            actor=r["actor"],
            at=from_us(r["at_us"]),
            from_version=r["from_version"],
            to_version=r["to_version"],
            reason=r["reason"],
            evidence=json.loads(r["evidence"] or "{}"),
            action_key=r["action_key"],
        )
        for r in rows
    ]


def read_audit_at(db: str | Store, experiment: str) -> list[AuditEntry]:
    """:func:`read_audit` of one experiment in the store at ``db`` (a URL or a store),
    opened read-only: what a report shows of the controller's actions (none when ``db``
    holds no abkit tables: the analysis beside it says why)."""
    try:
        store = open_store(db, readonly=True)
    except StoreError:
        return []
    try:
        return read_audit(store, experiment)
    finally:
        if store is not db:
            store.engine.dispose()


def read_status(store: Store) -> dict[str, dict[str, Any]]:
    """The controller's last look per experiment (empty when it never ran)."""
    table = lifecycle_tables(store).status
    with store.engine.connect() as conn:
        if not _exists(conn, table):
            return {}
        rows = conn.execute(select(table)).mappings().all()
    return {r["experiment"]: dict(r) for r in rows}


def read_spec_versions(store: Store, experiment: str) -> list[dict[str, Any]]:
    """Every version of one experiment's spec seen, oldest first."""
    table = lifecycle_tables(store).spec_versions
    with store.engine.connect() as conn:
        if not _exists(conn, table):
            return []
        rows = conn.execute(
            select(table).where(table.c.experiment == experiment).order_by(table.c.seen_at_us)
        ).mappings()
        return [dict(r) for r in rows]
