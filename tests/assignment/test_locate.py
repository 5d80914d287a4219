"""Field paths -> file lines, for TOML and JSON text (abkit/assignment/locate.py)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.assignment.locate import (
    FieldLocator,
    format_field_path,
    line_map,
    parse_field_path,
)

names = st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True)
scalars = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(names, inner, min_size=1, max_size=4)
    ),
    max_leaves=25,
)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(names, documents, min_size=1, max_size=5), st.sampled_from([None, 1, 2]))
def test_every_json_key_is_found_on_its_own_line(data, indent):
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    lines = text.split("\n")  # lines end at "\n" only, as parsers and editors count them
    found = line_map(text, "json")
    for path in _paths(data):
        assert path in found, path
        if isinstance(path[-1], str):
            assert json.dumps(path[-1], ensure_ascii=False) + ":" in lines[found[path] - 1]


@given(st.lists(st.one_of(names, st.integers(0, 99)), min_size=1, max_size=6))
def test_field_paths_round_trip(parts):
    if isinstance(parts[0], int):
        parts = ["root", *parts]
    assert parse_field_path(format_field_path(parts)) == tuple(parts)


TOML = """\
# comment with [brackets] and key = "value"
[holdout]
name = "h"   # trailing comment
fraction = 0.05

[[experiments]]
key = "a"
"quoted.key" = 1
dotted.inner = "x"
text = \"\"\"
[[experiments]]
key = "not a real key"
\"\"\"
when = 1979-05-27 07:32:00Z
stages = [
  { traffic = 0.01, min_hours = 24 },  # first
  { traffic = 0.05 },
]

[[experiments.variants]]
name = "control"

[[experiments.variants]]
name = "treatment"
payload = { model = { name = "m2", size = 3 } }

[[experiments]]
key = "b"
[experiments.safety]
rollback_variant = "off"
"""


def test_toml_headers_arrays_and_multiline_strings():
    import tomllib

    data = tomllib.loads(TOML)  # the scanner assumes text the parser accepted
    assert data["experiments"][0]["text"].startswith("[[experiments]]")
    found = line_map(TOML, "toml")
    assert found[("holdout", "fraction")] == 4
    assert found[("experiments", 0, "key")] == 7
    assert found[("experiments", 0, "quoted.key")] == 8
    assert found[("experiments", 0, "dotted", "inner")] == 9
    assert found[("experiments", 0, "when")] == 14
    assert found[("experiments", 0, "stages", 1, "traffic")] == 17
    assert found[("experiments", 0, "variants", 1, "payload", "model", "size")] == 25
    assert found[("experiments", 1, "key")] == 28
    assert found[("experiments", 1, "safety", "rollback_variant")] == 30
    assert len([p for p in found if p[-1] == "key"]) == 2  # not the one inside the string


def test_a_missing_field_falls_back_to_its_parent_and_bad_text_degrades():
    locator = FieldLocator(TOML, "toml")
    assert locator.line(("experiments", 1, "safety", "nope")) == 29
    assert locator.find(("experiments", 0), "name") == 21
    assert FieldLocator(None, "toml").line(("x",)) is None
    partial = line_map('{"a": 1, "b": [1, 2', "json")  # truncated: what was seen so far
    assert partial[("a",)] == 1 and ("b", 1) in partial
