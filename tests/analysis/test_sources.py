"""Sources: the user's own tables (native timestamps, epochs, a SQL query, a read-only role)
give the same readout as ingesting the same rows into abkit's store, on every dialect."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import BigInteger, Column, DateTime, Double, MetaData, String, Table, create_engine
from sqlalchemy.schema import CreateSchema

from abkit.analysis.analyze import analyze
from abkit.analysis.sources import (
    EventMapping,
    ExposureMapping,
    Source,
    TableRef,
    load_source,
    source_from_dict,
)
from abkit.errors import ConfigError
from abkit.simulate import TrueEffect, load_simulation, simulate_experiment
from abkit.store.store import normalise_url
from abkit.testing.compare import assert_same_readout
from abkit.testing.recipes import recipe, with_values

from .conftest import any_url  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def sim():
    s = simulate_experiment(
        700, effects=TrueEffect(conversion_lift=0.2), impressions=1.0, seed=11, days=6
    )
    # SQLite's date functions resolve milliseconds: keep every time on a millisecond
    for frame in (s.exposures, s.events):
        frame["ts_us"] = frame["ts_us"] // 1000 * 1000
        frame["timestamp"] = pd.to_datetime(frame["ts_us"], unit="us", utc=True)
    return s


DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"


def _user_tables(url: str, sim, schema: str | None = None) -> None:
    """The same rows in the user's own shape: other names, native times, epoch ms."""
    md = MetaData(schema=schema)
    exposures = Table(
        "ab_exposures",
        md,
        Column("customer_id", String),
        Column("test_name", String),
        Column("arm", String),
        Column("exposed_at", DateTime(timezone=True)),
        Column("platform", String),
        Column("country", String),
    )
    events = Table(
        "shop_events",
        md,
        Column("customer_id", String),
        Column("kind", String),
        Column("amount", Double),
        Column("ordered_at", DateTime(timezone=True)),
        Column("ordered_ms", BigInteger),
    )
    engine = create_engine(normalise_url(url))
    if schema is not None:
        with engine.begin() as conn:
            conn.execute(CreateSchema(schema, if_not_exists=True))
    md.create_all(engine)
    ex = sim.exposures
    ev = sim.events
    with engine.begin() as conn:
        conn.execute(
            exposures.insert(),
            [
                {
                    "customer_id": r.unit_id,
                    "test_name": r.experiment,
                    "arm": r.variant,
                    "exposed_at": r.timestamp.to_pydatetime(),
                    "platform": r.platform,
                    "country": r.country,
                }
                for r in ex.itertuples()
            ],
        )
        conn.execute(
            events.insert(),
            [
                {
                    "customer_id": r.unit_id,
                    "kind": r.event_type,
                    "amount": None if math.isnan(r.value) else float(r.value),
                    "ordered_at": r.timestamp.to_pydatetime(),
                    "ordered_ms": int(r.ts_us) // 1000,
                }
                for r in ev.itertuples()
            ],
        )
        if engine.dialect.name == "postgresql":  # a warehouse has statistics; a fresh table none
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


EXPOSURES = ExposureMapping(
    table=TableRef("ab_exposures"),
    unit="customer_id",
    experiment="test_name",
    variant="arm",
    timestamp="exposed_at",
    attributes=("platform", "country"),
)


# the user's tables as they are, events with native times
NATIVE = Source(
    EXPOSURES,
    EventMapping(
        table=TableRef("shop_events"),
        unit="customer_id",
        event_type="kind",
        value="amount",
        timestamp="ordered_at",
    ),
)


def _comparable(result) -> dict:
    out = result.to_dict()
    out["experiment"].pop("source")
    return out


def assert_same(got, want):
    """Equal leaves; floats to 1e-9 relative (another join order sums in another order)."""
    assert_same_readout(got, want, abs_=1e-12)


@pytest.fixture
def loaded(any_url, sim):  # noqa: F811
    load_simulation(sim, any_url, via="bulk")
    _user_tables(any_url, sim)
    return any_url


def test_user_tables_equal_the_store(loaded, sim):
    common = dict(segments=("platform",), guardrails=["click_through_rate"])
    want = analyze(loaded, sim.experiment, **common)
    got = analyze(loaded, sim.experiment, source=NATIVE, **common)
    assert_same(_comparable(got), _comparable(want))
    assert got.experiment.source.startswith("source (exposures: ab_exposures")
    epoch_query = Source(
        EXPOSURES,
        EventMapping(
            query="SELECT * FROM shop_events WHERE amount IS NULL OR amount >= :floor",
            unit="customer_id",
            event_type="kind",
            value="amount",
            timestamp="ordered_ms",
            timestamp_encoding="ms",
        ),
        params={"floor": 0.0},
    )
    assert_same(
        _comparable(analyze(loaded, sim.experiment, source=epoch_query, **common)),
        _comparable(want),
    )


