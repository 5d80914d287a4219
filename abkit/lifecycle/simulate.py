"""Error rates of the closed loop, by simulation on sufficient statistics (vectorised).

Many experiments run side by side, one array element each, for ``hours`` simulated hours.
Every hour, for every experiment still running:

* ``Poisson(eligible_per_hour)`` eligible units arrive; each enrols with the current ramp
  stage's traffic and joins control or treatment with probability 1/2;
* each enrolled unit's guardrail value (errors per unit) is drawn at once,
  ``Poisson(baseline)`` in control and ``Poisson(baseline·(1 + harm))`` in treatment, and
  added to the arm's sufficient statistics ``n, Σy, Σy²``;
* the controller looks (every ``look_every_hours``): the safety rule of
  :func:`abkit.lifecycle.safety.harm_test` at the spec's per-test level rolls the
  experiment back, else the spec's ramp advances when
  :meth:`abkit.lifecycle.spec.RampStage.minimum_met` holds.

The rule and the ramp are the controller's own functions, fed the same sufficient
statistics the SQL would return; what is simplified is the data (outcomes observed at
exposure instead of over a window, one guardrail, two arms). With ``harm = 0`` (A/A) the
rollback rate is the false-rollback rate, which must stay at or below ``safety.alpha``;
with a harm, the rollback rate within a time is the power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abkit.errors import ConfigError
from abkit.lifecycle.safety import harm_test
from abkit.lifecycle.spec import ExperimentSpec


@dataclass(frozen=True)
class LoopSimulation:
    """Outcome of :func:`simulate_loop` (per-experiment arrays and summaries).

    ``rollback_hour`` is NaN where the experiment was never rolled back;
    ``treated_units`` counts units served the treatment before rollback (or by the end);
    ``final_stage`` is the 0-based ramp stage reached. ``fixed_launch_treated`` is what a
    fixed 50/50 launch read only at the planned sample would have exposed: half of it.
    """

    n_experiments: int
    hours: int
    harm: float
    alpha: float
    rollback_hour: np.ndarray
    treated_units: np.ndarray
    final_stage: np.ndarray
    fixed_launch_treated: float | None

    @property
    def rollback_rate(self) -> float:
        return float(np.mean(np.isfinite(self.rollback_hour)))

    def rollback_rate_within(self, hours: float) -> float:
        return float(np.mean(np.nan_to_num(self.rollback_hour, nan=np.inf) <= hours))

    def standard_error(self) -> float:
        p = self.rollback_rate
        return float(np.sqrt(max(p * (1 - p), 1e-12) / self.n_experiments))

    def summary(self) -> dict[str, float | int | None]:
        rolled = np.isfinite(self.rollback_hour)
        return {
            "experiments": self.n_experiments,
            "harm": self.harm,
            "alpha": self.alpha,
            "rollback_rate": self.rollback_rate,
            "median_hours_to_rollback": float(np.median(self.rollback_hour[rolled]))
            if rolled.any()
            else None,
            "median_treated_before_rollback": float(np.median(self.treated_units[rolled]))
            if rolled.any()
            else None,
            "fixed_launch_treated": self.fixed_launch_treated,
        }


def simulate_loop(
    spec: ExperimentSpec,
    *,
    baseline: float,
    harm: float,
    eligible_per_hour: float,
    hours: int = 14 * 24,
    n_experiments: int = 500,
    look_every_hours: int = 1,
    seed: int = 0,
) -> LoopSimulation:
    """Run the loop (module docstring) for ``spec``'s ramp and safety policy."""
    if spec.ramp is None or spec.safety is None or spec.metrics is None:
        raise ConfigError(
            f"experiment {spec.key!r}: the loop simulation needs metrics, ramp and safety",
            field="ramp",
        )
    guard = spec.metrics.guardrail(spec.safety.guardrails[0])
    treatments = len(spec.experiment.variants) - 1
    alpha = spec.safety.test_alpha(treatments)
    stages = spec.ramp.stages
    traffic = np.array([s.traffic for s in stages])
    rng = np.random.default_rng(seed)
    r = n_experiments
    stats = {arm: {k: np.zeros(r) for k in ("n", "sum", "sum_sq")} for arm in ("c", "t")}
    stage = np.zeros(r, dtype=np.int64)
    stage_start = np.zeros(r)
    running = np.ones(r, dtype=bool)
    rollback_hour = np.full(r, np.nan)
    index = np.arange(r)
    means = {"c": baseline, "t": baseline * (1.0 + harm)}
    for hour in range(1, hours + 1):
        arrivals = rng.poisson(eligible_per_hour, size=r)
        enrolled = rng.binomial(arrivals, traffic[stage]) * running
        to_t = rng.binomial(enrolled, 0.5)
        for arm, count in (("c", enrolled - to_t), ("t", to_t)):
            y = rng.poisson(means[arm], size=int(count.sum())).astype(float)
            owner = np.repeat(index, count)
            stats[arm]["n"] += count
            stats[arm]["sum"] += np.bincount(owner, weights=y, minlength=r)
            stats[arm]["sum_sq"] += np.bincount(owner, weights=y * y, minlength=r)
        if hour % look_every_hours:
            continue
        with np.errstate(all="ignore"):
            test = harm_test(
                stats["c"],
                stats["t"],
                metric_type="mean",
                direction=guard.direction,
                alpha=alpha,
                tau_relative=spec.safety.tau_relative,
                margin=guard.margin,
            )
        rolled = running & test.harmful
        rollback_hour[rolled] = hour
        running &= ~rolled
        units = stats["c"]["n"] + stats["t"]["n"]
        current = stage.copy()  # one action per look, as in the controller
        for i, st in enumerate(stages[:-1]):
            move = running & (current == i) & st.minimum_met(hour - stage_start, units)
            stage[move] = i + 1
            stage_start[move] = hour
    planned = spec.metrics.planned_units
    return LoopSimulation(
        n_experiments=r,
        hours=hours,
        harm=harm,
        alpha=spec.safety.alpha,
        rollback_hour=rollback_hour,
        treated_units=stats["t"]["n"].copy(),
        final_stage=stage,
        fixed_launch_treated=None if planned is None else planned / 2.0,
    )
