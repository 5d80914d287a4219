"""The always-valid harm rule, checked against the mSPRT readout of abkit.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from abkit.lifecycle.safety import harm_evidence, harm_test
from abkit.stats.estimators import estimate_difference
from abkit.stats.sequential import sequential_readout
from abkit.stats.sufficient import MeanStats

CONTROL = MeanStats(n=5000, sum=1500.0, sum_sq=1950.0)  # errors per user, mean 0.3
WORSE = MeanStats(n=5000, sum=1800.0, sum_sq=2400.0)  # +20%


@pytest.mark.parametrize(
    ("direction", "alternative", "control", "treatment"),
    [("lower", "larger", CONTROL, WORSE), ("higher", "smaller", CONTROL, WORSE)],
)
def test_matches_the_one_sided_msprt_readout(direction, alternative, control, treatment) -> None:
    tau_relative = 0.1
    ev = harm_evidence(
        "errors",
        "t",
        control,
        treatment,
        metric_type="mean",
        direction=direction,
        alpha=0.05,
        tau_relative=tau_relative,
    )
    diff = estimate_difference(control, treatment, metric_type="mean")
    ref = sequential_readout(
        diff, alpha=0.05, alternative=alternative, tau=tau_relative * diff.control_mean
    )
    assert ev.p_value == pytest.approx(ref.p_value, rel=1e-9)
    assert ev.harmful == ref.significant
    sign = 1 if direction == "lower" else -1
    assert ev.harm == pytest.approx(sign * diff.abs_diff, rel=1e-12)
    # the one-sided confidence sequence for the harm
    bound = ref.abs_ci.lower if direction == "lower" else -ref.abs_ci.upper
    assert ev.interval.lower == pytest.approx(bound, rel=1e-9)


def test_a_clear_harm_is_flagged_and_no_harm_is_not() -> None:
    kwargs = {"metric_type": "mean", "direction": "lower", "alpha": 0.05, "tau_relative": 0.1}
    assert harm_evidence("e", "t", CONTROL, WORSE, **kwargs).harmful
    assert not harm_evidence("e", "t", CONTROL, CONTROL, **kwargs).harmful
    # an improvement is never harm
    assert not harm_evidence("e", "t", WORSE, CONTROL, **kwargs).harmful


def test_margin_tolerates_harm_below_it() -> None:
    kwargs = {"metric_type": "mean", "direction": "lower", "alpha": 0.05, "tau_relative": 0.1}
    assert harm_evidence("e", "t", CONTROL, WORSE, **kwargs).harmful
    assert not harm_evidence("e", "t", CONTROL, WORSE, margin=0.25, **kwargs).harmful


def test_not_enough_data_is_not_harm() -> None:
    one = MeanStats(n=1, sum=1.0, sum_sq=1.0)
    ev = harm_evidence(
        "e", "t", one, one, metric_type="mean", direction="lower", alpha=0.05, tau_relative=0.1
    )
    assert not ev.harmful and ev.harm is None and "not enough data" in ev.sentence()


@given(
    n=st.integers(10, 10_000),
    mean_c=st.floats(0.05, 5.0),
    lift=st.floats(-0.5, 0.5),
)
def test_vectorised_equals_scalar(n: int, mean_c: float, lift: float) -> None:
    c = MeanStats(n=n, sum=n * mean_c, sum_sq=n * (mean_c + mean_c**2))
    mt = mean_c * (1 + lift)
    t = MeanStats(n=n, sum=n * mt, sum_sq=n * (mt + mt**2))
    arrays = harm_test(
        {
            "n": np.array([n, n]),
            "sum": np.array([c.sum, c.sum]),
            "sum_sq": np.array([c.sum_sq] * 2),
        },
        {
            "n": np.array([n, n]),
            "sum": np.array([t.sum, c.sum]),
            "sum_sq": np.array([t.sum_sq, c.sum_sq]),
        },
        metric_type="mean",
        direction="lower",
        alpha=0.01,
        tau_relative=0.2,
    )
    one = harm_evidence(
        "e", "t", c, t, metric_type="mean", direction="lower", alpha=0.01, tau_relative=0.2
    )
    assert bool(arrays.harmful[0]) == one.harmful
    assert math.exp(-max(float(arrays.log_e_value[0]), 0.0)) == pytest.approx(one.p_value)
    assert not arrays.harmful[1]
