"""``abkit report``: user errors are one line and exit 2 before a kernel starts; the index
page is one command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ABKIT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "abkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from abkit.simulate import load_simulation, simulate_experiment

    root = tmp_path_factory.mktemp("tiny")
    db = f"sqlite:///{root / 'tiny.db'}"
    load_simulation(simulate_experiment(500, key="tiny", seed=1, impressions=0.0), db)
    return db, root


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda db, root: ["--db", f"sqlite:///{root / 'missing.db'}", "--experiment", "tiny"],
            "does not exist",
        ),
        (
            lambda db, root: [
                "--db",
                db,
                "--experiment",
                "tiny",
                "--out",
                str(root / "tiny.db/x.html"),
            ],
            "a file is in the way",
        ),
        (lambda db, root: ["--db", db, "--experiment", "tiny", "--out", str(root)], "is a folder"),
        (
            lambda db, root: [
                "--db",
                db,
                "--experiment",
                "tiny",
                "--template",
                str(root / "t.ipynb"),
            ],
            "does not exist",
        ),
        (lambda db, root: ["--db", db, "--experiment", "nope"], "has no exposures"),
        (lambda db, root: ["--db", db, "--experiment", "tiny", "--template", "bogus"], "unknown"),
    ],
    ids=[
        "missing-db",
        "out-under-a-file",
        "out-is-a-folder",
        "template-file",
        "experiment",
        "name",
    ],
)
def test_cli_user_errors_are_one_line_exit_2_before_a_kernel(tiny_store, make_args, message):
    db, root = tiny_store

    def listing() -> list[str]:  # SQLite's -wal/-shm come and go with connections
        return sorted(p.name for p in root.iterdir() if not p.name.startswith("tiny.db-"))

    before = listing()
    done = _cli("report", *make_args(db, root), cwd=root)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert listing() == before  # no database, no folder, no .tmp left behind


def test_bad_value_option_is_one_line(tiny_store):
    db, root = tiny_store
    done = _cli("report", "--db", db, "--experiment", "tiny", "--value", "errors=lots", cwd=root)
    assert done.returncode == 2 and "--value needs METRIC=AMOUNT" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_index_alone_lists_registered_experiments_without_a_kernel(tiny_store, tmp_path):
    db, _ = tiny_store
    (tmp_path / "reports").mkdir()
    done = _cli("report", "--db", db, "--index", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "index written to reports/index.html" in done.stdout
    page = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    assert "tiny" in page and "no report yet" in page


def test_a_report_of_an_experiment_on_the_users_tables_writes_nothing_there(tmp_path):
    # the spec declares a source: `abkit report` neither requires nor creates a store in
    # the user's warehouse (the report itself reads the tables, read-only)
    import sqlite3

    from abkit.simulate import simulate_experiment

    sim = simulate_experiment(400, seed=3)
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE ab_exposures (customer, test, arm, at_ms)")
        conn.execute("CREATE TABLE shop_events (customer, kind, amount, at_ms)")
        conn.executemany(
            "INSERT INTO ab_exposures VALUES (?, ?, ?, ?)",
            [
                (r.unit_id, r.experiment, r.variant, r.ts_us // 1000)
                for r in sim.exposures.itertuples()
            ],
        )
        conn.executemany(
            "INSERT INTO shop_events VALUES (?, ?, ?, ?)",
            [(r.unit_id, r.event_type, r.value, r.ts_us // 1000) for r in sim.events.itertuples()],
        )
    (tmp_path / "source.toml").write_text(
        '[exposures]\ntable = "ab_exposures"\nunit = "customer"\nexperiment = "test"\n'
        'variant = "arm"\ntimestamp = "at_ms"\ntimestamp_encoding = "ms"\n\n'
        '[events]\ntable = "shop_events"\nunit = "customer"\nevent_type = "kind"\n'
        'value = "amount"\ntimestamp = "at_ms"\ntimestamp_encoding = "ms"\n',
        encoding="utf-8",
    )
    key = sim.experiment.key
    (tmp_path / "experiments.toml").write_text(
        f'[[experiments]]\nkey = "{key}"\nstatus = "running"\nsource = "source.toml"\n'
        'variants = ["control", "treatment"]\n',
        encoding="utf-8",
    )
    done = _cli(
        "report",
        "--db",
        f"sqlite:///{warehouse}",
        "--experiment",
        key,
        "--spec",
        "experiments.toml",
        "--index",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(warehouse) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"ab_exposures", "shop_events"}
    assert not (tmp_path / "warehouse.db.analysis.duckdb").exists()
    assert (tmp_path / "reports" / f"{key}.html").exists()
