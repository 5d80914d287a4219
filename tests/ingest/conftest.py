"""Helpers for ingest tests: an audit that checks every count against the database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select


def audit_store(url: str, report: Any = None) -> dict[str, int]:
    """Assert the accounting invariant on the report, every file and every batch row,
    and that the stored rows match the batch counters; return the table counts."""
    from abkit.store.store import open_store

    if report is not None:
        assert report.rows_read == report.accepted + report.duplicates + report.quarantined
        assert sum(report.by_reason.values()) == report.quarantined
        for file in report.files:
            assert file.rows_read == file.accepted + file.duplicates + file.quarantined
    store = open_store(url)
    try:
        t = store.tables
        with store.engine.connect() as conn:
            batches = conn.execute(select(t.ingest_batches)).all()
            for b in batches:
                assert b.rows_read == b.accepted + b.duplicates + b.quarantined, b
                stored_q = conn.execute(
                    select(func.count())
                    .select_from(t.quarantine)
                    .where(t.quarantine.c.batch_id == b.id)
                ).scalar()
                assert stored_q == b.quarantined, (b.id, stored_q, b.quarantined)
                events = conn.execute(
                    select(func.count()).select_from(t.events).where(t.events.c.batch_id == b.id)
                ).scalar()
                exposures = conn.execute(
                    select(func.count())
                    .select_from(t.exposures)
                    .where(t.exposures.c.batch_id == b.id)
                ).scalar()
                assert events + exposures == b.accepted, (b.id, events, exposures, b.accepted)
            counts = {
                "events": conn.execute(select(func.count()).select_from(t.events)).scalar(),
                "exposures": conn.execute(select(func.count()).select_from(t.exposures)).scalar(),
                "quarantine": conn.execute(select(func.count()).select_from(t.quarantine)).scalar(),
                "batches": len(batches),
            }
    finally:
        store.close()
    return counts


@pytest.fixture
def audit() -> Callable[..., dict[str, int]]:
    return audit_store


def quarantine_reasons(url: str) -> list[tuple[int | None, str, str, str | None]]:
    from abkit.store.store import open_store

    store = open_store(url)
    try:
        q = store.tables.quarantine
        with store.engine.connect() as conn:
            return [
                (r.row_number, r.reason_code, r.reason, r.field)
                for r in conn.execute(select(q).order_by(q.c.id))
            ]
    finally:
        store.close()


@pytest.fixture
def reasons() -> Callable[[str], list[tuple[int | None, str, str, str | None]]]:
    return quarantine_reasons
