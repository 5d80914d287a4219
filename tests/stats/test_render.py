"""Every result renders to a tidy frame of one shape: intervals as lower/upper columns."""

import pytest

from abkit.stats import MeanStats, compare, guardrail

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
def test_intervals_become_lower_and_upper_columns(result):
    frame = result.to_frame()
    assert len(frame) == 1
    tuples = [c for c in frame.columns if isinstance(frame.loc[0, c], tuple)]
    assert tuples == []
    intervals = [c for c in frame.columns if c.endswith("_lower")]
    assert intervals, "an interval column pair was expected"
    for lower in intervals:
        upper = lower.removesuffix("_lower") + "_upper"
        assert upper in frame.columns
        lo, hi = frame.loc[0, lower], frame.loc[0, upper]
        if lo is not None and hi is not None:
            assert lo <= hi
