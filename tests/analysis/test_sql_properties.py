"""Property test: the SQL sums equal a plain-Python computation of the same definitions."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert
from sqlalchemy.pool import StaticPool

from abkit.analysis import sql
from abkit.analysis.runner import SQLAlchemyRunner
from abkit.analysis.sources import store_relations
from abkit.metrics.definitions import mean, proportion, ratio
from abkit.store.store import Store

H = 3_600_000_000
WINDOW = 48 * H
METRICS = (
    proportion("conv", "buy", window="48h", min_count=2),
    mean("rev", "buy", window="48h", cap=50.0),
    ratio("ttf", ("buy", "hours_to_first"), ("buy", "converted"), window="48h"),
    ratio("ctr", ("click", "count"), ("view", "count"), window="48h"),
)

units = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 100)), min_size=1, max_size=3),
        st.lists(
            st.tuples(
                st.sampled_from(["buy", "click", "view", "other"]),
                # hours after the unit's first exposure; window and pre-period edges often
                st.one_of(
                    st.sampled_from([-49, -48, -47, -1, 0, 1, 47, 48]), st.integers(-80, 120)
                ),
                st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
            ),
            max_size=6,
        ),
    ),
    min_size=1,
    max_size=8,
)


def reference(data):
    """metric -> variant -> list of per-unit (y, x or d)."""
    out = {m.name: {} for m in METRICS}
    for exposures, events in data:
        if len({v for v, _ in exposures}) > 1:
            continue  # contaminated
        first = min(t for _, t in exposures) * H
        variant = exposures[0][0]
        ev = [(k, first + h * H, v) for k, h, v in events]
        buys = [(ts, v) for k, ts, v in ev if k == "buy" and first <= ts < first + WINDOW]
        pre_buys = [(ts, v) for k, ts, v in ev if k == "buy" and first - WINDOW <= ts < first]
        clicks = sum(1 for k, ts, _ in ev if k == "click" and first <= ts < first + WINDOW)
        views = sum(1 for k, ts, _ in ev if k == "view" and first <= ts < first + WINDOW)
        rev = min(sum(v or 0.0 for _, v in buys), 50.0)
        pre_rev = min(sum(v or 0.0 for _, v in pre_buys), 50.0)
        ttf = (min(ts for ts, _ in buys) - first) / H if buys else 0.0
        rows = {
            "conv": (float(len(buys) >= 2), float(len(pre_buys) >= 2)),
            "rev": (rev, pre_rev),
            "ttf": (ttf, float(bool(buys))),
            "ctr": (float(clicks), float(views)),
        }
        for name, pair in rows.items():
            out[name].setdefault(variant, []).append(pair)
    return out


@settings(max_examples=40, deadline=None)
@given(units)
def test_sql_matches_python(data):
    engine = create_engine("sqlite://", poolclass=StaticPool)
    store = Store(engine)
    t = store.tables
    t.metadata.create_all(engine, tables=[t.exposures, t.events, t.exposure_attributes])
    ex, ev = [], []
    for uid, (exposures, events) in enumerate(data):
        first = min(h for _, h in exposures) * H
        for j, (variant, h) in enumerate(exposures):
            ex.append(
                dict(
                    event_id=f"x{uid}_{j}",
                    experiment="e",
                    unit_id=f"u{uid}",
                    variant=variant,
                    ts_us=h * H,
                    content_hash="0",
                    batch_id=0,
                )
            )
        for j, (kind, h, value) in enumerate(events):
            ev.append(
                dict(
                    event_id=f"e{uid}_{j}",
                    unit_id=f"u{uid}",
                    event_type=kind,
                    value=value,
                    ts_us=first + h * H,
                    content_hash="0",
                    batch_id=0,
                )
            )
    with engine.begin() as conn:
        conn.execute(insert(t.exposures), ex)
        if ev:
            conn.execute(insert(t.events), ev)
    with engine.connect() as conn:
        got = sql.fetch_aggregates(
            SQLAlchemyRunner(conn), store_relations(t), sql.Scope("e"), METRICS, cuped=False
        ).get(None)
    want = reference(data)
    if got is None:
        assert all(not arms for arms in want.values())
        return
    for name, arms in want.items():
        for variant, pairs in arms.items():
            stats = got.metrics[name][variant].stats
            ys = [y for y, _ in pairs]
            zs = [z for _, z in pairs]
            assert stats.n == len(pairs)
            # (Σy, Σy², Σz, Σz², Σyz) with z the denominator (ratios) or covariate (means)
            expected = (
                sum(ys),
                sum(y * y for y in ys),
                sum(zs),
                sum(z * z for z in zs),
                sum(y * z for y, z in pairs),
            )
            if name in ("ttf", "ctr"):
                actual = (
                    stats.num_sum,
                    stats.num_sum_sq,
                    stats.den_sum,
                    stats.den_sum_sq,
                    stats.num_den_sum,
                )
            else:
                actual = (stats.sum, stats.sum_sq, stats.cov_sum, stats.cov_sum_sq, stats.cross_sum)
            for a, b in zip(actual, expected, strict=True):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (name, variant, a, b)
