"""The write transaction of one chunk: rows, conflicts, quarantine and batch counters.

Each validated chunk is written in one transaction through
:meth:`abkit.store.store.Store.insert_new` (the dialect's fast path): new rows inserted,
rows whose event id is stored (or used earlier in the chunk) with different content
quarantined as ``conflict``, rejected rows quarantined, and the batch's counters advanced
only if this run still owns the batch (checked in the same statement). A kill at any
moment loses at most this uncommitted chunk. Accounting is checked before the commit:
``rows_read = accepted + duplicates + quarantined``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abkit.errors import StoreError
from abkit.ingest import validate as v
from abkit.store.dialects import InsertResult
from abkit.store.dialects.base import LOOKUP_SLICE
from abkit.store.store import Store, one_line
from abkit.timeutil import now_us

_RETRIES = 5
# PostgreSQL deadlock and serialisation failure: the transaction rolled back whole.
_RETRYABLE = frozenset({"40P01", "40001"})
QUARANTINE_COLUMNS = (
    "batch_id",
    "source",
    "row_number",
    "raw",
    "reason_code",
    "reason",
    "field",
    "quarantined_at_us",
)


@dataclass(frozen=True)
class ChunkResult:
    """What one committed chunk added: ``rows_read == accepted + duplicates + quarantined``."""

    rows_read: int
    accepted: int
    duplicates: int
    quarantined: int
    by_reason: Mapping[str, int] = field(default_factory=dict)


class ChunkWriter:
    """Writes validated chunks of one source into one batch owned by ``owner``."""

    def __init__(self, store: Store, *, kind: str, source: str, id_column: str, owner: str) -> None:
        self.store = store
        self.exposures = kind == "exposures"
        self.source = source
        self.id_column = id_column
        self.owner = owner
        tables = store.tables
        self.target = tables.exposures if self.exposures else tables.events
        self.columns = v.EXPOSURE_COLUMNS if self.exposures else v.EVENT_COLUMNS

    def write(self, batch_id: int, rows_read: int, checked: v.Validated) -> ChunkResult:
        """Commit one chunk, retrying a transaction the database rolled back whole."""
        for attempt in range(_RETRIES):
            try:
                return self._write_once(batch_id, rows_read, checked)
            except DBAPIError as exc:
                code = getattr(getattr(exc, "orig", None), "sqlstate", None)
                if code not in _RETRYABLE or attempt == _RETRIES - 1:
                    raise StoreError(f"writing batch {batch_id} failed: {one_line(exc)}") from exc
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_once(self, batch_id: int, rows_read: int, checked: v.Validated) -> ChunkResult:
        now = now_us()
        with self.store.write() as conn:
            result = self.store.insert_new(conn, self.target, self.columns, checked.rows)
            rejected = [
                *checked.rejected,
                *self._conflicts(checked, result),
            ]
            repeat_duplicates, repeat_conflicts, resolved = self._repeats(checked, result)
            rejected.extend(repeat_conflicts)
            conflicts = frozenset(result.conflicts)
            resolved.extend(
                origin
                for index, origin in enumerate(checked.origins)
                if origin is not None and index not in conflicts
            )
            if self.exposures and checked.attributes:
                self._attributes(conn, checked, conflicts)
            if resolved:
                self._resolve(conn, batch_id, resolved, now)
            self.store.insert_new(
                conn,
                self.store.tables.quarantine,
                QUARANTINE_COLUMNS,
                [
                    (
                        batch_id,
                        self.source,
                        q.row_number,
                        v.raw_json(q.raw),
                        q.code,
                        q.reason,
                        q.field,
                        now,
                    )
                    for q in rejected
                ],
                key=None,
            )
            outcome = ChunkResult(
                rows_read=rows_read,
                accepted=result.inserted,
                duplicates=repeat_duplicates + result.duplicates,
                quarantined=len(rejected),
                by_reason=Counter(q.code for q in rejected),
            )
            if rows_read != outcome.accepted + outcome.duplicates + outcome.quarantined:
                raise StoreError(
                    f"accounting broke in batch {batch_id}: read {rows_read}, accepted "
                    f"{outcome.accepted}, duplicates {outcome.duplicates}, "
                    f"quarantined {outcome.quarantined}"
                )
            self._advance(conn, batch_id, outcome, now)
        return outcome

    def _conflicts(self, checked: v.Validated, result: InsertResult) -> list[v.Quarantined]:
        """Rows whose event id is already stored with different content."""
        return [
            v.Quarantined(
                checked.row_numbers[index],
                checked.raws[index],
                "conflict",
                self.id_column,
                f"{self.source} row {checked.row_numbers[index]}, field {self.id_column!r}: "
                f"event id {checked.rows[index][0]!r} is already stored with different content",
            )
            for index in result.conflicts
        ]

    def _repeats(
        self, checked: v.Validated, result: InsertResult
    ) -> tuple[int, list[v.Quarantined], list[int]]:
        """Later uses of an id within the chunk, judged against the version that won:
        (duplicates, conflicts, quarantine ids the duplicates resolve)."""
        if not checked.repeats:
            return 0, [], []
        hash_pos = self.columns.index("content_hash")
        first_hash = {row[0]: row[hash_pos] for row in checked.rows}
        duplicates = 0
        conflicts = []
        resolved = []
        origins = checked.repeat_origins or [None] * len(checked.repeats)
        for (event_id, content_hash, row_number, raw, first_row), origin in zip(
            checked.repeats, origins, strict=True
        ):
            winner = result.stored_hashes.get(event_id, first_hash[event_id])
            if content_hash == winner:
                duplicates += 1
                if origin is not None:
                    resolved.append(origin)
                continue
            if event_id in result.stored_hashes:
                detail = "is already stored with different content"
            else:
                detail = f"was used by row {first_row} of this file for different content"
            conflicts.append(
                v.Quarantined(
                    row_number,
                    raw,
                    "conflict",
                    self.id_column,
                    f"{self.source} row {row_number}, field {self.id_column!r}: "
                    f"event id {event_id!r} {detail}",
                )
            )
        return duplicates, conflicts, resolved

    def _resolve(self, conn: Connection, batch_id: int, ids: list[int], now: int) -> None:
        """Mark quarantine entries resolved: their fixed rows are now in the store."""
        q = self.store.tables.quarantine
        stmt = (
            update(q)
            .where(q.c.id.in_(bindparam("ids", expanding=True)), q.c.resolved_at_us.is_(None))
            .values(resolved_at_us=now, resolved_batch_id=batch_id)
        )
        for start in range(0, len(ids), LOOKUP_SLICE):
            conn.execute(stmt, {"ids": ids[start : start + LOOKUP_SLICE]})

    def _attributes(
        self, conn: Connection, checked: v.Validated, conflicts: frozenset[int]
    ) -> None:
        attrs = [
            attr
            for index, row_attrs in enumerate(checked.attributes)
            if index not in conflicts
            for attr in row_attrs
        ]
        self.store.insert_new(
            conn,
            self.store.tables.exposure_attributes,
            v.ATTRIBUTE_COLUMNS,
            attrs,
            key=("event_id", "name"),
        )

    def _advance(self, conn: Connection, batch_id: int, outcome: ChunkResult, now: int) -> None:
        """Add the chunk to the batch counters, only while this run owns the batch."""
        b = self.store.tables.ingest_batches
        owned = and_(b.c.id == batch_id, b.c.owner == self.owner, b.c.status == "running")
        advanced = conn.execute(
            update(b)
            .where(owned)
            .values(
                rows_read=b.c.rows_read + outcome.rows_read,
                accepted=b.c.accepted + outcome.accepted,
                duplicates=b.c.duplicates + outcome.duplicates,
                quarantined=b.c.quarantined + outcome.quarantined,
                heartbeat_at_us=now,
            )
        ).rowcount
        if advanced == -1:  # the driver does not count updated rows (DuckDB 1.x): look
            advanced = conn.execute(select(func.count()).select_from(b).where(owned)).scalar_one()
        if advanced != 1:
            raise StoreError(f"batch {batch_id} was taken over by another process; stopping")
