"""`abkit experiments` and `abkit controller`: exit codes, one-line errors, outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from abkit.cli.main import main

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "experiments.toml"


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "experiments.toml"
    shutil.copy(EXAMPLE, path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABKIT_SPEC", raising=False)
    monkeypatch.delenv("ABKIT_DATABASE_URL", raising=False)
    return path


def test_list_without_a_store(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments"]) == 0  # finds ./experiments.toml
    out = capsys.readouterr().out
    assert "recommender-v3" in out and "running" in out and "1/4" in out
    assert main(["experiments", "list", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["stage"] == "1/4" and row["traffic"] == 0.01


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "abkit experiment spec file"


def test_bad_spec_is_one_line_exit_2(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec.write_text(spec.read_text().replace('method = "fixed"', 'method = "frequentist"'))
    assert main(["experiments", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "readout.method" in err and "line" in err


def test_manual_pause_and_history(
    spec: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from abkit.store.store import open_store

    open_store(sqlite_url).close()
    assert (
        main(["experiments", "pause", "recommender-v3", "--db", sqlite_url, "--reason", "x"]) == 0
    )
    assert "pause recorded" in capsys.readouterr().out
    assert 'status = "paused"' in spec.read_text()
    # the JSON-lines audit log beside the spec, as the controller writes it
    (line,) = Path(str(spec) + ".audit.jsonl").read_text().splitlines()
    assert json.loads(line)["action"] == "pause" and json.loads(line)["reason"] == "x"
    assert main(["experiments", "history", "recommender-v3", "--db", sqlite_url]) == 0
    assert "pause" in capsys.readouterr().out
    assert main(["experiments", "pause", "recommender-v3", "--db", sqlite_url]) == 2
    assert "is paused" in capsys.readouterr().err


def test_a_manual_action_needs_an_existing_store(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = spec.read_text()
    missing = tmp_path / "elsewhere" / "abkit.db"
    missing.parent.mkdir()  # a folder without a store: a mistyped --db
    assert main(["experiments", "pause", "recommender-v3", "--db", f"sqlite:///{missing}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not missing.exists() and not (tmp_path / "abkit.db").exists()
    assert spec.read_text() == before


def test_controller_dry_run_without_data(
    spec: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from abkit.store.store import open_store

    open_store(sqlite_url).close()  # an empty store
    before = spec.read_text()
    assert main(["controller", "run", "--db", sqlite_url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "recommender-v3" in out and "waiting" in out and "dry run" in out
    assert spec.read_text() == before
