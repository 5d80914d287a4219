"""Error rates of the loop by vectorised simulation (fixed seeds, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abkit.errors import ConfigError
from abkit.lifecycle.simulate import simulate_loop
from abkit.lifecycle.spec import specs_from_text

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "experiments.toml"


def _spec(margin: bool = False):
    text = EXAMPLE.read_text()
    if not margin:
        text = text.replace(", margin = 0.05", "")
    return specs_from_text(text)["recommender-v3"]


def test_false_rollbacks_stay_below_the_declared_rate() -> None:
    # 500 A/A experiments, the controller every simulated hour for 14 days.
    sim = simulate_loop(_spec(), baseline=0.3, harm=0.0, eligible_per_hour=100, seed=11)
    assert sim.n_experiments == 500 and sim.hours == 336
    # declared alpha 5%; allow binomial noise of 2 standard errors above it
    assert sim.rollback_rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 500)
    # and the ramp really ran: most A/A experiments reached the last stage
    assert np.mean(sim.final_stage == 3) > 0.9


def test_a_twenty_percent_harm_is_rolled_back_early() -> None:
    sim = simulate_loop(_spec(), baseline=0.3, harm=0.2, eligible_per_hour=400, seed=12)
    assert sim.rollback_rate_within(7 * 24) >= 0.9
    summary = sim.summary()
    # far fewer units see the harmful variant than a 50/50 launch read at its planned sample
    assert summary["median_treated_before_rollback"] < 0.25 * summary["fixed_launch_treated"]


def test_the_false_rollback_check_can_fail() -> None:
    # A declared rate of 45% (the rule is the same, only its level changes) rolls back many
    # harmless experiments: the A/A check above would catch a rule that is too loose.
    text = EXAMPLE.read_text().replace(", margin = 0.05", "")
    loose = specs_from_text(text.replace("alpha = 0.05  ", "alpha = 0.45  "))["recommender-v3"]
    assert loose.safety.alpha == 0.45
    sim = simulate_loop(
        loose, baseline=0.3, harm=0.0, eligible_per_hour=100, seed=11, n_experiments=200
    )
    assert sim.rollback_rate > 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)


def test_needs_ramp_and_safety() -> None:
    spec = specs_from_text('[[experiments]]\nkey = "e"\nvariants = ["a", "b"]\n')["e"]
    with pytest.raises(ConfigError, match="needs metrics, ramp and safety"):
        simulate_loop(spec, baseline=1.0, harm=0.0, eligible_per_hour=10)
