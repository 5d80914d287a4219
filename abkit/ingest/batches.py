"""Batch ownership: one ``abkit_ingest_batches`` row per source, and who may advance it.

A run of one file holds the store's exclusive lock for the file's content hash
(:meth:`abkit.store.store.Store.exclusive`: a PostgreSQL session advisory lock, or a
``flock`` file beside a SQLite/DuckDB store) from before it looks for earlier batches until
its batch is finished. Two consequences:

* the same file cannot be ingested by two processes at once: the second waits, then finds
  the first one's committed batch and skips the file (a cron overlap commits one batch and
  quarantines each bad row once);
* liveness needs no host name or pid: while this run holds the lock, no live process can
  be working on a ``running`` batch of the same file, so any such batch belongs to a dead
  owner (killed, crashed, its pid since reused by another process) and is claimed and
  resumed. Stores whose dialect has no cross-process lock fall back to the heartbeat: a
  batch not advanced for :data:`STALE_AFTER` is abandoned.

The ``owner`` column (``host:pid:nonce``) is a token for the compare-and-set that lets only
the claiming run advance the counters, and a clue for a person reading the table.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Row

from abkit.errors import StoreError
from abkit.store.store import Store
from abkit.timeutil import now_us

# Without a cross-process lock, a batch not advanced for this long counts as abandoned
# (one heartbeat per committed chunk).
STALE_AFTER = timedelta(minutes=10)


def owner_token() -> str:
    """A token unique to this run: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class BatchStart:
    """The batch a run writes into, and what an earlier, interrupted run had committed."""

    batch_id: int
    resumed: bool
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0


@dataclass(frozen=True)
class BatchIdentity:
    """What makes two runs "the same work": source, file content and parameters."""

    source: str
    kind: str
    path: str | None
    content_hash: str | None
    params_hash: str
    params: str  # JSON of the options, stored for exports

    @property
    def lock_key(self) -> str | None:
        """The exclusive lock of this file's content (``None``: not a file, no lock)."""
        return f"ingest:{self.content_hash}" if self.content_hash else None


class BatchOwner:
    """Finds, claims, creates and finishes the batch of one source, as one ``owner``."""

    def __init__(self, store: Store, identity: BatchIdentity) -> None:
        self.store = store
        self.identity = identity
        self.owner = owner_token()
        self.table = store.tables.ingest_batches

    def committed(self) -> int | None:
        """The id of a committed batch of the same file, source and options, if any."""
        b = self.table
        ident = self.identity
        if ident.content_hash is None:
            return None
        with self.store.engine.connect() as conn:
            found = conn.execute(
                select(b.c.id)
                .where(
                    and_(
                        b.c.content_hash == ident.content_hash,
                        b.c.params_hash == ident.params_hash,
                        b.c.source == ident.source,
                        b.c.status == "committed",
                    )
                )
                .order_by(b.c.id)
                .limit(1)
            ).scalar()
        return None if found is None else int(found)

    def start(self, columns: dict[str, str]) -> BatchStart:
        """Claim an interrupted batch of the same work, or create a new batch.

        Call it while holding the work's lock (see the module docstring): a ``running``
        batch found then has a dead owner. A ``failed`` batch (an error or Ctrl-C) is
        resumed too: re-reading it from the start would quarantine its committed rejected
        rows a second time.
        """
        for row in self._interrupted():
            claimed = self._claim(row)
            if claimed is not None:
                return BatchStart(
                    batch_id=int(claimed.id),
                    resumed=True,
                    rows_read=int(claimed.rows_read),
                    accepted=int(claimed.accepted),
                    duplicates=int(claimed.duplicates),
                    quarantined=int(claimed.quarantined),
                )
        return BatchStart(batch_id=self._create(columns), resumed=False)

    def _interrupted(self) -> list[Row[Any]]:
        ident = self.identity
        if ident.content_hash is None:
            return []
        b = self.table
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(b)
                .where(
                    and_(
                        b.c.content_hash == ident.content_hash,
                        b.c.params_hash == ident.params_hash,
                        b.c.source == ident.source,
                        b.c.status.in_(("running", "failed")),
                    )
                )
                .order_by(b.c.id)
            ).all()
        locked = self.store.dialect.cross_process_locks
        stale_us = int(STALE_AFTER / timedelta(microseconds=1))
        return [
            row
            for row in rows
            if row.status == "failed"
            or locked
            or row.heartbeat_at_us is None
            or now_us() - row.heartbeat_at_us >= stale_us
        ]

    def _claim(self, batch: Row[Any]) -> Row[Any] | None:
        """Take ``batch`` over (compare-and-set on owner and status); its fresh row or None.

        The counters are read back inside the claiming transaction: the row seen before
        may predate a last chunk committed by a slow owner on another host, and resuming
        from those stale counters would read that chunk twice.
        """
        b = self.table
        with self.store.write() as conn:
            conn.execute(
                update(b)
                .where(
                    and_(b.c.id == batch.id, b.c.status == batch.status, b.c.owner == batch.owner)
                )
                .values(
                    owner=self.owner,
                    status="running",
                    heartbeat_at_us=now_us(),
                    finished_at_us=None,
                    message=None,
                )
            )
            fresh = conn.execute(select(b).where(b.c.id == batch.id)).first()
        # The owner column says who won (DuckDB 1.x does not count updated rows).
        return fresh if fresh is not None and fresh.owner == self.owner else None

    def _create(self, columns: dict[str, str]) -> int:
        ident = self.identity
        now = now_us()
        with self.store.write() as conn:
            result = conn.execute(
                insert(self.table).values(
                    source=ident.source,
                    kind=ident.kind,
                    path=ident.path,
                    content_hash=ident.content_hash,
                    status="running",
                    rows_read=0,
                    accepted=0,
                    duplicates=0,
                    quarantined=0,
                    columns=json.dumps(columns, sort_keys=True),
                    started_at_us=now,
                    params_hash=ident.params_hash,
                    params=ident.params,
                    owner=self.owner,
                    heartbeat_at_us=now,
                )
            )
            key = result.inserted_primary_key
            if key is None:  # pragma: no cover - every dialect returns the new id
                raise StoreError(f"{ident.source}: the database returned no batch id")
            return int(key[0])

    def finish(self, batch_id: int, status: str, message: str | None) -> None:
        b = self.table
        with self.store.write() as conn:
            conn.execute(
                update(b)
                .where(and_(b.c.id == batch_id, b.c.owner == self.owner))
                .values(status=status, finished_at_us=now_us(), message=message)
            )

    def reasons_so_far(self, batch_id: int) -> Counter[str]:
        """Quarantine counts by reason already committed in ``batch_id`` (a resumed run)."""
        q = self.store.tables.quarantine
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(q.c.reason_code, func.count())
                .where(q.c.batch_id == batch_id)
                .group_by(q.c.reason_code)
            ).all()
        return Counter({code: int(n) for code, n in rows})

    def previous_columns(self) -> tuple[int, dict[str, str]] | None:
        """The column types of the latest committed batch of this source (drift reports)."""
        b = self.table
        with self.store.engine.connect() as conn:
            previous = conn.execute(
                select(b.c.id, b.c.columns)
                .where(
                    and_(b.c.source == self.identity.source, b.c.status == "committed"),
                    b.c.columns.is_not(None),
                )
                .order_by(b.c.id.desc())
                .limit(1)
            ).first()
        if previous is None:
            return None
        return int(previous.id), json.loads(previous.columns)
