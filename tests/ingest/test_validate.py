"""Row validation: every reason code with its field and message, and inputs that once crashed
(non-ASCII digits, lone surrogates, float ids from pandas, epoch fractions)."""

from __future__ import annotations

import json

from sqlalchemy import select

from abkit.ingest.ingestor import ingest
from abkit.store.store import open_store

HEADER = "event_id,unit_id,event_type,value,timestamp\n"


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
