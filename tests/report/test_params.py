"""Parameters are injected as data: literals only, never code."""

from __future__ import annotations

import ast

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.errors import ConfigError
from abkit.report.params import (
    INJECTED_TAG,
    inject_parameters,
    parameters_source,
    template_parameter_names,
    validate_parameters,
)

HOSTILE = "x'\"\n__import__('os').system('touch /tmp/abkit-pwned') # \\ \"\"\" '''"


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# t"),
        nbformat.v4.new_code_cell(
            "experiment = 'a'\nalpha: float = 0.05\nsegments = []",
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell("print(experiment)"),
    ]
    return nb


def _assignments(source: str) -> dict[str, object]:
    """Every statement must be ``name = <literal>``; return the values."""
    tree = ast.parse(source)
    values = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign), ast.dump(node)
        assert len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_hostile_string_is_a_single_literal():
    source = parameters_source({"experiment": HOSTILE, "title": "a\nb"})
    assert _assignments(source) == {"experiment": HOSTILE, "title": "a\nb"}


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(
            lambda s: (
                s
                not in {
                    "if",
                    "in",
                    "is",
                    "or",
                    "as",
                    "def",
                    "for",
                    "and",
                    "not",
                    "del",
                    "try",
                    "with",
                }
            )
        ),
        json_like,
        max_size=5,
    )
)
def test_any_json_like_value_round_trips_as_literal(params):
    assert _assignments(parameters_source(params)) == params


def test_tuples_become_lists():
    assert _assignments(parameters_source({"segments": ("a", "b")})) == {"segments": ["a", "b"]}


@pytest.mark.parametrize(
    "bad",
    [
        {"x": object()},
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": {1: "a"}},
        {"x": b"bytes"},
        {"x": {"nested": [set()]}},
        {"not an identifier": 1},
        {"class": 1},
        {"x\ny": 1},
    ],
)
def test_non_data_is_refused(bad):
    with pytest.raises(ConfigError):
        validate_parameters(bad)


def test_inject_after_parameters_cell_and_replace_previous():
    nb = _notebook()
    assert template_parameter_names(nb) == ["experiment", "alpha", "segments"]
    inject_parameters(nb, {"experiment": HOSTILE})
    assert INJECTED_TAG in nb.cells[2].metadata["tags"]
    assert _assignments(nb.cells[2].source) == {"experiment": HOSTILE}
    # Re-injecting replaces the old cell instead of stacking a second one.
    inject_parameters(nb, {"alpha": 0.1})
    injected = [c for c in nb.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(injected) == 1 and _assignments(injected[0].source) == {"alpha": 0.1}


def test_unknown_parameter_is_refused_with_the_accepted_names():
    with pytest.raises(ConfigError, match="accepts: experiment, alpha, segments"):
        inject_parameters(_notebook(), {"alhpa": 0.1})
