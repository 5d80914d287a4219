"""assign_many(): exactly assign()'s answers, on every kind of experiment and id."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.assignment import Experiment, assign, assign_many

UTC = timezone.utc


@st.composite
def experiments(draw):
    n = draw(st.integers(2, 5))
    raw = draw(st.lists(st.integers(0, 100), min_size=n, max_size=n).filter(lambda w: sum(w) > 0))
    total = sum(raw)
    weights = [w / total for w in raw]
    weights[-1] = 1.0 - sum(weights[:-1])  # make the float sum land on 1 within 1e-9
    if weights[-1] < 0:
        weights[-1] = 0.0
    variants = [{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)]
    kw = {
        "traffic": draw(st.sampled_from([0.0, 0.05, 0.5, 0.999, 1.0])),
        "status": draw(
            st.sampled_from(["running", "running", "running", "paused", "stopped", "draft"])
        ),
        "winner": draw(st.sampled_from([None, "v1"])),
    }
    if draw(st.booleans()):
        kw["namespace"] = {"name": "ns", "start": 0.2, "end": 0.6}
    if draw(st.booleans()):
        kw["holdout"] = {"name": "ho", "fraction": 0.1}
    if draw(st.booleans()):
        kw["targeting"] = {"any": [{"attr": "country", "eq": "US"}, {"attr": "age", "gte": 40}]}
    if draw(st.booleans()):
        kw["forced"] = {"qa": "v1"}
    if draw(st.booleans()):
        kw["start"] = "2026-01-01T00:00:00Z"
        kw["end"] = "2026-06-01T00:00:00Z"
    return Experiment(draw(st.sampled_from(["e", "exp-1", "ключ"])), variants=variants, **kw)


unit_ids = st.one_of(
    st.text(max_size=20),  # includes "", non-ASCII, emoji and lone surrogates
    st.integers(-(10**12), 10**12),
    st.sampled_from(["qa", "user-1", "👍", None]),
)
attrs = st.one_of(
    st.none(),
    st.fixed_dictionaries({"country": st.sampled_from(["US", "FR"]), "age": st.integers(0, 90)}),
)


@settings(max_examples=150, deadline=None)
@given(
    e=experiments(),
    ids=st.lists(unit_ids, max_size=40),
    shared=attrs,
    per_unit=st.booleans(),
    when=st.sampled_from(
        [None, datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)]
    ),
    data=st.data(),
)
def test_assign_many_equals_assign(e, ids, shared, per_unit, when, data):
    attributes = [data.draw(attrs) for _ in ids] if per_unit else shared
    bulk = assign_many(e, ids, attributes, now=when)
    assert len(bulk) == len(ids)
    for i, uid in enumerate(ids):
        a = assign(e, uid, attributes[i] if per_unit else attributes, now=when, expose=False)
        assert bulk[i] == a


@settings(max_examples=50, deadline=None)
@given(
    ids=st.lists(
        st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=16), max_size=200
    )
)
def test_fast_path_equals_assign_on_plain_ascii(ids):
    for e in (
        Experiment("fast", variants=["a", "b"]),
        Experiment("fast3", variants=["a", "b", "c"], traffic=0.3),
    ):
        assert list(assign_many(e, ids)) == [assign(e, u) for u in ids]


def test_counts_and_reasons():
    e = Experiment("c", variants=["a", "b"], traffic=0.5)
    bulk = assign_many(e, (f"u{i}" for i in range(10_000)))  # any iterable
    counts = bulk.counts()
    assert sum(counts.values()) == sum(bulk.in_experiment)
    assert bulk.reason_counts()[None] == sum(bulk.in_experiment)
    assert bulk.reason_counts()["outside_traffic"] == 10_000 - sum(bulk.in_experiment)
    assert bulk.to_dicts()[0]["experiment"] == "c"


def test_attributes_length_must_match():
    e = Experiment("c", variants=["a", "b"])
    with pytest.raises(ValueError, match="2 entries for 3"):
        assign_many(e, ["a", "b", "c"], [{}, {}])
