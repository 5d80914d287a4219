"""Exposure records (Contract 1) and hooks: called once per enrolled assignment, isolated."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import mmh3
import pytest

from abkit.assignment import (
    Experiment,
    ExposureRecord,
    add_exposure_hook,
    assign,
    assign_many,
    configure_exposure_dedup,
    exposure_hook_errors,
    remove_exposure_hook,
)
from abkit.assignment.exposure import exposure_hooks

NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
E = Experiment("ranker", variants=["control", "treatment"], traffic=0.5)


def test_hook_receives_one_record_per_enrolled_assignment():
    got: list[ExposureRecord] = []
    add_exposure_hook(got.append)
    ids = [f"u{i}" for i in range(400)]
    answers = [assign(E, u, {"country": "US", "premium": True, "ltv": 12.5}, now=NOW) for u in ids]
    enrolled = [a for a in answers if a.in_experiment]
    assert 150 < len(enrolled) < 250
    assert [(r.unit_id, r.variant) for r in got] == [(a.unit_id, a.variant) for a in enrolled]
    r = got[0]
    assert r.experiment == "ranker" and r.timestamp == NOW
    assert dict(r.attributes) == {"country": "US", "premium": True, "ltv": 12.5}


def test_record_shape_is_the_ingestible_exposure_row():
    r = ExposureRecord.create(
        "ranker",
        "ü-1",
        "treatment",
        NOW.astimezone(timezone(timedelta(hours=2))),
        {"a": 1, "skip": None, "obj": [1]},
    )
    d = r.to_dict()
    assert list(d) == ["event_id", "experiment", "unit_id", "variant", "timestamp", "attributes"]
    assert d["timestamp"] == "2026-03-01T12:30:15.123456+00:00"
    assert d["attributes"] == {"a": 1, "obj": "[1]"}
    assert json.loads(json.dumps(d)) == d
    # event id: spec §6, cross-checked with mmh3's byte digest (h1 || h2, little-endian)
    data = "ranker\x1fü-1\x1ftreatment\x1f1772368215123456".encode()
    assert r.timestamp_us == 1772368215123456
    assert d["event_id"] == format(int.from_bytes(mmh3.hash_bytes(data), "little"), "032x")
    # deterministic: the same exposure twice has the same id (dedup downstream)
    assert ExposureRecord.create("ranker", "ü-1", "treatment", NOW).event_id == r.event_id
    assert ExposureRecord.create("ranker", "ü-1", "control", NOW).event_id != r.event_id
    with pytest.raises(ValueError, match="timezone-aware"):
        ExposureRecord.create("ranker", "u", "control", datetime(2026, 1, 1))


def test_not_enrolled_and_expose_false_fire_no_hook():
    got = []
    add_exposure_hook(got.append)
    assign(Experiment("p", variants=["a", "b"], status="paused"), "u1")
    assign(Experiment("f", variants=["a", "b"], forced={"qa": "b"}), "qa")
    assign(Experiment("r", variants=["a", "b"]), "u1", expose=False)
    assign_many(Experiment("r", variants=["a", "b"]), ["u1", "u2"])  # backfills do not expose
    assert got == []
    assign_many(Experiment("r", variants=["a", "b"]), ["u1", "u2"], expose=True, now=NOW)
    assert [r.unit_id for r in got] == ["u1", "u2"]


def test_failing_hook_never_breaks_assign(caplog):
    seen = []

    def broken(record):
        raise RuntimeError("queue full")

    add_exposure_hook(broken)
    add_exposure_hook(seen.append)  # a later hook still runs
    before = exposure_hook_errors()
    with caplog.at_level(logging.ERROR, logger="abkit.assignment.exposure"):
        answers = [assign(Experiment("r", variants=["a", "b"]), f"u{i}") for i in range(25)]
    assert all(a.in_experiment for a in answers)
    assert len(seen) == 25
    assert exposure_hook_errors() - before == 25
    # logged, but rate-limited: the first 10 failures of a hook
    assert (
        1
        <= sum(
            "queue full" in (r.exc_text or "") or "failed" in r.getMessage() for r in caplog.records
        )
        <= 10
    )


def test_add_remove_hooks():
    def hook(record):
        pass

    assert add_exposure_hook(hook) is hook
    add_exposure_hook(hook)  # idempotent
    assert exposure_hooks() == (hook,)
    assert remove_exposure_hook(hook) is True
    assert remove_exposure_hook(hook) is False
    with pytest.raises(TypeError):
        add_exposure_hook("not callable")  # type: ignore[arg-type]


def test_default_timestamp_is_now_utc():
    got = []
    add_exposure_hook(got.append)
    before = datetime.now(timezone.utc)
    assign(Experiment("r", variants=["a", "b"]), "u1")
    assert before <= got[0].timestamp <= datetime.now(timezone.utc)
    assert got[0].timestamp.tzinfo == timezone.utc


def test_a_unit_is_exposed_once_per_variant_per_process():
    got: list[ExposureRecord] = []
    add_exposure_hook(got.append)
    full = Experiment("dedup", variants=["control", "treatment"])
    for _ in range(5):
        for u in ("u1", "u2", "u3"):
            assign(full, u)
    assert sorted(r.unit_id for r in got) == ["u1", "u2", "u3"]
    # a new version of the experiment (here re-randomised) starts a new memory
    moved = Experiment("dedup", variants=["control", "treatment"], salt="v2")
    for _ in range(3):
        for u in ("u1", "u2", "u3"):
            assign(moved, u)
    assert len(got) == 6


def test_the_dedup_memory_is_bounded_and_forgets_the_oldest():
    got: list[ExposureRecord] = []
    add_exposure_hook(got.append)
    configure_exposure_dedup(100)
    try:
        full = Experiment("lru", variants=["control", "treatment"])
        for i in range(1000):
            assign(full, f"u{i}")
        plan = full._plan
        assert len(plan.exposed) + len(plan.exposed_old) <= 100
        assign(full, "u999")  # recent: remembered
        assign(full, "u0")  # long evicted: fires again (a repeat, never a missed first)
        assert len(got) == 1001 and got[-1].unit_id == "u0"
        # a key that keeps coming back survives any number of rotations
        for i in range(1000, 1300):
            assign(full, f"u{i}")
            assign(full, "u0")
        assert sum(r.unit_id == "u0" for r in got) == 2
    finally:
        configure_exposure_dedup()


def test_dedup_can_be_turned_off_and_new_hooks_see_every_unit():
    first: list[ExposureRecord] = []
    add_exposure_hook(first.append)
    full = Experiment("off", variants=["control", "treatment"])
    assign(full, "u1")
    second: list[ExposureRecord] = []
    add_exposure_hook(second.append)  # a new hook (a new Tracker) has seen nothing
    assign(full, "u1")
    assert [r.unit_id for r in second] == ["u1"] and len(first) == 2
    configure_exposure_dedup(0)
    try:
        assign(full, "u1")
        assign(full, "u1")
        assert len(second) == 3
    finally:
        configure_exposure_dedup()
    with pytest.raises(ValueError):
        configure_exposure_dedup(-1)


def test_a_plan_that_two_threads_started_remembering_still_forgets_for_a_new_hook():
    # two request threads add their first units at once: each sees a set of 2, neither of
    # 1; the plan must still forget what it remembers when a new hook (tracker) arrives
    first: list[ExposureRecord] = []
    add_exposure_hook(first.append)
    full = Experiment("raced", variants=["control", "treatment"])
    full._plan.exposed.add("another-thread's-unit")  # the other thread's add came first
    assign(full, "u1")
    second: list[ExposureRecord] = []
    add_exposure_hook(second.append)
    assign(full, "u1")
    assert [r.unit_id for r in second] == ["u1"]
