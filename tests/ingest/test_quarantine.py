"""Quarantine listing, export (re-ingest and spreadsheet), resolution and purge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from abkit.errors import ConfigError
from abkit.ingest.ingestor import ingest

HEADER = "event_id,unit_id,event_type,value,timestamp\n"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abkit.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


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


def test_latest_view_and_resolution_through_a_fixed_export(db_url, tmp_path):
    from abkit.ingest.quarantine import export_quarantine, purge_quarantine, quarantined_rows

    day = tmp_path / "day.csv"
    day.write_text(HEADER + "e1,u1,buy,x,2024-01-01T00:00:00Z\ne2,u2,buy,y,2024-01-01T00:00:00Z\n")
    ingest(day, db=db_url, source_name="shop")
    day.write_text(HEADER + "e3,u3,buy,z,2024-01-02T00:00:00Z\n")  # the next day's file
    ingest(day, db=db_url, source_name="shop")
    assert len(list(quarantined_rows(db_url))) == 3
    latest = list(quarantined_rows(db_url, latest=True))
    assert [entry["raw"]["event_id"] for entry in latest] == ["e3"]

    fix = tmp_path / "fix.jsonl"
    assert export_quarantine(fix, db_url) == 3
    rows = [json.loads(line) for line in fix.read_text().splitlines()]
    assert [row["_abkit_quarantine_id"] for row in rows] == [
        e["id"] for e in quarantined_rows(db_url)
    ]
    for row in rows[:2]:  # fix two of the three; the third stays wrong
        row["value"] = 1
    fix.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = ingest(fix, db=db_url)
    assert (report.accepted, report.quarantined) == (2, 1)
    states = {e["raw"].get("event_id"): e["resolved_at_us"] for e in quarantined_rows(db_url)}
    assert states["e1"] is not None and states["e2"] is not None and states["e3"] is None
    resolved_by = {e["resolved_batch_id"] for e in quarantined_rows(db_url) if e["resolved_at_us"]}
    assert resolved_by == {report.batch_ids[0]}
    open_rows = list(quarantined_rows(db_url, unresolved=True))
    assert sorted(e["raw"]["event_id"] for e in open_rows) == ["e3", "e3"]  # old and re-sent
    # The same fixed rows re-sent again are duplicates, and resolve nothing new.
    assert ingest(fix, db=db_url, force=True).duplicates == 2
    assert purge_quarantine(db_url, older_than_days=1) == 0  # resolved just now
    assert purge_quarantine(db_url) == 2
    assert sorted(e["raw"]["event_id"] for e in quarantined_rows(db_url)) == ["e3", "e3", "e3"]
