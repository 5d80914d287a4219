"""Tracker and the assignment hook: Python records through the same pipeline as files, on a
background thread with a bounded queue; registration, back-pressure and quarantine visible."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
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
        tracker.flush()
        assert tracker.pending == 0
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


def _exposures(store) -> dict[str, str]:
    t = store.tables
    with store.engine.connect() as conn:
        return {r.unit_id: r.variant for r in conn.execute(select(t.exposures))}


def test_the_readme_service_path_registers_its_experiments(sqlite_url, caplog):
    """Today's README example quarantined every exposure as unknown_experiment, silently."""
    experiment = config.Experiment(key="ranker", variants=["control", "treatment"])
    with Tracker(db=sqlite_url, experiments=[experiment]) as tracker:
        assignment.add_exposure_hook(tracker.expose)
        try:
            chosen = [assign_mod.assign(experiment, f"u{i}") for i in range(50)]
        finally:
            assignment.remove_exposure_hook(tracker.expose)
    stats = tracker.stats()
    assert (stats.accepted, stats.quarantined, stats.dropped) == (50, 0, 0)
    store = open_store(sqlite_url)
    assert _exposures(store) == {a.unit_id: a.variant for a in chosen}
    store.close()


def test_the_readme_example_as_written_registers_what_assign_served(sqlite_url, caplog):
    """No experiments= given: the tracker registers the version the process served."""
    experiment = config.Experiment(key="checkout", variants=["control", "new"], traffic=0.5)
    with (
        caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"),
        Tracker(db=sqlite_url) as tracker,
    ):
        assignment.add_exposure_hook(tracker.expose)
        try:
            enrolled = [
                a
                for a in (assign_mod.assign(experiment, f"u{i}") for i in range(100))
                if a.in_experiment
            ]
        finally:
            assignment.remove_exposure_hook(tracker.expose)
    assert tracker.stats().accepted == len(enrolled) > 20
    assert tracker.stats().quarantined == 0 and "quarantined" not in caplog.text
    store = open_store(sqlite_url)
    assert store.get_experiment("checkout") == experiment
    store.close()


def test_an_unknown_experiment_is_a_warning_and_a_counter(sqlite_url, caplog):
    experiment = config.Experiment(key="ghost", variants=["a", "b"])
    with (
        caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"),
        Tracker(db=sqlite_url, background=False) as tracker,
    ):
        for i in range(4):
            tracker.expose(assignment.ExposureRecord.create("ghost", f"u{i}", "a"))
        tracker.flush()
    stats = tracker.stats()
    assert stats.quarantined == 4 and stats.by_reason == {"unknown_experiment": 4}
    assert "'ghost' is not registered" in caplog.text
    assert "4 rows quarantined" in caplog.text and "abkit quarantine" in caplog.text
    del experiment


def test_a_live_registry_version_is_registered_before_its_exposures(sqlite_url, tmp_path):
    from abkit.assignment.live import LiveRegistry

    spec = tmp_path / "experiments.toml"
    spec.write_text('[[experiments]]\nkey = "k"\nvariants = ["a", "b"]\n', encoding="utf-8")
    live = LiveRegistry(spec, start=False)
    with Tracker(db=sqlite_url, experiments=live, background=False) as tracker:
        new = tmp_path / "experiments.toml.new"  # replaced by a rename, as a deployer does
        new.write_text('[[experiments]]\nkey = "k"\nvariants = ["a", "b", "c"]\n', encoding="utf-8")
        new.replace(spec)
        assert live.refresh()
        c_unit = next(
            f"u{i}" for i in range(100) if live.assign("k", f"u{i}", expose=False).variant == "c"
        )
        tracker.expose(assignment.ExposureRecord.create("k", c_unit, "c"))
        (report,) = tracker.flush()
    assert report.accepted == 1 and report.quarantined == 0
    store = open_store(sqlite_url)
    assert store.get_experiment("k").variant_names == ("a", "b", "c")
    store.close()


def test_back_pressure_drops_are_counted_and_logged(sqlite_url, caplog):
    experiment = config.Experiment(key="k", variants=["a", "b"])
    with caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"):
        tracker = Tracker(
            db=sqlite_url, experiments=[experiment], background=False, flush_every=5, max_queue=10
        )
        for i in range(15):
            tracker.expose(assignment.ExposureRecord.create("k", f"u{i}", "a"))
        assert tracker.dropped == 5 and tracker.pending == 10
        tracker.close()
        tracker.expose(assignment.ExposureRecord.create("k", "late", "a"))  # after close
    stats = tracker.stats()
    assert (stats.accepted, stats.dropped) == (10, 6)
    assert "queue full" in caplog.text and "closed: 5 rows dropped" in caplog.text


