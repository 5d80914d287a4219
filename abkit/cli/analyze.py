"""``abkit analyze``: the readout of one experiment from the store (or the user's tables).

The experiment's declared spec (``--spec``, else the default spec file when it declares the
experiment, else the newest version the store recorded: :mod:`abkit.lifecycle.declared`)
gives the metrics, method and business inputs; flags given on the command line override it.
``--since``/``--until`` (``--as-of`` is ``--until``) reproduce a readout as of a date. Exit status: 0 when the analysis ran (whatever the verdict);
2 for a user error (unknown experiment or segment, bad metrics or source file, unreachable
database).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _declared(args: argparse.Namespace, db: str) -> Any:
    """The experiment's declared spec by the one rule of :mod:`abkit.lifecycle.declared`
    (said on stderr, so the inputs' origin is never a surprise), else None."""
    from abkit.lifecycle.declared import find_spec

    declared = find_spec(args.experiment, spec=args.spec, db=db if args.source is None else None)
    if declared is not None:
        print(f"spec: {declared.origin}", file=sys.stderr)
    return declared


def _inputs(args: argparse.Namespace, db: str) -> dict[str, Any]:
    """analyze() keywords: the spec's declared inputs, overridden by the flags given."""
    given: dict[str, Any] = {
        "metrics": args.metrics,
        "method": args.method,
        "alpha": args.alpha,
        "correction": args.correction,
        "cuped": False if args.no_cuped else None,
    }
    business = {
        "metric": args.impact_metric,
        "period": args.period,
        "eligible_units_per_day": args.eligible_per_day,
        "value_per_unit": args.value_per_unit,
    }
    business = {k: v for k, v in business.items() if v is not None}
    declared = _declared(args, db)
    if declared is not None:
        from abkit.lifecycle.spec import resolve_analysis_inputs

        spec = declared.spec
        overrides = {k: v for k, v in given.items() if v is not None and k != "metrics"}
        kwargs = resolve_analysis_inputs(spec, **overrides).analyze_kwargs()
        if args.source is not None or kwargs.get("source") is None:
            kwargs.pop("source", None)  # --source wins over the spec's; none: the store
        if args.metrics is not None:
            kwargs["metrics"] = args.metrics
        if business:
            kwargs["business"] = {**(kwargs.get("business") or {}), **business}
        return kwargs
    kwargs = {k: v for k, v in given.items() if v is not None}
    kwargs["business"] = business or None
    return kwargs


def _handler(args: argparse.Namespace) -> int:
    import json

    from abkit.analysis.analyze import analyze
    from abkit.locations import default_store_url

    db = default_store_url(args.db)
    result = analyze(
        db,
        args.experiment,
        guardrails=args.guardrail or None,
        segments=tuple(args.segment or ()),
        traffic_per_day=args.traffic_per_day,
        since=args.since,
        until=args.until or args.as_of,
        **{"source": args.source, **_inputs(args, db)},
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from abkit.analysis.impact import PERIODS
    from abkit.vocabulary import CORRECTIONS, METHODS

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
        help="SQLAlchemy URL (default $ABKIT_DATABASE_URL, else ./abkit.db or ./abkit-demo.db)",
    )
    parser.add_argument("--experiment", required=True, help="experiment key")
    parser.add_argument(
        "--spec", default=None, help="experiment spec file: its metrics, method and business"
    )
    parser.add_argument(
        "--source",
        default=None,
        help="TOML file declaring your own exposure and event tables (default: abkit's store)",
    )
    parser.add_argument(
        "--metrics",
        default=None,
        help="TOML file of [[metric]] tables (default: the spec's, else conversion, revenue, "
        "orders, AOV)",
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
    parser.add_argument(
        "--since",
        default=None,
        help="only units first exposed at or after this UTC date/time (ISO-8601)",
    )
    parser.add_argument(
        "--until",
        default=None,
        help="read the data as it was before this UTC date/time (ISO-8601, exclusive)",
    )
    parser.add_argument("--as-of", default=None, help="the same as --until")
    parser.add_argument("--method", choices=METHODS, default=None, help="default fixed")
    parser.add_argument("--alpha", type=float, default=None, help="default 0.05")
    parser.add_argument("--correction", choices=CORRECTIONS, default=None, help="default holm")
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
    parser.add_argument("--period", default=None, choices=tuple(PERIODS), help="default year")
    parser.add_argument(
        "--eligible-per-day",
        type=float,
        default=None,
        help="eligible units per day if the winner ships to everyone",
    )
    parser.add_argument(
        "--value-per-unit", type=float, default=None, help="money per unit of the impact metric"
    )
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.set_defaults(handler=_handler)
