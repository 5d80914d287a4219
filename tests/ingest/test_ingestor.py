"""Every bad input the issue lists (and more), on a real SQLite file and a real PostgreSQL.

Each test asserts the accounting invariant (via ``audit``, which also checks the stored
rows against the batch counters) and the message a user would read.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from abkit.errors import ConfigError, DataError, StoreError
from abkit.ingest.ingestor import ingest
from abkit.ingest.validate import exposure_event_id, hash_hex
from abkit.store.store import Store, open_store

HEADER = "event_id,unit_id,event_type,value,timestamp\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def events(url: str) -> dict[str, tuple]:
    store = open_store(url)
    try:
        e = store.tables.events
        with store.engine.connect() as conn:
            return {
                r.event_id: (r.unit_id, r.event_type, r.value, r.ts_us, r.properties)
                for r in conn.execute(select(e))
            }
    finally:
        store.close()


def test_clean_csv_roundtrip(db_url, tmp_path, audit):
    path = write(
        tmp_path / "ev.csv",
        HEADER
        + "e1,u1,purchase,9.5,2024-01-01T10:00:00Z\n"
        + "e2,u2,click,,2024-01-01T12:00:00+02:00\n",
    )
    report = ingest(path, db=db_url)
    assert (report.rows_read, report.accepted, report.duplicates, report.quarantined) == (
        2,
        2,
        0,
        0,
    )
    assert audit(db_url, report)["events"] == 2
    stored = events(db_url)
    assert stored["e1"] == ("u1", "purchase", 9.5, 1_704_103_200_000_000, None)
    # +02:00 is converted to UTC: 12:00+02:00 == 10:00Z
    assert stored["e2"][3] == 1_704_103_200_000_000
    assert stored["e2"][2] is None
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["files"][0]["source"] == "ev.csv" and as_json["accepted"] == 2
    assert list(report.to_frame()["accepted"]) == [2]


def test_empty_file(db_url, tmp_path, audit):
    path = write(tmp_path / "empty.csv", "")
    report = ingest(path, db=db_url)
    assert report.rows_read == 0
    assert any("empty file" in w for w in report.warnings)
    audit(db_url, report)


def test_header_only(db_url, tmp_path, audit):
    report = ingest(write(tmp_path / "h.csv", HEADER), db=db_url)
    assert (report.rows_read, report.accepted) == (0, 0)
    assert report.files[0].status == "committed"
    audit(db_url, report)


def test_bom_is_ignored(db_url, tmp_path, audit):
    path = write(
        tmp_path / "bom.csv", HEADER + "e1,u1,click,,2024-01-01T00:00:00Z\n", encoding="utf-8-sig"
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    report = ingest(path, db=db_url)
    assert report.accepted == 1  # without BOM handling the first column would be '\ufeffevent_id'
    audit(db_url, report)


def test_semicolon_file_is_sniffed_and_wrong_explicit_delimiter_is_explained(
    db_url, tmp_path, audit
):
    path = write(
        tmp_path / "semi.csv", HEADER.replace(",", ";") + "e1;u1;click;;2024-01-01T00:00:00Z\n"
    )
    report = ingest(path, db=db_url)
    assert report.accepted == 1
    audit(db_url, report)
    with pytest.raises(DataError) as info:
        ingest(path, db=db_url, delimiter=",", force=True)
    message = str(info.value)
    assert "semi.csv" in message and "'unit_id'" in message
    assert "columns found: 'event_id;unit_id;event_type;value;timestamp'" in message
    assert "delimiter" in message


def test_missing_required_column_stops_before_anything_is_written(db_url, tmp_path, audit):
    good = write(tmp_path / "good.csv", HEADER + "e1,u1,click,,2024-01-01T00:00:00Z\n")
    bad = write(
        tmp_path / "bad.csv",
        "event_id,user,event_type,timestamp\ne2,u,click,2024-01-01T00:00:00Z\n",
    )
    with pytest.raises(DataError) as info:
        ingest([good, bad], db=db_url)
    assert info.value.location.file == "bad.csv"
    assert info.value.location.field == "unit_id"
    assert "columns found: 'event_id', 'user', 'event_type', 'timestamp'" in str(info.value)
    counts = audit(db_url)
    assert counts["events"] == 0 and counts["batches"] == 0  # good.csv was not written either


def test_column_map_and_aliases(db_url, tmp_path, audit):
    path = write(
        tmp_path / "shop.csv",
        "order,customer_id,kind,amount,created_at\no1,c1,purchase,3,2024-01-01T00:00:00Z\n",
    )
    with pytest.raises(DataError, match="required column 'unit_id' for events is missing"):
        ingest(path, db=db_url, column_map={"event_type": "kind"})
    with pytest.raises(
        DataError, match=r"required column 'client' \(mapped to unit_id\) for events"
    ):
        ingest(path, db=db_url, column_map={"user_id": "client", "event_type": "kind"})
    report = ingest(
        path,
        db=db_url,
        column_map={
            "user_id": "customer_id",
            "event_type": "kind",
            "value": "amount",
            "ts": "created_at",
            "event_id": "order",
        },
    )
    assert report.accepted == 1
    assert events(db_url)["o1"][:4] == ("c1", "purchase", 3.0, 1_704_067_200_000_000)
    audit(db_url, report)


def test_unicode_and_huge_ids(db_url, tmp_path, audit, reasons):
    huge = "u" * 256
    path = write(
        tmp_path / "ids.csv",
        HEADER
        + "e1,ユーザー🙂,click,,2024-01-01T00:00:00Z\n"
        + f"e2,{huge},click,,2024-01-01T00:00:00Z\n"
        + f"{'x' * 129},u3,click,,2024-01-01T00:00:00Z\n"
        + "e4,   ,click,,2024-01-01T00:00:00Z\n",
    )
    report = ingest(path, db=db_url)
    assert (report.accepted, report.quarantined) == (1, 3)
    assert report.by_reason == {"id_too_long": 2, "missing_unit_id": 1}
    assert events(db_url)["e1"][0] == "ユーザー🙂"
    got = reasons(db_url)
    assert got[0][:2] == (3, "id_too_long") and "has 256 characters (limit 255)" in got[0][2]
    assert got[0][3] == "unit_id" and "ids.csv row 3, field 'unit_id'" in got[0][2]
    assert got[1][:2] == (4, "id_too_long") and got[1][3] == "event_id"
    assert got[2][:2] == (5, "missing_unit_id") and "is empty" in got[2][2]
    audit(db_url, report)


def test_nan_infinity_and_text_in_numeric_columns(db_url, tmp_path, audit, reasons):
    path = write(
        tmp_path / "num.csv",
        HEADER
        + "e1,u,purchase,NaN,2024-01-01T00:00:00Z\n"
        + "e2,u,purchase,inf,2024-01-01T00:00:00Z\n"
        + "e3,u,purchase,-Infinity,2024-01-01T00:00:00Z\n"
        + "e4,u,purchase,12 EUR,2024-01-01T00:00:00Z\n"
        + "e5,u,purchase,1e3,2024-01-01T00:00:00Z\n",
    )
    report = ingest(path, db=db_url)
    assert report.by_reason == {"non_finite_value": 3, "non_numeric_value": 1}
    assert report.accepted == 1 and events(db_url)["e5"][2] == 1000.0
    got = reasons(db_url)
    assert got[0][2] == "num.csv row 2, field 'value': 'NaN' is not a finite number"
    assert "'12 EUR' is not a number" in got[3][2] and got[3][0] == 5
    audit(db_url, report)


def test_truncated_gzip_is_rejected_whole_with_location(db_url, tmp_path, audit):
    body = HEADER + "".join(f"e{i},u{i},click,,2024-01-01T00:00:00Z\n" for i in range(5000))
    data = gzip.compress(body.encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        ingest(path, db=db_url, chunk_size=100)
    assert info.value.location.file == "cut.csv.gz"
    assert info.value.location.row is not None and info.value.location.row > 1
    assert "truncated or corrupt" in str(
        info.value
    ) and "nothing from this file was written" in str(info.value)
    assert audit(db_url)["events"] == 0
    # The complete file ingests fine.
    full = tmp_path / "full.csv.gz"
    full.write_bytes(data)
    report = ingest(full, db=db_url, chunk_size=1000)
    assert report.accepted == 5000
    audit(db_url, report)


def test_duplicates_within_and_across_files_and_conflicts(db_url, tmp_path, audit, reasons):
    one = write(
        tmp_path / "one.csv",
        HEADER
        + "e1,u1,click,,2024-01-01T00:00:00Z\n"
        + "e1,u1,click,,2024-01-01T00:00:00Z\n"  # same row twice: duplicate
        + "e2,u2,click,,2024-01-01T00:00:00Z\n"
        + "e2,u2,click,5,2024-01-01T00:00:00Z\n",  # same id, other content: conflict
    )
    two = write(
        tmp_path / "two.csv",
        HEADER
        + "e1,u1,click,,2024-01-01T00:00:00Z\n"  # already stored: duplicate
        + "e3,u3,click,,2024-01-01T00:00:00Z\n"
        + "e3,u3,click,,2024-01-01T00:00:00Z\n"
        + "e2,u9,click,,2024-01-01T00:00:00Z\n",  # stored with other content: conflict
    )
    # chunk_size=2 puts the in-file duplicates of two.csv in different chunks too.
    report = ingest([one, two], db=db_url, chunk_size=2)
    assert (report.rows_read, report.accepted, report.duplicates, report.quarantined) == (
        8,
        3,
        3,
        2,
    )
    assert report.by_reason == {"conflict": 2}
    got = reasons(db_url)
    assert "event id 'e2' was used by row 4 of this file for different content" in got[0][2]
    assert (
        "two.csv row 5, field 'event_id': event id 'e2' is already stored with different content"
        in got[1][2]
    )
    assert events(db_url)["e2"][0] == "u2"  # first writer wins
    audit(db_url, report)


def test_reingest_is_skipped_and_force_counts_duplicates(db_url, tmp_path, audit):
    path = write(
        tmp_path / "ev.csv", HEADER + "e1,u1,click,,2024-01-01T00:00:00Z\n,u2,click,,1704067200\n"
    )
    first = ingest(path, db=db_url)
    assert first.accepted == 2
    again = ingest(path, db=db_url)
    assert again.rows_read == 0 and again.files[0].status == "skipped"
    assert "already ingested" in again.warnings[0]
    forced = ingest(path, db=db_url, force=True)
    assert (forced.rows_read, forced.accepted, forced.duplicates) == (2, 0, 2)
    assert audit(db_url, forced)["events"] == 2


def test_naive_timestamps_with_and_without_timezone(db_url, tmp_path, audit, reasons):
    text = (
        HEADER
        + "e1,u,click,,2024-07-01 12:00:00\n"
        + "e2,u,click,,2024-03-31T02:30:00\n"  # does not exist in Paris (spring forward)
        + "e3,u,click,,2024-10-27T02:30:00\n"  # happens twice in Paris (fall back)
    )
    path = write(tmp_path / "naive.csv", text)
    report = ingest(path, db=db_url)
    assert report.by_reason == {"naive_timestamp": 3}
    assert "has no UTC offset" in reasons(db_url)[0][2] and "--timezone" in reasons(db_url)[0][2]
    audit(db_url, report)
    paris = ingest(path, db=db_url, timezone="Europe/Paris", force=True)
    assert paris.accepted == 1
    assert paris.by_reason == {"nonexistent_local_time": 1, "ambiguous_local_time": 1}
    # 12:00 Paris summer time is 10:00 UTC
    expected = int(datetime(2024, 7, 1, 10, tzinfo=timezone.utc).timestamp()) * 1_000_000
    assert events(db_url)["e1"][3] == expected
    audit(db_url, paris)
    with pytest.raises(ConfigError, match="unknown timezone"):
        ingest(path, db=db_url, timezone="Mars/Olympus", force=True)


def test_epoch_seconds_and_milliseconds_and_bad_times(db_url, tmp_path, audit, reasons):
    path = write(
        tmp_path / "epoch.csv",
        HEADER
        + "s,u,click,,1704067200\n"
        + "ms,u,click,,1704067200123\n"
        + "frac,u,click,,1704067200.5\n"
        + "us,u,click,,1704067200123456\n"
        + "bad,u,click,,yesterday\n"
        + "bad2,u,click,,2024-13-45T00:00:00Z\n",
    )
    report = ingest(path, db=db_url)
    stored = events(db_url)
    assert stored["s"][3] == 1_704_067_200_000_000
    assert stored["ms"][3] == 1_704_067_200_123_000
    assert stored["frac"][3] == 1_704_067_200_500_000
    assert report.by_reason == {"bad_timestamp": 3}
    messages = [r[2] for r in reasons(db_url)]
    assert "microsecond/nanosecond epochs are not accepted" in messages[0]
    assert "'yesterday' is neither ISO 8601 nor epoch" in messages[1]
    assert "is not a valid ISO 8601 timestamp" in messages[2]
    audit(db_url, report)


def test_far_future_is_flagged(db_url, tmp_path, audit, reasons):
    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    path = write(
        tmp_path / "future.csv",
        HEADER + f"ok,u,click,,{soon}\nfar,u,click,,2999-01-01T00:00:00Z\n",
    )
    report = ingest(path, db=db_url)
    assert report.accepted == 1 and report.by_reason == {"future_timestamp": 1}
    assert "days in the future" in reasons(db_url)[0][2]
    audit(db_url, report)


def test_ragged_rows_are_quarantined_as_malformed(db_url, tmp_path, audit, reasons):
    path = write(
        tmp_path / "ragged.csv", HEADER + "e1,u,click,,2024-01-01T00:00:00Z\ne2,u,click\n\n"
    )
    report = ingest(path, db=db_url)
    assert (report.rows_read, report.accepted, report.by_reason) == (2, 1, {"malformed_row": 1})
    assert "has 3 fields but the header has 5" in reasons(db_url)[0][2]
    audit(db_url, report)


def test_extra_columns_go_to_properties_and_drift_is_reported(db_url, tmp_path, audit):
    first = write(
        tmp_path / "day1.csv",
        "unit_id,event_type,timestamp,country,age\nu,click,1704067200,FR,31\n",
    )
    report = ingest(first, db=db_url, source_name="shop")
    assert report.drift == {}
    (props,) = [e[4] for e in events(db_url).values()]
    assert json.loads(props) == {"age": "31", "country": "FR"}
    second = write(
        tmp_path / "day2.csv",
        "unit_id,event_type,timestamp,age,device\nu,click,1704067201,unknown,ios\n",
    )
    report2 = ingest(second, db=db_url, source_name="shop")
    drift = report2.drift["shop"]
    assert drift.added == ("device",) and drift.removed == ("country",)
    assert drift.changed == {"age": ("integer", "string")}
    assert "schema drift in shop" in report2.summary()
    audit(db_url, report2)


def test_jsonl_gzip_parquet_dataframe_and_records(db_url, tmp_path, audit):
    pd = pytest.importorskip("pandas")
    rows = [
        {
            "event_id": "j1",
            "unit_id": "u1",
            "event_type": "click",
            "timestamp": "2024-01-01T00:00:00Z",
        },
        {
            "event_id": "j2",
            "unit_id": 42,
            "event_type": "buy",
            "value": 2.5,
            "timestamp": 1704067200,
            "props": {"a": 1},
        },
    ]
    jsonl = tmp_path / "ev.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        fh.write("{not json\n")
        fh.write("[1, 2]\n")
    report = ingest(jsonl, db=db_url)
    assert (report.rows_read, report.accepted, report.by_reason) == (4, 2, {"malformed_row": 2})
    assert json.loads(events(db_url)["j2"][4]) == {"props": {"a": 1}}
    frame = pd.DataFrame(
        {
            "event_id": ["p1", "p2", "p3"],
            "unit_id": ["u1", None, "u3"],
            "event_type": ["click"] * 3,
            "value": [1.0, 2.0, float("nan")],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        }
    )
    parquet = tmp_path / "ev.parquet"
    frame.to_parquet(parquet)
    report = ingest(parquet, db=db_url)
    assert (report.accepted, report.by_reason) == (2, {"missing_unit_id": 1})
    assert events(db_url)["p3"][2] is None  # NaN in a DataFrame means "missing"
    frame2 = frame.assign(event_id=["d1", "d2", "d3"])
    report = ingest(frame2, db=db_url)
    assert report.accepted == 2 and report.files[0].source == "dataframe"
    report = ingest(
        iter(
            [
                {
                    "unit_id": "r",
                    "event_type": "x",
                    "timestamp": datetime(2024, 1, 1, tzinfo=timezone.utc),
                }
            ]
        ),
        db=db_url,
    )
    assert report.accepted == 1
    audit(db_url, report)


def test_derived_event_id_recipe_is_the_documented_one(db_url, tmp_path):
    path = write(tmp_path / "noid.csv", "unit_id,event_type,value,timestamp\nu1,buy,2,1704067200\n")
    ingest(path, db=db_url)
    expected = hash_hex("u1\x1fbuy\x1f2.0\x1f\x1f1704067200000000\x1f")
    assert list(events(db_url)) == [expected]


def _register(url: str) -> None:
    store = open_store(url)
    try:
        store.register_experiments(
            [
                {
                    "key": "checkout",
                    "variants": [{"name": "control", "weight": 1}, {"name": "new", "weight": 1}],
                }
            ]
        )
    finally:
        store.close()


def test_exposures_unknown_variant_and_experiment_and_attributes(db_url, tmp_path, audit, reasons):
    _register(db_url)
    path = tmp_path / "exp.jsonl"
    lines = [
        {
            "experiment": "checkout",
            "unit_id": "u1",
            "variant": "new",
            "timestamp": "2024-01-01T00:00:00+00:00",
            "attributes": {"country": "FR", "beta": True},
        },
        {
            "experiment": "checkout",
            "unit_id": "u2",
            "variant": "blue",
            "timestamp": "2024-01-01T00:00:00+00:00",
        },
        {
            "experiment": "pricing",
            "unit_id": "u3",
            "variant": "a",
            "timestamp": "2024-01-01T00:00:00+00:00",
        },
        {
            "experiment": "checkout",
            "unit_id": "u4",
            "variant": "control",
            "timestamp": "2024-01-01T00:00:00+00:00",
            "platform": "ios",
        },
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = ingest(path, db=db_url)
    assert report.files[0].kind == "exposures"
    assert (report.accepted, report.by_reason) == (
        2,
        {"unknown_variant": 1, "unknown_experiment": 1},
    )
    got = reasons(db_url)
    assert "'blue' is not a variant of 'checkout' (variants: control, new)" in got[0][2]
    assert "experiment 'pricing' is not registered" in got[1][2]
    store = open_store(db_url)
    try:
        t = store.tables
        with store.engine.connect() as conn:
            ids = {r.unit_id: r.event_id for r in conn.execute(select(t.exposures))}
            attrs = sorted(tuple(r) for r in conn.execute(select(t.exposure_attributes)))
    finally:
        store.close()
    ts_us = 1_704_067_200_000_000
    assert ids["u1"] == exposure_event_id("checkout", "u1", "new", ts_us)
    assert attrs == sorted(
        [(ids["u1"], "beta", "true"), (ids["u1"], "country", "FR"), (ids["u4"], "platform", "ios")]
    )
    audit(db_url, report)


def test_exposure_conflicting_attributes_are_quarantined(db_url, tmp_path, audit):
    _register(db_url)
    base = {
        "experiment": "checkout",
        "unit_id": "u1",
        "variant": "new",
        "timestamp": "2024-01-01T00:00:00Z",
    }
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps({**base, "attributes": {"country": "FR"}}) + "\n")
    b = tmp_path / "b.jsonl"
    c = tmp_path / "c.jsonl"
    b.write_text(json.dumps({**base, "attributes": {"country": "FR"}}) + "\n")
    c.write_text(json.dumps({**base, "attributes": {"country": "DE"}}) + "\n")
    ingest(a, db=db_url)
    report = ingest([b, c], db=db_url)
    assert (report.accepted, report.duplicates, report.by_reason) == (0, 1, {"conflict": 1})
    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            attrs = conn.execute(select(store.tables.exposure_attributes.c.value)).scalars().all()
    finally:
        store.close()
    assert attrs == ["FR"]  # the conflicting row did not leak an attribute
    audit(db_url, report)


def test_bad_chunk_size_and_kind(tmp_path, sqlite_url):
    path = write(tmp_path / "e.csv", HEADER)
    with pytest.raises(ConfigError):
        ingest(path, db=sqlite_url, chunk_size=0)
    with pytest.raises(ConfigError):
        ingest(path, db=sqlite_url, kind="clicks")
    with pytest.raises(DataError, match="no such file"):
        ingest(tmp_path / "missing.csv", db=sqlite_url)


def test_duckdb_store_through_the_portable_path(duckdb_url, tmp_path, audit, reasons):
    path = write(
        tmp_path / "d.csv",
        HEADER
        + "e1,u1,click,,2024-01-01T00:00:00Z\n"
        + "e1,u1,click,,2024-01-01T00:00:00Z\n"
        + "e2,u2,buy,oops,2024-01-01T00:00:00Z\n",
    )
    report = ingest(path, db=duckdb_url)
    assert (report.accepted, report.duplicates, report.by_reason) == (
        1,
        1,
        {"non_numeric_value": 1},
    )
    forced = ingest(path, db=duckdb_url, force=True)
    assert (forced.accepted, forced.duplicates, forced.quarantined) == (0, 2, 1)
    assert [r[1] for r in reasons(duckdb_url)] == ["non_numeric_value"] * 2
    assert audit(duckdb_url, forced)["batches"] == 2


def test_crlf_quoted_newlines_and_row_numbers(db_url, tmp_path, audit, reasons):
    path = tmp_path / "crlf.csv"
    path.write_bytes(
        b"event_id,unit_id,event_type,note,timestamp\r\n"
        b'e1,u1,click,"two\r\nlines",2024-01-01T00:00:00Z\r\n'
        b"e2,,click,x,2024-01-01T00:00:00Z\r\n"
    )
    report = ingest(path, db=db_url)
    assert (report.rows_read, report.accepted, report.quarantined) == (2, 1, 1)
    assert json.loads(events(db_url)["e1"][4]) == {"note": "two\r\nlines"}
    # The record after the two-line record starts on physical line 4.
    assert reasons(db_url)[0][:2] == (4, "missing_unit_id")
    audit(db_url, report)


def test_quarantine_jsonl_export_round_trip(sqlite_url, tmp_path):
    from abkit.ingest.quarantine import export_quarantine

    path = write(tmp_path / "q.csv", HEADER + "e1,u1,click,abc,2024-01-01T00:00:00Z\n")
    ingest(path, db=sqlite_url)
    out = tmp_path / "q.jsonl"
    assert export_quarantine(out, sqlite_url) == 1
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["value"] == "abc" and row["_abkit_reason_code"] == "non_numeric_value"
    assert row["_abkit_row_number"] == 2
    row["value"] = "1.5"
    out.write_text(json.dumps(row) + "\n")
    fixed = ingest(out, db=sqlite_url)
    assert (fixed.accepted, fixed.quarantined) == (1, 0)
    assert events(sqlite_url)["e1"][4] is None  # _abkit_ columns did not become properties
    with pytest.raises(ConfigError, match=r"\.csv or \.jsonl"):
        export_quarantine(tmp_path / "q.xlsx", sqlite_url)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abkit.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


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
