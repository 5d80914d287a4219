"""The lifecycle tables: once-only actions, versions, reads on a store that never saw them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

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


def test_a_proposal_repeated_on_its_version_is_recorded_once(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    proposal = AuditEntry("exp", "propose-ship", "controller", START, "v1", "v1", "why", {})
    with lifecycle_lock(store) as conn:
        first = record_action(conn, store, proposal)
        assert first is not None and first.action_key is not None
        assert record_action(conn, store, proposal) is None
    assert [e.action_key for e in read_audit(store, "exp")] == [first.action_key]


def test_an_action_on_a_version_the_spec_came_back_to_is_recorded_again(sqlite_url: str) -> None:
    # pause, resume, pause: the second pause acts on the content of the first one's
    store = open_store(sqlite_url)
    steps = [("pause", "v1", "v2"), ("resume", "v2", "v1"), ("pause", "v1", "v2")]
    recorded = _record(store, [(*step, 3600 * i) for i, step in enumerate(steps)])
    keys = [e.action_key for e in recorded if e is not None]
    assert len(set(keys)) == 3
    trail = read_audit(store, "exp")
    assert [(e.action, e.action_key) for e in trail] == [
        (action, key) for (action, _, _), key in zip(steps, keys, strict=True)
    ]


def _record(store, steps):
    """Record (action, from version, to version, seconds after START) steps of "exp"."""
    with lifecycle_lock(store) as conn:
        return [
            record_action(
                conn,
                store,
                AuditEntry("exp", action, "me", START + timedelta(seconds=t), a, b, "why", {}),
            )
            for action, a, b, t in steps
        ]


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


def test_entries_chain_by_their_count_not_their_clock(sqlite_url: str) -> None:
    # two hosts' clocks disagree (or a replayed `now`): pause, resume, pause, resume with
    # times out of order are four actions, none taken for a repeat
    store = open_store(sqlite_url)
    steps = [("pause", "v1", "v2", 60), ("resume", "v2", "v1", 10), ("pause", "v1", "v2", 20)]
    steps.append(("resume", "v2", "v1", 30))
    recorded = _record(store, steps)
    assert all(e is not None for e in recorded)
    assert len(read_audit(store, "exp")) == 4


def test_a_proposal_is_recorded_once_per_version_whatever_came_between(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    with lifecycle_lock(store) as conn:
        made = [
            record_action(
                conn, store, AuditEntry("exp", action, "controller", START, "v1", "v1", "", {})
            )
            for action in ("propose-rollback", "propose-ship", "propose-rollback")
        ]
    assert [e is not None for e in made] == [True, True, False]


def test_a_pruned_trail_never_gives_a_new_action_an_old_key(sqlite_url: str) -> None:
    from sqlalchemy import delete

    store = open_store(sqlite_url)
    table = lifecycle_tables(store).audit
    with lifecycle_lock(store) as conn:
        for action in ("propose-ship", "propose-stop"):
            assert record_action(
                conn, store, AuditEntry("exp", action, "c", START, "v0", "v0", "", {})
            )
        assert record_action(
            conn, store, AuditEntry("exp", "pause", "me", START, "v1", "v2", "", {})
        )
        assert record_action(
            conn, store, AuditEntry("exp", "resume", "me", START, "v2", "v1", "", {})
        )
        conn.execute(delete(table).where(table.c.action.like("propose-%")))  # pruned
        again = AuditEntry("exp", "pause", "me", START, "v1", "v2", "", {})
        assert record_action(conn, store, again) is not None
