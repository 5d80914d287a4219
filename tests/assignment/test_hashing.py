"""The hashing spec: golden vectors pinned forever, checked by the library and by an
independent pure-Python implementation written from docs/assignment-spec.md."""

from __future__ import annotations

import json
from pathlib import Path

import mmh3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from spec_reference import SEEDS, T, decide, event_id, key, murmur3_x64_128, murmur3_x86_32

from abkit.assignment import Experiment, assign, hashing

GOLDEN = json.loads(Path(__file__).with_name("golden_vectors.json").read_text("utf-8"))
EXPERIMENTS = {d["key"]: d for d in GOLDEN["experiments"]}


def test_golden_file_covers_the_hard_ids():
    ids = [c["unit_id"] for c in GOLDEN["cases"]]
    assert any(not i.isascii() for i in ids)
    assert any(any(ord(ch) > 0xFFFF for ch in i) for i in ids), "needs 4-byte UTF-8 (emoji)"
    assert any("\u200d" in i for i in ids), "needs a ZWJ emoji sequence"
    assert any(i.strip() == "" for i in ids), "needs whitespace-only ids"
    assert any(len(i) >= 1000 for i in ids)
    assert "café" in ids and "café" in ids  # NFC and NFD are different units
    assert GOLDEN["seeds"] == {
        "traffic": 0x74726166,
        "variant": 0x76617269,
        "namespace": 0x6E616D65,
        "holdout": 0x686F6C64,
    }


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: repr(c["unit_id"])[:30])
def test_golden_hashes(case):
    uid = case["unit_id"]
    assert hashing.unit_key("checkout-ranker", uid).hex() == case["key_hex"]
    assert key("checkout-ranker", uid).hex() == case["key_hex"]
    lib = {
        "traffic": hashing.traffic_hash("checkout-ranker", uid),
        "variant": hashing.variant_hash("checkout-ranker", uid),
        "namespace": hashing.namespace_hash("search", uid),
        "holdout": hashing.holdout_hash("global-2026", uid),
    }
    prefixes = GOLDEN["hash_prefixes"]
    ref = {d: murmur3_x86_32(key(prefixes[d], uid), SEEDS[d]) for d in lib}
    expected = {d: case[d] for d in lib}
    assert lib == expected
    assert ref == expected


def test_golden_assignments_library_and_reference():
    checked = 0
    for row in GOLDEN["assignments"]:
        exp = Experiment.from_dict(EXPERIMENTS[row["experiment"]])
        a = assign(exp, row["unit_id"], row["attributes"], expose=False)
        got = {
            "variant": a.variant,
            "in_experiment": a.in_experiment,
            "bucket": a.bucket,
            "reason": a.reason,
        }
        want = {k: row[k] for k in got}
        assert got == want, row["unit_id"]
        ref = decide(EXPERIMENTS[row["experiment"]], row["unit_id"], row["attributes"], None)
        assert ref == want, row["unit_id"]
        checked += 1
    assert checked > 150
    reasons = {r["reason"] for r in GOLDEN["assignments"]}
    assert {
        None,
        "outside_traffic",
        "namespace",
        "holdout",
        "not_targeted",
        "invalid_unit",
    } <= reasons


def test_golden_event_ids():
    for ev in GOLDEN["event_ids"]:
        got = hashing.event_id(ev["experiment"], ev["unit_id"], ev["variant"], ev["timestamp_us"])
        assert got == ev["event_id"]
        assert event_id(ev["experiment"], ev["unit_id"], ev["variant"], ev["timestamp_us"]) == got
        assert len(got) == 32 and int(got, 16) >= 0


@given(st.binary(max_size=64), st.integers(0, 2**32 - 1))
def test_reference_murmur_matches_mmh3(data, seed):
    assert murmur3_x86_32(data, seed) == mmh3.hash(data, seed, False)


@given(st.binary(max_size=80), st.integers(0, 2**32 - 1))
def test_reference_murmur128_matches_mmh3(data, seed):
    assert murmur3_x64_128(data, seed) == int.from_bytes(mmh3.hash_bytes(data, seed), "little")


@given(st.text(max_size=40))
def test_str_and_utf8_bytes_hash_identically(text):
    # abkit hashes str on the fast path and UTF-8 bytes elsewhere: they must agree
    data = ("salt\x1f" + text).encode("utf-8", "surrogatepass")
    try:
        ("salt\x1f" + text).encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates are rejected before hashing (mmh3 would crash)
    assert mmh3.hash("salt\x1f" + text, 7, False) == mmh3.hash(data, 7, False)


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.0, 0), (1.0, 2**32), (0.5, 2**31), (0.25, 2**30), (0.1, 429496729), (1 / 3, 1431655765)],
)
def test_threshold_is_exact_floor(p, expected):
    assert hashing.threshold(p) == expected == T(p)


def test_variant_bounds_last_absorbs_remainder():
    b = hashing.variant_bounds([1 / 3, 1 / 3, 1 / 3])
    assert b == (1431655765, 2863311530, 2**32)
    assert [hashing.variant_index(b, h) for h in (0, 1431655764, 1431655765, 2**32 - 1)] == [
        0,
        0,
        1,
        2,
    ]
    # a zero-weight variant owns an empty range
    b0 = hashing.variant_bounds([0.5, 0.0, 0.5])
    assert b0[0] == b0[1]
    assert hashing.variant_index(b0, b0[0]) == 2


def test_threshold_rejects_out_of_range():
    with pytest.raises(ValueError):
        hashing.threshold(1.5)
