"""The execution seam: a runner registered for a URL scheme, or passed directly, runs every
statement of an analysis; failures are one-line StoreErrors."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, literal, select, text

from abkit.analysis import runner as runner_module
from abkit.analysis.analyze import analyze
from abkit.analysis.runner import (
    QueryRunner,
    SQLAlchemyRunner,
    as_mappings,
    register_runner,
    registered_runner,
    session_runner,
)
from abkit.errors import ConfigError, StoreError
from abkit.simulate import load_simulation, simulate_experiment


class CountingRunner:
    """A runner of another engine (here: SQLite underneath), counting what it runs."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.conn = self.engine.connect()
        self.inner = SQLAlchemyRunner(self.conn, where="counting://")
        self.statements = 0
        self.closed = False

    @property
    def dialect(self):
        return self.inner.dialect

    @property
    def where(self) -> str:
        return self.inner.where

    def run(self, stmt):
        self.statements += 1
        return self.inner.run(stmt)

    def close(self) -> None:
        self.closed = True
        self.conn.close()
        self.engine.dispose()


def test_a_registered_scheme_runs_the_whole_analysis(tmp_path, monkeypatch):
    # SQLite's own engine for the URL too, as the counting runner uses: the same summation
    # order on both sides (the columnar replica would sum in another order)
    monkeypatch.setenv("ABKIT_SQLITE_ENGINE", "sqlite")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    sim = simulate_experiment(400, seed=3)
    load_simulation(sim, url, via="bulk")
    opened: list[CountingRunner] = []

    def factory(address: str) -> QueryRunner:
        assert address == "counting://local"
        opened.append(CountingRunner(url))
        return opened[0]

    monkeypatch.setattr(runner_module, "_FACTORIES", {})
    register_runner("counting", factory)
    via_runner = analyze("counting://local", sim.experiment.key)
    direct = analyze(url, sim.experiment.key)
    assert opened[0].closed and opened[0].statements == 2  # the registry, the aggregates
    assert via_runner.experiment.registered
    assert via_runner.to_dict()["arm_stats"] == direct.to_dict()["arm_stats"]
    # a runner object passed directly is used and left open for its owner
    mine = CountingRunner(url)
    analyze(mine, sim.experiment.key)
    assert mine.statements == 2 and not mine.closed
    mine.close()
    assert registered_runner("sqlite:///x.db") is None
    with pytest.raises(ValueError):
        register_runner("spark://", factory)


def test_failures_are_store_errors_and_the_connection_stays_usable(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.connect() as conn:
        r = SQLAlchemyRunner(conn, where="b.db")
        with pytest.raises(StoreError, match=r"failed on b\.db"):
            r.run(select(text("x")).select_from(text("missing_table")))
        stmt = select(literal(1).label("one"))
        assert as_mappings(stmt, r.run(stmt)) == [{"one": 1}]


def test_an_unknown_session_object_is_a_config_error():
    with pytest.raises(ConfigError, match="got a object"):
        session_runner(object())
