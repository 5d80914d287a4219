"""A family corrected together (abkit.stats.family): intervals agree with the significance."""

from __future__ import annotations

import numpy as np
import pytest

from abkit.stats.family import correct_family
from abkit.stats.multiple import apply_correction
from abkit.stats.readout import compare, compare_variants
from abkit.stats.simultaneous import corrected_intervals
from abkit.stats.sufficient import MeanStats


def prop(n: int, k: int) -> MeanStats:
    return MeanStats(n=n, sum=float(k), sum_sq=float(k))


def _family(seed: int, size: int = 6) -> list:
    rng = np.random.default_rng(seed)
    control = prop(4000, int(rng.binomial(4000, 0.1)))
    lifts = rng.choice([0.0, 0.01, 0.02, 0.03], size)
    return [
        compare(control, prop(4000, int(rng.binomial(4000, 0.1 + lift))), metric_type="proportion")
        for lift in lifts
    ]


def _side_of_zero(ci) -> str:
    """Where 0 lies: "above"/"below" when it is at most an end of the interval, else "across"."""
    if ci.lower is not None and ci.lower >= 0:
        return "above"
    if ci.upper is not None and ci.upper <= 0:
        return "below"
    return "across"


@pytest.mark.parametrize("correction", ["holm", "bh", "bonferroni"])
def test_adjusted_intervals_exclude_zero_exactly_when_significant(correction):
    decisions = set()
    for seed in range(12):
        decisions |= _check_family(correct_family(_family(seed), correction))
    assert decisions == {True, False}  # both verdicts were exercised


def _check_family(family) -> set[bool]:
    for r in family:
        assert r.abs_ci_adjusted is not None and r.rel_ci_adjusted is not None
        side = _side_of_zero(r.abs_ci_adjusted)
        # (Holm puts the near end of a rejected comparison exactly at 0)
        assert (side != "across") == r.significant
        # the relative interval tells the same story as the absolute one
        assert _side_of_zero(r.rel_ci_adjusted) == side
        assert "so do the adjusted intervals" in r.note
    return {r.significant for r in family}


def test_p_values_and_intervals_are_those_of_the_reference_functions():
    raw = _family(3)
    family = correct_family(raw, "holm")
    plain = apply_correction(raw, "holm")
    ref = corrected_intervals(
        [r.abs_lift for r in raw], [r.se_abs for r in raw], alpha=0.05, correction="holm"
    )
    for r, p, item in zip(family, plain, ref, strict=True):
        assert r.p_value_adjusted == p.p_value_adjusted and r.significant == p.significant
        assert r.abs_ci_adjusted == item.ci
        # Bonferroni-type intervals are at least as wide as the per-comparison ones
        assert r.rel_ci_adjusted.lower <= r.rel_ci.lower or r.rel_ci_adjusted.lower == 0.0


def test_engines_without_a_level_keep_only_adjusted_p_values():
    c, t1, t2 = prop(5000, 500), prop(5000, 560), prop(5000, 530)
    family = correct_family(
        [
            compare(c, t, metric_type="proportion", method="sequential", mde_relative=0.1)
            for t in (t1, t2)
        ],
        "holm",
    )
    assert all(r.abs_ci_adjusted is None and r.p_value_adjusted is not None for r in family)
    assert all("intervals are unadjusted" in r.note for r in family)


def test_a_member_without_data_is_left_out_of_the_family():
    c = prop(5000, 500)
    results = [
        compare(c, prop(5000, 580), metric_type="proportion"),
        compare(c, None, metric_type="proportion"),
    ]
    family = correct_family(results, "bonferroni")
    assert family[0].abs_ci_adjusted is not None and "over 1 comparisons" in family[0].note
    assert family[1].abs_ci_adjusted is None and family[1].p_value_adjusted is None


def test_compare_variants_reports_adjusted_intervals():
    arms = {"A": prop(6000, 600), "B": prop(6000, 690), "C": prop(6000, 610)}
    table = compare_variants(arms, metric_type="proportion", correction="holm")
    frame = table.to_frame()
    assert {"abs_ci_adjusted_lower", "rel_ci_adjusted_upper"} <= set(frame.columns)
    assert all(r.abs_ci_adjusted is not None for r in table)