def test_a_failed_flush_keeps_its_rows_and_retries(sqlite_url, monkeypatch):
    from abkit.ingest import tracker as tracker_module

    experiment = config.Experiment(key="k", variants=["a", "b"])
    real = tracker_module.ingest
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is restarting")
        return real(*args, **kwargs)

    monkeypatch.setattr(tracker_module, "ingest", flaky)
    with Tracker(db=sqlite_url, experiments=[experiment], background=False) as tracker:
        tracker.expose(assignment.ExposureRecord.create("k", "u1", "a"))
        with pytest.raises(RuntimeError):
            tracker.flush()
        assert tracker.pending == 1
        assert tracker.flush()[0].accepted == 1
    assert tracker.stats().accepted == 1


def test_assign_never_waits_on_the_database(sqlite_url, monkeypatch):
    """A flush blocked on a stalled database: assign keeps serving meanwhile.

    Checked by progress, not by a wall-clock bound (a loaded machine can pause any thread):
    the flush stays blocked until every assign has returned, which only a tracker that
    flushes off the caller's thread survives."""
    from abkit.ingest import tracker as tracker_module

    real = tracker_module.ingest
    flushing = threading.Event()
    release = threading.Event()
    done = [0]
    during_flush: list[int] = []

    def stalled(*args, **kwargs):
        before = done[0]
        flushing.set()
        release.wait(30)  # the database answers only once the caller is done
        during_flush.append(done[0] - before)
        return real(*args, **kwargs)

    monkeypatch.setattr(tracker_module, "ingest", stalled)
    experiment = config.Experiment(key="fast", variants=["a", "b"])
    with Tracker(
        db=sqlite_url, experiments=[experiment], flush_every=100, flush_interval=0.01
    ) as tracker:
        assignment.add_exposure_hook(tracker.expose)
        try:
            for i in range(5_000):
                assign_mod.assign(experiment, f"user-{i}")
                done[0] += 1
                if i == 200:
                    assert flushing.wait(30)  # a flush is blocked from here on
        finally:
            assignment.remove_exposure_hook(tracker.expose)
            release.set()
    # the synchronous tracker of 2bb3561 made the next assign wait for the whole flush
    assert during_flush[0] >= 4_799, during_flush
    assert tracker.stats().accepted == 5_000


