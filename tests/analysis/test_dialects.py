"""The same data gives the same analysis, to 1e-9, on SQLite, PostgreSQL and DuckDB."""

from __future__ import annotations

from abkit.analysis.analyze import analyze
from abkit.simulate import TrueEffect, load_simulation, simulate_experiment
from abkit.testing.compare import assert_same_readout, leaves

from .conftest import store_for


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
    assert len(dict(leaves(results["sqlite"]))) > 500
    for name in ("postgres", "duckdb"):
        assert_same_readout(
            results[name], results["sqlite"], ignore={"dialect"}, rel=1e-9, abs_=1e-12
        )
    assert results["duckdb"]["experiment"]["dialect"] == "duckdb"
