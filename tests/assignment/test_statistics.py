"""Statistical properties of the hashing, on fixed id sets (so the tests are deterministic).

Threshold used throughout: a χ² statistic must stay below its 99.9% quantile
(p > 0.001). For a correct hash a given fixed id set fails with probability 0.1%; the
id sets below were not chosen to pass (they are the obvious ones: sequential integers
and ``user-{i}``). Each test also runs a *negative control*, a known-bad scheme of the
kind other tools shipped, and requires the same test to reject it at p < 1e-12, so none
of these tests could pass vacuously.
"""

from __future__ import annotations

import mmh3
import numpy as np
import pytest
from scipy import stats

from abkit.assignment import Experiment, assign_many, hashing

P_MIN = 1e-3
IDS_1M = [str(i) for i in range(1_000_000)]  # sequential database ids, the worst realistic case
IDS = [f"user-{i}" for i in range(200_000)]


def _deciles(h: list[int], k: int = 10) -> np.ndarray:
    return (np.asarray(h, dtype=np.uint64) * k) >> 32


def _independence_p(a: np.ndarray, b: np.ndarray) -> float:
    table = np.zeros((int(a.max()) + 1, int(b.max()) + 1))
    np.add.at(table, (a, b), 1)
    return stats.chi2_contingency(table, correction=False).pvalue


def test_variant_shares_uniform_over_1m_sequential_ids():
    e = Experiment(
        "uniformity",
        variants=[
            {"name": "a", "weight": 0.2},
            {"name": "b", "weight": 0.3},
            {"name": "c", "weight": 0.5},
        ],
    )
    bulk = assign_many(e, IDS_1M)
    counts = np.array(list(bulk.counts().values()))
    expected = np.array(e.effective_weights) * len(IDS_1M)
    p = stats.chisquare(counts, expected).pvalue
    assert p > P_MIN, (counts, p)
    # the 32-bit buckets themselves are uniform over 100 equal bins
    bins = np.bincount(_deciles(list(bulk.buckets), 100).astype(np.int64), minlength=100)
    assert stats.chisquare(bins).pvalue > P_MIN
    # negative control: a scheme that pushes every 7th unit into the upper half is caught
    biased = np.bincount(
        _deciles([h | 1 << 31 if h % 7 == 0 else h for h in bulk.buckets], 100).astype(np.int64),
        minlength=100,
    )
    assert stats.chisquare(biased).pvalue < 1e-12


def test_traffic_and_variant_independent_inside_partial_rollout():
    t = hashing.threshold(0.3)
    ht = [mmh3.hash("rollout\x1f" + u, hashing.SEED_TRAFFIC, False) for u in IDS]
    hv = [mmh3.hash("rollout\x1f" + u, hashing.SEED_VARIANT, False) for u in IDS]
    inside = (np.asarray(ht, dtype=np.uint64) < t).astype(np.int64)
    variant = _deciles(hv, 2).astype(np.int64)
    assert _independence_p(inside, variant) > P_MIN
    assert _independence_p(_deciles(ht).astype(np.int64), _deciles(hv).astype(np.int64)) > P_MIN
    # and the library's answers: variant shares among enrolled units match the weights
    e = Experiment("rollout", variants=["control", "treatment"], traffic=0.3)
    bulk = assign_many(e, IDS)
    assert bulk.in_experiment == tuple(bool(x) for x in inside)
    counts = list(bulk.counts().values())
    assert stats.chisquare(counts).pvalue > P_MIN
    # negative control: reusing the traffic hash for the variant (the shipped bug)
    reuse = _deciles(ht, 2).astype(np.int64)
    assert _independence_p(inside, reuse) < 1e-12


def _fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


@pytest.mark.parametrize(
    ("k1", "k2"),
    [("exp-a", "exp-b"), ("checkout-1", "checkout-2"), ("ranker-v1", "ranker-v9"), ("x", "y")],
)
def test_experiments_whose_keys_differ_in_last_character_are_independent(k1, k2):
    a = assign_many(Experiment(k1, variants=["a", "b"]), IDS)
    b = assign_many(Experiment(k2, variants=["a", "b"]), IDS)
    va = np.array([v == "b" for v in a.variants], dtype=np.int64)
    vb = np.array([v == "b" for v in b.variants], dtype=np.int64)
    assert _independence_p(va, vb) > P_MIN
    assert (
        _independence_p(
            _deciles(list(a.buckets)).astype(np.int64), _deciles(list(b.buckets)).astype(np.int64)
        )
        > P_MIN
    )


def test_last_character_negative_control_fnv_modulo():
    # GrowthBook's first hash, fnv32a(id + seed) % 1000, is what a last-character test
    # must be able to reject; ours rejects it.
    ids = IDS[:50_000]
    ha = np.array([_fnv1a32(u + "exp-a") % 1000 for u in ids]) * 10 // 1000
    hb = np.array([_fnv1a32(u + "exp-b") % 1000 for u in ids]) * 10 // 1000
    assert _independence_p(ha, hb) < 1e-12


def test_namespace_membership_independent_of_variant():
    hn = [hashing.namespace_hash("homepage", u) for u in IDS[:100_000]]
    e = Experiment("ns-exp", variants=["a", "b", "c"])
    variant = np.array([e.variant_names.index(v) for v in assign_many(e, IDS[:100_000]).variants])
    assert _independence_p(_deciles(hn), variant) > P_MIN
    # holdout membership is independent of both
    ho = np.array(
        [hashing.holdout_hash("global", u) < hashing.threshold(0.1) for u in IDS[:100_000]],
        dtype=np.int64,
    )
    assert _independence_p(ho, variant) > P_MIN
    assert _independence_p(ho, _deciles(hn)) > P_MIN
    # negative control: a namespace hash that reuses the experiment's variant hash
    same = [hashing.variant_hash("ns-exp", u) for u in IDS[:100_000]]
    assert _independence_p(_deciles(same), variant) < 1e-12


def test_experiments_with_different_salts_are_independent_for_three_way_splits():
    e1 = Experiment("pricing", variants=["a", "b", "c"])
    e2 = Experiment("pricing", variants=["a", "b", "c"], salt="pricing-2026-q2")
    v1 = np.array([e1.variant_names.index(v) for v in assign_many(e1, IDS).variants])
    v2 = np.array([e2.variant_names.index(v) for v in assign_many(e2, IDS).variants])
    assert _independence_p(v1, v2) > P_MIN


def test_decisions_stay_independent_when_names_coincide():
    """A namespace or holdout named like the experiment's salt hashes the same key bytes;
    only the per-decision seed keeps the decisions apart (spec §1). Reusing one seed would
    make namespace slice and variant identical, which the negative control shows."""
    ids = IDS[:100_000]
    hv = _deciles([hashing.variant_hash("pricing", u) for u in ids])
    hn = _deciles([hashing.namespace_hash("pricing", u) for u in ids])
    hh = _deciles([hashing.holdout_hash("pricing", u) for u in ids])
    ht = _deciles([hashing.traffic_hash("pricing", u) for u in ids])
    for a, b in [(hv, hn), (hv, hh), (hv, ht), (hn, hh), (hn, ht), (hh, ht)]:
        assert _independence_p(a.astype(np.int64), b.astype(np.int64)) > P_MIN
    same_seed = _deciles(
        [hashing.hash32(hashing.unit_key("pricing", u), hashing.SEED_VARIANT) for u in ids]
    )
    assert _independence_p(hv.astype(np.int64), same_seed.astype(np.int64)) < 1e-12
