"""The README's first command: ``abkit demo`` from an empty directory, both scenarios."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from abkit.report.render import check_offline
from abkit.report.sections import read_report_data
from abkit.testing.compare import assert_same_readout


def test_readme_demo_command_from_an_empty_directory(tmp_path):
    """``abkit demo``: the closed loop ramps recommender-v2 and ships it; the report agrees."""
    done = subprocess.run(
        [sys.executable, "-m", "abkit", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "recommender-v2: recommendation: SHIP" in done.stdout
    assert "controller: advance -> advance -> advance -> ship; now stopped" in done.stdout
    assert "exposure hook" in done.stderr  # exposures went through the hook
    report = tmp_path / "reports" / "recommender-v2.html"
    assert str(report) in done.stdout
    assert (tmp_path / "abkit-demo.db").is_file()
    page = report.read_text(encoding="utf-8")
    assert check_offline(page) == [] and len(page.encode()) < 2_000_000
    data = read_report_data(page)
    assert data["decision"]["verdict"] == "ship"
    assert data["quality"]["srm_ok"] is True
    primary = data["metrics"][0]
    assert primary["metric"] == "conversion_rate" and primary["significant"]
    low, high = primary["rel_ci"]
    assert low < 0.10 < high  # covers the true +10% lift
    guard = {m["metric"]: m for m in data["metrics"]}["errors_per_user"]
    assert guard["guardrail_status"] in {"pass", "inconclusive"}

    # The experiment list says what the controller did.
    line = next(x for x in done.stdout.splitlines() if "experiments:" in x)
    argv = shlex.split(line.split("experiments:", 1)[1])
    assert Path(argv[0]).name == "abkit" and Path(argv[0]).exists()  # runs as printed
    listed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    row = next(x for x in listed.stdout.splitlines() if x.startswith("recommender-v2"))
    assert "stopped (v2)" in row and "4/4" in row and "ship" in row

    # The printed re-render command gives the same report: same verdict, same dollars.
    line = next(x for x in done.stdout.splitlines() if "re-render:" in x)
    argv = shlex.split(line.split("re-render:", 1)[1])
    assert Path(argv[0]).name == "abkit" and argv[1] == "report"
    again = subprocess.run(
        [*argv, "--out", "again.html"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    redo = read_report_data((tmp_path / "again.html").read_text(encoding="utf-8"))
    # the same figures: to the last few bits (the columnar engine sums in parallel, in an
    # order that may differ from one run to the next)
    assert redo["decision"] == data["decision"]
    assert_same_readout(redo["metrics"], data["metrics"], rel=1e-12, abs_=1e-12)
    assert_same_readout(redo["impact"], data["impact"], rel=1e-12, abs_=1e-12)
    assert data["impact"][0]["currency"] == "USD"


def test_guardrail_breach_is_rolled_back_by_the_loop(tmp_path):
    from abkit.demo import run_demo
    from abkit.lifecycle.audit import read_audit
    from abkit.lifecycle.spec import load_specs
    from abkit.store.store import open_store

    result = run_demo(
        "guardrail-breach", db=tmp_path / "d.db", reports_dir=tmp_path, loop=True, render=False
    )
    assert result.actions[-1] == "rollback" and result.status == "stopped"
    spec = load_specs(result.spec)["recommender-v3"]
    # the guardrails are declared in the spec, so every entry point reads them: v3 converts
    # better but is slower, and its p95 latency (a quantile guardrail) is checked at every look
    assert [m.name for m in spec.metrics.guardrails] == ["errors_per_user", "p95_latency"]
    assert spec.safety.guardrails == ("errors_per_user", "p95_latency")
    assert spec.experiment.winner == "v1"
    (rollback,) = [e for e in read_audit(open_store(result.db_url)) if e.action == "rollback"]
    assert "p95_latency" in rollback.reason  # the slower tail shows first


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


def test_fixed_launch_report_shows_the_latency_trade_off(tmp_path):
    """v3 converts better but every request is 30% slower: the report shows the conversion
    gain beside the failed p95 latency guardrail (a quantile of request latencies)."""
    from abkit.demo import run_demo
    from abkit.report.sections import read_report_data

    result = run_demo("guardrail-breach", db=tmp_path / "d.db", reports_dir=tmp_path, n_units=6_000)
    assert result.verdict == "roll back"
    data = read_report_data(result.report.read_text(encoding="utf-8"))
    rows = {r["metric"]: r for r in data["metrics"]}
    latency = rows["p95_latency"]
    assert latency["metric_type"] == "quantile" and latency["label"] == "p95 latency"
    assert latency["guardrail_status"] == "fail" and 0.2 < latency["rel_lift"] < 0.4
    assert rows["conversion_rate"]["rel_lift"] > 0
