"""Conformance of assign/assign_many with the spec at the exact integer range edges and
in the order of decisions, checked against the independent reference implementation.

Random ids land on a range boundary with probability 2^-32, so statistical tests cannot
see an off-by-one (``>`` for ``>=``) or a float comparison at an edge. Here every edge
is placed *on* a known unit's hash: for a hash ``h`` the fraction ``h / 2**32`` is an
exact binary64 value with ``T(h / 2**32) == h``, so the unit sits exactly on the boundary
and the spec's half-open ranges ``[lo, hi)`` decide it.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_reference import decide

from abkit.assignment import Experiment, assign, assign_many, hashing

SCALE = 2**32
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
NOW_US = 1_772_323_200_000_000  # NOW in UTC epoch microseconds
# ASCII ids take assign()'s fast path; the others take the general path.
EDGE_IDS = ["user-1", "user-2", "42", "é", "👍", "日本語ユーザー", "x" * 70]


def _all_paths(e: Experiment, uid: str) -> list[tuple]:
    """(variant, in_experiment, bucket, reason) from every code path, plus the reference."""
    outs = [
        assign(e, uid, expose=False),  # fast path when the plan is simple and uid ASCII
        assign(e, uid, expose=False, now=NOW),  # general path always
        assign_many(e, [uid])[0],  # bulk fast path
        assign_many(e, [uid, 7])[0],  # bulk general path (an int id disables the fast one)
    ]
    got = [(a.variant, a.in_experiment, a.bucket, a.reason) for a in outs]
    ref = decide(e.to_dict(), uid, None, NOW_US)
    got.append((ref["variant"], ref["in_experiment"], ref["bucket"], ref["reason"]))
    return got


def _one(e: Experiment, uid: str) -> tuple:
    answers = _all_paths(e, uid)
    assert len(set(answers)) == 1, answers
    return answers[0]


def _traffics(salt: str, uid: str) -> tuple[float, float]:
    """Full traffic, and the smallest partial traffic that still enrolls ``uid`` (the
    bulk path has separate code for partial rollouts)."""
    return 1.0, (hashing.traffic_hash(salt, uid) + 1) / SCALE


@pytest.mark.parametrize("uid", EDGE_IDS)
def test_hash_on_the_two_variant_boundary_belongs_to_the_upper_variant(uid):
    h = hashing.variant_hash("edge", uid)
    assert 0 < h < SCALE - 1
    for traffic in _traffics("edge", uid):
        on = Experiment(
            "edge",
            variants=[{"name": "a", "weight": h / SCALE}, {"name": "b", "weight": 1 - h / SCALE}],
            traffic=traffic,
        )
        assert on._plan.bounds[0] == h  # exact: T(h / 2^32) == h
        assert _one(on, uid) == ("b", True, h, None)
        above = Experiment(
            "edge",
            variants=[
                {"name": "a", "weight": (h + 1) / SCALE},
                {"name": "b", "weight": 1 - (h + 1) / SCALE},
            ],
            traffic=traffic,
        )
        assert _one(above, uid) == ("a", True, h, None)


@pytest.mark.parametrize("uid", EDGE_IDS)
def test_hash_on_a_middle_boundary_of_three_variants(uid):
    h = hashing.variant_hash("edge3", uid)
    first_t = h // 2  # the first range ends below h; all three weights are exact dyadics
    for traffic in _traffics("edge3", uid):
        for boundary, want in ((h, "c"), (h + 1, "b")):
            e = Experiment(
                "edge3",
                variants=[
                    {"name": "a", "weight": first_t / SCALE},
                    {"name": "b", "weight": (boundary - first_t) / SCALE},
                    {"name": "c", "weight": (SCALE - boundary) / SCALE},
                ],
                traffic=traffic,
            )
            assert e._plan.bounds[1] == boundary
            assert _one(e, uid) == (want, True, h, None)
        # and on the first boundary (bisect_right, not bisect_left: h == B1 is variant b)
        e = Experiment(
            "edge3",
            variants=[
                {"name": "a", "weight": h / SCALE},
                {"name": "b", "weight": (SCALE - h) / SCALE / 2},
                {"name": "c", "weight": (SCALE - h) / SCALE / 2},
            ],
            traffic=traffic,
        )
        assert e._plan.bounds[0] == h
        assert _one(e, uid) == ("b", True, h, None)


@pytest.mark.parametrize("uid", EDGE_IDS)
def test_traffic_threshold_edge(uid):
    ht = hashing.traffic_hash("edge", uid)
    hv = hashing.variant_hash("edge", uid)
    out = Experiment("edge", variants=["a", "b"], traffic=ht / SCALE)  # T == ht: outside
    assert _one(out, uid) == ("a", False, None, "outside_traffic")
    inside = Experiment("edge", variants=["a", "b"], traffic=(ht + 1) / SCALE)
    assert _one(inside, uid) == ("ab"[hv >= SCALE // 2], True, hv, None)


@pytest.mark.parametrize("uid", EDGE_IDS)
def test_namespace_slice_edges_are_half_open(uid):
    hn = hashing.namespace_hash("ns", uid)
    f = hn / SCALE
    starts_on = Experiment(
        "edge", variants=["a", "b"], namespace={"name": "ns", "start": f, "end": 1.0}
    )
    ends_on = Experiment(
        "edge", variants=["a", "b"], namespace={"name": "ns", "start": 0.0, "end": f}
    )
    ends_after = Experiment(
        "edge", variants=["a", "b"], namespace={"name": "ns", "start": 0.0, "end": (hn + 1) / SCALE}
    )
    assert _one(starts_on, uid)[1] is True
    assert _one(ends_on, uid)[3] == "namespace"
    assert _one(ends_after, uid)[1] is True


@pytest.mark.parametrize("uid", EDGE_IDS)
def test_holdout_threshold_edge(uid):
    hh = hashing.holdout_hash("ho", uid)
    not_held = Experiment(
        "edge", variants=["a", "b"], holdout={"name": "ho", "fraction": hh / SCALE}
    )
    held = Experiment(
        "edge", variants=["a", "b"], holdout={"name": "ho", "fraction": (hh + 1) / SCALE}
    )
    assert _one(not_held, uid)[1] is True
    assert _one(held, uid) == ("a", False, None, "holdout")


# -- order of decisions (spec §3): the first rule that applies gives the reason ---------

TARGET_US = {"attr": "country", "eq": "US"}


@st.composite
def configs(draw):
    n = draw(st.integers(2, 4))
    kw: dict = {
        "traffic": draw(st.sampled_from([0.0, 0.3, 0.5, 1.0])),
        "status": draw(st.sampled_from(["running", "running", "draft", "paused", "stopped"])),
        "winner": draw(st.sampled_from([None, "v1"])),
    }
    if draw(st.booleans()):
        lo = draw(st.sampled_from([0.0, 0.2, 0.5]))
        kw["namespace"] = {"name": "ns", "start": lo, "end": lo + 0.4}
    if draw(st.booleans()):
        kw["holdout"] = {"name": "ho", "fraction": draw(st.sampled_from([0.2, 0.5]))}
    if draw(st.booleans()):
        kw["targeting"] = draw(
            st.sampled_from(
                [
                    TARGET_US,
                    {"any": [TARGET_US, {"attr": "age", "gte": 40}]},
                    {"not": {"attr": "country", "in": ["FR", "DE"]}},
                ]
            )
        )
    if draw(st.booleans()):
        kw["forced"] = {"qa": "v1", "user-1": "v0"}
    window = draw(st.sampled_from([None, "before", "during", "after"]))
    if window is not None:
        # NOW is 2026-03-01: before, inside and after the window respectively
        kw["start"], kw["end"] = {
            "before": ("2026-03-01T00:00:00.000001Z", "2026-04-01T00:00:00Z"),
            "during": ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00.000001Z"),
            "after": ("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        }[window]
    return Experiment(
        draw(st.sampled_from(["k", "k2", "ключ"])), variants=[f"v{i}" for i in range(n)], **kw
    )


unit = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**9), 10**9),
    st.sampled_from(["qa", "user-1", "", "👍", True, None, 1.5]),
)
attributes = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"country": st.sampled_from(["US", "FR", "DE", "JP"]), "age": st.integers(0, 90)}
    ),
)


@settings(max_examples=300, deadline=None)
@given(e=configs(), uid=unit, attrs=attributes)
def test_library_matches_reference_on_every_decision(e, uid, attrs):
    """Every reason, in the spec's order, on configs that combine all the rules."""
    ref = decide(e.to_dict(), uid, attrs, NOW_US)
    answers = [
        assign(e, uid, attrs, expose=False, now=NOW),
        assign_many(e, [uid], attrs, now=NOW)[0],
        assign_many(e, [uid, "pad"], [attrs, None], now=NOW)[0],
    ]
    if e.start is None:  # without a window the clock does not matter: also the default now
        answers += [assign(e, uid, attrs, expose=False), assign_many(e, [uid], attrs)[0]]
    for a in answers:
        got = {
            "variant": a.variant,
            "in_experiment": a.in_experiment,
            "bucket": a.bucket,
            "reason": a.reason,
        }
        assert got == ref


