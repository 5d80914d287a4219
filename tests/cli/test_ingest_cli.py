"""``abkit ingest`` and ``abkit quarantine`` end to end (in-process and as a real command)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

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
    assert "exported 2 quarantined row(s)" in capsys.readouterr().out
    with open(export, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["_abkit_reason_code"] for r in rows] == ["non_numeric_value", "naive_timestamp"]
    # Fix the rows in place and re-ingest the export: the _abkit_ columns are ignored.
    rows[0]["value"] = "12"
    rows[1]["created_at"] = "2024-01-01T10:00:00+01:00"
    with open(export, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code = main(["ingest", str(export), "--db", db, *mapping, "--strict", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "accepted 2, duplicates 0, quarantined 0" in out
    assert "drift" not in out  # a different source name: no drift against shop.csv


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
    assert (
        "100.0%" in result.stderr and "rows/s" in result.stderr and "Traceback" not in result.stderr
    )
    assert "accepted 3,000" in result.stdout
