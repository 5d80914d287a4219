"""DuckDB over the SQLite store: the columnar replica and the direct scan equal SQLite.

The replica tests need the ``duckdb-extension-sqlite-scanner`` package built for the
installed DuckDB (``pip install 'abkit[embedded]'``); without it they skip with the reason,
and the fallback tests check that analysis then stays on SQLite.
"""

from __future__ import annotations

import gc
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from abkit.analysis.analyze import analyze
from abkit.engines import duckdb_sqlite
from abkit.engines.duckdb_sqlite import (
    ColumnarReplica,
    DuckDBOverSQLite,
    ScannerStatus,
    open_runner,
    replica_path,
)
from abkit.errors import ConfigError
from abkit.store.store import open_store

from .conftest import HOSTILE_KEY, StoredExperiment
from .test_spark import assert_same

SCANNER = duckdb_sqlite.status()
needs_scanner = pytest.mark.skipif(SCANNER.path is None, reason=SCANNER.reason)


def test_the_embedded_default_is_installed_in_ci() -> None:
    """CI installs ``abkit[all]`` (which includes ``embedded``): there the replica tests
    below must run, never skip."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        assert SCANNER.path is not None, SCANNER.reason


def _sqlite_result(url: str, key: str, metrics: Any) -> Any:
    """The analysis on SQLite's own engine (the replica switched off)."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv(duckdb_sqlite.ENGINE_VARIABLE, "sqlite")
        return analyze(url, key, list(metrics), segments=("platform",)).to_dict()


def _runner_result(runner: Any, key: str, metrics: Any) -> Any:
    try:
        return analyze(runner, key, list(metrics), segments=("platform",)).to_dict()
    finally:
        runner.close()


def test_without_the_extension_analysis_stays_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'abkit.db'}"
    open_store(url).close()
    monkeypatch.setattr(duckdb_sqlite, "status", lambda: ScannerStatus(None, "not here"))
    assert open_runner(url) is None
    monkeypatch.setenv(duckdb_sqlite.ENGINE_VARIABLE, "duckdb")
    with pytest.raises(ConfigError, match="not here"):
        open_runner(url)
    monkeypatch.setenv(duckdb_sqlite.ENGINE_VARIABLE, "sqlite")
    assert open_runner(url) is None
    monkeypatch.setenv(duckdb_sqlite.ENGINE_VARIABLE, "fast")
    with pytest.raises(ConfigError, match="auto, duckdb or sqlite"):
        open_runner(url)


def test_only_existing_sqlite_files_are_taken() -> None:
    assert open_runner("sqlite://") is None
    assert open_runner("sqlite:///:memory:") is None
    assert open_runner("sqlite:////nonexistent/abkit.db") is None
    assert open_runner("postgresql://h/db") is None


def test_paths_are_quoted_as_text() -> None:
    assert duckdb_sqlite._quoted_text("/tmp/it's.db") == "'/tmp/it''s.db'"
    with pytest.raises(ConfigError):
        duckdb_sqlite._quoted_text("a\x00b")


@needs_scanner
def test_replica_and_scan_equal_sqlite(stored_experiment: StoredExperiment) -> None:
    exp = stored_experiment
    expected = _sqlite_result(exp.sqlite_url, exp.key, exp.metrics)
    replica = open_runner(exp.sqlite_url)
    assert isinstance(replica, ColumnarReplica)
    # while one analysis holds the replica, another reads SQLite through the scanner
    second = open_runner(exp.sqlite_url)
    assert isinstance(second, DuckDBOverSQLite)
    assert_same(expected, _runner_result(second, exp.key, exp.metrics))
    assert_same(expected, _runner_result(replica, exp.key, exp.metrics))


def _rows(store: Any, table: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(table.select())]


