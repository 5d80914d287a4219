"""Regressions found in the independent review of the ingestor (issue 3).

Each test failed before its fix: a crash on non-ASCII digits, a raw decoder error (with
the wrong line) for invalid UTF-8, a traceback for a directory, a three-line error for an
unreachable PostgreSQL, quarantined rows doubled when a failed run was re-run, and a
takeover that trusted counters read before the claim.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from abkit.errors import ConfigError, DataError, StoreError
from abkit.ingest.ingestor import ingest
from abkit.store.store import Store, open_store

HEADER = "event_id,unit_id,event_type,value,timestamp\n"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abkit.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_non_ascii_digits_are_bad_timestamps_not_a_crash(db_url, tmp_path, audit, reasons):
    # "²".isdigit() is True but int("²") raises: this used to abort the whole run with a
    # ValueError. Arabic-Indic digits ("١٢") used to be read as epoch 12 s (1970).
    path = tmp_path / "digits.csv"
    path.write_text(
        HEADER
        + "e1,u1,click,,\u00b2\n"
        + "e2,u2,click,,\u0661\u0662\n"
        + "e3,u3,click,,1704067200\n",
        encoding="utf-8",
    )
    report = ingest(path, db=db_url)
    assert (report.rows_read, report.accepted, report.quarantined) == (3, 1, 2)
    assert report.by_reason == {"bad_timestamp": 2}
    audit(db_url, report)
    rows = {r[0]: r for r in reasons(db_url)}
    assert rows[2][1] == "bad_timestamp" and rows[2][3] == "timestamp"
    assert "digits.csv row 2, field 'timestamp'" in rows[2][2]
    assert rows[3][1] == "bad_timestamp" and "row 3" in rows[3][2]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_invalid_utf8_mid_file_is_refused_whole_with_its_line(db_url, tmp_path, audit, compressed):
    # 3,000 good lines, then a Latin-1 byte on line 3,002: the text decoder reads 8 KiB
    # blocks, so before the fix the error named a wrong line and only came after the
    # first chunks were committed.
    good = "".join(f"e{i},u{i},click,,2024-01-01T00:00:00Z\n" for i in range(3000))
    data = (HEADER + good).encode() + b"e-bad,caf\xe9,click,,2024-01-01T00:00:00Z\n"
    data += b"e-last,u,click,,2024-01-01T00:00:00Z\n"
    path = tmp_path / ("latin.csv.gz" if compressed else "latin.csv")
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(DataError) as info:
        ingest(path, db=db_url, chunk_size=100)
    assert info.value.location.file == path.name
    assert info.value.location.row == 3002
    assert "not UTF-8" in str(info.value) and "0xe9" in str(info.value)
    assert "nothing from this file was written" in str(info.value)
    counts = audit(db_url)
    assert counts["events"] == 0 and counts["batches"] == 0


def test_a_directory_or_unreadable_source_is_a_located_data_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(DataError, match="is a directory") as info:
        ingest(folder, db=url)
    assert info.value.location.file == "exports"
    result = _cli("ingest", str(folder), "--db", url, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "is a directory" in result.stderr


def test_export_to_a_missing_folder_is_one_line_exit_2(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "e1,u1,click,abc,2024-01-01T00:00:00Z\n")
    ingest(bad, db=url)
    from abkit.ingest.quarantine import export_quarantine

    with pytest.raises(ConfigError, match="cannot write the export"):
        export_quarantine(tmp_path / "missing" / "q.csv", url)
    result = _cli(
        "quarantine", "--db", url, "--export", str(tmp_path / "missing" / "q.csv"), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_negative_future_horizon_is_a_config_error(tmp_path):
    from datetime import timedelta

    path = tmp_path / "e.csv"
    path.write_text(HEADER + "e1,u1,click,,2024-01-01T00:00:00Z\n")
    with pytest.raises(ConfigError, match="max_future must not be negative"):
        ingest(path, db=f"sqlite:///{tmp_path / 'n.db'}", max_future=timedelta(days=-1))
    result = _cli(
        "ingest",
        str(path),
        "--db",
        f"sqlite:///{tmp_path / 'n.db'}",
        "--max-future-days",
        "-1",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "max_future must not be negative" in result.stderr


def test_unreachable_postgresql_is_a_one_line_store_error(tmp_path):
    with pytest.raises(StoreError) as info:
        open_store("postgresql://nobody@127.0.0.1:1/none")
    message = str(info.value)
    assert "\n" not in message and "Connection refused" in message
    assert "sqlalche.me" not in message
    result = _cli("ingest", "x.csv", "--db", "postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    # (x.csv does not exist: the file check comes first and is also one line, exit 2)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0


def test_a_failed_run_is_resumed_without_quarantining_twice(db_url, tmp_path, audit, monkeypatch):
    lines = []
    for i in range(60):
        value = "oops" if i % 5 == 0 else str(i)  # 12 rows for quarantine
        lines.append(f"e{i},u{i},purchase,{value},2024-01-01T00:00:00Z\n")
    path = tmp_path / "flaky.csv"
    path.write_text(HEADER + "".join(lines))

    # A real interruption (Ctrl-C) on the fourth chunk's write; chunks 1-3 are committed.
    calls = {"n": 0}
    original = Store.insert_new

    def interrupted(self, conn, table, *args, **kwargs):  # type: ignore[no-untyped-def]
        if table.name == self.tables.events.name:
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
        return original(self, conn, table, *args, **kwargs)

    monkeypatch.setattr(Store, "insert_new", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest(path, db=db_url, chunk_size=10)
    monkeypatch.setattr(Store, "insert_new", original)
    store = open_store(db_url)
    try:
        b = store.tables.ingest_batches
        with store.engine.connect() as conn:
            first = conn.execute(select(b)).one()
    finally:
        store.close()
    assert first.status == "failed" and first.rows_read == 30

    report = ingest(path, db=db_url, chunk_size=10)
    (file,) = report.files
    assert file.status == "resumed" and file.batch_id == first.id
    assert (report.rows_read, report.accepted, report.duplicates, report.quarantined) == (
        60,
        48,
        0,
        12,
    )
    counts = audit(db_url, report)
    # One clean run's end state: 48 events, 12 quarantined rows (not 12 + 6), one batch.
    assert counts == {"events": 48, "exposures": 0, "quarantine": 12, "batches": 1}


def test_takeover_resumes_from_counters_read_inside_the_claim(tmp_path, audit):
    """A slow owner on another host may commit a chunk between our look and our claim."""
    from abkit.ingest.ingestor import _plan, _Progress, _Run
    from abkit.ingest.readers import open_reader

    url = f"sqlite:///{tmp_path / 't.db'}"
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "".join(f"e{i},u{i},click,,2024-01-01T00:00:00Z\n" for i in range(30)))
    store = open_store(url)
    try:

        def new_run() -> _Run:
            reader = open_reader(path, display="t.csv")
            from datetime import timedelta

            return _Run(
                store,
                _plan(reader, "auto", {}),
                source_name="t.csv",
                tz=None,
                timezone_name=None,
                max_future=timedelta(days=1),
                delimiter=None,
                chunk_size=10,
                force=False,
                progress=_Progress(False),
                experiments={},
            )

        # The "other host" owner: its batch with 10 rows committed, heartbeat long ago.
        other = new_run()
        content_hash = other.plan.reader.content_hash()
        batch_id = other._new_batch(content_hash, {})
        b = store.tables.ingest_batches
        with store.write() as conn:
            conn.execute(
                update(b)
                .where(b.c.id == batch_id)
                .values(owner="elsewhere:1:abc", heartbeat_at_us=0, rows_read=0)
            )
        taker = new_run()
        _committed, seen = taker._existing(content_hash)
        assert seen is not None and seen.rows_read == 0
        # ...and right then the slow owner commits its first chunk (10 rows).
        with store.write() as conn:
            conn.execute(update(b).where(b.c.id == batch_id).values(rows_read=10, accepted=10))
        fresh = taker._claim(seen)
        assert fresh is not None and fresh.owner == taker.owner
        assert fresh.rows_read == 10  # not the stale 0: those 10 rows are not read again
        # A second claimer holding the same stale view loses the compare-and-set.
        assert new_run()._claim(seen) is None
    finally:
        store.close()


def test_lone_surrogates_are_quarantined_not_a_crash(db_url, tmp_path, audit, reasons):
    # "\ud800" is valid JSON but has no UTF-8 form. In unit_id it made mmh3 crash the
    # interpreter (SIGSEGV, exit 139, nothing reported); in event_id it failed the
    # insert and the run. Now: invalid_character, naming the field, exportable.
    lines = [
        {"event_id": "a", "unit_id": "u\ud800", "event_type": "b"},
        {"event_id": "b\ud800", "unit_id": "u", "event_type": "b"},
        {"event_id": "c", "unit_id": "u", "event_type": "b", "note": "x\udc00"},
        {"event_id": "d", "unit_id": "u", "event_type": "b\ud83d"},
        {"event_id": "e", "unit_id": "u\U0001f600", "event_type": "b"},  # a real emoji: fine
    ]
    path = tmp_path / "surrogates.jsonl"
    path.write_text(
        "".join(json.dumps({**line, "timestamp": "2024-01-01T00:00:00Z"}) + "\n" for line in lines),
        encoding="ascii",
    )
    report = ingest(path, db=db_url)
    assert (report.rows_read, report.accepted, report.quarantined) == (5, 1, 4)
    assert report.by_reason == {"invalid_character": 4}
    audit(db_url, report)
    fields = {row: field for row, code, _reason, field in reasons(db_url)}
    assert fields == {1: "unit_id", 2: "event_id", 3: "properties", 4: "event_type"}
    from abkit.ingest.quarantine import export_quarantine

    out = tmp_path / "fix.jsonl"
    assert export_quarantine(out, db_url) == 4
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert exported[0]["unit_id"] == "u\ud800"  # the raw value survives the round trip


def test_column_map_typos_and_missing_mapped_columns_are_errors(db_url, tmp_path, audit):
    path = tmp_path / "shop.csv"
    path.write_text(
        "order,unit_id,customer_id,kind,amount,created_at\n"
        "o1,u-old,c1,purchase,3,2024-01-01T00:00:00Z\n"
    )
    base = {"event_type": "kind", "ts": "created_at", "id": "order"}
    # A misspelt field name used to be ignored (the mapped column fell into properties).
    with pytest.raises(ConfigError, match="'unit_di' is not an abkit field") as info:
        ingest(path, db=db_url, column_map={**base, "unit_di": "customer_id"})
    assert info.value.location.field == "unit_di"
    # An optional field mapped to a column that does not exist used to be dropped silently.
    with pytest.raises(DataError, match=r"column 'amt' \(mapped to value\) is not in the file"):
        ingest(path, db=db_url, column_map={**base, "value": "amt"})
    # A mapped required column that is missing must not fall back to a same-named column.
    with pytest.raises(
        DataError, match=r"column 'client' \(mapped to unit_id\) is not in the file"
    ):
        ingest(path, db=db_url, column_map={**base, "user_id": "client"})
    assert audit(db_url)["batches"] == 0  # nothing written by any of these
    report = ingest(
        path, db=db_url, column_map={**base, "user_id": "customer_id", "value": "amount"}
    )
    assert report.accepted == 1
    store = open_store(db_url)
    try:
        e = store.tables.events
        with store.engine.connect() as conn:
            row = conn.execute(select(e.c.unit_id, e.c.value, e.c.properties)).one()
    finally:
        store.close()
    assert row.unit_id == "c1" and row.value == 3.0
    assert json.loads(row.properties) == {"unit_id": "u-old"}  # the unmapped column is kept


def test_numeric_epochs_from_json_keep_fractions_and_the_s_ms_boundary(
    db_url, tmp_path, audit, reasons
):
    # JSON numbers take another path than CSV text: floats must keep their fraction
    # (exactly, via their repr), and the seconds/milliseconds boundary is 1e11.
    rows = [
        ("s", 1704067200),
        ("s_frac", 1704067200.25),
        ("ms", 1704067200123),
        ("ms_frac", 1704067200123.5),
        ("neg_s", -86400),  # 1969-12-31: epochs before 1970 are valid seconds
        ("last_s", 99_999_999_999),  # year 5138 as seconds: flagged as future, not ms
        ("first_ms", 100_000_000_000),  # 1973-03-03 as milliseconds
        ("us", 1704067200123456),
        ("bool", True),
    ]
    path = tmp_path / "epochs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"event_id": k, "unit_id": "u", "event_type": "e", "timestamp": t}) + "\n"
            for k, t in rows
        )
    )
    report = ingest(path, db=db_url)
    audit(db_url, report)
    store = open_store(db_url)
    try:
        e = store.tables.events
        with store.engine.connect() as conn:
            stored = dict(conn.execute(select(e.c.event_id, e.c.ts_us)).all())
    finally:
        store.close()
    assert stored == {
        "s": 1_704_067_200_000_000,
        "s_frac": 1_704_067_200_250_000,
        "ms": 1_704_067_200_123_000,
        "ms_frac": 1_704_067_200_123_500,
        "neg_s": -86_400_000_000,
        "first_ms": 100_000_000_000_000,
    }
    assert report.by_reason == {"future_timestamp": 1, "bad_timestamp": 2}
    by_row = {row: (code, field) for row, code, _r, field in reasons(db_url)}
    assert by_row == {
        6: ("future_timestamp", "timestamp"),
        8: ("bad_timestamp", "timestamp"),
        9: ("bad_timestamp", "timestamp"),
    }


def test_every_remaining_reason_code_with_its_field_and_message(db_url, tmp_path, audit, reasons):
    """The reason codes no other test reached: blank event type, blank timestamp, NUL,
    missing experiment/variant, attributes that are not an object."""
    events_path = tmp_path / "gaps.csv"
    events_path.write_text(
        HEADER
        + "e1,u1,   ,,2024-01-01T00:00:00Z\n"
        + "e2,u2,click,,\n"
        + "e3,u\x003,click,,2024-01-01T00:00:00Z\n"
        + "e4,u4,click,,2024-01-01T00:00:00Z\n"
    )
    report = ingest(events_path, db=db_url)
    assert (report.rows_read, report.accepted, report.quarantined) == (4, 1, 3)
    audit(db_url, report)
    got = {row: (code, field, reason) for row, code, reason, field in reasons(db_url)}
    assert got[2][:2] == ("missing_event_type", "event_type")
    assert got[3][:2] == ("missing_timestamp", "timestamp")
    assert got[4][:2] == ("invalid_character", "unit_id") and "NUL" in got[4][2]
    assert got[2][2] == "gaps.csv row 2, field 'event_type': is empty"

    store = open_store(db_url)
    try:
        store.register_experiments(
            [{"key": "checkout", "variants": [{"name": "control"}, {"name": "new"}]}]
        )
    finally:
        store.close()
    stamp = "2024-01-01T00:00:00Z"
    exposures = [
        {"experiment": "", "unit_id": "u1", "variant": "new", "timestamp": stamp},
        {"experiment": "checkout", "unit_id": "u2", "variant": " ", "timestamp": stamp},
        {
            "experiment": "checkout",
            "unit_id": "u3",
            "variant": "new",
            "timestamp": stamp,
            "attributes": "[1, 2]",
        },
        {
            "experiment": "checkout",
            "unit_id": "u4",
            "variant": "new",
            "timestamp": stamp,
            "attributes": "{not json",
        },
        {
            "experiment": "checkout",
            "unit_id": "u5",
            "variant": "new",
            "timestamp": stamp,
            "attributes": {"country": "FR"},
        },
    ]
    exp_path = tmp_path / "exp.jsonl"
    exp_path.write_text("".join(json.dumps(x) + "\n" for x in exposures))
    report = ingest(exp_path, db=db_url)
    assert (report.rows_read, report.accepted, report.quarantined) == (5, 1, 4)
    assert report.by_reason == {"missing_experiment": 1, "missing_variant": 1, "bad_attributes": 2}
    audit(db_url, report)
    later = [r for r in reasons(db_url) if "exp.jsonl" in r[2]]
    assert [(row, code, field) for row, code, _r, field in later] == [
        (1, "missing_experiment", "experiment"),
        (2, "missing_variant", "variant"),
        (3, "bad_attributes", "attributes"),
        (4, "bad_attributes", "attributes"),
    ]
    assert later[2][2] == "exp.jsonl row 3, field 'attributes': is a list, not an object"


def test_owner_liveness_same_host_by_pid_other_host_by_heartbeat():
    import os
    import socket

    from abkit.ingest.ingestor import STALE_AFTER, _owner_alive
    from abkit.store.store import to_us_now

    here = socket.gethostname()
    now = to_us_now()
    stale = now - int(STALE_AFTER.total_seconds() * 1_000_000) - 1_000_000
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    assert _owner_alive(f"{here}:{os.getpid()}:abc", stale)  # alive pid wins over heartbeat
    assert not _owner_alive(f"{here}:{dead_pid}:abc", now)  # dead pid loses despite a heartbeat
    # Another host: only the heartbeat tells; a slow chunk must not be taken over early.
    assert _owner_alive("other-host:1:abc", now - 60 * 1_000_000)
    assert not _owner_alive("other-host:1:abc", stale)
    assert not _owner_alive("other-host:1:abc", None)
    assert not _owner_alive(None, now)


def test_jsonl_keys_first_seen_after_the_peek_still_reach_properties(db_url, tmp_path, audit):
    # The column list of a JSON Lines file comes from its first 1,000 rows; a key that
    # first shows up later used to be dropped from properties silently.
    lines = [
        {"event_id": f"e{i}", "unit_id": f"u{i}", "event_type": "buy", "timestamp": 1704067200}
        for i in range(1500)
    ]
    lines[1200]["coupon"] = "SPRING"
    lines[1201]["plan"] = {"tier": "pro"}
    lines[5]["_abkit_reason"] = "export metadata is never a property"
    path = tmp_path / "late.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = ingest(path, db=db_url, chunk_size=400)
    assert report.accepted == 1500
    audit(db_url, report)
    store = open_store(db_url)
    try:
        e = store.tables.events
        with store.engine.connect() as conn:
            props = dict(conn.execute(select(e.c.event_id, e.c.properties)).all())
    finally:
        store.close()
    assert json.loads(props["e1200"]) == {"coupon": "SPRING"}
    assert json.loads(props["e1201"]) == {"plan": {"tier": "pro"}}
    assert props["e5"] is None and props["e0"] is None
    # Records from Python (a tracker flush) take the same path.
    records = [
        {"unit_id": "r1", "event_type": "buy", "timestamp": 1704067200},
        {"unit_id": "r2", "event_type": "buy", "timestamp": 1704067200, "late": 1},
    ]
    assert ingest(iter(records), db=db_url).accepted == 2


def test_integer_ids_made_float_by_a_pandas_gap_are_stored_as_integers(db_url, audit, reasons):
    import pandas as pd

    stamp = "2024-01-01T00:00:00Z"
    clean = pd.DataFrame(
        {"unit_id": [101, 102], "event_type": ["buy", "buy"], "timestamp": [stamp, stamp]}
    )
    gappy = pd.DataFrame(
        {
            "unit_id": [101, 102, None],  # float64 now: 101.0, 102.0, NaN
            "event_type": ["buy", "buy", "buy"],
            "timestamp": [stamp, stamp, stamp],
        }
    )
    assert str(gappy["unit_id"].dtype) == "float64"
    first = ingest(clean, db=db_url)
    assert first.accepted == 2
    # The same events again: duplicates, not two new users "101.0" and "102.0".
    second = ingest(gappy, db=db_url)
    assert (second.accepted, second.duplicates, second.quarantined) == (0, 2, 1)
    assert second.by_reason == {"missing_unit_id": 1}
    audit(db_url, second)
    store = open_store(db_url)
    try:
        e = store.tables.events
        with store.engine.connect() as conn:
            units = sorted(conn.execute(select(e.c.unit_id)).scalars())
    finally:
        store.close()
    assert units == ["101", "102"]
