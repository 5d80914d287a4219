"""Error rates of the closed loop (issue 10): false rollbacks and the power to roll back.

The spec is docs/examples/experiments.toml (ramp 1% -> 5% -> 20% -> 50%, minimum 24 h per
stage, one guardrail ``errors_per_user``, safety alpha 5%), with the guardrail's margin
removed (the strictest rule: any harm counts). Each row simulates ``--experiments``
experiments with :func:`abkit.lifecycle.simulate.simulate_loop` (the controller's own rule
and ramp, on sufficient statistics, a look every simulated hour for 14 days; errors per user
Poisson with mean 0.3; ``--eligible`` eligible users per hour).

    python benchmarks/bench_lifecycle.py [--experiments 2000] [--eligible 400]

Prints a Markdown table: rollback rate (false rollbacks for harm 0), rollback within 1, 3
and 7 days, median hours to rollback, median units served the harmful variant before
rollback, beside a fixed 50/50 launch read at its planned sample (half the planned units).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from abkit.lifecycle.simulate import simulate_loop
from abkit.lifecycle.spec import specs_from_text

SPEC = Path(__file__).resolve().parents[1] / "docs" / "examples" / "experiments.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--eligible", type=float, default=400.0, help="eligible users per hour")
    parser.add_argument("--harms", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    text = SPEC.read_text(encoding="utf-8").replace(", margin = 0.05", "")
    spec = specs_from_text(text, source=str(SPEC))["recommender-v3"]
    print(
        "| harm | experiments | rollback rate (± 2 se) | within 1 d | within 3 d | within 7 d "
        "| median h to rollback | median treated units at rollback | fixed 50/50 launch "
        "treated | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, harm in enumerate(args.harms):
        t0 = time.perf_counter()
        sim = simulate_loop(
            spec,
            baseline=0.3,
            harm=harm,
            eligible_per_hour=args.eligible,
            n_experiments=args.experiments,
            seed=args.seed + i,
        )
        s = sim.summary()
        hours = s["median_hours_to_rollback"]
        treated = s["median_treated_before_rollback"]
        print(
            f"| {harm:+.0%} | {args.experiments} | {sim.rollback_rate:.2%} "
            f"(± {2 * sim.standard_error():.2%}) | {sim.rollback_rate_within(24):.1%} "
            f"| {sim.rollback_rate_within(72):.1%} | {sim.rollback_rate_within(168):.1%} "
            f"| {'-' if hours is None else f'{hours:.0f}'} "
            f"| {'-' if treated is None else f'{treated:,.0f}'} "
            f"| {s['fixed_launch_treated']:,.0f} | {time.perf_counter() - t0:.1f} |"
        )
    alpha = 0.05 if spec.safety is None else spec.safety.alpha
    print(f"\nsafety alpha {alpha:.0%}; the +0% row is the false-rollback rate.")


if __name__ == "__main__":
    main()