@needs_scanner
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), batches=st.integers(2, 4))
def test_refreshes_equal_a_full_recomputation(
    stored_experiment: StoredExperiment,
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    batches: int,
) -> None:
    """Rows arrive in a random order, in batches (late events and exposures included),
    with an analysis (a replica refresh) after each batch; the last one equals SQLite."""
    source = open_store(stored_experiment.sqlite_url, create=False)
    t = source.tables
    exposures, attributes, events = (
        _rows(source, t.exposures),
        _rows(source, t.exposure_attributes),
        _rows(source, t.events),
    )
    registry = _rows(source, t.experiments)
    source.close()
    rng = random.Random(seed)
    rng.shuffle(exposures)
    rng.shuffle(events)
    url = f"sqlite:///{tmp_path_factory.mktemp('arrivals') / 'abkit.db'}"
    store = open_store(url)
    with store.engine.begin() as conn:
        conn.execute(insert(t.experiments), registry)
        conn.execute(insert(t.exposure_attributes), attributes)
    appended = 0
    for k in range(batches):
        with store.engine.begin() as conn:
            part = slice(k * len(events) // batches, (k + 1) * len(events) // batches)
            conn.execute(insert(t.events), events[part])
            part = slice(k * len(exposures) // batches, (k + 1) * len(exposures) // batches)
            conn.execute(insert(t.exposures), exposures[part])
        runner = open_runner(url)
        assert isinstance(runner, ColumnarReplica)
        appended += runner.appended["abkit_events"]
        if k < batches - 1:
            runner.close()
    store.close()
    assert appended == len(events)  # each row copied once, whatever the batches
    expected = _sqlite_result(url, HOSTILE_KEY, stored_experiment.metrics)
    assert_same(expected, _runner_result(runner, HOSTILE_KEY, stored_experiment.metrics))


@needs_scanner
def test_a_replaced_store_is_copied_again(
    stored_experiment: StoredExperiment, tmp_path: Path
) -> None:
    exp = stored_experiment
    path = tmp_path / "abkit.db"
    path.write_bytes(Path(exp.sqlite_url.removeprefix("sqlite:///")).read_bytes())
    url = f"sqlite:///{path}"
    open_runner(url).close()  # type: ignore[union-attr]
    assert replica_path(path).exists()
    open_store(url).close()
    path.unlink()
    open_store(url).close()  # an empty store in its place: every rowid went down
    runner = open_runner(url)
    assert isinstance(runner, ColumnarReplica)
    assert runner.appended["abkit_events"] == 0
    runner.close()


@needs_scanner
def test_an_open_with_nothing_new_leaves_sqlite_unattached_and_sees_a_new_registry(
    stored_experiment: StoredExperiment, tmp_path: Path
) -> None:
    """Opening the replica when SQLite has no new row attaches nothing (the scanner is not
    even loaded); a registry change alone is still copied."""
    path = tmp_path / "abkit.db"
    path.write_bytes(Path(stored_experiment.sqlite_url.removeprefix("sqlite:///")).read_bytes())
    url = f"sqlite:///{path}"
    open_runner(url).close()  # type: ignore[union-attr]  # the first copy
    attached = func.duckdb_databases().table_valued("database_name")

    runner = open_runner(url)
    assert isinstance(runner, ColumnarReplica)
    assert set(runner.appended.values()) == {0}
    names = {row[0] for row in runner.run(select(attached.c.database_name))}
    assert duckdb_sqlite.ATTACHED not in names
    runner.close()

    store = open_store(url)
    store.register_experiments([{"key": "added-later", "variants": ["control", "treatment"]}])
    registry = store.tables.experiments
    store.close()
    runner = open_runner(url)
    assert isinstance(runner, ColumnarReplica)
    try:
        names = {row[0] for row in runner.run(select(attached.c.database_name))}
        assert duckdb_sqlite.ATTACHED in names
        assert ("added-later",) in set(runner.run(select(registry.c.key)))
    finally:
        runner.close()


@needs_scanner
def test_a_replica_collected_without_close_does_not_hold_the_file(
    stored_experiment: StoredExperiment, tmp_path: Path
) -> None:
    path = tmp_path / "abkit.db"
    path.write_bytes(Path(stored_experiment.sqlite_url.removeprefix("sqlite:///")).read_bytes())
    url = f"sqlite:///{path}"
    runner = open_runner(url)
    assert isinstance(runner, ColumnarReplica)
    del runner
    gc.collect()
    again = open_runner(url)
    try:
        assert isinstance(again, ColumnarReplica)
    finally:
        again.close()  # type: ignore[union-attr]
