"""Quality checks on hand-built sufficient statistics (no database)."""

from __future__ import annotations

import pytest

from abkit.analysis.quality import balance_checks
from abkit.stats.sufficient import MeanStats


def test_balance_check_reads_the_pre_period_not_the_outcome():
    def arm(n, pre_mean, post_mean):
        # covariate x and outcome y with sd 1 each and correlation 0.5
        return MeanStats(
            n=n,
            sum=post_mean * n,
            sum_sq=n * (1.0 + post_mean**2),
            cov_sum=pre_mean * n,
            cov_sum_sq=n * (1.0 + pre_mean**2),
            cross_sum=n * (0.5 + pre_mean * post_mean),
        )

    # a large true effect after exposure, identical pre-periods: balanced
    (ok,) = balance_checks(
        {"m": {"control": arm(5_000, 1.0, 1.0), "t": arm(5_000, 1.0, 1.5)}}, "control"
    )
    assert not ok.imbalanced and ok.p_value == pytest.approx(1.0)
    assert (ok.control_mean, ok.treatment_mean) == (1.0, 1.0)
    # arms that differed before exposure (0.1 sd on 5k units each, p ~ 5e-7): flagged
    (bad,) = balance_checks(
        {"m": {"control": arm(5_000, 1.0, 1.0), "t": arm(5_000, 1.1, 1.0)}}, "control"
    )
    assert bad.imbalanced and bad.p_value < 1e-5
    assert bad.treatment_mean == pytest.approx(1.1)
