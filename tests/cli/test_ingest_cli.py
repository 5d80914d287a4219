"""``abkit ingest`` and ``abkit quarantine`` end to end (in-process and as a real command)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abkit.cli.main import main

HEADER = "event_id,customer_id,event_type,value,created_at\n"


def test_ingest_summary_strict_exit_and_quarantine_round_trip(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    data = tmp_path / "shop.csv"
    data.write_text(
        HEADER
        + "e1,c1,purchase,9.5,2024-01-01T10:00:00Z\n"
        + "e2,c2,purchase,12 EUR,2024-01-01T10:00:00Z\n"
        + "e3,c3,click,,2024-01-01 10:00:00\n"
    )
    mapping = ["--map", "unit_id=customer_id,ts=created_at"]
    code = main(["ingest", str(data), "--db", db, *mapping, "--strict", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 4
    assert "read 3 rows" in out and "accepted 1, duplicates 0, quarantined 2" in out
    assert "quarantined naive_timestamp: 1" in out and "quarantined non_numeric_value: 1" in out
    assert "strict mode: 2 row(s) quarantined" in err

    assert main(["quarantine", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "shop.csv row 3, field 'value': '12 EUR' is not a number" in listing
    assert (
        "shop.csv row 4, field 'created_at' (timestamp): '2024-01-01 10:00:00' has no UTC offset"
        in listing
    )

    assert main(["quarantine", "--db", db, "--reason", "non_numeric_value"]) == 0
    assert "naive_timestamp" not in capsys.readouterr().out

    export = tmp_path / "fix.csv"
    assert main(["quarantine", "--db", db, "--export", str(export)]) == 0
    out = capsys.readouterr().out
    assert "exported 2 quarantined row(s)" in out and "to re-ingest after fixing" in out
    with open(export, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["_abkit_reason_code"] for r in rows] == ["non_numeric_value", "naive_timestamp"]
    # In abkit's own terms: the mapped columns carry abkit names, so no --map is needed.
    assert {"event_id", "unit_id", "event_type", "value", "timestamp"} <= set(rows[0])
    assert not {"customer_id", "created_at"} & set(rows[0])
    # Fix the rows in place and re-ingest the export as is: the _abkit_ columns are ignored.
    rows[0]["value"] = "12"
    rows[1]["timestamp"] = "2024-01-01T10:00:00+01:00"
    with open(export, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code = main(["ingest", str(export), "--db", db, "--strict", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "accepted 2, duplicates 0, quarantined 0" in out
    assert "drift" not in out  # a different source name: no drift against shop.csv

    # Both quarantine rows are now resolved; --unresolved hides them, --purge deletes them.
    assert main(["quarantine", "--db", db]) == 0
    assert capsys.readouterr().out.count(" resolved ") == 2
    assert main(["quarantine", "--db", db, "--unresolved"]) == 0
    assert "no quarantined rows match" in capsys.readouterr().out
    assert main(["quarantine", "--db", db, "--purge"]) == 0
    assert "purged 2 resolved quarantine row(s)" in capsys.readouterr().out


def test_export_with_a_timezone_writes_offsets_and_re_ingests_as_is(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'tz.db'}"
    data = tmp_path / "paris.csv"
    data.write_text(HEADER + "e1,c1,purchase,oops,2024-07-01 12:00:00\n")
    mapping = ["--map", "unit_id=customer_id,ts=created_at", "--timezone", "Europe/Paris"]
    assert main(["ingest", str(data), "--db", db, *mapping, "--no-progress"]) == 5
    capsys.readouterr()
    export = tmp_path / "fix.jsonl"
    assert main(["quarantine", "--db", db, "--export", str(export)]) == 0
    (row,) = [json.loads(line) for line in export.read_text().splitlines()]
    assert row["timestamp"] == "2024-07-01T10:00:00+00:00" and row["unit_id"] == "c1"
    row["value"] = 3.5
    export.write_text(json.dumps(row) + "\n")
    assert main(["ingest", str(export), "--db", db, "--no-progress"]) == 0
    assert "accepted 1, duplicates 0, quarantined 0" in capsys.readouterr().out


def test_spreadsheet_export_neutralises_formulas_and_says_which_is_which(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 's.db'}"
    data = tmp_path / "evil.csv"
    data.write_text(
        "unit_id,event_type,value,timestamp\n"
        '"=HYPERLINK(""http://x"")",click,+1,2024-01-01 00:00:00\n'
        "@sum,-click,\tx,2024-01-01 00:00:00\n"
    )
    assert main(["ingest", str(data), "--db", db, "--no-progress"]) == 5
    capsys.readouterr()
    raw_path, sheet_path = tmp_path / "raw.csv", tmp_path / "sheet.csv"
    assert main(["quarantine", "--db", db, "--export", str(raw_path)]) == 0
    assert "values verbatim" in capsys.readouterr().out
    assert main(["quarantine", "--db", db, "--export", str(sheet_path), "--spreadsheet"]) == 0
    assert "do not re-ingest this copy" in capsys.readouterr().out
    with open(raw_path, newline="") as fh:
        raw = list(csv.DictReader(fh))
    with open(sheet_path, newline="") as fh:
        sheet = list(csv.DictReader(fh))
    assert raw[0]["unit_id"] == '=HYPERLINK("http://x")' and raw[0]["value"] == "+1"
    assert sheet[0]["unit_id"] == '\'=HYPERLINK("http://x")' and sheet[0]["value"] == "'+1"
    assert [sheet[1][k] for k in ("unit_id", "event_type", "value")] == ["'@sum", "'-click", "'\tx"]
    for row in sheet:  # no cell a spreadsheet would evaluate
        assert not any(str(v).startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values())
    assert (
        main(["quarantine", "--db", db, "--export", str(tmp_path / "x.jsonl"), "--spreadsheet"])
        == 2
    )


def test_nothing_accepted_is_exit_5_with_the_fix_in_the_summary(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'n.db'}"
    data = tmp_path / "naive.csv"
    data.write_text(
        "unit_id,event_type,timestamp\n"
        + "".join(f"u{i},click,2024-01-01 10:00:00\n" for i in range(3))
    )
    assert main(["ingest", str(data), "--db", db, "--no-progress"]) == 5
    captured = capsys.readouterr()
    assert "3 rows have no time zone: pass --timezone" in captured.out
    assert "see the rejected rows with: abkit quarantine --batch 1;" in captured.out
    assert "--batch N" not in captured.out
    assert "nothing accepted: all 3 row(s) were quarantined" in captured.err
    # The same file again: skipped, and the message names the real flag.
    assert main(["ingest", str(data), "--db", db, "--no-progress"]) == 0
    assert "pass --force to re-read" in capsys.readouterr().out


def test_per_file_options_make_the_readme_example_work(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    registry = tmp_path / "experiments.toml"
    registry.write_text(
        '[[experiments]]\nkey = "k"\n[[experiments.variants]]\nname = "a"\n[[experiments.variants]]\nname = "b"\n'
    )
    events = tmp_path / "events.csv"
    events.write_text("customer_id,event_type,created_at\nc1,purchase,2024-07-01 12:00:00\n")
    exposures = tmp_path / "exposures.jsonl"
    exposures.write_text(
        json.dumps(
            {
                "experiment": "k",
                "unit_id": "c1",
                "variant": "a",
                "timestamp": "2024-07-01T11:00:00Z",
            }
        )
        + "\n"
    )
    argv = [
        "ingest",
        f"{events}:map=unit_id=customer_id,timestamp=created_at:timezone=Europe/Paris",
        str(exposures),
        "--db",
        db,
        "--experiments",
        str(registry),
        "--strict",
        "--no-progress",
    ]
    assert main(argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "accepted 2, duplicates 0, quarantined 0" in out
    # The same options for every file (the old way) fail on the exposures file, clearly.
    code = main(
        [
            *("ingest", str(events), str(exposures), "--db", db, "--force", "--no-progress"),
            *("--map", "unit_id=customer_id,timestamp=created_at"),
        ]
    )
    assert code == 2 and "exposures.jsonl" in capsys.readouterr().err
    # A per-file source name, and a path that merely looks like options is still a path.
    odd = tmp_path / "odd:source=x.csv"
    odd.write_text("unit_id,event_type,timestamp\nu9,view,2024-07-01T10:00:00Z\n")
    named = f"{events}:map=unit_id=customer_id,timestamp=created_at:source=shop:timezone=UTC"
    assert main(["ingest", named, str(odd), "--db", db, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "  shop: batch" in out and "  odd:source=x.csv: batch" in out
    code = main(["ingest", f"{events}:kind=sideways", "--db", db, "--no-progress"])
    assert code == 2 and "kind must be auto, events or exposures" in capsys.readouterr().err


def test_missing_column_is_one_line_exit_2(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    data.write_text("id,user,ts\n1,u,1704067200\n")
    code = main(["ingest", str(data), "--db", f"sqlite:///{tmp_path / 'x.db'}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert (
        "bad.csv, field 'unit_id': required column 'unit_id' for events is missing; columns found: 'id', 'user', 'ts'"
        in err
    )


def test_timezone_and_experiments_options(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    registry = tmp_path / "reg.toml"
    registry.write_text(
        '[[experiments]]\nkey = "k"\n[[experiments.variants]]\nname = "a"\n[[experiments.variants]]\nname = "b"\n'
    )
    exposures = tmp_path / "exp.jsonl"
    exposures.write_text(
        json.dumps(
            {"experiment": "k", "unit_id": "u", "variant": "a", "timestamp": "2024-07-01T12:00:00"}
        )
        + "\n"
    )
    code = main(
        [
            "ingest",
            str(exposures),
            "--db",
            db,
            "--experiments",
            str(registry),
            "--timezone",
            "Europe/Paris",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "registered 1 experiment(s)" in captured.err
    assert "exposures, read 1, accepted 1" in captured.out
    code = main(["ingest", str(exposures), "--db", db, "--timezone", "Mars/Base"])
    assert code == 2 and "unknown timezone 'Mars/Base'" in capsys.readouterr().err


def test_progress_bar_goes_to_stderr_as_a_real_command(tmp_path):
    data = tmp_path / "many.csv"
    data.write_text(
        "unit_id,event_type,timestamp\n"
        + "".join(f"u{i},click,{1704067200 + i}\n" for i in range(3000))
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "abkit",
            "ingest",
            str(data),
            "--db",
            f"sqlite:///{tmp_path / 'p.db'}",
            "--progress",
            "--chunk-size",
            "500",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr and "3,000 rows committed" in result.stderr
    assert "Traceback" not in result.stderr
    assert "accepted 3,000" in result.stdout


def test_without_a_terminal_progress_is_periodic_log_lines(tmp_path):
    from abkit.ingest.progress import ProgressEvent, ProgressReporter

    class Log:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    log = Log()
    reporter = ProgressReporter(log, interval=3600)  # type: ignore[arg-type]
    for rows in (500, 1000, 1500):
        reporter(ProgressEvent("f.csv", 1, 1, rows, rows, rows / 3000, 1.0))
    reporter(ProgressEvent("f.csv", 1, 1, 3000, 3000, 1.0, 2.0, done=True))
    lines = log.text.splitlines()
    # The first line, then nothing until the interval passes, then the final line.
    assert len(lines) == 2
    assert lines[0].startswith("abkit ingest: [1/1] f.csv: 500 rows committed (17%), 1s elapsed")
    assert "about" in lines[0] and "s left" in lines[0]
    assert lines[1] == "abkit ingest: [1/1] f.csv: 3,000 rows done (100%), 2s elapsed"


_CELLS = st.sampled_from(
    (
        *("u1", "click", "1.5", "2024-01-01T00:00:00Z", "2024-01-01 00:00", "", '"', '""'),
        *("é", "\x00", "=1+1", "nan", "1e400", "-0", "{}", "[1]", '{"a": 1}', "\ud800"),
        *(",", ";", "\t"),
    )
)
_TEXT = st.lists(st.lists(_CELLS, max_size=6).map(",".join), max_size=8).map("\n".join)
_HEADERS = st.sampled_from(
    (
        *("unit_id,event_type,timestamp", "event_id,unit_id,event_type,value,timestamp", ""),
        *("a;b", "experiment,unit_id,variant,timestamp", "unit_id,unit_id", '"unit_id\n",x'),
    )
)


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".csv", ".jsonl", ".csv.gz", ".parquet", ".tsv"]))
    kind = draw(st.sampled_from(["text", "json", "bytes"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "json":
        values = st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)
        )
        rows = st.lists(
            st.one_of(
                st.dictionaries(
                    st.sampled_from(["unit_id", "event_type", "timestamp", "value", "x"]), values
                ),
                values,
            ),
            max_size=5,
        )
        body = "\n".join(json.dumps(row) for row in draw(rows)).encode()
    else:
        text = draw(_HEADERS) + "\n" + draw(_TEXT)
        body = text.encode("utf-8", "surrogatepass")
    if suffix.endswith(".gz"):
        import gzip

        body = gzip.compress(body)
        if draw(st.booleans()):
            body = body[: draw(st.integers(0, len(body)))]  # truncated
    return suffix, body


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(file=hostile_files())
def test_no_input_file_makes_the_cli_exit_with_an_unexpected_error(tmp_path, capsys, file):
    suffix, body = file
    path = tmp_path / f"input{suffix}"
    path.write_bytes(body)
    db = f"sqlite:///{tmp_path / 'fuzz.db'}"
    code = main(["ingest", str(path), "--db", db, "--no-progress", "--force"])
    err = capsys.readouterr().err
    assert code in (0, 2, 4, 5), err
    assert "unexpected error" not in err and "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and "input" in err, err
