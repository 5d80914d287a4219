"""The lifecycle tables: once-only actions, versions, reads on a store that never saw them."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import inspect

from abkit.lifecycle.audit import (
    AuditEntry,
    lifecycle_lock,
    lifecycle_tables,
    read_audit,
    read_spec_versions,
    read_status,
    record_action,
    record_spec_version,
)
from abkit.store.store import open_store

START = datetime(2026, 1, 5, tzinfo=timezone.utc)


def test_the_same_action_on_the_same_version_is_recorded_once(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    entry = AuditEntry("exp", "pause", "me", START, "v1", "v2", "why", {})
    with lifecycle_lock(store) as conn:
        assert record_action(conn, store, entry)
        assert not record_action(conn, store, entry)


def test_reads_before_any_controller_are_empty(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    assert read_audit(store) == [] and read_status(store) == {}
    assert read_spec_versions(store, "exp") == []


def test_versions_are_kept_once_each_with_the_store_prefix(sqlite_url: str) -> None:
    store = open_store(sqlite_url, prefix="team_")
    with lifecycle_lock(store) as conn:
        for version in ("a", "b", "a"):
            record_spec_version(
                conn,
                store,
                experiment="exp",
                version=version,
                content=json.dumps({"key": "exp", "v": version}),
                file="experiments.toml",
                file_hash="h",
                seen_at=START,
            )
    assert [v["version"] for v in read_spec_versions(store, "exp")] == ["a", "b"]
    assert lifecycle_tables(store).audit.name == "team_audit"
    names = set(inspect(store.engine).get_table_names())
    assert {"team_spec_versions", "team_audit", "team_lifecycle_status"} <= names
