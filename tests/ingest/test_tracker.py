"""Tracker and the assignment hook: Python records through the same pipeline as files."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from abkit.ingest.ingestor import ingest
from abkit.ingest.tracker import Tracker
from abkit.ingest.validate import exposure_event_id
from abkit.store.store import open_store

assignment = pytest.importorskip("abkit.assignment.exposure")
config = pytest.importorskip("abkit.assignment.config")
assign_mod = pytest.importorskip("abkit.assignment.assign")


def test_exposure_id_recipe_matches_the_assignment_module():
    from abkit.assignment import hashing

    for args in [("checkout", "user-1", "new", 1_704_067_200_000_000), ("é", "🙂", "b", -5)]:
        assert exposure_event_id(*args) == hashing.event_id(*args)


def test_tracker_events_and_exposure_hook(db_url, audit):
    experiment = config.Experiment(key="checkout", variants=[{"name": "control"}, {"name": "new"}])
    store = open_store(db_url)
    store.register_experiments([experiment])
    assert store.get_experiment("checkout") == experiment  # Contract 5 round trip
    moment = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with Tracker(db=store, flush_every=3) as tracker:
        assignment.add_exposure_hook(tracker.expose)
        try:
            chosen = [
                assign_mod.assign(experiment, f"user-{i}", {"country": "FR"}, now=moment)
                for i in range(5)
            ]
        finally:
            assignment.remove_exposure_hook(tracker.expose)
        for i in range(4):
            tracker.track(
                f"user-{i}", "purchase", 10.0 + i, timestamp=moment, currency="EUR", plan="pro"
            )
        tracker.track("user-0", "purchase", float("nan"), timestamp=moment)  # quarantined
        assert tracker.pending < 3 + 3  # flushed at 3 of each kind
    reports = tracker.reports
    assert sum(r.accepted for r in reports) == 5 + 4
    assert sum(r.quarantined for r in reports) == 1
    for report in reports:
        audit(db_url, report)
    t = store.tables
    with store.engine.connect() as conn:
        exposures = {r.unit_id: (r.variant, r.event_id) for r in conn.execute(select(t.exposures))}
        revenue = conn.execute(
            select(t.events.c.value, t.events.c.currency, t.events.c.properties)
        ).all()
    store.close()
    for a in chosen:
        assert exposures[a.unit_id][0] == a.variant
        assert exposures[a.unit_id][1] == exposure_event_id(
            "checkout", a.unit_id, a.variant, 1_704_067_200_000_000
        )
    assert sorted(v for v, _, _ in revenue) == [10.0, 11.0, 12.0, 13.0]
    assert {c for _, c, _ in revenue} == {"EUR"} and {p for _, _, p in revenue} == {
        '{"plan":"pro"}'
    }


def test_exposure_records_ingest_directly_and_are_idempotent(db_url, audit):
    experiment = config.Experiment(key="k", variants=[{"name": "a"}, {"name": "b"}])
    store = open_store(db_url)
    store.register_experiments([experiment])
    moment = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    records = [
        assignment.ExposureRecord.create("k", f"u{i}", "ab"[i % 2], moment, {"n": i})
        for i in range(10)
    ]
    first = ingest(records, db=store)
    again = ingest(records, db=store)
    store.close()
    assert (first.accepted, again.accepted, again.duplicates) == (10, 0, 10)
    audit(db_url, again)