def test_first_applicable_rule_names_the_reason():
    """A unit failing several rules gets the reason of the earliest one (spec §3)."""
    ids = [f"user-{i}" for i in range(3000)]
    e = Experiment(
        "order",
        variants=["a", "b"],
        traffic=0.5,
        namespace={"name": "ns", "start": 0.0, "end": 0.5},
        holdout={"name": "ho", "fraction": 0.5},
        targeting=TARGET_US,
    )
    fr = {"country": "FR"}
    t_ho = hashing.threshold(0.5)
    held = [u for u in ids if hashing.holdout_hash("ho", u) < t_ho]
    out_ns = [
        u
        for u in ids
        if hashing.holdout_hash("ho", u) >= t_ho and hashing.namespace_hash("ns", u) >= t_ho
    ]
    assert held and out_ns
    # holdout (6) before targeting (7); targeting (7) before namespace (8)
    assert {assign(e, u, fr).reason for u in held} == {"holdout"}
    assert {assign(e, u, fr).reason for u in out_ns} == {"not_targeted"}
    assert {assign(e, u, {"country": "US"}).reason for u in out_ns} == {"namespace"}
    # namespace (8) before traffic (9)
    out_both = [u for u in out_ns if hashing.traffic_hash("order", u) >= hashing.threshold(0.5)]
    assert out_both and {assign(e, u, {"country": "US"}).reason for u in out_both} == {"namespace"}
