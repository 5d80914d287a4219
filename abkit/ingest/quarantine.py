"""Read, export, resolve and purge quarantined rows.

Two exports, said apart by their purpose:

* the **re-ingest export** (default) writes each row in abkit's own terms: the columns the
  batch's ``--map`` read are renamed to abkit's field names, and naive timestamps read
  with the batch's ``--timezone`` are written with their UTC offset, so the fixed file
  re-ingests as is, without repeating the original options. Values are written verbatim
  (it is data, not a sheet): do not open it in a spreadsheet program;
* the **spreadsheet export** (``spreadsheet=True``, CSV only) is for reading in Excel,
  LibreOffice or Google Sheets: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return is prefixed with ``'`` so that no cell is evaluated as a formula
  (``=HYPERLINK(...)`` stays text). Do not re-ingest it: the prefixes would be data.

Both add columns prefixed ``_abkit_`` (reason code, reason, batch, row number, quarantine
id) that the readers drop on re-ingest; ``_abkit_quarantine_id`` is read back so that a
fixed row, once accepted, marks its quarantine entry **resolved** (``resolved_at_us``,
``resolved_batch_id``). :func:`purge_quarantine` deletes resolved entries.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select

from abkit.errors import ConfigError
from abkit.ingest.readers import QUARANTINE_ID_COLUMN
from abkit.ingest.validate import Rejected, parse_timestamp
from abkit.store.store import Store, open_store
from abkit.timeutil import MICROS_PER_DAY, from_us, now_us

META_COLUMNS = (
    "_abkit_reason_code",
    "_abkit_reason",
    "_abkit_batch_id",
    "_abkit_row_number",
    QUARANTINE_ID_COLUMN,
)
# Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _filters(
    store: Store,
    *,
    batch: int | None,
    reason: str | None,
    source: str | None,
    latest: bool,
    unresolved: bool,
) -> list[ColumnElement[bool]]:
    q = store.tables.quarantine
    where: list[ColumnElement[bool]] = []
    if batch is not None:
        where.append(q.c.batch_id == batch)
    if reason is not None:
        where.append(q.c.reason_code == reason)
    if source is not None:
        where.append(q.c.source == source)
    if unresolved:
        where.append(q.c.resolved_at_us.is_(None))
    if latest:
        # Only each source's most recent batch: older runs of a source were superseded.
        b = store.tables.ingest_batches
        newest = select(func.max(b.c.id)).where(b.c.source == q.c.source).scalar_subquery()
        where.append(q.c.batch_id == newest)
    return where


def quarantined_rows(
    db: str | Store | None = None,
    *,
    batch: int | None = None,
    reason: str | None = None,
    source: str | None = None,
    limit: int | None = None,
    latest: bool = False,
    unresolved: bool = False,
) -> Iterator[dict[str, Any]]:
    """Quarantine entries, oldest first, as dicts with the raw row decoded.

    ``latest`` keeps only rows of each source's latest batch; ``unresolved`` drops rows
    whose fixed version was accepted since (``resolved_at_us`` set).
    """
    store = open_store(db, create=False)
    try:
        q = store.tables.quarantine
        stmt = select(q).order_by(q.c.id)
        where = _filters(
            store, batch=batch, reason=reason, source=source, latest=latest, unresolved=unresolved
        )
        if where:
            stmt = stmt.where(and_(*where))
        if limit is not None:
            stmt = stmt.limit(limit)
        with store.engine.connect() as conn:
            for row in conn.execution_options(yield_per=10_000).execute(stmt):
                entry = dict(row._mapping)
                with contextlib.suppress(ValueError):  # a malformed line is kept as text
                    entry["raw"] = json.loads(entry["raw"])
                yield entry
    finally:
        if not isinstance(db, Store):
            store.close()


def purge_quarantine(
    db: str | Store | None = None,
    *,
    source: str | None = None,
    older_than_days: float | None = None,
) -> int:
    """Delete resolved quarantine entries (optionally of one source, or resolved more than
    ``older_than_days`` ago); returns how many. Unresolved rows are never purged.

    Batch counters keep their history: after a purge a batch's ``quarantined`` may exceed
    the rows left in quarantine for it.
    """
    store = open_store(db, create=False)
    try:
        q = store.tables.quarantine
        where: list[ColumnElement[bool]] = [q.c.resolved_at_us.is_not(None)]
        if source is not None:
            where.append(q.c.source == source)
        if older_than_days is not None:
            cutoff = now_us() - int(older_than_days * MICROS_PER_DAY)
            where.append(q.c.resolved_at_us < cutoff)
        with store.write() as conn:
            count = conn.execute(
                select(func.count()).select_from(q).where(and_(*where))
            ).scalar_one()
            conn.execute(delete(q).where(and_(*where)))
        return int(count)
    finally:
        if not isinstance(db, Store):
            store.close()


def _batch_params(store: Store, batch_ids: set[int]) -> dict[int, dict[str, Any]]:
    """The stored options of each batch (empty for batches older than schema v3)."""
    if not batch_ids:
        return {}
    b = store.tables.ingest_batches
    with store.engine.connect() as conn:
        rows = conn.execute(select(b.c.id, b.c.params).where(b.c.id.in_(sorted(batch_ids))))
        return {int(i): json.loads(p) for i, p in rows if p}


def in_abkit_terms(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``raw`` as it would re-ingest without the batch's options.

    Mapped columns take their abkit field names (unless the row already has a column of
    that name, which then stays as it was); with a batch time zone, a timestamp that
    parses is written as ISO 8601 with its UTC offset.
    """
    columns: dict[str, str] = params.get("columns") or {}
    renames = {col: name for name, col in columns.items() if name != col and name not in raw}
    row = {renames.get(key, key): value for key, value in raw.items()}
    zone_name = params.get("timezone")
    if zone_name and "timestamp" in row:
        from zoneinfo import ZoneInfo

        with contextlib.suppress(Rejected, ValueError, OverflowError):
            micros = parse_timestamp(row["timestamp"], ZoneInfo(zone_name))
            row["timestamp"] = from_us(micros).isoformat()
    return row


