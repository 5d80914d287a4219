"""Atomic spec writes: comments kept, previous version kept, stale writes refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abkit.errors import ConfigError
from abkit.lifecycle.spec import load_specs
from abkit.lifecycle.writer import StaleSpecError, write_spec_version

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "experiments.toml"


def test_toml_change_keeps_comments_and_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    original = EXAMPLE.read_text()
    path.write_text(original)
    before = load_specs(path)["recommender-v3"]
    updated = write_spec_version(
        path, "recommender-v3", {"traffic": 0.05}, expect_version=before.version
    )
    spec = updated["recommender-v3"]
    assert spec.experiment.traffic == 0.05 and spec.stage == 1
    assert spec.version != before.version
    text = path.read_text()
    assert "# the current ramp stage" in text and "# chance of a false rollback" in text
    assert (tmp_path / "experiments.toml.prev").read_text() == original
    assert load_specs(path)["recommender-v3"].version == spec.version
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rollback_sets_status_and_winner(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(EXAMPLE.read_text())
    v = load_specs(path)["recommender-v3"].version
    spec = write_spec_version(
        path, "recommender-v3", {"status": "stopped", "winner": "v1"}, expect_version=v
    )["recommender-v3"]
    assert spec.status == "stopped" and spec.experiment.winner == "v1"


def test_json_spec(tmp_path: Path) -> None:
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps({"experiments": [{"key": "e", "variants": ["a", "b"]}]}))
    v = load_specs(path)["e"].version
    spec = write_spec_version(path, "e", {"status": "running"}, expect_version=v)["e"]
    assert spec.status == "running"


def test_stale_version_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(EXAMPLE.read_text())
    with pytest.raises(StaleSpecError):
        write_spec_version(path, "recommender-v3", {"traffic": 0.05}, expect_version="0" * 64)
    assert path.read_text() == EXAMPLE.read_text()


def test_invalid_result_is_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(EXAMPLE.read_text())
    v = load_specs(path)["recommender-v3"].version
    with pytest.raises(ConfigError, match="not a ramp stage"):
        write_spec_version(path, "recommender-v3", {"traffic": 0.3}, expect_version=v)
    assert path.read_text() == EXAMPLE.read_text()


@given(
    stages=st.lists(st.integers(1, 1000), min_size=1, max_size=6, unique=True).map(sorted),
    pick=st.integers(0, 5),
)
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_ramp_stage_written_reads_back(tmp_path: Path, stages: list[int], pick: int) -> None:
    traffic = [s / 1000 for s in stages]
    table = ", ".join(f"{{ traffic = {t!r}, min_hours = 1 }}" for t in traffic)
    path = tmp_path / "e.toml"
    path.write_text(
        '[[experiments]]\nkey = "e"  # a comment\nvariants = ["a", "b"]\n'
        f"ramp = {{ stages = [{table}] }}\n"
    )
    spec = load_specs(path)["e"]
    assert spec.stage == 0 and spec.status == "draft"
    target = traffic[pick % len(traffic)]
    new = write_spec_version(path, "e", {"traffic": target}, expect_version=spec.version)["e"]
    assert new.experiment.traffic == target and new.stage == pick % len(traffic)
    assert "# a comment" in path.read_text()
    assert load_specs(path)["e"].version == new.version
