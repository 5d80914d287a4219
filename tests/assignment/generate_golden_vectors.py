"""Generate tests/assignment/golden_vectors.json ONCE; the file is then pinned forever.

Run ``python tests/assignment/generate_golden_vectors.py --force`` only when the spec
version changes on purpose. The test suite never regenerates it; it recomputes every
value and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from abkit.assignment import Experiment, assign, hashing

OUT = Path(__file__).with_name("golden_vectors.json")

UNIT_IDS = [
    "user-123",
    "0",
    "1",
    "42",
    "a",
    "A",
    " ",
    "   ",
    "\t",
    "\n",
    "nul\x00inside",
    "with\x1fseparator",
    "00000000-0000-0000-0000-000000000000",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "café",  # NFC: U+00E9
    "café",  # NFD: e + U+0301 (a different unit)
    "Straße",
    "ünïcödé",
    "Ω≈ç√∫",
    "日本語ユーザー",
    "사용자",
    "مستخدم",
    "пользователь",
    "👍",
    "😀😃😄",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "user-👍-123",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "x" * 64,
    "long-" + "0123456789" * 100,
    "é🙂x" * 400,
]

EXPERIMENTS = [
    Experiment("checkout-ranker", variants=["control", "treatment"], traffic=0.37),
    Experiment(
        "homepage-model",
        variants=[
            {"name": "v1", "weight": 0.2, "payload": {"model": "hp-v1"}},
            {"name": "v2", "weight": 0.3, "payload": {"model": "hp-v2"}},
            {"name": "v3", "weight": 0.5, "payload": {"model": "hp-v3"}},
        ],
    ),
    Experiment(
        "search-rerank",
        variants=["control", "treatment"],
        salt="search-rerank-rerun-2",
        namespace={"name": "search", "start": 0.25, "end": 0.75},
        holdout={"name": "global-2026", "fraction": 0.1},
    ),
    Experiment(
        "us-only",
        variants=["control", "treatment"],
        targeting={"all": [{"attr": "country", "in": ["US", "CA"]}, {"attr": "age", "gte": 18}]},
    ),
]
ATTRIBUTES = [None, {"country": "US", "age": 30}, {"country": "FR", "age": 30}]


def build() -> dict:
    cases = []
    for uid in UNIT_IDS:
        cases.append(
            {
                "unit_id": uid,
                "key_hex": hashing.unit_key("checkout-ranker", uid).hex(),
                "traffic": hashing.traffic_hash("checkout-ranker", uid),
                "variant": hashing.variant_hash("checkout-ranker", uid),
                "namespace": hashing.namespace_hash("search", uid),
                "holdout": hashing.holdout_hash("global-2026", uid),
            }
        )
    assignments = []
    for exp in EXPERIMENTS:
        attr_sets = ATTRIBUTES if exp.targeting is not None else [None]
        for attrs in attr_sets:
            for uid in [*UNIT_IDS, "", 12345, "bad\udc80surrogate"]:
                a = assign(exp, uid, attrs, expose=False)
                assignments.append(
                    {
                        "experiment": exp.key,
                        "unit_id": uid,
                        "attributes": attrs,
                        "variant": a.variant,
                        "in_experiment": a.in_experiment,
                        "bucket": a.bucket,
                        "reason": a.reason,
                    }
                )
    events = [
        {
            "experiment": e,
            "unit_id": u,
            "variant": v,
            "timestamp_us": ts,
            "event_id": hashing.event_id(e, u, v, ts),
        }
        for e, u, v, ts in [
            ("checkout-ranker", "user-123", "treatment", 1_767_225_600_000_000),
            ("homepage-model", "日本語ユーザー", "v3", 1_767_225_600_123_456),
            ("homepage-model", "👨‍👩‍👧‍👦", "v1", 0),
        ]
    ]
    return {
        "spec_version": hashing.SPEC_VERSION,
        "seeds": {
            "traffic": hashing.SEED_TRAFFIC,
            "variant": hashing.SEED_VARIANT,
            "namespace": hashing.SEED_NAMESPACE,
            "holdout": hashing.SEED_HOLDOUT,
        },
        "hash_prefixes": {
            "traffic": "checkout-ranker",
            "variant": "checkout-ranker",
            "namespace": "search",
            "holdout": "global-2026",
        },
        "experiments": [e.to_dict() for e in EXPERIMENTS],
        "cases": cases,
        "assignments": assignments,
        "event_ids": events,
    }


if __name__ == "__main__":
    if OUT.exists() and "--force" not in sys.argv:
        sys.exit(f"{OUT} exists and is pinned; pass --force only for a new spec version")
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
