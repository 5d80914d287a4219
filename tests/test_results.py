"""abkit.results: the one interval type and the one way every result displays itself."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from abkit.results import Interval, ResultMixin, ResultTable, html_table, json_safe
from abkit.stats import MeanStats, compare, guardrail

ends = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))


@dataclass(frozen=True)
class _Demo(ResultMixin):
    name: str
    value: float
    ci: Interval | None


def test_interval_is_a_frozen_pair_that_unpacks_but_does_not_index():
    ci = Interval(-1.0, 2.5)
    lo, hi = ci
    assert (lo, hi) == (-1.0, 2.5) and ci.bounded
    with pytest.raises(FrozenInstanceError):
        ci.lower = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ci[0]  # type: ignore[index]


def test_interval_of_makes_non_finite_ends_unbounded():
    assert Interval.of(-math.inf, 3) == Interval(None, 3.0)
    assert Interval.of(math.nan, math.inf) == Interval(None, None)
    assert not Interval.of(1.0, math.inf).bounded


@given(ends, ends, st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e3, 1e3, allow_nan=False))
def test_contains_and_shift_agree(lower, upper, x, offset):
    ci = Interval(lower, upper)
    inside = (lower is None or lower <= x) and (upper is None or x <= upper)
    assert ci.contains(x) == inside
    moved = ci.shift(offset)
    assert (moved.lower is None) == (lower is None) and (moved.upper is None) == (upper is None)
    assert json.loads(json.dumps(json_safe(ci))) == [lower, upper]


def test_describe_shows_unbounded_ends():
    assert Interval(None, 0.25).describe() == "[-∞, 0.25]"
    assert Interval(1.0, None).describe() == "[1, ∞]"


def test_json_safe_and_rendering():
    payload = json_safe({"a": float("inf"), "b": np.float64(1.5), "c": (1, float("nan"))})
    assert payload == {"a": None, "b": 1.5, "c": [1, None]}
    demo = _Demo("x<y", 0.123456, Interval(1.0, 2.0))
    assert demo.to_dict() == {"name": "x<y", "value": 0.123456, "ci": [1.0, 2.0]}
    json.dumps(demo.to_dict(), allow_nan=False)
    assert "x&lt;y" in demo._repr_html_()
    frame = demo.to_frame()
    assert list(frame.columns) == ["name", "value", "ci_lower", "ci_upper"]
    assert frame.loc[0, "ci_upper"] == 2.0
    table = ResultTable([demo, _Demo("z", math.nan, None)], caption="demo")
    assert len(table) == 2 and table[0] is demo and list(table) == table.results
    assert "—" in table._repr_html_() and "<caption>demo</caption>" in table._repr_html_()
    assert table.to_dict()[1]["value"] is None and table.to_dict()[1]["ci"] is None
    assert table.to_frame().shape == (2, 4)
    assert "no results" in html_table([])


C = MeanStats(n=11037, sum=104, sum_sq=104)
T = MeanStats(n=11034, sum=189, sum_sq=189)


@pytest.mark.parametrize(
    "result",
    [
        compare(C, T, metric_type="proportion"),
        compare(C, T, metric_type="proportion", method="sequential", mde_relative=0.5).details,
        compare(C, T, metric_type="proportion", method="bayesian").details,
        guardrail(C, T, metric_type="proportion", margin=0.02),
    ],
    ids=["fixed", "sequential", "bayesian", "guardrail"],
)
def test_every_stats_result_holds_intervals_that_become_lower_and_upper_columns(result):
    intervals = [v for v in vars(result).values() if isinstance(v, Interval)]
    assert intervals, "an Interval field was expected"
    frame = result.to_frame()
    assert len(frame) == 1
    assert [c for c in frame.columns if isinstance(frame.loc[0, c], (tuple, Interval))] == []
    lowers = [c for c in frame.columns if c.endswith("_lower")]
    assert lowers, "an interval column pair was expected"
    for lower in lowers:
        upper = lower.removesuffix("_lower") + "_upper"
        assert upper in frame.columns
        lo, hi = frame.loc[0, lower], frame.loc[0, upper]
        if lo is not None and hi is not None:
            assert lo <= hi


@given(ends, ends, ends, ends, st.floats(-1e6, 1e6, allow_nan=False))
def test_intersect_holds_exactly_the_points_of_both(a_lo, a_hi, b_lo, b_hi, x):
    a, b = Interval(a_lo, a_hi), Interval(b_lo, b_hi)
    both = a.intersect(b)
    if both is None:
        assert not (a.contains(x) and b.contains(x))
    else:
        assert both.contains(x) == (a.contains(x) and b.contains(x))
