"""The same data gives the same analysis, to 1e-9, on SQLite, PostgreSQL and DuckDB."""

from __future__ import annotations

import math

import pytest

from abkit.analysis.analyze import analyze
from abkit.simulate import TrueEffect, load_simulation, simulate_experiment

from .conftest import store_for


def _numbers(value, path=""):
    """Flatten a JSON-like structure into (path, leaf) pairs."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")
    else:
        yield path, value


@pytest.mark.postgres
def test_sqlite_postgres_duckdb_agree(sqlite_url, postgres_url, duckdb_url):
    sim = simulate_experiment(
        2_500,
        effects=TrueEffect(conversion_lift=0.2, guardrail_effect=0.1),
        multiple_exposure_rate=0.03,
        impressions=2.0,
        seed=17,
    )
    metrics = [*sim.metrics]
    # a percentile cap exercises the window-function first pass on every engine
    metrics[1] = metrics[1].with_(cap_percentile=95.0)
    results = {}
    for name, url in (("sqlite", sqlite_url), ("postgres", postgres_url), ("duckdb", duckdb_url)):
        store = store_for(url)
        load_simulation(sim, store, via="bulk")
        results[name] = analyze(store, sim.experiment.key, metrics, segments=["platform"]).to_dict()
    base = dict(_numbers(results["sqlite"]))
    assert len(base) > 500
    for name in ("postgres", "duckdb"):
        other = dict(_numbers(results[name]))
        assert other.keys() == base.keys(), name
        for path, value in base.items():
            if path.endswith(".dialect"):
                continue
            got = other[path]
            if isinstance(value, float) and isinstance(got, float):
                assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-12), (
                    name,
                    path,
                    value,
                    got,
                )
            else:
                assert got == value, (name, path, value, got)
    assert results["duckdb"]["experiment"]["dialect"] == "duckdb"
