"""Batch ownership: claims, the exclusive lock per file, and liveness without pids.

The adversarial cases run real processes: a child killed with SIGKILL inside a chunk's
transaction, its pid then "reused" by a live process (the test process itself), and two
processes started on the same file at once (a cron overlap).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select, update

from abkit.ingest.batches import BatchIdentity, BatchOwner
from abkit.ingest.ingestor import ingest
from abkit.store.store import open_store

from .test_resume_concurrency import make_file, run_child, snapshot

# argv: file, url, seconds to sleep inside every chunk's transaction. Prints the report.
SLOW_CHILD = (
    "import json, sys, time\n"
    "from abkit.ingest import writer\n"
    "from abkit.ingest.ingestor import ingest\n"
    "advance = writer.ChunkWriter._advance\n"
    "def slow(self, *args):\n"
    "    time.sleep(float(sys.argv[3]))\n"
    "    advance(self, *args)\n"
    "writer.ChunkWriter._advance = slow\n"
    "r = ingest(sys.argv[1], db=sys.argv[2], chunk_size=100)\n"
    "print(json.dumps([r.files[0].status, r.rows_read, r.quarantined]))\n"
)
# argv: url, lock key. Takes the store's exclusive lock, says so, then sleeps forever.
HOLDER = (
    "import sys, time\n"
    "from abkit.store.store import open_store\n"
    "store = open_store(sys.argv[1])\n"
    "with store.exclusive(sys.argv[2]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


def _batches(url: str) -> list[tuple[str, int, int]]:
    # Read-only: an opening for writing would queue behind the ingest's write lock.
    store = open_store(url, readonly=True)
    try:
        b = store.tables.ingest_batches
        with store.engine.connect() as conn:
            return [
                (r.status, r.rows_read, r.quarantined)
                for r in conn.execute(select(b).order_by(b.c.id))
            ]
    finally:
        store.close()


def test_kill_9_then_pid_reuse_resumes_once(db_url, tmp_path, audit, request):
    """A dead owner whose pid now belongs to a live process is still known to be dead."""
    path = make_file(tmp_path / "reuse.csv", range(1, 801))
    if db_url.startswith("sqlite"):
        clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    else:
        clean_url = request.getfixturevalue("postgres_server").create_database()
    clean = ingest(path, db=clean_url, chunk_size=100)

    child = run_child(path, db_url, 100, kill_after=3)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err
    # Container restart: same host name, and the dead owner's pid is now a live process.
    store = open_store(db_url)
    try:
        b = store.tables.ingest_batches
        with store.write() as conn:
            conn.execute(update(b).values(owner=f"{socket.gethostname()}:{os.getpid()}:0ld0wner"))
    finally:
        store.close()
    assert _batches(db_url)[0][:2] == ("running", 300)

    resumed = ingest(path, db=db_url, chunk_size=100)
    assert resumed.files[0].status == "resumed"
    assert resumed.quarantined == clean.quarantined > 0  # not quarantined twice
    assert [status for status, *_ in _batches(db_url)] == ["committed"]  # no orphan
    audit(db_url, resumed)
    assert snapshot(db_url) == snapshot(clean_url)


def test_two_processes_on_the_same_file_commit_one_batch(db_url, tmp_path, audit):
    path = make_file(tmp_path / "cron.csv", range(1, 1501))
    open_store(db_url).close()
    first = subprocess.Popen(
        [sys.executable, "-c", SLOW_CHILD, str(path), db_url, "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    # The first one is at work (a chunk committed) when the second starts.
    while not any(rows for _, rows, _ in _batches(db_url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.Popen(
        [sys.executable, "-c", SLOW_CHILD, str(path), db_url, "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert out1.split()[-3:][0] == '["committed",'
    assert out2.strip().endswith('["skipped", 0, 0]')
    assert "another process is ingesting this file" in err2
    counts = audit(db_url)
    assert counts["batches"] == 1
    (only,) = _batches(db_url)
    assert only[0] == "committed" and counts["quarantine"] == only[2] > 0


def test_a_lock_held_by_a_killed_process_is_free_at_once(db_url):
    open_store(db_url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url, "ingest:abc"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store = open_store(db_url)
        try:
            waited = threading.Event()
            acquired = threading.Event()

            def take() -> None:
                with store.exclusive("ingest:abc", on_wait=waited.set):
                    acquired.set()

            taker = threading.Thread(target=take, daemon=True)
            taker.start()
            assert waited.wait(10) and not acquired.is_set()  # a live holder makes us wait
            holder.send_signal(signal.SIGKILL)
            assert acquired.wait(10)  # the OS or server released the dead holder's lock
            taker.join(10)
        finally:
            store.close()
    finally:
        holder.kill()
        holder.wait()


def _identity(**overrides: object) -> BatchIdentity:
    values: dict[str, object] = {
        "source": "t.csv",
        "kind": "events",
        "path": None,
        "content_hash": "c" * 64,
        "params_hash": "p" * 64,
        "params": "{}",
    }
    values.update(overrides)
    return BatchIdentity(**values)  # type: ignore[arg-type]


def test_takeover_resumes_from_counters_read_inside_the_claim(tmp_path: Path):
    """A slow owner may commit a chunk between our look and our claim."""
    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    try:
        ident = _identity()
        batch_id = BatchOwner(store, ident).start({}).batch_id
        b = store.tables.ingest_batches
        with store.write() as conn:
            conn.execute(
                update(b)
                .where(b.c.id == batch_id)
                .values(owner="elsewhere:1:abc", heartbeat_at_us=0, rows_read=0)
            )
        taker = BatchOwner(store, ident)
        (seen,) = taker._interrupted()
        assert seen.rows_read == 0
        # ...and right then the slow owner commits its first chunk (10 rows).
        with store.write() as conn:
            conn.execute(update(b).where(b.c.id == batch_id).values(rows_read=10, accepted=10))
        fresh = taker._claim(seen)
        assert fresh is not None and fresh.owner == taker.owner
        assert fresh.rows_read == 10  # not the stale 0: those 10 rows are not read again
        # A second claimer holding the same stale view loses the compare-and-set.
        assert BatchOwner(store, ident)._claim(seen) is None
    finally:
        store.close()


def test_without_a_shared_lock_only_a_stale_heartbeat_frees_a_batch(tmp_path, monkeypatch):
    from abkit.ingest import batches
    from abkit.timeutil import now_us

    store = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        monkeypatch.setattr(type(store.dialect), "cross_process_locks", False)
        ident = _identity()
        batch_id = BatchOwner(store, ident).start({}).batch_id
        b = store.tables.ingest_batches
        stale = now_us() - int(batches.STALE_AFTER.total_seconds() * 1e6) - 1_000_000
        for heartbeat, free in ((now_us() - 60_000_000, False), (stale, True), (None, True)):
            with store.write() as conn:
                conn.execute(update(b).where(b.c.id == batch_id).values(heartbeat_at_us=heartbeat))
            assert bool(BatchOwner(store, ident)._interrupted()) is free, heartbeat
        # Another file's batch is never a candidate.
        assert not BatchOwner(store, _identity(content_hash="d" * 64))._interrupted()
    finally:
        store.close()
