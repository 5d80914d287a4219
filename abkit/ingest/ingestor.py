"""``ingest()``: sources in, validated rows in the store, every row accounted for.

How a run goes (see docs/ingest.md for the reasoning):

1. **Pre-flight, for every source before anything is written**: open it, read its
   header, apply the column map, decide the kind, check the schema contract (a missing
   required column raises :class:`~abkit.errors.DataError` naming the column and the
   columns found) and scan text and gzip streams end to end (UTF-8, line length, a
   complete gzip stream). Options may differ per source (:class:`IngestSource`).
2. **One batch per source** (:mod:`abkit.ingest.batches`), under the store's exclusive
   lock for the file's content: a file identical (SHA-256) to one already committed with
   the same options is skipped unless ``force=True``; an interrupted batch of the same
   file and options (its owner died: it cannot hold the lock) is claimed and resumed
   from its committed row count; the same file ingested by two processes at once is
   read by one, then skipped by the other.
3. **Chunks**, each in one write transaction (:mod:`abkit.ingest.writer`): new rows,
   conflicts and rejected rows quarantined, the batch counters advanced. A kill at any
   moment loses at most the uncommitted chunk, which the resumed run reads again: the
   end state equals one clean run.
4. Accounting, checked for every chunk: ``rows_read = accepted + duplicates +
   quarantined``. A duplicate is a row whose event id is already stored (or appeared
   earlier in the run) with identical content; the same id with different content is a
   ``conflict`` and is quarantined.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from abkit.errors import ConfigError, DataError, StoreError
from abkit.ingest import validate as v
from abkit.ingest.batches import BatchIdentity, BatchOwner
from abkit.ingest.progress import ProgressEvent, ProgressReporter
from abkit.ingest.readers import (
    DEFAULT_LIMITS,
    Chunk,
    Reader,
    ReadLimits,
    describe_type,
    open_reader,
)
from abkit.ingest.writer import ChunkWriter
from abkit.results import ResultMixin, json_safe
from abkit.store.store import Store, one_line, open_store
from abkit.timeutil import now_us

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
# The most common quarantine reason, in words, and what fixes it (for the summary).
FIXES: dict[str, tuple[str, str]] = {
    "naive_timestamp": ("have no time zone", "pass --timezone"),
    "ambiguous_local_time": ("fall in a repeated DST hour", "write them with a UTC offset"),
    "nonexistent_local_time": ("fall in a skipped DST hour", "check --timezone"),
    "missing_unit_id": ("have no unit id", "check --map (unit_id=COLUMN)"),
    "missing_event_type": ("have no event type", "check --map (event_type=COLUMN)"),
    "missing_timestamp": ("have no timestamp", "check --map (timestamp=COLUMN)"),
    "missing_experiment": ("have no experiment", "check --map (experiment=COLUMN)"),
    "missing_variant": ("have no variant", "check --map (variant=COLUMN)"),
    "unknown_experiment": ("name an unregistered experiment", "pass --experiments FILE"),
    "unknown_variant": ("name a variant the experiment lacks", "check --experiments FILE"),
    "future_timestamp": ("are in the future", "check --timezone or --max-future-days"),
    "bad_timestamp": ("have an unreadable timestamp", "write ISO 8601 with an offset"),
    "malformed_row": ("cannot be split into fields", "check --delimiter and quoting"),
    "non_numeric_value": ("have a value that is not a number", "fix the value column"),
    "non_finite_value": ("have a NaN or infinite value", "fix the value column"),
    "conflict": ("reuse an event id for other content", "give each event its own id"),
}
ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class IngestSource:
    """One source with its own options, overriding those given to :func:`ingest`.

    ``column_map`` entries are added to (and override) the call's map; ``timezone``,
    ``kind``, ``delimiter`` and ``name`` replace the call's when given.
    """

    source: Any
    column_map: Mapping[str, str] | None = None
    timezone: str | None = None
    kind: str | None = None
    delimiter: str | None = None
    name: str | None = None


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
        hint = self.fix_hint()
        if hint:
            lines.append(hint)
        return "\n".join(lines)

    def fix_hint(self) -> str | None:
        """The most common quarantine reason and its fix, e.g.
        ``3,913 rows have no time zone: pass --timezone``."""
        if not self.by_reason:
            return None
        code, count = min(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        what, fix = FIXES.get(code, (f"were quarantined as {code}", "see abkit quarantine"))
        if count == 1:  # the phrases are plural: "have" -> "has", "name" -> "names"
            verb, _, rest = what.partition(" ")
            verb = {"have": "has", "are": "is", "were": "was", "cannot": "cannot"}.get(
                verb, verb + "s"
            )
            what = f"{verb} {rest}"
        return f"{count:,} row{'s' if count != 1 else ''} {what}: {fix}"

    @property
    def nothing_accepted(self) -> bool:
        """Rows were read and every one was quarantined (a wrong map or time zone?)."""
        return self.rows_read > 0 and self.quarantined == self.rows_read

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)

    def to_frame(self) -> Any:
        """One row per source (a pandas DataFrame)."""
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
    timezone: str | None = None
    tz: tzinfo | None = None
    delimiter: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)


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


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown timezone {name!r} (use an IANA name such as Europe/Paris)"
        ) from exc


def _params(plan: _Plan, max_future: timedelta) -> dict[str, Any]:
    """The options that change what a source's rows become (fingerprinted and stored)."""
    return {
        "kind": plan.kind,
        "columns": plan.columns,
        "extras": list(plan.extras),
        "timezone": plan.timezone,
        "max_future_s": max_future.total_seconds(),
        "delimiter": plan.delimiter,
        "format": plan.reader.format,
    }


