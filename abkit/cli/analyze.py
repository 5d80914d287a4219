"""``abkit analyze``: the readout of one experiment from the store.

Exit status: 0 when the analysis ran (whatever the verdict); 2 for a user error (unknown
experiment, bad metrics file, unreachable database).
"""

from __future__ import annotations

import argparse
import sys


def _handler(args: argparse.Namespace) -> int:
    import json

    from abkit.analysis.analyze import analyze
    from abkit.analysis.impact import BusinessAssumptions

    business = BusinessAssumptions(
        metric=args.impact_metric,
        period=args.period,
        eligible_units_per_day=args.eligible_per_day,
        value_per_unit=args.value_per_unit,
    )
    result = analyze(
        args.db,
        args.experiment,
        args.metrics,
        guardrails=args.guardrail or None,
        method=args.method,
        alpha=args.alpha,
        segments=tuple(args.segment or ()),
        correction=args.correction,
        cuped=not args.no_cuped,
        traffic_per_day=args.traffic_per_day,
        business=business,
    )
    out = sys.stdout
    if args.format == "json":
        json.dump(result.to_dict(), out, indent=2, allow_nan=False)
        out.write("\n")
    elif args.format == "csv":
        frame = result.to_frame()
        frame.insert(0, "verdict", result.decision.verdict)
        frame.insert(0, "experiment", result.experiment.key)
        frame.to_csv(out, index=False)
    else:
        out.write(result.summary() + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "analyze",
        help="analyse an experiment: quality checks, lifts, decision, business impact",
        description=(
            "Aggregate an experiment's exposures and events inside the database and print "
            "its readout: data-quality checks (SRM, multiple exposure, pre-period balance, "
            "excluded events), lift per metric with intervals, guardrails, the decision and "
            "the projected business impact."
        ),
    )
    parser.add_argument(
        "--db",
        default=None,
        help="SQLAlchemy URL (default $ABKIT_DATABASE_URL or sqlite:///abkit.db)",
    )
    parser.add_argument("--experiment", required=True, help="experiment key")
    parser.add_argument(
        "--metrics",
        default=None,
        help="TOML file of [[metric]] tables (default: conversion, revenue, orders, AOV)",
    )
    parser.add_argument(
        "--guardrail",
        action="append",
        help="guardrail metric name (repeatable; library or --metrics names)",
    )
    parser.add_argument(
        "--segment",
        action="append",
        help="exposure attribute to break results down by (repeatable)",
    )
    parser.add_argument("--method", choices=("fixed", "sequential", "bayesian"), default="fixed")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--correction", default="holm", help="holm (default), bh, bonferroni or none"
    )
    parser.add_argument(
        "--no-cuped", action="store_true", help="do not use the pre-period covariate"
    )
    parser.add_argument(
        "--traffic-per-day",
        type=float,
        default=None,
        help="exposed units per day (default: observed)",
    )
    parser.add_argument(
        "--impact-metric",
        default=None,
        help="metric projected onto the business (default revenue_per_user or the primary)",
    )
    parser.add_argument(
        "--period", default="year", choices=("day", "week", "month", "quarter", "year")
    )
    parser.add_argument(
        "--eligible-per-day",
        type=float,
        default=None,
        help="eligible units per day if the winner ships to everyone",
    )
    parser.add_argument(
        "--value-per-unit", type=float, default=1.0, help="money per unit of the impact metric"
    )
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.set_defaults(handler=_handler)
