"""Experiment configuration: validation on construction and the Contract 5 round trip."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.assignment import Experiment, Holdout, Namespace, Variant
from abkit.errors import ConfigError

AB = ["control", "treatment"]


def test_defaults_and_accessors():
    e = Experiment("k", variants=[{"name": "control", "payload": {"model": "m1"}}, "treatment"])
    assert e.salt == "k" and e.status == "running" and e.traffic == 1.0
    assert e.variant_names == ("control", "treatment")
    assert e.control == Variant("control", payload={"model": "m1"})
    assert e.weights == (0.5, 0.5)
    assert sum(e.effective_weights) == 1.0
    assert hash(e) == hash(Experiment.from_dict(e.to_dict()))


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"variants": ["only"]}, "variants", "at least two variants"),
        ({"variants": ["a", "a"]}, "variants", "duplicate variant names"),
        (
            {"variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}]},
            "weight",
            "sum to 0.9",
        ),
        (
            {"variants": [{"name": "a", "weight": 0.5}, {"name": "b"}]},
            "weight",
            "every variant or to none",
        ),
        (
            {"variants": [{"name": "a", "weight": -0.5}, {"name": "b", "weight": 1.5}]},
            "weight",
            r"\[0, 1\]",
        ),
        ({"variants": [{"name": "a", "colour": "red"}, "b"]}, "colour", "unknown field 'colour'"),
        (
            {"variants": [{"name": "a", "payload": {"f": object()}}, "b"]},
            "payload",
            "not JSON-safe",
        ),
        ({"variants": AB, "traffic": 1.2}, "traffic", r"\[0, 1\]"),
        ({"variants": AB, "traffic": "half"}, "traffic", "must be a number"),
        ({"variants": AB, "status": "live"}, "status", "draft, running, paused, stopped"),
        ({"variants": AB, "winner": "nope"}, "winner", "not a variant"),
        ({"variants": AB, "start": "2026-13-01"}, "start", "not an ISO-8601"),
        ({"variants": AB, "start": "2026-03-01T00:00:00"}, "start", "no UTC offset"),
        (
            {"variants": AB, "start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
            "end",
            "not before end",
        ),
        ({"variants": AB, "forced": {"qa": "nope"}}, "forced", "variant name"),
        ({"variants": AB, "salt": "a\x1fb"}, "salt", "unit separator"),
        (
            {"variants": AB, "namespace": {"name": "n", "start": 0.5, "end": 0.5}},
            "namespace",
            "below end",
        ),
        ({"variants": AB, "namespace": {"name": "n", "size": 0.5}}, "size", "unknown field 'size'"),
        ({"variants": AB, "holdout": {"name": "h", "fraction": 1.0}}, "holdout", "below 1"),
        (
            {"variants": AB, "targeting": {"attr": "x", "regex": "("}},
            "targeting",
            "invalid regular expression",
        ),
        ({"variants": AB, "tags": "a,b"}, "tags", "list of strings"),
    ],
)
def test_invalid_configs_raise_located_errors(kwargs, field, message):
    with pytest.raises(ConfigError, match=message) as info:
        Experiment("exp-key", **kwargs)
    assert info.value.location.field == field
    assert "exp-key" in str(info.value)


def test_from_dict_rejects_unknown_fields_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown field 'trafic'.*did you mean 'traffic'"):
        Experiment.from_dict({"key": "k", "variants": AB, "trafic": 0.5})


def test_weights_summing_to_one_in_decimal_are_accepted():
    e = Experiment(
        "k",
        variants=[
            {"name": n, "weight": w} for n, w in zip("abc", (0.3333, 0.3333, 0.3334), strict=False)
        ],
    )
    assert e.weights == (0.3333, 0.3333, 0.3334)


def test_payload_is_frozen_and_copied():
    payload = {"model": "m1"}
    v = Variant("a", payload=payload)
    payload["model"] = "changed"
    assert v.payload["model"] == "m1"
    with pytest.raises(TypeError):
        v.payload["model"] = "x"  # type: ignore[index]


def _experiment_dicts():
    name = st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x1f"),
        min_size=1,
        max_size=10,
    ).filter(str.strip)
    when = st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.just(timezone.utc),
    )

    @st.composite
    def build(draw):
        n = draw(st.integers(2, 4))
        names = draw(st.lists(name, min_size=n, max_size=n, unique=True))
        start = draw(st.none() | when)
        return {
            "key": draw(name),
            "variants": [
                {
                    "name": x,
                    "weight": None,
                    "payload": draw(
                        st.dictionaries(
                            st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3
                        )
                    ),
                }
                for x in names
            ],
            "traffic": draw(st.floats(0, 1)),
            "salt": draw(name),
            "status": draw(st.sampled_from(["draft", "running", "paused", "stopped"])),
            "winner": draw(st.none() | st.sampled_from(names)),
            "start": None if start is None else start.isoformat(),
            "end": None,
            "targeting": draw(
                st.none()
                | st.just(
                    {"all": [{"attr": "c", "in": ["US"]}, {"not": {"attr": "ua", "regex": "bot"}}]}
                )
            ),
            "forced": draw(
                st.dictionaries(st.text(min_size=1, max_size=5), st.sampled_from(names), max_size=2)
            ),
            "namespace": draw(st.none() | st.just({"name": "ns", "start": 0.25, "end": 0.5})),
            "holdout": draw(st.none() | st.just({"name": "h", "fraction": 0.05})),
            "description": draw(st.text(max_size=20)),
            "hypothesis": draw(st.text(max_size=20)),
            "owner": draw(st.text(max_size=10)),
            "tags": draw(st.lists(st.text(max_size=5), max_size=3)),
        }

    return build()


@settings(max_examples=80, deadline=None)
@given(_experiment_dicts())
def test_to_dict_from_dict_round_trip_is_exact(d):
    e = Experiment.from_dict(d)
    out = e.to_dict()
    assert json.loads(json.dumps(out)) == out  # JSON-safe
    again = Experiment.from_dict(json.loads(json.dumps(out)))
    assert again == e
    assert again.to_dict() == out
    assert set(out) >= {
        "key",
        "variants",
        "traffic",
        "salt",
        "status",
        "winner",
        "start",
        "end",
        "namespace",
        "description",
        "hypothesis",
        "owner",
        "tags",
    }


def test_namespace_and_holdout_objects():
    ns = Namespace("home", 0.0, 0.5)
    assert ns.overlaps(Namespace("home", 0.4, 1.0))
    assert not ns.overlaps(Namespace("home", 0.5, 1.0))
    assert not ns.overlaps(Namespace("other", 0.0, 1.0))
    e = Experiment("k", variants=AB, namespace=ns, holdout=Holdout("h", 0.1))
    assert Experiment.from_dict(e.to_dict()) == e