def _column_types(plan: _Plan) -> dict[str, str]:
    sample: dict[str, list[Any]] = {c: [] for c in plan.input_columns}
    for row in plan.reader.sample_rows(500):
        for name in sample:
            sample[name].append(row.get(name))
    return {name: describe_type(values) for name, values in sample.items()}


def _drift(owner: BatchOwner, columns: dict[str, str]) -> SchemaDrift | None:
    previous = owner.previous_columns()
    if previous is None:
        return None
    previous_batch, old = previous
    changed = {
        name: (old[name], columns[name])
        for name in columns
        if name in old and old[name] != columns[name] and "empty" not in (old[name], columns[name])
    }
    return SchemaDrift(
        source=owner.identity.source,
        previous_batch=previous_batch,
        added=tuple(n for n in columns if n not in old),
        removed=tuple(n for n in old if n not in columns),
        changed=changed,
    )


@dataclass
class _Tally:
    """Running totals of one source (a resumed batch starts from its committed counters)."""

    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)


class _Run:
    """Ingests one planned source into one batch: lock, batch, chunks, finish."""

    def __init__(
        self,
        store: Store,
        plan: _Plan,
        *,
        source_name: str,
        max_future: timedelta,
        chunk_size: int,
        force: bool,
        experiments: Mapping[str, frozenset[str]],
        report_progress: Callable[[int, float | None, bool], None],
    ) -> None:
        self.store = store
        self.plan = plan
        self.source = source_name
        self.max_future = max_future
        self.chunk_size = chunk_size
        self.force = force
        self.experiments = experiments
        self.report_progress = report_progress
        params = _params(plan, max_future)
        reader = plan.reader
        self.identity = BatchIdentity(
            source=source_name,
            kind=plan.kind,
            path=str(reader.path) if reader.path else None,
            content_hash=reader.content_hash(),
            params_hash=v.hash_hex(v.canonical_json(params)),
            params=v.canonical_json({**params, "column_map": plan.column_map}),
        )

    def run(self) -> FileReport:
        key = self.identity.lock_key
        if key is None:
            return self._run_locked()
        try:
            with self.store.exclusive(key, on_wait=self._waiting):
                return self._run_locked()
        except SQLAlchemyError as exc:  # a driver error outside a chunk (claim, finish)
            raise StoreError(f"{self.source}: the database failed: {one_line(exc)}") from exc

    def _waiting(self) -> None:
        import sys

        print(
            f"abkit ingest: {self.source}: another process is ingesting this file; waiting "
            "for it to finish",
            file=sys.stderr,
            flush=True,
        )

    def _run_locked(self) -> FileReport:
        owner = BatchOwner(self.store, self.identity)
        committed = owner.committed()
        if committed is not None and not self.force:
            return FileReport(
                source=self.source,
                kind=self.plan.kind,
                batch_id=committed,
                rows_read=0,
                accepted=0,
                duplicates=0,
                quarantined=0,
                by_reason={},
                status="skipped",
                note=f"identical to batch {committed}, already ingested; pass --force to re-read",
            )
        reader = self.plan.reader
        columns = _column_types(self.plan) if not reader.empty else {}
        start = owner.start(columns)
        tally = _Tally(start.rows_read, start.accepted, start.duplicates, start.quarantined)
        status, note = "committed", None
        if start.resumed:
            tally.by_reason.update(owner.reasons_so_far(start.batch_id))
            status = "resumed"
            note = f"resumed an interrupted run after row {start.rows_read:,}"
        drift = _drift(owner, columns) if columns else None
        self._load(owner, start.batch_id, start.rows_read, tally)
        owner.finish(start.batch_id, "committed", note)
        self.report_progress(tally.rows_read, 1.0, True)
        if reader.empty:
            note = "empty file: no header and no rows"
        return FileReport(
            source=self.source,
            kind=self.plan.kind,
            batch_id=start.batch_id,
            rows_read=tally.rows_read,
            accepted=tally.accepted,
            duplicates=tally.duplicates,
            quarantined=tally.quarantined,
            by_reason=dict(tally.by_reason),
            status=status,
            note=note,
            drift=drift,
        )

    def _load(self, owner: BatchOwner, batch_id: int, skip: int, tally: _Tally) -> None:
        plan = self.plan
        validator = v.Validator(
            kind=plan.kind,
            source=self.source,
            columns=plan.columns,
            extras=plan.extras,
            batch_id=batch_id,
            tz=plan.tz,
            now_us=now_us(),
            max_future=self.max_future,
            experiments=self.experiments,
            open_schema=plan.reader.format in {"jsonl", "records"},
        )
        writer = ChunkWriter(
            self.store,
            kind=plan.kind,
            source=self.source,
            id_column=plan.columns.get("event_id", "event_id"),
            owner=owner.owner,
        )
        self.report_progress(tally.rows_read, None if skip else 0.0, False)
        try:
            for rows_in_chunk, fraction, checked in _pipelined(
                plan.reader.chunks(self.chunk_size, skip=skip), validator
            ):
                done = writer.write(batch_id, rows_in_chunk, checked)
                tally.rows_read += done.rows_read
                tally.accepted += done.accepted
                tally.duplicates += done.duplicates
                tally.quarantined += done.quarantined
                tally.by_reason.update(done.by_reason)
                self.report_progress(tally.rows_read, fraction, False)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the original error matters more
                owner.finish(batch_id, "failed", f"{type(exc).__name__}: {exc}"[:2000])
            if isinstance(exc, SQLAlchemyError):
                raise StoreError(f"{self.source}: the database failed: {one_line(exc)}") from exc
            raise


