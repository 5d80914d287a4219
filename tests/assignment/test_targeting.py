"""The targeting rule language: operators, combinators, versions, and located errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abkit.assignment.targeting import compile_rule, parse_version
from abkit.errors import ConfigError


@pytest.mark.parametrize(
    ("rule", "attrs", "expected"),
    [
        ({"attr": "country", "eq": "US"}, {"country": "US"}, True),
        ({"attr": "country", "eq": "US"}, {"country": "us"}, False),
        ({"attr": "country", "eq": "US"}, {}, False),
        ({"attr": "country", "ne": "US"}, {"country": "FR"}, True),
        ({"attr": "country", "ne": "US"}, {}, False),  # missing is never a match
        ({"attr": "country", "in": ["US", "CA"]}, {"country": "CA"}, True),
        ({"attr": "country", "not_in": ["US", "CA"]}, {"country": "FR"}, True),
        ({"attr": "beta", "eq": True}, {"beta": 1}, False),  # bools are type-strict
        ({"attr": "beta", "in": [True]}, {"beta": 1}, False),
        ({"attr": "n", "in": [1]}, {"n": True}, False),
        ({"attr": "age", "gte": 18}, {"age": 18}, True),
        ({"attr": "age", "gt": 18}, {"age": 18}, False),
        ({"attr": "age", "lt": 18}, {"age": "17"}, False),  # strings are not numbers
        ({"attr": "age", "lte": 1}, {"age": True}, False),  # nor are bools
        ({"attr": "score", "lt": 0.5}, {"score": 0.25}, True),
        (
            {"attr": "ua", "regex": "(?i)bot|crawler"},
            {"ua": "Mozilla (compatible; Googlebot)"},
            True,
        ),
        ({"attr": "ua", "regex": "bot"}, {"ua": 42}, False),
        ({"attr": "ua", "exists": True}, {"ua": "x"}, True),
        ({"attr": "ua", "exists": False}, {"ua": None}, True),  # None counts as missing
        ({"attr": "v", "version_gte": "2.3"}, {"v": "2.3.0"}, True),
        ({"attr": "v", "version_gte": "2.3.0"}, {"v": "2.10.0"}, True),  # not string order
        ({"attr": "v", "version_lt": "2.3.0"}, {"v": "2.3.0-beta.2"}, True),
        ({"attr": "v", "version_eq": "v1.2.0+build.7"}, {"v": "1.2"}, True),
        ({"attr": "v", "version_gt": "1.0"}, {"v": "not-a-version"}, False),
        ({"not": {"attr": "ua", "regex": "bot"}}, {}, True),
        ({"all": [{"attr": "a", "eq": 1}, {"attr": "b", "eq": 2}]}, {"a": 1, "b": 2}, True),
        ({"all": [{"attr": "a", "eq": 1}, {"attr": "b", "eq": 2}]}, {"a": 1, "b": 3}, False),
        ({"any": [{"attr": "a", "eq": 1}, {"attr": "b", "eq": 2}]}, {"a": 0, "b": 2}, True),
        ({"any": [{"attr": "a", "eq": 1}, {"not": {"attr": "b", "exists": True}}]}, {"a": 0}, True),
    ],
)
def test_rule_semantics(rule, attrs, expected):
    assert compile_rule(rule)(attrs) is expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"attr": "x"}, r"targeting: a condition needs exactly one operator"),
        ({"attr": "x", "eq": 1, "ne": 2}, r"exactly one operator"),
        ({"attr": "x", "regx": "a"}, r"unknown operator 'regx'"),
        (
            {"all": [{"attr": "x", "eq": 1}, {"attr": "y", "gt": "ten"}]},
            r"targeting\.all\[1\]\.gt: needs a number",
        ),
        ({"any": []}, r"non-empty list"),
        (
            {"not": {"attr": "ua", "regex": "("}},
            r"targeting\.not\.regex: invalid regular expression",
        ),
        ({"attr": "v", "version_gte": "two"}, r"not a version"),
        ({"attr": "c", "in": "US"}, r"needs a list"),
        ({"eval": "__import__('os')"}, r"expected 'all', 'any', 'not'"),
        (["attr", "x"], r"must be a table/object"),
        ({"attr": "x", "exists": "yes"}, r"true or false"),
    ],
)
def test_rule_errors_name_the_path(rule, message):
    with pytest.raises(ConfigError, match=message) as info:
        compile_rule(rule)
    assert info.value.location.field == "targeting"


def test_semver_precedence_order():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.2",
        "1.10.0",
        "2",
    ]
    keys = [parse_version(v) for v in ordered]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=5),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=5),
)
def test_version_order_matches_numeric_tuples(a, b):
    va, vb = parse_version(".".join(map(str, a))), parse_version(".".join(map(str, b)))

    def norm(x):
        x = list(x)
        while len(x) > 1 and x[-1] == 0:
            x.pop()
        return tuple(x)

    assert (va < vb) == (norm(a) < norm(b))
    assert (va == vb) == (norm(a) == norm(b))