def _export_row(entry: dict[str, Any], params: dict[str, Any] | None) -> dict[str, Any]:
    raw = entry["raw"]
    if isinstance(raw, dict):
        row = in_abkit_terms(raw, params) if params else dict(raw)
    else:
        row = {"_abkit_raw": raw}
    row.update(
        {
            "_abkit_reason_code": entry["reason_code"],
            "_abkit_reason": entry["reason"],
            "_abkit_batch_id": entry["batch_id"],
            "_abkit_row_number": entry["row_number"],
            QUARANTINE_ID_COLUMN: entry["id"],
        }
    )
    return row


def neutralise(value: object) -> object:
    """A cell a spreadsheet shows as text: ``'`` before a formula-starting character."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_quarantine(
    path: str | Path,
    db: str | Store | None = None,
    *,
    spreadsheet: bool = False,
    **filters: Any,
) -> int:
    """Write quarantined rows to ``path`` (``.csv`` or ``.jsonl``); returns the row count.

    The default export re-ingests as is; ``spreadsheet=True`` (CSV only) writes a copy safe
    to open in a spreadsheet program (see the module docstring).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson", ".json"}:
        raise ConfigError(f"export to .csv or .jsonl, not {path.name!r}")
    if spreadsheet and suffix != ".csv":
        raise ConfigError(f"a spreadsheet export is a .csv file, not {path.name!r}")
    store = open_store(db, create=False)
    try:
        entries = list(quarantined_rows(store, **filters))
        params = _batch_params(store, {int(e["batch_id"]) for e in entries})
    finally:
        if not isinstance(db, Store):
            store.close()
    rows = [_export_row(entry, params.get(int(entry["batch_id"]))) for entry in entries]
    try:
        return _write_export(path, suffix, rows, spreadsheet)
    except OSError as exc:  # a missing folder, no permission: a user error, one line
        raise ConfigError(f"cannot write the export {str(path)!r}: {exc.strerror or exc}") from exc


def _write_export(path: Path, suffix: str, rows: list[dict[str, Any]], spreadsheet: bool) -> int:
    if suffix == ".csv":
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(k for k in row if k not in META_COLUMNS))
        names = [*columns, *META_COLUMNS]
        # backslashreplace: a lone surrogate (quarantined as invalid_character) has no
        # UTF-8 form; it is written as the escape \udXXX (in JSON Lines, a valid JSON
        # escape that reads back as the same string) instead of failing the export.
        with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
            writer = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                cells = {
                    k: (
                        json.dumps(val, ensure_ascii=False)
                        if isinstance(val, (dict, list))
                        else val
                    )
                    for k, val in row.items()
                }
                if spreadsheet:
                    cells = {k: neutralise(val) for k, val in cells.items()}
                writer.writerow(cells)
    else:
        with open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return len(rows)