@pytest.mark.postgres
def test_a_read_only_role_is_enough(postgres_url, sim):
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    load_simulation(sim, postgres_url, via="bulk")
    _user_tables(postgres_url, sim)
    engine = create_engine(normalise_url(postgres_url))
    with engine.begin() as conn:
        conn.execute(text("CREATE ROLE abkit_reader LOGIN PASSWORD 'reader'"))
        conn.execute(text("GRANT SELECT ON ab_exposures, shop_events TO abkit_reader"))
    engine.dispose()
    reader = make_url(normalise_url(postgres_url)).set(username="abkit_reader", password="reader")
    source = Source(
        EXPOSURES,
        EventMapping(
            table=TableRef("shop_events", schema="public"),
            unit="customer_id",
            event_type="kind",
            value="amount",
            timestamp="ordered_at",
        ),
    )
    got = analyze(reader.render_as_string(hide_password=False), sim.experiment, source=source)
    want = analyze(postgres_url, sim.experiment)
    assert_same(_comparable(got), _comparable(want))


def test_warehouse_recipe(duckdb_url, sim, tmp_path, monkeypatch):
    """docs/analysis.md's warehouse recipe, run as written on a DuckDB file whose
    ``analytics`` schema holds the user's tables (abkit's store beside them gives the
    registered weights and the reference readout)."""
    load_simulation(sim, duckdb_url, via="bulk")
    _user_tables(duckdb_url, sim, schema="analytics")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "warehouse.toml").write_text(recipe(DOCS, "warehouse-source"), encoding="utf-8")
    code = with_values(recipe(DOCS, "warehouse-analysis"), WAREHOUSE=repr(duckdb_url))
    namespace: dict = {}
    exec(compile(code, f"{DOCS}:warehouse-analysis", "exec"), namespace)
    got = namespace["result"]
    assert got.experiment.source.startswith("warehouse (exposures: analytics.ab_exposures")
    want = analyze(
        duckdb_url, sim.experiment.key, segments=["platform"], guardrails=["click_through_rate"]
    )
    assert_same(_comparable(got), _comparable(want))


def test_source_files_name_file_and_field(tmp_path):
    path = tmp_path / "warehouse.toml"
    path.write_text(
        '[exposures]\ntable = "analytics.ab_exposures"\nunit = "customer_id"\n'
        'experiment = "test_name"\nvariant = "arm"\ntimestamp = "exposed_at"\n'
        'attributes = ["platform"]\n\n[events]\nquery = "SELECT * FROM t WHERE r = :region"\n'
        'unit = "customer_id"\nevent_type_value = "purchase"\ntimestamp = "ts"\n'
        'timestamp_encoding = "s"\n\n[params]\nregion = "EU"\n'
    )
    source = load_source(path)
    assert source.exposures.table == TableRef("ab_exposures", schema="analytics")
    assert source.events.event_type_value == "purchase" and source.params == {"region": "EU"}
    bad = {
        "exposures": {**source_from_dict_raw(), "unit": "customer id; DROP TABLE x"},
        "events": {"table": "e", "unit": "u", "event_type": "k", "timestamp": "t"},
    }
    with pytest.raises(ConfigError) as info:
        source_from_dict(bad, file="w.toml")
    assert (info.value.location.file, info.value.location.field) == ("w.toml", "exposures.unit")
    no_param = {
        "exposures": source_from_dict_raw(),
        "events": {
            "query": "SELECT * FROM e WHERE r = :r",
            "unit": "u",
            "event_type": "k",
            "timestamp": "t",
        },
    }
    with pytest.raises(ConfigError, match=":r"):
        source_from_dict(no_param).relations()


def source_from_dict_raw() -> dict:
    return {"table": "x", "unit": "u", "experiment": "e", "variant": "v", "timestamp": "t"}


def test_a_warehouse_file_without_a_store_is_read_as_it_is(tmp_path, sim):
    # a SQLite file holding only the user's tables: no replica opened beside it, no abkit
    # table created in it; a query may end with ";" or a comment
    path = tmp_path / "warehouse.db"
    url = f"sqlite:///{path}"
    _user_tables(url, sim)
    before = set(
        create_engine(url)
        .connect()
        .exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        .scalars()
    )
    for query in (
        "SELECT * FROM shop_events;  \n",
        "SELECT * FROM shop_events -- every event",
        "SELECT * FROM shop_events; -- every event",
        "SELECT * FROM shop_events WHERE kind NOT LIKE '%;--%' ;",
    ):
        source = Source(
            EXPOSURES,
            EventMapping(
                query=query,
                unit="customer_id",
                event_type="kind",
                value="amount",
                timestamp="ordered_ms",
                timestamp_encoding="ms",
            ),
        )
        result = analyze(url, sim.experiment, source=source)
        assert sum(result.arm_stats[result.primary][v].n for v in ("control", "treatment")) > 0
    after = set(
        create_engine(url)
        .connect()
        .exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        .scalars()
    )
    assert after == before and sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.db"]


def test_exposures_without_a_readable_time_are_a_located_error(tmp_path, sim):
    from abkit.errors import DataError

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    _user_tables(url, sim)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ab_exposures SET exposed_at = NULL")
    engine.dispose()
    with pytest.raises(DataError, match="no readable exposure time") as info:
        analyze(url, sim.experiment, source=NATIVE)
    assert info.value.location.field == "exposures.timestamp"
