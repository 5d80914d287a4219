"""Read and export quarantined rows so they can be fixed and re-ingested.

An export holds the raw row as received (original column names) plus four columns
prefixed ``_abkit_`` (reason code, reason, batch, row number) that the readers drop on
re-ingest: fix the values in place and ingest the file again.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from abkit.errors import ConfigError
from abkit.store.store import Store, open_store

META_COLUMNS = ("_abkit_reason_code", "_abkit_reason", "_abkit_batch_id", "_abkit_row_number")


def quarantined_rows(
    db: str | Store | None = None,
    *,
    batch: int | None = None,
    reason: str | None = None,
    source: str | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Quarantine entries, oldest first, as dicts with the raw row decoded."""
    store = open_store(db, create=False)
    try:
        q = store.tables.quarantine
        stmt = select(q).order_by(q.c.id)
        if batch is not None:
            stmt = stmt.where(q.c.batch_id == batch)
        if reason is not None:
            stmt = stmt.where(q.c.reason_code == reason)
        if source is not None:
            stmt = stmt.where(q.c.source == source)
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


def _export_row(entry: dict[str, Any]) -> dict[str, Any]:
    raw = entry["raw"]
    row = dict(raw) if isinstance(raw, dict) else {"_abkit_raw": raw}
    row.update(
        {
            "_abkit_reason_code": entry["reason_code"],
            "_abkit_reason": entry["reason"],
            "_abkit_batch_id": entry["batch_id"],
            "_abkit_row_number": entry["row_number"],
        }
    )
    return row


def export_quarantine(path: str | Path, db: str | Store | None = None, **filters: Any) -> int:
    """Write quarantined rows to ``path`` (``.csv`` or ``.jsonl``); returns the row count."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson", ".json"}:
        raise ConfigError(f"export to .csv or .jsonl, not {path.name!r}")
    rows = [_export_row(entry) for entry in quarantined_rows(db, **filters)]
    try:
        return _write_export(path, suffix, rows)
    except OSError as exc:  # a missing folder, no permission: a user error, one line
        raise ConfigError(f"cannot write the export {str(path)!r}: {exc.strerror or exc}") from exc


def _write_export(path: Path, suffix: str, rows: list[dict[str, Any]]) -> int:
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
                writer.writerow(
                    {
                        k: (
                            json.dumps(val, ensure_ascii=False)
                            if isinstance(val, (dict, list))
                            else val
                        )
                        for k, val in row.items()
                    }
                )
    else:
        with open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return len(rows)