_DONE = object()


def _pipelined(
    chunks: Iterator[Chunk], validator: v.Validator
) -> Iterator[tuple[int, float | None, v.Validated]]:
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
                item = (len(chunk), chunk.fraction, validator.validate(chunk))
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


def _sources(source: object) -> list[IngestSource]:
    """The sources of one call: a path, an :class:`IngestSource`, a list of those, or one
    DataFrame / iterable of records."""

    def one(item: object) -> IngestSource:
        return item if isinstance(item, IngestSource) else IngestSource(item)

    if (
        isinstance(source, (list, tuple))
        and source
        and all(isinstance(item, (str, os.PathLike, IngestSource)) for item in source)
    ):
        return [one(item) for item in source]
    return [one(source)]


def _display(spec: IngestSource, source_name: str | None, many: bool) -> str:
    name = spec.name or source_name
    if isinstance(spec.source, (str, os.PathLike)):
        file_name = Path(spec.source).name
        if spec.name:
            return spec.name
        return f"{name}:{file_name}" if name and many else (name or file_name)
    return name or ("dataframe" if type(spec.source).__name__ == "DataFrame" else "records")


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
    progress: bool | ProgressCallback = False,
    delimiter: str | None = None,
    max_future: timedelta = timedelta(days=1),
    force: bool = False,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> IngestReport:
    """Ingest files, a DataFrame or records into the store; see the module docstring.

    ``source`` is a path, a DataFrame, an iterable of records, an :class:`IngestSource`
    (a source with its own column map, time zone, kind or delimiter), or a list of paths
    and :class:`IngestSource` objects. ``source_name`` names the source for drift reports
    and quarantine (default: the file name, or ``"dataframe"``/``"records"``); with
    several files it is a prefix (``NAME:file.csv``). ``timezone`` (IANA name) is applied
    to naive timestamps, which are otherwise quarantined. Timestamps more than
    ``max_future`` ahead of now are quarantined as ``future_timestamp``. ``force``
    re-reads a file already ingested. ``progress`` is a callback receiving a
    :class:`~abkit.ingest.progress.ProgressEvent` after every commit (``True``: a bar on
    stderr). ``limits`` bound line length and column count (a located DataError beyond).
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be positive, not {chunk_size}")
    if max_future < timedelta(0):
        # A negative horizon would quarantine today's events as "in the future".
        raise ConfigError(f"max_future must not be negative, not {max_future}")
    mapping = _normalise_map(column_map)
    _zone(timezone)  # an unknown zone is an error even when every file names its own
    started = time.monotonic()
    specs = _sources(source)
    # Pre-flight: every schema contract and every stream is checked before any write.
    plans: list[tuple[str, _Plan]] = []
    for spec in specs:
        display = _display(spec, source_name, len(specs) > 1)
        zone_name = spec.timezone or timezone
        file_delimiter = spec.delimiter or delimiter
        file_map = {**mapping, **_normalise_map(spec.column_map)}
        reader = open_reader(spec.source, delimiter=file_delimiter, display=display, limits=limits)
        # Verify the bytes first: reading the header of a cut gzip or non-UTF-8 file
        # would otherwise fail with a raw decoder error instead of a located message.
        verify = getattr(reader, "verify", None)
        if verify is not None:
            verify()
        plan = _plan(reader, spec.kind or kind, file_map)
        plan.timezone, plan.tz, plan.delimiter = zone_name, _zone(zone_name), file_delimiter
        plan.column_map = file_map
        plans.append((display, plan))
    owns_store = not isinstance(db, Store)
    store = open_store(db)
    reporter = ProgressReporter() if progress is True else None
    callback: ProgressCallback | None = reporter
    if callable(progress):
        callback = progress
    files: list[FileReport] = []
    warnings: list[str] = []
    committed_before = 0
    try:
        experiments = (
            _known_experiments(store) if any(p.kind == "exposures" for _, p in plans) else {}
        )
        for number, (display, plan) in enumerate(plans, start=1):
            if plan.reader.empty:
                warnings.append(f"{display}: empty file (no header and no rows), nothing to ingest")

            def report(
                rows: int,
                fraction: float | None,
                done: bool,
                _display: str = display,
                _number: int = number,
                _before: int = committed_before,
            ) -> None:
                if callback is not None:
                    callback(
                        ProgressEvent(
                            source=_display,
                            file_number=_number,
                            files=len(plans),
                            committed=rows,
                            total_committed=_before + rows,
                            fraction=fraction,
                            elapsed=time.monotonic() - started,
                            done=done,
                        )
                    )

            run = _Run(
                store,
                plan,
                source_name=display,
                max_future=max_future,
                chunk_size=chunk_size,
                force=force,
                experiments=experiments,
                report_progress=report,
            )
            files.append(run.run())
            committed_before += files[-1].rows_read
            if files[-1].status == "skipped":
                warnings.append(f"{display}: {files[-1].note}")
    finally:
        if reporter is not None:
            reporter.close()
        for _display_name, plan in plans:
            plan.reader.close()
        if owns_store:
            store.close()
    by_reason: Counter[str] = Counter()
    for file_report in files:
        by_reason.update(file_report.by_reason)
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


__all__: Sequence[str] = [
    "FileReport",
    "IngestReport",
    "IngestSource",
    "SchemaDrift",
    "batches",
    "ingest",
]
