"""The README's first command: ``abkit demo`` from an empty directory, both scenarios."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

from abkit.report.render import check_offline
from abkit.report.sections import read_report_data


def test_readme_demo_command_from_an_empty_directory(tmp_path):
    """``abkit demo``; the roll-back scenario is rendered by tests/report/test_executive.py."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "abkit", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 60
    assert "recommender-v2: recommendation: SHIP" in done.stdout
    assert "exposure hook" in done.stderr  # exposures went through the hook
    report = tmp_path / "reports" / "recommender-v2.html"
    assert str(report) in done.stdout
    assert (tmp_path / "abkit-demo.db").is_file()
    page = report.read_text(encoding="utf-8")
    assert check_offline(page) == [] and len(page.encode()) < 2_000_000
    data = read_report_data(page)
    assert data["decision"]["verdict"] == "ship"
    assert data["quality"]["srm_ok"] is True
    assert sum(data["quality"]["counts"].values()) == 40_000
    primary = data["metrics"][0]
    assert primary["metric"] == "conversion_rate" and primary["significant"]
    assert primary["rel_low"] < 0.10 < primary["rel_high"]  # covers the true +10% lift
    guard = {m["metric"]: m for m in data["metrics"]}["errors_per_user"]
    assert guard["guardrail_status"] in {"pass", "inconclusive"}

    # The printed re-render command gives the same report: same verdict, same dollars.
    line = next(x for x in done.stdout.splitlines() if "re-render:" in x)
    argv = shlex.split(line.split("re-render:", 1)[1])
    assert argv[:2] == ["abkit", "report"]
    again = subprocess.run(
        [sys.executable, "-m", "abkit", *argv[1:], "--out", "again.html"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    redo = read_report_data((tmp_path / "again.html").read_text(encoding="utf-8"))
    assert redo["decision"] == data["decision"] and redo["metrics"] == data["metrics"]
    assert redo["impact"] == data["impact"] and data["impact"][0]["unit"] == "USD"


def test_rerunning_rebuilds_the_demo_database(tmp_path):
    from sqlalchemy import func, select

    from abkit.demo import run_demo
    from abkit.store.store import open_store

    for _ in range(2):
        result = run_demo(
            "ship", db=tmp_path / "d.db", reports_dir=tmp_path, n_units=1_000, render=False
        )
        assert result.exposures == 1_000
    store = open_store(result.db_url)
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(store.tables.exposures)).scalar_one()
    store.close()
    assert rows == 1_000  # not 2,000: the second run started from a fresh file


def test_demo_refuses_to_replace_a_foreign_database(tmp_path):
    import sqlite3

    other = tmp_path / "mine.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table customers (id integer)")
    done = subprocess.run(
        [sys.executable, "-m", "abkit", "demo", "--db", str(other)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to replace" in done.stderr and "Traceback" not in done.stderr
    assert other.exists()