def test_rows_queued_at_exit_are_stored(tmp_path):
    db = f"sqlite:///{tmp_path / 'exit.db'}"
    code = textwrap.dedent(
        f"""
        from abkit import assign, add_exposure_hook, Experiment
        from abkit.ingest.tracker import Tracker
        e = Experiment("k", variants=["a", "b"])
        tracker = Tracker(db={db!r}, experiments=[e], flush_interval=60)
        add_exposure_hook(tracker.expose)
        for i in range(20):
            assign(e, f"u{{i}}")
        # no close(): the interpreter's exit must flush
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    store = open_store(db)
    assert len(_exposures(store)) == 20
    store.close()


def test_concurrent_producers_lose_nothing(sqlite_url):
    experiment = config.Experiment(key="k", variants=["a", "b"])
    with Tracker(
        db=sqlite_url, experiments=[experiment], flush_every=100, flush_interval=0.01
    ) as tracker:

        def produce(offset: int) -> None:
            for i in range(500):
                tracker.expose(assignment.ExposureRecord.create("k", f"u{offset + i}", "a"))

        threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    stats = tracker.stats()
    assert (stats.accepted, stats.dropped, stats.queued) == (2_000, 0, 0)


# ----------------------------------------------------------------- worker="process"
def test_a_process_worker_stores_every_row_and_reports_its_counts(sqlite_url, caplog):
    """The child stores exposures (experiments sent before them, given or as served here)
    and events; its counts come back to stats(); a quarantine is a warning here."""
    given = config.Experiment(key="given", variants=["a", "b"])
    served = config.Experiment(key="served", variants=["a", "b"], traffic=0.5)
    moment = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with (
        caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"),
        Tracker(db=sqlite_url, experiments=[given], worker="process", flush_every=7) as tracker,
    ):
        assignment.add_exposure_hook(tracker.expose)
        try:
            chosen = [assign_mod.assign(given, f"u{i}", {"plan": "pro"}) for i in range(300)]
            chosen += [
                a
                for a in (assign_mod.assign(served, f"s{i}") for i in range(200))
                if a.in_experiment
            ]
        finally:
            assignment.remove_exposure_hook(tracker.expose)
        tracker.expose(assignment.ExposureRecord.create("ghost", "g1", "a").to_dict())
        for i in range(40):
            tracker.track(f"u{i}", "purchase", 1.0 + i, timestamp=moment, plan="pro")
        tracker.track("u0", "purchase", float("nan"), timestamp=moment)  # quarantined
        assert tracker.flush() == []
        stats = tracker.stats()
        assert stats.accepted == len(chosen) + 40 and stats.queued == 0
        assert stats.by_reason == {"unknown_experiment": 1, "non_finite_value": 1}
        with pytest.raises(AttributeError, match="no store in this process"):
            _ = tracker.store
    assert "quarantined" in caplog.text and "abkit quarantine" in caplog.text
    store = open_store(sqlite_url)
    assert _exposures(store) == {a.unit_id: a.variant for a in chosen}
    assert store.get_experiment("served") == served
    with store.engine.connect() as conn:
        attributes = conn.execute(select(store.tables.exposure_attributes)).all()
        events = conn.execute(select(store.tables.events.c.value)).all()
    assert len(attributes) == 300 and len(events) == 40
    store.close()


def test_a_process_worker_stores_what_is_queued_at_close(sqlite_url):
    experiment = config.Experiment(key="k", variants=["a", "b"])
    tracker = Tracker(db=sqlite_url, experiments=[experiment], worker="process", flush_interval=60)
    records = [assignment.ExposureRecord.create("k", f"u{i}", "ab"[i % 2]) for i in range(5_000)]
    for record in records:
        tracker.expose(record)
    tracker.close()  # the child holds rows below flush_every: close ingests them
    assert tracker.stats().accepted == 5_000
    tracker.close()  # idempotent
    store = open_store(sqlite_url)
    assert len(_exposures(store)) == 5_000
    with store.engine.connect() as conn:
        stored = conn.execute(select(store.tables.exposures.c.event_id)).scalars().all()
    # the child derives each id and time from the marshalled record (Contract 1)
    assert sorted(stored) == sorted(r.event_id for r in records)
    store.close()


def test_a_dead_process_worker_costs_counted_drops_not_the_service(sqlite_url, caplog):
    experiment = config.Experiment(key="k", variants=["a", "b"])
    with caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"):
        tracker = Tracker(db=sqlite_url, experiments=[experiment], worker="process")
        tracker._link.process.kill()  # the storing process is killed (OOM killer, operator)
        tracker._link.process.wait()
        for i in range(100):
            tracker.expose(assignment.ExposureRecord.create("k", f"u{i}", "a"))
        tracker.close()
    stats = tracker.stats()
    assert stats.accepted == 0 and stats.dropped == 100
    assert "storing process stopped" in caplog.text or "final flush failed" in caplog.text


def test_a_process_worker_counts_what_a_full_ring_refuses(sqlite_url, caplog):
    """The child stopped (SIGSTOP: it takes nothing) while the service goes on: the ring
    (1 MiB at least, 48 bytes an exposure here) fills, the rest is dropped and counted, and
    every row is either stored or counted once the child runs again (which takes from the
    ring only what its bounded pending list has room for)."""
    experiment = config.Experiment(key="k", variants=["a", "b"])
    with caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"):
        tracker = Tracker(db=sqlite_url, experiments=[experiment], worker="process", max_queue=1000)
        # the experiment goes to the child before its first exposure: the child is up and
        # has registered it
        tracker.expose(assignment.ExposureRecord.create("k", "first", "a"))
        tracker.flush()
        os.kill(tracker._link.process.pid, signal.SIGSTOP)
        try:
            for i in range(40_000):
                tracker.expose(assignment.ExposureRecord.create("k", f"u{i}", "a"))
            assert 0 < tracker.dropped < 40_000
            assert tracker.pending == 40_000 - tracker.dropped
        finally:
            os.kill(tracker._link.process.pid, signal.SIGCONT)
        tracker.close()
    stats = tracker.stats()
    assert stats.accepted == 40_001 - tracker.dropped > 20_000
    assert "queue full" in caplog.text
    store = open_store(sqlite_url)
    assert len(_exposures(store)) == stats.accepted
    store.close()


def test_a_process_worker_flush_returns_while_the_service_keeps_exposing(sqlite_url):
    """flush() stores what was put before it, not what keeps coming: under steady traffic
    it returns (waiting for an empty ring would not), and nothing is lost or counted twice."""
    experiment = config.Experiment(key="k", variants=["a", "b"])
    # the smallest ring (1 MiB, ~20,000 exposures): flush() waits for at most that much
    tracker = Tracker(db=sqlite_url, experiments=[experiment], worker="process", max_queue=1000)
    stop = threading.Event()
    produced = [0]

    def produce() -> None:
        while not stop.is_set():
            tracker.expose(assignment.ExposureRecord.create("k", f"u{produced[0]}", "a"))
            produced[0] += 1

    producer = threading.Thread(target=produce)
    producer.start()
    flushed = threading.Event()
    try:
        while produced[0] < 2_000:
            time.sleep(0.01)
        threading.Thread(target=lambda: (tracker.flush(), flushed.set()), daemon=True).start()
        assert flushed.wait(60), "flush() did not return under steady traffic"
        assert producer.is_alive()
    finally:
        stop.set()
        producer.join()
    tracker.close()
    stats = tracker.stats()
    assert stats.accepted + stats.dropped == produced[0] and stats.duplicates == 0
    store = open_store(sqlite_url)
    assert len(_exposures(store)) == stats.accepted
    store.close()


def test_a_process_worker_needs_a_url(sqlite_url):
    store = open_store(sqlite_url)
    with pytest.raises(ValueError, match="needs a database URL"):
        Tracker(db=store, worker="process")
    with pytest.raises(ValueError, match="worker must be one of"):
        Tracker(db=sqlite_url, worker="fork")  # type: ignore[arg-type]
    store.close()


def _break_table(url: str, table: str) -> None:
    """A stand-in for a database that went down: the table the worker writes is gone."""
    import sqlite3

    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_away")


def _mend_table(url: str, table: str) -> None:
    import sqlite3

    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        con.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_what_close_cannot_store_is_counted_as_dropped(sqlite_url, worker, caplog):
    experiment = config.Experiment(key="k", variants=["a", "b"])
    tracker = Tracker(db=sqlite_url, experiments=[experiment], worker=worker, flush_interval=60)
    tracker.flush()  # the worker has opened the store
    _break_table(sqlite_url, "abkit_exposures")
    for i in range(500):
        tracker.expose(assignment.ExposureRecord.create("k", f"u{i}", "ab"[i % 2]))
    with caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"):
        tracker.close()
    stats = tracker.stats()
    assert stats.accepted == 0 and stats.dropped == 500
    assert "500 rows dropped" in caplog.text


def test_a_process_worker_outlives_an_outage_during_a_registration(sqlite_url, tmp_path):
    # a new version of the spec is served while the store is down: the registration waits,
    # with the rows behind it, and both are stored once the store is back
    from abkit.assignment.live import LiveRegistry

    spec = tmp_path / "experiments.toml"
    text = '[[experiments]]\nkey = "k"\nvariants = ["a", "b"]\n'
    spec.write_text(text, encoding="utf-8")
    live = LiveRegistry(spec, start=False)
    handle = live.experiment("k")
    with Tracker(db=sqlite_url, experiments=live, worker="process", flush_interval=0.2) as tracker:
        assignment.add_exposure_hook(tracker.expose)
        try:
            for i in range(100):
                assign_mod.assign(handle, f"u{i}")
            tracker.flush()
            _break_table(sqlite_url, "abkit_experiments")
            new = tmp_path / "experiments.new"
            new.write_text(text.replace('"b"]', '"b", "c"]'), encoding="utf-8")
            new.replace(spec)
            assert live.refresh()
            for i in range(100, 200):
                assign_mod.assign(handle, f"u{i}")
            time.sleep(0.5)  # the child tries, fails and keeps the rows
            _mend_table(sqlite_url, "abkit_experiments")
            assert tracker._link is not None and tracker._link.exit_code() is None
            for i in range(200, 300):
                assign_mod.assign(handle, f"u{i}")
        finally:
            assignment.remove_exposure_hook(tracker.expose)
    stats = tracker.stats()
    assert stats.accepted == 300 and stats.dropped == 0 and stats.flush_errors >= 1
    store = open_store(sqlite_url)
    assert len(_exposures(store)) == 300
    assert store.get_experiment("k").variant_names == ("a", "b", "c")
    store.close()


def test_a_process_worker_stores_enum_attributes_as_the_thread_worker_does(tmp_path):
    import enum

    class Plan(enum.StrEnum):
        PRO = "pro"

    class Tier(enum.IntEnum):
        GOLD = 3

    experiment = config.Experiment(key="k", variants=["a", "b"])
    stored = {}
    for worker in ("thread", "process"):
        url = f"sqlite:///{tmp_path / worker}.db"
        with Tracker(db=url, experiments=[experiment], worker=worker) as tracker:
            for i in range(20):
                attributes = {"plan": Plan.PRO, "tier": Tier.GOLD}
                tracker.expose(
                    assignment.ExposureRecord.create("k", f"u{i}", "a", attributes=attributes)
                )
        assert (tracker.stats().accepted, tracker.stats().dropped) == (20, 0), worker
        store = open_store(url)
        with store.engine.connect() as conn:
            table = store.tables.exposure_attributes
            stored[worker] = sorted(conn.execute(select(table.c.name, table.c.value)).all())
        store.close()
    assert stored["process"] == stored["thread"] and len(stored["thread"]) == 40


def test_the_thread_worker_registers_the_served_version_of_a_known_key(sqlite_url):
    # the store knows "k" with two variants; this service serves a third (a newer spec)
    old = config.Experiment(key="k", variants=["a", "b"])
    open_store(sqlite_url).register_experiments([old])
    new = config.Experiment(key="k", variants=["a", "b", "c"])
    c_units = [
        u
        for u in (f"u{i}" for i in range(300))
        if assign_mod.assign(new, u, expose=False).variant == "c"
    ]
    with Tracker(db=sqlite_url, background=False) as tracker:
        assignment.add_exposure_hook(tracker.expose)
        try:
            for unit in c_units:
                assign_mod.assign(new, unit)
        finally:
            assignment.remove_exposure_hook(tracker.expose)
        tracker.flush()
    stats = tracker.stats()
    assert stats.accepted == len(c_units) and stats.quarantined == 0


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_a_forked_worker_stores_its_own_rows_and_the_parent_its_own(sqlite_url, worker):
    # a pre-fork server (gunicorn --preload): the tracker is made before the fork
    experiment = config.Experiment(key="k", variants=["a", "b"])
    tracker = Tracker(db=sqlite_url, experiments=[experiment], worker=worker, flush_interval=60)
    for i in range(300):
        tracker.expose(assignment.ExposureRecord.create("k", f"parent{i}", "a"))
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            for i in range(400):
                tracker.expose(assignment.ExposureRecord.create("k", f"child{i}", "b"))
            tracker.close()
            stats = tracker.stats()
            code = 0 if (stats.accepted, stats.dropped) == (400, 0) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tracker.close()
    assert (tracker.stats().accepted, tracker.stats().dropped) == (300, 0)
    store = open_store(sqlite_url)
    stored = _exposures(store)
    assert len(stored) == 700 and sum(v == "b" for v in stored.values()) == 400
    store.close()


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_close_gives_up_after_its_timeout_and_counts_the_rows(sqlite_url, worker, caplog):
    import sqlite3

    experiment = config.Experiment(key="k", variants=["a", "b"])
    tracker = Tracker(db=sqlite_url, experiments=[experiment], worker=worker, flush_interval=0.1)
    tracker.flush()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        for i in range(100):
            tracker.expose(assignment.ExposureRecord.create("k", f"u{i}", "a"))
        time.sleep(0.5)  # the worker's flush has started and waits for the lock
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="abkit.ingest.tracker"):
            tracker.close(timeout=2.0)
        assert time.monotonic() - started < 20.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "rows dropped" in caplog.text
    # every row is either stored or counted as dropped, never both: a flush that close
    # gave up on and that commits later takes its rows back from the dropped count
    deadline = time.monotonic() + 30
    while True:
        stats = tracker.stats()
        if stats.accepted + stats.dropped == 100 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert stats.accepted + stats.dropped == 100, stats
    store = open_store(sqlite_url)
    assert len(_exposures(store)) == stats.accepted
    store.close()


def test_an_exposure_never_overtakes_a_registration_the_ring_had_no_room_for(
    sqlite_url, monkeypatch
):
    # worker="process" under back-pressure: the registration frame (large) is refused
    # while the exposure frame (small) would fit; the exposure waits (dropped, counted)
    experiment = config.Experiment(key="k", variants=["a", "b"])
    with Tracker(db=sqlite_url, worker="process") as tracker:
        put = tracker._put
        frames: list[bool] = []

        def no_room_for_registrations(frame: bytes, row: bool = True) -> bool:
            if not row:
                return False  # the ring is full for the big frame
            frames.append(row)
            return put(frame, row)

        monkeypatch.setattr(tracker, "_put", no_room_for_registrations)
        assignment.add_exposure_hook(tracker.expose)
        try:
            assign_mod.assign(experiment, "u1")
        finally:
            assignment.remove_exposure_hook(tracker.expose)
        assert frames == [] and tracker.stats().dropped == 1
        monkeypatch.setattr(tracker, "_put", put)
        tracker.expose(assignment.ExposureRecord.create("k", "u2", "a"))  # room again
    assert tracker.stats().accepted == 1 and tracker.stats().quarantined == 0
