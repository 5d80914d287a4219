"""Per-dialect constructs: the percentile cap in SQL equals the Python definition on every
engine; the day bucket is an integer floor division."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import BigInteger, column, select
from sqlalchemy.dialects import postgresql, sqlite

from abkit.analysis.constructs import day_bucket
from abkit.metrics import mean
from abkit.stats.outliers import Cap, resolve_cap

from .conftest import DAY, HOUR, T0, fetch, store_for, write_rows


def _load(url: str, values: list[float]) -> None:
    """One unit per value (alternating arms); a zero is a unit without a purchase."""
    store = store_for(url)
    ex, ev = [], []
    for i, v in enumerate(values):
        variant = "control" if i % 2 == 0 else "treatment"
        ex.append(
            {
                "event_id": f"x{i}",
                "experiment": "exp",
                "unit_id": f"u{i}",
                "variant": variant,
                "ts_us": T0 + i,
            }
        )
        if v:
            ev.append(
                {
                    "event_id": f"e{i}",
                    "unit_id": f"u{i}",
                    "event_type": "purchase",
                    "value": v,
                    "ts_us": T0 + i + HOUR,
                }
            )
    write_rows(store, ex, ev)


PERCENTILES = (12.5, 50.0, 90.0, 99.0, 99.5)


@pytest.mark.parametrize("case", ["issue9", "ties"])
def test_percentile_cap_in_sql_equals_python(any_url, case):
    if case == "issue9":  # the defect's example: 900 zeros and 1..100 -> p99 is 99
        values = [0.0] * 900 + [float(v) for v in range(1, 101)]
    else:  # integer values with many ties and a third of zeros
        rng = np.random.default_rng(5)
        values = [float(v) if rng.random() > 0.33 else 0.0 for v in rng.integers(1, 12, 301)]
    _load(any_url, values)
    metrics = [mean(f"rev_p{p:g}", "purchase", cap_percentile=p) for p in PERCENTILES]
    agg = fetch(store_for(any_url), "exp", metrics)[None]
    for metric in metrics:
        expected = resolve_cap(Cap(upper_percentile=metric.cap_percentile), np.array(values))
        assert agg.caps[metric.name] == expected.upper, metric.name
    if case == "issue9":
        assert agg.caps["rev_p99"] == 99.0


def test_day_bucket_is_integer_floor_division_on_every_dialect(any_url):
    _load(any_url, [1.0, 0.0])
    store = store_for(any_url)
    t = store.tables.exposures
    with store.engine.connect() as conn:
        days = conn.execute(select(day_bucket(t.c.ts_us + DAY - 1)).order_by(t.c.ts_us)).all()
    # T0 + DAY - 1 is the last microsecond of day T0; T0 + 1 + DAY - 1 starts the next
    assert [int(d[0]) for d in days] == [T0 // DAY, T0 // DAY + 1]
    assert all(isinstance(d[0], int) for d in days)


def test_day_bucket_renders_the_dialects_integer_division():
    expr = day_bucket(column("us", BigInteger()))
    assert "/" in str(expr.compile(dialect=sqlite.dialect()))
    assert "::BIGINT" in str(expr.compile(dialect=postgresql.dialect()))
