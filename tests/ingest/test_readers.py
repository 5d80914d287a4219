"""Readers under hostile inputs: bounded memory, located errors, exit 2, never a crash.

Each bomb runs ``abkit ingest`` in a child process that reports its own peak RSS; the
peak is compared with the same child ingesting a small normal file. Sizes are smaller
than a real attack (a 64 MB line instead of 1 GB, 128 MiB of gzipped zeros instead of
2 GiB, 300,000 JSON keys instead of 10^6) but each is several times the 16 MiB line limit, so reading it whole would show.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from abkit.errors import DataError
from abkit.ingest.ingestor import ingest
from abkit.ingest.readers import ReadLimits, open_reader, verify_gzip

MB = 1 << 20
HEADER = "event_id,unit_id,event_type,value,timestamp\n"
# The peak memory of a child is read from /proc: the bombs run on Linux only.
on_linux = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="peak memory is read from /proc (Linux)"
)
# Runs the CLI in-process and prints [exit code, peak RSS in KiB, stderr]. The peak is
# VmHWM, which belongs to the program's own address space: ru_maxrss would also count
# the pytest process the child was forked from.
CHILD = (
    "import contextlib, io, json, sys\n"
    "from abkit.cli.main import main\n"
    "err = io.StringIO()\n"
    "with contextlib.redirect_stderr(err):\n"
    "    code = main(['ingest', sys.argv[1], '--db', sys.argv[2], '--no-progress'])\n"
    "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
    "peak = int(status.split()[0])\n"
    "print(json.dumps([code, peak, err.getvalue()]))\n"
)


def _cli_ingest(source: Path, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``abkit ingest SOURCE --db URL`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "abkit", "ingest", str(source), "--db", url],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _ingest_child(path: Path, tmp_path: Path) -> tuple[int, float, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), f"sqlite:///{tmp_path / 'bomb.db'}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    code, peak_kib, err = json.loads(done.stdout.strip().splitlines()[-1])
    return code, peak_kib / 1024, err


@pytest.fixture(scope="module")
def baseline_mb(tmp_path_factory: pytest.TempPathFactory) -> float:
    folder = tmp_path_factory.mktemp("baseline")
    normal = folder / "normal.csv"
    normal.write_text(
        "unit_id,event_type,timestamp\n"
        + "".join(f"u{i},click,{1_704_067_200 + i}\n" for i in range(2000))
    )
    code, peak, err = _ingest_child(normal, folder)
    assert code == 0, err
    return peak


def _one_located_line(err: str, file_name: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("abkit ingest: error: ") and file_name in err, err
    assert "unexpected" not in err and "Traceback" not in err
    return err


@on_linux
def test_a_64_mb_single_line_csv_is_refused_with_flat_memory(tmp_path, baseline_mb):
    path = tmp_path / "one-line.csv"
    with open(path, "wb") as fh:
        fh.write(b"unit_id,event_type,timestamp\n")
        fh.write(b"u1,click," + b"9" * (64 * MB))
    code, peak, err = _ingest_child(path, tmp_path)
    assert code == 2
    assert "row 2: line 2 is longer than 16,777,216 bytes" in _one_located_line(err, "one-line.csv")
    assert peak - baseline_mb < 40, (peak, baseline_mb)  # reading the line whole: > 64


@on_linux
def test_a_gzip_bomb_is_refused_with_flat_memory(tmp_path, baseline_mb):
    path = tmp_path / "bomb.csv.gz"
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(MB)
    with open(path, "wb") as fh:
        fh.write(compressor.compress(b"unit_id,event_type,timestamp\n"))
        for _ in range(128):
            fh.write(compressor.compress(zeros))
        fh.write(compressor.flush())
    assert path.stat().st_size < 2 * MB  # 128 MiB of zeros once expanded
    code, peak, err = _ingest_child(path, tmp_path)
    assert code == 2
    assert "line 2 is longer than 16,777,216 bytes" in _one_located_line(err, "bomb.csv.gz")
    assert peak - baseline_mb < 40, (peak, baseline_mb)


@on_linux
def test_a_jsonl_object_with_300_000_keys_is_refused_quickly(tmp_path, baseline_mb):
    path = tmp_path / "keys.jsonl"
    keys = ",".join(f'"k{i}":1' for i in range(300_000))
    path.write_text(
        '{"unit_id":"u","event_type":"e","timestamp":"2024-01-01T00:00:00Z"}\n{' + keys + "}\n"
    )
    code, peak, err = _ingest_child(path, tmp_path)
    assert code == 2
    message = _one_located_line(err, "keys.jsonl")
    assert "row 2: 300,003 distinct columns, more than the limit of 4,096" in message
    # Parsing the 3 MB line is the whole cost; no per-column work follows.
    assert peak - baseline_mb < 120, (peak, baseline_mb)


@on_linux
def test_a_header_field_over_the_csv_limit_names_the_file(tmp_path, baseline_mb):
    path = tmp_path / "header.csv"
    path.write_bytes(b"unit_id,event_type," + b"h" * (20 * MB) + b"\nu,e,1\n")
    code, _peak, err = _ingest_child(path, tmp_path)
    assert code == 2
    assert "row 1: line 1 is longer than" in _one_located_line(err, "header.csv")


def test_smaller_limits_are_honoured_by_every_text_reader(tmp_path):
    limits = ReadLimits(max_line_bytes=100, max_columns=3)
    wide = tmp_path / "wide.csv"
    wide.write_text("a,b,c,d\n1,2,3,4\n")
    with pytest.raises(DataError, match="4 distinct columns") as info:
        open_reader(wide, limits=limits).columns()
    assert info.value.location.row == 1
    long_line = tmp_path / "long.jsonl"
    long_line.write_text('{"a": 1}\n{"a": "' + "x" * 200 + '"}\n')
    reader = open_reader(long_line, limits=limits)
    with pytest.raises(DataError, match="line 2 is longer than 100 bytes"):
        reader.verify()  # type: ignore[attr-defined]
    with pytest.raises(DataError, match="line 2 is longer than 100 bytes"):
        list(reader.chunks(10))  # the readers bound lines too, not only the pre-flight
    many = tmp_path / "many.jsonl"
    many.write_text('{"a": 1}\n' * 1000 + '{"a": 1, "b": 2, "c": 3, "d": 4}\n')
    (chunk,) = list(open_reader(many, limits=limits).chunks(5000))
    assert chunk.malformed == [(1001, "{...4 keys...}", "has 4 keys, more than the limit of 3")]


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.77])
def test_truncated_gzip_names_the_first_incomplete_line(tmp_path, cut):
    body = "".join(f"e{i},u{i},click,,2024-01-01T00:00:00Z\n" for i in range(50_000)).encode()
    data = gzip.compress(body)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: int(len(data) * cut)])
    readable = zlib.decompressobj(wbits=31).decompress(data[: int(len(data) * cut)])
    complete = readable.count(b"\n")
    assert not readable.endswith(b"\n") or complete  # the cut falls inside a line
    with pytest.raises(DataError) as info:
        verify_gzip(path, "cut.csv.gz", text=True)
    assert info.value.location.row == complete + 1
    assert f"line {complete + 1} is incomplete" in str(info.value)
    # The line named is really the first one not all there.
    assert body.split(b"\n")[complete] != readable.split(b"\n")[complete]


def test_multi_member_gzip_and_trailing_garbage(tmp_path):
    path = tmp_path / "two.csv.gz"
    path.write_bytes(gzip.compress(b"a\n1\n") + gzip.compress(b"2\n3\n"))
    verify_gzip(path, "two.csv.gz", text=True)  # concatenated members are one stream
    path.write_bytes(gzip.compress(b"a\n1\n") + b"garbage")
    with pytest.raises(DataError, match="line 3 is incomplete"):
        verify_gzip(path, "two.csv.gz", text=True)


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
    result = _cli_ingest(folder, url, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "is a directory" in result.stderr


def _stored_events(url: str) -> list[tuple[object, ...]]:
    from sqlalchemy import select

    from abkit.store.store import open_store

    store = open_store(url)
    try:
        events = store.tables.events
        query = select(
            events.c.event_id, events.c.unit_id, events.c.value, events.c.currency
        ).order_by(events.c.ts_us)
        with store.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]
    finally:
        store.close()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_blank_lines_before_the_header_are_skipped_not_an_empty_file(tmp_path, newline, reasons):
    lines = ["", "", "unit_id,event_type,timestamp", "u1,e,1700000000", "u2,e,bad"]
    path = tmp_path / "blank-first.csv"
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    url = f"sqlite:///{tmp_path / 'a.db'}"
    report = ingest(path, db=url)
    assert (report.accepted, report.quarantined) == (1, 1)
    ((row, code, _, _),) = reasons(url)
    assert (row, code) == (5, "bad_timestamp")  # the blank lines count


def test_a_csv_with_cr_line_ends_over_the_line_limit_in_all_is_read(tmp_path):
    # old Mac exports end lines with CR alone; the readers split on it, so must the check
    rows = "".join(f"u{i},e,{1700000000 + i}\r" for i in range(3000))
    path = tmp_path / "cr.csv"
    path.write_text("unit_id,event_type,timestamp\r" + rows, encoding="utf-8", newline="")
    limits = ReadLimits(max_line_bytes=4096)  # the whole file is ~70 KB
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert ingest(path, db=url, limits=limits).accepted == 3000


def test_a_jsonl_field_first_seen_after_the_first_rows_is_that_field(tmp_path):
    # 1,000 views without a value, then purchases with value, currency and an order id:
    # the plan is made from the first rows, the fields must still be read
    rows = [
        {"unit_id": f"u{i}", "event_type": "view", "timestamp": 1700000000 + i} for i in range(1000)
    ]
    rows += [
        {
            "unit_id": "u1",
            "event_type": "purchase",
            "timestamp": 1700002000,
            "value": 49.99,
            "currency": "EUR",
            "event_id": "order-1",
        },
        {
            "unit_id": "u2",
            "event_type": "purchase",
            "timestamp": 1700002001,
            "value": 59.99,
            "currency": "EUR",
            "event_id": "order-1",
        },
    ]
    path = tmp_path / "late.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    report = ingest(path, db=url)
    assert (report.accepted, report.quarantined) == (1001, 1)  # the id reused: a conflict
    purchase = [row for row in _stored_events(url) if row[0] == "order-1"]
    assert purchase == [("order-1", "u1", 49.99, "EUR")]


def test_a_blank_event_id_means_no_id(tmp_path):
    path = tmp_path / "blank-id.csv"
    path.write_text(
        "event_id,unit_id,event_type,timestamp\n ,u1,e,1700000000\n ,u2,e,1700000001\n",
        encoding="utf-8",
    )
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert ingest(path, db=url).accepted == 2
    assert all(len(str(row[0])) == 32 for row in _stored_events(url))  # content hashes


def test_a_dataframe_with_two_columns_of_one_name_is_refused(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        [["u1", "e", 1700000000, 9.99, 19.99]],
        columns=["unit_id", "event_type", "timestamp", "value", "value"],
    )
    with pytest.raises(DataError, match="'value' appears twice"):
        ingest(frame, db=f"sqlite:///{tmp_path / 'a.db'}")


def test_damaged_parquet_pages_and_deep_jsonl_are_located_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "unit_id": [f"u{i}" for i in range(20_000)],
            "event_type": ["e"] * 20_000,
            "timestamp": [1700000000 + i for i in range(20_000)],
        }
    )
    path = tmp_path / "damaged.parquet"
    pq.write_table(table, path, row_group_size=2_000, compression="snappy")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(b ^ 0xFF for b in data[middle : middle + 200])
    path.write_bytes(bytes(data))
    url = f"sqlite:///{tmp_path / 'a.db'}"
    for source in (path, tmp_path / "deep.jsonl"):
        if source.suffix == ".jsonl":
            source.write_text("[" * 100_000 + "\n", encoding="utf-8")
        result = _cli_ingest(source, url, tmp_path)
        assert result.returncode == 2, result.stderr
        assert source.name in result.stderr and "unexpected error" not in result.stderr


def test_a_parquet_file_without_rows_has_its_columns_checked(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "zero.parquet"
    empty = pa.array([], pa.string())
    pq.write_table(pa.table({"user": empty, "ts": pa.array([], pa.int64())}), path)
    with pytest.raises(DataError, match="required column 'unit_id'"):
        ingest(path, db=f"sqlite:///{tmp_path / 'a.db'}")


def test_cr_line_ends_are_counted_in_utf8_errors_and_delimiter_only_lines_are_blank(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    path = tmp_path / "cr-latin.csv"
    path.write_bytes(b"unit_id,event_type,timestamp\ru1,e,1700000000\ru2,e,1\rcaf\xe9,e,1\r")
    with pytest.raises(DataError) as info:
        ingest(path, db=url)
    assert info.value.location.row == 4
    blank = tmp_path / "delimiters-first.csv"
    blank.write_text(",,\nunit_id,event_type,timestamp\nu1,e,1700000000\n", encoding="utf-8")
    assert ingest(blank, db=url).accepted == 1
