"""Helpers for the analysis tests: stores on every dialect, hand-written rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from sqlalchemy import insert

from abkit.store.store import Store, open_store

HOUR = 3_600_000_000
DAY = 24 * HOUR
T0 = 20_000 * DAY  # a UTC midnight (2024-10-04)


def store_for(url: str) -> Store:
    """An abkit store at ``url`` (created and versioned by ``open_store``)."""
    return open_store(url)


def write_rows(
    store: Store,
    exposures: Iterable[Mapping[str, Any]] = (),
    events: Iterable[Mapping[str, Any]] = (),
    attributes: Iterable[Mapping[str, Any]] = (),
) -> None:
    """Insert hand-written rows (defaults fill the bookkeeping columns)."""
    t = store.tables
    ex = [{"content_hash": "0" * 32, "batch_id": 0, **r} for r in exposures]
    ev = [
        {"content_hash": "0" * 32, "batch_id": 0, "currency": None, "properties": None, **r}
        for r in events
    ]
    with store.engine.begin() as conn:
        if ex:
            conn.execute(insert(t.exposures), ex)
        if ev:
            conn.execute(insert(t.events), ev)
        attrs = list(attributes)
        if attrs:
            conn.execute(insert(t.exposure_attributes), attrs)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "duckdb"])
def any_url(request: pytest.FixtureRequest) -> str:
    """Run a test on SQLite, PostgreSQL and DuckDB."""
    return request.getfixturevalue(f"{request.param}_url")


def fetch(
    store: Store,
    experiment: str,
    metrics: Any,
    *,
    end_us: int | None = None,
    since_us: int | None = None,
    ratio_cuped: bool = False,
    **kwargs: Any,
) -> Any:
    """``abkit.analysis.sql.fetch_aggregates`` on ``store`` (ratio CUPED sums on request)."""
    from abkit.analysis import sql
    from abkit.analysis.runner import SQLAlchemyRunner
    from abkit.analysis.sources import store_relations

    with store.engine.connect() as conn:
        return sql.fetch_aggregates(
            SQLAlchemyRunner(conn),
            store_relations(store.tables),
            sql.Scope(experiment, end_us=end_us, since_us=since_us),
            metrics,
            cuped=ratio_cuped,
            **kwargs,
        )
