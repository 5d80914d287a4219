"""kill -9 in the middle of a file, then resume; several processes ingesting at once.

Both run real child processes against a real SQLite file and the real PostgreSQL server.
The kill happens at the worst moment: the child (:data:`KILLED_CHILD`) wraps the writer's
last step so that it SIGKILLs itself inside a chunk's transaction, after writing its rows
and before the commit. The hook lives in the test's child script, not in abkit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from abkit.ingest.ingestor import ingest
from abkit.store.store import open_store

HEADER = "event_id,unit_id,event_type,value,timestamp\n"
CHILD = (
    "import sys, json\n"
    "from abkit.ingest.ingestor import ingest\n"
    "r = ingest(sys.argv[1], db=sys.argv[2], chunk_size=int(sys.argv[3]))\n"
    "print(json.dumps([r.rows_read, r.accepted, r.duplicates, r.quarantined]))\n"
)
# argv: file, url, chunk size, chunks to commit before dying inside the next one.
KILLED_CHILD = (
    "import os, signal, sys\n"
    "from abkit.ingest import writer\n"
    "from abkit.ingest.ingestor import ingest\n"
    "advance = writer.ChunkWriter._advance\n"
    "done = []\n"
    "def advance_then_die(self, *args):\n"
    "    advance(self, *args)\n"
    "    done.append(1)\n"
    "    if len(done) > int(sys.argv[4]):\n"
    "        os.kill(os.getpid(), signal.SIGKILL)  # rows written, commit not reached\n"
    "writer.ChunkWriter._advance = advance_then_die\n"
    "ingest(sys.argv[1], db=sys.argv[2], chunk_size=int(sys.argv[3]))\n"
)


def make_file(path: Path, ids: range, bad_every: int = 37) -> Path:
    lines = [HEADER]
    for i in ids:
        if i % bad_every == 0:
            lines.append(f"e{i},u{i % 97},purchase,not-a-number,2024-01-01T00:00:00Z\n")
        elif i % 53 == 0:
            lines.append(f"e{i},u{i % 97},click,,2024-01-01T00:00:00Z\n" * 2)  # in-file duplicate
        else:
            lines.append(f"e{i},u{i % 97},click,{i % 7},{1_704_067_200 + i}\n")
    path.write_text("".join(lines))
    return path


def run_child(
    path: Path, url: str, chunk_size: int, kill_after: int | None = None
) -> subprocess.Popen:
    script, extra = (CHILD, []) if kill_after is None else (KILLED_CHILD, [str(kill_after)])
    return subprocess.Popen(
        [sys.executable, "-c", script, str(path), url, str(chunk_size), *extra],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def snapshot(url: str) -> dict[str, object]:
    """Everything a run leaves behind, minus ids and clocks that differ between runs."""
    store = open_store(url)
    try:
        t = store.tables
        with store.engine.connect() as conn:
            events = sorted(
                (r.event_id, r.unit_id, r.event_type, r.value, r.ts_us, r.content_hash)
                for r in conn.execute(select(t.events))
            )
            quarantine = sorted(
                (r.row_number, r.reason_code, r.reason, r.raw)
                for r in conn.execute(select(t.quarantine))
            )
            batches = [
                (r.status, r.rows_read, r.accepted, r.duplicates, r.quarantined)
                for r in conn.execute(select(t.ingest_batches))
            ]
    finally:
        store.close()
    return {"events": events, "quarantine": quarantine, "batches": batches}


def test_kill_9_mid_file_then_resume_equals_one_clean_run(db_url, tmp_path, audit, request):
    path = make_file(tmp_path / "big.csv", range(1, 1201))
    if db_url.startswith("sqlite"):
        clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    else:
        clean_url = request.getfixturevalue("postgres_server").create_database()
    clean = ingest(path, db=clean_url, chunk_size=100)
    audit(clean_url, clean)

    child = run_child(path, db_url, 100, kill_after=4)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err
    killed = snapshot(db_url)
    # Four chunks committed, the fifth (written, not committed) rolled back.
    assert killed["batches"] == [("running", 400, *killed["batches"][0][2:])]
    assert len(killed["events"]) < len(snapshot(clean_url)["events"])
    audit(db_url)

    resumed = ingest(path, db=db_url, chunk_size=100)
    assert resumed.files[0].status == "resumed"
    assert "resumed an interrupted run after row 400" in resumed.summary()
    assert (resumed.rows_read, resumed.accepted, resumed.duplicates, resumed.quarantined) == (
        clean.rows_read,
        clean.accepted,
        clean.duplicates,
        clean.quarantined,
    )
    assert resumed.by_reason == clean.by_reason
    audit(db_url, resumed)
    assert snapshot(db_url) == snapshot(clean_url)
    # And a later plain re-run adds nothing.
    assert ingest(path, db=db_url).files[0].status == "skipped"
    assert snapshot(db_url) == snapshot(clean_url)


def test_concurrent_processes_lose_and_double_nothing(db_url, tmp_path, audit):
    # Four files overlapping pairwise by half: ids 1..1000, 501..1500, 1001..2000, 1501..2500.
    files = [
        make_file(tmp_path / f"part{k}.csv", range(1 + 500 * k, 1001 + 500 * k)) for k in range(4)
    ]
    open_store(db_url).close()  # the children race on rows, not on creating the schema
    children = [run_child(path, db_url, 128) for path in files]
    results = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        results.append([int(x) for x in out.strip().splitlines()[-1].strip("[]").split(",")])
    counts = audit(db_url)
    # The good ids of the union, each stored exactly once.
    expected_ids = {f"e{i}" for i in range(1, 2501) if i % 37 != 0}
    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            stored = conn.execute(select(store.tables.events.c.event_id)).scalars().all()
    finally:
        store.close()
    assert len(stored) == len(set(stored)) == counts["events"]
    assert set(stored) == expected_ids
    total_read = sum(r[0] for r in results)
    assert sum(r[1] for r in results) == len(expected_ids)  # accepted once overall
    assert total_read == sum(r[1] + r[2] + r[3] for r in results)
    assert counts["quarantine"] == sum(r[3] for r in results)


def test_concurrent_first_open_of_a_fresh_sqlite_file(tmp_path, audit):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    files = [make_file(tmp_path / f"f{k}.csv", range(1 + 100 * k, 201 + 100 * k)) for k in range(3)]
    children = [run_child(path, url, 50) for path in files]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    assert audit(url)["events"] == len({i for i in range(1, 401) if i % 37 != 0})
