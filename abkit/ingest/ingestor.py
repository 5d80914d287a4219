"""``ingest()``: sources in, validated rows in the store, every row accounted for.

How a run goes (see docs/ingest.md for the reasoning):

1. **Pre-flight, for every source before anything is written**: open it, read its
   header, apply the column map, decide the kind, check the schema contract (a missing
   required column raises :class:`~abkit.errors.DataError` naming the column and the
   columns found) and verify gzip streams end to end.
2. **One batch per source** in ``abkit_ingest_batches``. A file identical (SHA-256) to
   one already committed with the same options is skipped unless ``force=True``. A
   ``running`` batch of the same file and options whose owner process is dead (a run
   that was killed) is *claimed and resumed* from its committed row count.
3. **Chunks**, each in one write transaction: new rows inserted through
   :meth:`abkit.store.store.Store.insert_new` (the dialect fast path), rejected rows into
   quarantine, and the batch counters advanced. A kill at any moment loses at most the
   uncommitted chunk, which the resumed run reads again: the end state equals one clean
   run. Counters are updated only by the batch's owner (checked in the same statement).
4. Accounting, checked for every chunk: ``rows_read = accepted + duplicates +
   quarantined``. A duplicate is a row whose event id is already stored (or appeared
   earlier in the run) with identical content; the same id with different content is a
   ``conflict`` and is quarantined.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from abkit.errors import ConfigError, DataError, StoreError
from abkit.ingest import validate as v
from abkit.ingest.readers import Chunk, Reader, describe_type, open_reader
from abkit.stats._render import ResultMixin, json_safe
from abkit.store.store import Store, open_store, to_us_now

# Names people use for the abkit fields in a --map (the issue's ``user_id``, ``ts``).
FIELD_ALIASES = {
    "user_id": "unit_id",
    "user": "unit_id",
    "unit": "unit_id",
    "ts": "timestamp",
    "time": "timestamp",
    "event": "event_type",
    "id": "event_id",
}
# A batch whose owner is on another host counts as abandoned after this long without a
# heartbeat (one heartbeat per committed chunk).
STALE_AFTER = timedelta(minutes=10)
# Test hook: SIGKILL this process inside chunk N+1's transaction, after its rows were
# written but before the commit (the worst moment), to prove resumption.
KILL_HOOK_ENV = "ABKIT_TEST_KILL_AFTER_CHUNKS"
_RETRIES = 5


@dataclass(frozen=True)
class SchemaDrift(ResultMixin):
    """Columns of this ingest against the previous committed ingest of the same source."""

    source: str
    previous_batch: int | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def has_drift(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append("added " + ", ".join(self.added))
        if self.removed:
            parts.append("removed " + ", ".join(self.removed))
        for name, (old, new) in self.changed.items():
            parts.append(f"{name} changed type {old} -> {new}")
        return "; ".join(parts) if parts else "no change"


@dataclass(frozen=True)
class FileReport(ResultMixin):
    """What one source contributed."""

    source: str
    kind: str
    batch_id: int | None
    rows_read: int
    accepted: int
    duplicates: int
    quarantined: int
    by_reason: Mapping[str, int]
    status: str  # committed | skipped | resumed
    note: str | None = None
    drift: SchemaDrift | None = None


@dataclass(frozen=True)
class IngestReport(ResultMixin):
    """Totals of one ``ingest()`` call; ``rows_read == accepted + duplicates + quarantined``."""

    rows_read: int
    accepted: int
    duplicates: int
    quarantined: int
    by_reason: Mapping[str, int]
    drift: Mapping[str, SchemaDrift]
    batch_ids: tuple[int, ...]
    files: tuple[FileReport, ...]
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        """The human summary the CLI prints."""
        lines = [
            f"read {self.rows_read:,} rows in {self.seconds:.1f}s: accepted {self.accepted:,}, "
            f"duplicates {self.duplicates:,}, quarantined {self.quarantined:,}"
        ]
        for code, count in sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  quarantined {code}: {count:,}")
        for report in self.files:
            status = "" if report.status == "committed" else f" [{report.status}]"
            lines.append(
                f"  {report.source}{status}: batch {report.batch_id}, {report.kind}, "
                f"read {report.rows_read:,}, accepted {report.accepted:,}, "
                f"duplicates {report.duplicates:,}, quarantined {report.quarantined:,}"
                + (f" ({report.note})" if report.note else "")
            )
        for source, drift in self.drift.items():
            lines.append(
                f"  schema drift in {source} since batch {drift.previous_batch}: {drift.describe()}"
            )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)

    def to_frame(self):  # type: ignore[no-untyped-def]
        """One row per source."""
        import pandas as pd

        return pd.DataFrame(
            [{k: val for k, val in f.to_dict().items() if k != "drift"} for f in self.files]
        )


@dataclass
class _Plan:
    reader: Reader
    kind: str
    columns: dict[str, str]  # abkit field -> input column
    extras: tuple[str, ...]
    input_columns: list[str]


class _Progress:
    """A plain progress line on stderr, redrawn at most twice a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0
        self.started = time.monotonic()

    def update(self, source: str, rows: int, fraction: float | None, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        rate = rows / max(now - self.started, 1e-9)
        pct = f" {fraction * 100:5.1f}%" if fraction is not None else ""
        bar = ""
        if fraction is not None:
            filled = int(fraction * 24)
            bar = " [" + "#" * filled + "." * (24 - filled) + "]"
        sys.stderr.write(f"\r{source}:{bar}{pct} {rows:,} rows {rate:,.0f} rows/s ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _normalise_map(column_map: Mapping[str, str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    fields = dict.fromkeys((*v.KNOWN["events"], *v.KNOWN["exposures"]))
    for given, column in (column_map or {}).items():
        name = FIELD_ALIASES.get(given.strip(), given.strip())
        if not name or not str(column).strip():
            raise ConfigError(f"column map entry {given!r}={column!r} is empty")
        if name not in fields:
            # A typo (unit_di=...) would otherwise be ignored and the real column
            # reported missing, or silently land in properties.
            raise ConfigError(
                f"column map entry {given!r}={column!r}: {given!r} is not an abkit field; "
                f"map one of {', '.join(fields)} (or user_id, ts, event, id)",
                field=given,
            )
        result[name] = str(column).strip()
    return result


def _plan(reader: Reader, kind: str, column_map: dict[str, str]) -> _Plan:
    input_columns = reader.columns()
    available = set(input_columns)
    mapped_inputs = set(column_map.values())
    # Unmapped input columns keep their names; mapped ones are known by their abkit name.
    by_field = {name: name for name in input_columns if name not in mapped_inputs}
    for name, column in column_map.items():
        if column in available:
            by_field[name] = column
    resolved = kind
    if kind == "auto":
        resolved = "exposures" if {"experiment", "variant"} <= set(by_field) else "events"
    elif kind not in v.REQUIRED:
        raise ConfigError(f"kind must be 'auto', 'events' or 'exposures', not {kind!r}")
    if not reader.empty:
        for required in v.REQUIRED[resolved]:
            if required not in by_field:
                wanted = column_map.get(required, required)
                found = ", ".join(repr(c) for c in input_columns) or "none"
                hint = ""
                if len(input_columns) == 1 and any(d in input_columns[0] for d in ";\t|,"):
                    hint = " (is the delimiter right? pass --delimiter)"
                mapped = f" (mapped to {required})" if wanted != required else ""
                raise DataError(
                    f"required column {wanted!r}{mapped} for {resolved} is missing; "
                    f"columns found: {found}{hint}",
                    file=reader.display,
                    field=wanted,
                )
        for name, column in column_map.items():
            if column not in available:
                # An optional field mapped to a column that is not there: ignoring the
                # user's explicit mapping would load the file without it, silently.
                found = ", ".join(repr(c) for c in input_columns)
                raise DataError(
                    f"column {column!r} (mapped to {name}) is not in the file; "
                    f"columns found: {found}",
                    file=reader.display,
                    field=column,
                )
    known = set(v.KNOWN[resolved])
    columns = {name: col for name, col in by_field.items() if name in known}
    # Every input column no field reads goes to properties/attributes, including one
    # named like a field that was mapped elsewhere (unit_id kept when unit_id=customer_id).
    used = set(columns.values())
    extras = tuple(col for col in input_columns if col not in used)
    return _Plan(reader, resolved, columns, extras, input_columns)


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_alive(owner: str | None, heartbeat_us: int | None) -> bool:
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stale_us = int(STALE_AFTER / timedelta(microseconds=1))
    return heartbeat_us is not None and to_us_now() - heartbeat_us < stale_us


def _params_hash(
    plan: _Plan, timezone_name: str | None, max_future: timedelta, delimiter: str | None
) -> str:
    params = {
        "kind": plan.kind,
        "columns": plan.columns,
        "extras": list(plan.extras),
        "timezone": timezone_name,
        "max_future_s": max_future.total_seconds(),
        "delimiter": delimiter,
        "format": plan.reader.format,
    }
    return v.hash_hex(v.canonical_json(params))


class _Run:
    """Ingests one planned source into one batch."""

    def __init__(
        self,
        store: Store,
        plan: _Plan,
        *,
        source_name: str,
        tz: Any,
        timezone_name: str | None,
        max_future: timedelta,
        delimiter: str | None,
        chunk_size: int,
        force: bool,
        progress: _Progress,
        experiments: Mapping[str, frozenset[str]],
    ) -> None:
        self.store = store
        self.plan = plan
        self.source = source_name
        self.tz = tz
        self.max_future = max_future
        self.chunk_size = chunk_size
        self.force = force
        self.progress = progress
        self.experiments = experiments
        self.owner = _owner_token()
        self.params_hash = _params_hash(plan, timezone_name, max_future, delimiter)
        self.tables = store.tables
        kill_at = os.environ.get(KILL_HOOK_ENV)
        self.kill_after = int(kill_at) if kill_at else None

    # -- batch bookkeeping -----------------------------------------------------------------
    def _column_types(self) -> dict[str, str]:
        sample: dict[str, list[Any]] = {c: [] for c in self.plan.input_columns}
        for row in self.plan.reader.sample_rows(500):
            for name in sample:
                sample[name].append(row.get(name))
        return {name: describe_type(values) for name, values in sample.items()}

    def _drift(self, columns: dict[str, str], batch_id: int) -> SchemaDrift | None:
        b = self.tables.ingest_batches
        with self.store.engine.connect() as conn:
            previous = conn.execute(
                select(b.c.id, b.c.columns)
                .where(
                    and_(b.c.source == self.source, b.c.status == "committed", b.c.id != batch_id),
                    b.c.columns.is_not(None),
                )
                .order_by(b.c.id.desc())
                .limit(1)
            ).first()
        if previous is None:
            return None
        old: dict[str, str] = json.loads(previous.columns)
        changed = {
            name: (old[name], columns[name])
            for name in columns
            if name in old
            and old[name] != columns[name]
            and "empty" not in (old[name], columns[name])
        }
        return SchemaDrift(
            source=self.source,
            previous_batch=previous.id,
            added=tuple(n for n in columns if n not in old),
            removed=tuple(n for n in old if n not in columns),
            changed=changed,
        )

    def _existing(self, content_hash: str | None) -> tuple[Any | None, Any | None]:
        """(a committed identical batch, a resumable running batch)."""
        if content_hash is None:
            return None, None
        b = self.tables.ingest_batches
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(b)
                .where(
                    and_(
                        b.c.content_hash == content_hash,
                        b.c.params_hash == self.params_hash,
                        b.c.source == self.source,
                    )
                )
                .order_by(b.c.id)
            ).all()
        committed = next((r for r in rows if r.status == "committed"), None)
        # A killed run (running, owner dead) and a run that stopped on an error or Ctrl-C
        # (failed) are both resumed: re-reading them from the start would quarantine
        # their already-committed rejected rows a second time.
        running = [
            r
            for r in rows
            if (r.status == "running" and not _owner_alive(r.owner, r.heartbeat_at_us))
            or r.status == "failed"
        ]
        return committed, (running[0] if running else None)

    def _claim(self, batch: Any) -> Any | None:
        """Take ``batch`` over (compare-and-set on owner and status); its fresh row or None.

        The counters are read back inside the claiming transaction: the row seen by
        :meth:`_existing` may predate a last chunk committed by a slow owner on another
        host, and resuming from those stale counters would read that chunk twice.
        """
        b = self.tables.ingest_batches
        with self.store.write() as conn:
            result = conn.execute(
                update(b)
                .where(
                    and_(b.c.id == batch.id, b.c.status == batch.status, b.c.owner == batch.owner)
                )
                .values(
                    owner=self.owner,
                    status="running",
                    heartbeat_at_us=to_us_now(),
                    finished_at_us=None,
                    message=None,
                )
            )
            fresh = conn.execute(select(b).where(b.c.id == batch.id)).first()
        if result.rowcount not in (-1, 1):  # -1: DuckDB 1.x does not count; the owner tells
            return None
        return fresh if fresh is not None and fresh.owner == self.owner else None

    def _new_batch(self, content_hash: str | None, columns: dict[str, str]) -> int:
        b = self.tables.ingest_batches
        now = to_us_now()
        with self.store.write() as conn:
            result = conn.execute(
                insert(b).values(
                    source=self.source,
                    kind=self.plan.kind,
                    path=str(self.plan.reader.path) if self.plan.reader.path else None,
                    content_hash=content_hash,
                    status="running",
                    rows_read=0,
                    accepted=0,
                    duplicates=0,
                    quarantined=0,
                    columns=json.dumps(columns, sort_keys=True),
                    started_at_us=now,
                    params_hash=self.params_hash,
                    owner=self.owner,
                    heartbeat_at_us=now,
                )
            )
            return int(result.inserted_primary_key[0])

    def _finish(self, batch_id: int, status: str, message: str | None) -> None:
        b = self.tables.ingest_batches
        with self.store.write() as conn:
            conn.execute(
                update(b)
                .where(and_(b.c.id == batch_id, b.c.owner == self.owner))
                .values(status=status, finished_at_us=to_us_now(), message=message)
            )

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> FileReport:
        reader = self.plan.reader
        content_hash = reader.content_hash()
        committed, resumable = self._existing(content_hash)
        if committed is not None and not self.force:
            return FileReport(
                source=self.source,
                kind=self.plan.kind,
                batch_id=committed.id,
                rows_read=0,
                accepted=0,
                duplicates=0,
                quarantined=0,
                by_reason={},
                status="skipped",
                note=f"identical to batch {committed.id}, already ingested; use force to re-read",
            )
        columns = self._column_types() if not reader.empty else {}
        skip = 0
        totals = Counter()
        by_reason: Counter[str] = Counter()
        status = "committed"
        note = None
        batch_id: int | None = None
        if resumable is not None:
            resumable = self._claim(resumable)
        if resumable is not None:
            batch_id = int(resumable.id)
            skip = int(resumable.rows_read)
            totals.update(
                rows_read=int(resumable.rows_read),
                accepted=int(resumable.accepted),
                duplicates=int(resumable.duplicates),
                quarantined=int(resumable.quarantined),
            )
            by_reason.update(self._reasons_so_far(batch_id))
            status = "resumed"
            note = f"resumed an interrupted run after row {skip:,}"
        if batch_id is None:
            batch_id = self._new_batch(content_hash, columns)
        drift = self._drift(columns, batch_id) if columns else None
        validator = v.Validator(
            kind=self.plan.kind,
            source=self.source,
            columns=self.plan.columns,
            extras=self.plan.extras,
            batch_id=batch_id,
            tz=self.tz,
            now_us=to_us_now(),
            max_future=self.max_future,
            experiments=self.experiments,
            open_schema=self.plan.reader.format in {"jsonl", "records"},
        )
        try:
            pipeline = _pipelined(reader.chunks(self.chunk_size, skip=skip), validator)
            for chunks_done, (rows_in_chunk, checked) in enumerate(pipeline):
                counts = self._write(batch_id, rows_in_chunk, checked, chunks_done)
                for key in ("rows_read", "accepted", "duplicates", "quarantined"):
                    totals[key] += counts[key]
                by_reason.update(counts["by_reason"])
                self.progress.update(self.source, totals["rows_read"], reader.fraction_done())
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the original error matters more
                self._finish(batch_id, "failed", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        self._finish(batch_id, "committed", note)
        self.progress.update(self.source, totals["rows_read"], 1.0, force=True)
        if reader.empty:
            note = "empty file: no header and no rows"
        return FileReport(
            source=self.source,
            kind=self.plan.kind,
            batch_id=batch_id,
            rows_read=totals["rows_read"],
            accepted=totals["accepted"],
            duplicates=totals["duplicates"],
            quarantined=totals["quarantined"],
            by_reason=dict(by_reason),
            status=status,
            note=note,
            drift=drift,
        )

    def _reasons_so_far(self, batch_id: int) -> Counter[str]:
        from sqlalchemy import func

        q = self.tables.quarantine
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(q.c.reason_code, func.count())
                .where(q.c.batch_id == batch_id)
                .group_by(q.c.reason_code)
            ).all()
        return Counter({code: int(n) for code, n in rows})

    def _write(
        self, batch_id: int, rows_read: int, checked: v.Validated, chunk_index: int
    ) -> dict[str, Any]:
        for attempt in range(_RETRIES):
            try:
                return self._write_once(batch_id, rows_read, checked, chunk_index)
            except DBAPIError as exc:
                # PostgreSQL deadlock / serialisation failure: the transaction rolled back
                # whole, so retrying the chunk is safe.
                code = getattr(getattr(exc, "orig", None), "sqlstate", None)
                if code not in {"40P01", "40001"} or attempt == _RETRIES - 1:
                    raise StoreError(f"writing batch {batch_id} failed: {exc.orig}") from exc
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_once(
        self, batch_id: int, rows_read: int, checked: v.Validated, chunk_index: int
    ) -> dict[str, Any]:
        t = self.tables
        exposures = self.plan.kind == "exposures"
        target = t.exposures if exposures else t.events
        columns = v.EXPOSURE_COLUMNS if exposures else v.EVENT_COLUMNS
        rejected = list(checked.rejected)
        now = to_us_now()
        with self.store.write() as conn:
            result = self.store.insert_new(conn, target, columns, checked.rows)
            conflict_set = set(result.conflicts)
            id_column = self.plan.columns.get("event_id", "event_id")
            for index in result.conflicts:
                row = checked.rows[index]
                rejected.append(
                    v.Quarantined(
                        checked.row_numbers[index],
                        checked.raws[index],
                        "conflict",
                        id_column,
                        f"{self.source} row {checked.row_numbers[index]}, field {id_column!r}: "
                        f"event id {row[0]!r} is already stored with different content",
                    )
                )
            # Later uses of an id within the chunk, against the version that won.
            hash_pos = columns.index("content_hash")
            first_hash = {row[0]: row[hash_pos] for row in checked.rows} if checked.repeats else {}
            repeat_duplicates = 0
            for event_id, content_hash, row_number, raw, first_row in checked.repeats:
                winner = result.stored_hashes.get(event_id, first_hash[event_id])
                if content_hash == winner:
                    repeat_duplicates += 1
                    continue
                if event_id in result.stored_hashes:
                    detail = "is already stored with different content"
                else:
                    detail = f"was used by row {first_row} of this file for different content"
                rejected.append(
                    v.Quarantined(
                        row_number,
                        raw,
                        "conflict",
                        id_column,
                        f"{self.source} row {row_number}, field {id_column!r}: "
                        f"event id {event_id!r} {detail}",
                    )
                )
            if exposures and checked.attributes:
                attrs = [
                    attr
                    for index, row_attrs in enumerate(checked.attributes)
                    if index not in conflict_set
                    for attr in row_attrs
                ]
                self.store.insert_new(
                    conn,
                    t.exposure_attributes,
                    v.ATTRIBUTE_COLUMNS,
                    attrs,
                    key=("event_id", "name"),
                )
            quarantine_rows = [
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
            ]
            self.store.insert_new(
                conn,
                t.quarantine,
                (
                    "batch_id",
                    "source",
                    "row_number",
                    "raw",
                    "reason_code",
                    "reason",
                    "field",
                    "quarantined_at_us",
                ),
                quarantine_rows,
                key=None,
            )
            duplicates = repeat_duplicates + result.duplicates
            if rows_read != result.inserted + duplicates + len(rejected):
                raise StoreError(
                    f"accounting broke in batch {batch_id}: read {rows_read}, accepted "
                    f"{result.inserted}, duplicates {duplicates}, quarantined {len(rejected)}"
                )
            b = t.ingest_batches
            advanced = conn.execute(
                update(b)
                .where(and_(b.c.id == batch_id, b.c.owner == self.owner, b.c.status == "running"))
                .values(
                    rows_read=b.c.rows_read + rows_read,
                    accepted=b.c.accepted + result.inserted,
                    duplicates=b.c.duplicates + duplicates,
                    quarantined=b.c.quarantined + len(rejected),
                    heartbeat_at_us=now,
                )
            ).rowcount
            if advanced == -1:  # the driver does not count updated rows (DuckDB 1.x): look
                advanced = conn.execute(
                    select(func.count())
                    .select_from(b)
                    .where(
                        and_(b.c.id == batch_id, b.c.owner == self.owner, b.c.status == "running")
                    )
                ).scalar_one()
            if advanced != 1:
                raise StoreError(f"batch {batch_id} was taken over by another process; stopping")
            if self.kill_after is not None and chunk_index >= self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # test hook: die before the commit
        return {
            "rows_read": rows_read,
            "accepted": result.inserted,
            "duplicates": duplicates,
            "quarantined": len(rejected),
            "by_reason": Counter(q.code for q in rejected),
        }


_DONE = object()


def _pipelined(
    chunks: Iterator[Chunk], validator: v.Validator
) -> Iterator[tuple[int, v.Validated]]:
    """Read and validate the next chunk in a thread while the caller writes this one.

    The database drivers release the GIL while SQLite works on its B-trees and while
    PostgreSQL receives COPY data, so parsing overlaps writing. At most one validated
    chunk waits in the queue: memory stays bounded (three chunks at most). Commits still happen in order, on
    the caller's thread, so batching, resumption and accounting are unchanged.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                item = (len(chunk), validator.validate(chunk))
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            handoff.put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None and stop.is_set():
                close()

    worker = threading.Thread(target=produce, name="abkit-ingest-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a producer waiting on a full queue
                handoff.get_nowait()
            worker.join(timeout=0.05)


def _sources(source: Any) -> list[Any]:
    if isinstance(source, (str, os.PathLike)):
        return [source]
    if (
        isinstance(source, (list, tuple))
        and source
        and all(isinstance(s, (str, os.PathLike)) for s in source)
    ):
        return list(source)
    return [source]


def _known_experiments(store: Store) -> dict[str, frozenset[str]]:
    known = {}
    for key, config in store.experiment_configs().items():
        names = [
            str(variant["name"]) if isinstance(variant, Mapping) else str(variant)
            for variant in config.get("variants", [])
        ]
        known[key] = frozenset(names)
    return known


def ingest(
    source: Any,
    *,
    db: str | Store | None = None,
    kind: str = "auto",
    source_name: str | None = None,
    column_map: Mapping[str, str] | None = None,
    timezone: str | None = None,
    chunk_size: int = 50_000,
    progress: bool = False,
    delimiter: str | None = None,
    max_future: timedelta = timedelta(days=1),
    force: bool = False,
) -> IngestReport:
    """Ingest files, a DataFrame or records into the store; see the module docstring.

    ``source_name`` names the source for drift reports and quarantine (default: the file
    name, or ``"dataframe"``/``"records"``); with several files it is a prefix
    (``NAME:file.csv``). ``timezone`` (IANA name) is applied to naive timestamps, which
    are otherwise quarantined. Timestamps more than ``max_future`` ahead of now are
    quarantined as ``future_timestamp``. ``force`` re-reads a file already ingested.
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be positive, not {chunk_size}")
    if max_future < timedelta(0):
        # A negative horizon would quarantine today's events as "in the future".
        raise ConfigError(f"max_future must not be negative, not {max_future}")
    tz = None
    if timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"unknown timezone {timezone!r} (use an IANA name such as Europe/Paris)"
            ) from exc
    mapping = _normalise_map(column_map)
    started = time.monotonic()
    sources = _sources(source)
    readers: list[tuple[str, Reader]] = []
    for item in sources:
        if isinstance(item, (str, os.PathLike)):
            name = Path(item).name
            display = (
                f"{source_name}:{name}"
                if source_name and len(sources) > 1
                else (source_name or name)
            )
        else:
            display = source_name or (
                "dataframe" if type(item).__name__ == "DataFrame" else "records"
            )
        readers.append((display, open_reader(item, delimiter=delimiter, display=display)))
    # Pre-flight: every schema contract and every gzip stream is checked before any write.
    plans = []
    for _display, reader in readers:
        # Verify the bytes first: reading the header of a cut gzip or non-UTF-8 file
        # would otherwise fail with a raw decoder error instead of a located message.
        verify = getattr(reader, "verify", None)
        if verify is not None:
            verify()
        plans.append(_plan(reader, kind, mapping))
    owns_store = not isinstance(db, Store)
    store = open_store(db)
    bar = _Progress(progress)
    files: list[FileReport] = []
    warnings: list[str] = []
    try:
        experiments = _known_experiments(store) if any(p.kind == "exposures" for p in plans) else {}
        for (display, _reader), plan in zip(readers, plans, strict=True):
            if plan.reader.empty:
                warnings.append(f"{display}: empty file (no header and no rows), nothing to ingest")
            run = _Run(
                store,
                plan,
                source_name=display,
                tz=tz,
                timezone_name=timezone,
                max_future=max_future,
                delimiter=delimiter,
                chunk_size=chunk_size,
                force=force,
                progress=bar,
                experiments=experiments,
            )
            files.append(run.run())
            if files[-1].status == "skipped":
                warnings.append(f"{display}: {files[-1].note}")
    finally:
        bar.done()
        if owns_store:
            store.close()
    by_reason: Counter[str] = Counter()
    for report in files:
        by_reason.update(report.by_reason)
    return IngestReport(
        rows_read=sum(f.rows_read for f in files),
        accepted=sum(f.accepted for f in files),
        duplicates=sum(f.duplicates for f in files),
        quarantined=sum(f.quarantined for f in files),
        by_reason=dict(by_reason),
        drift={f.source: f.drift for f in files if f.drift is not None and f.drift.has_drift},
        batch_ids=tuple(
            f.batch_id for f in files if f.batch_id is not None and f.status != "skipped"
        ),
        files=tuple(files),
        warnings=tuple(warnings),
        seconds=time.monotonic() - started,
    )


def batches(db: str | Store | None = None, *, source: str | None = None) -> list[dict[str, Any]]:
    """The ingest batches recorded in the store (newest first), as dicts."""
    store = open_store(db, create=False)
    try:
        b = store.tables.ingest_batches
        stmt = select(b).order_by(b.c.id.desc())
        if source is not None:
            stmt = stmt.where(b.c.source == source)
        with store.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]
    finally:
        if not isinstance(db, Store):
            store.close()


__all__: Sequence[str] = ["FileReport", "IngestReport", "SchemaDrift", "batches", "ingest"]
