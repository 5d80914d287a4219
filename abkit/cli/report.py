"""``abkit report``: render an experiment's notebook template to one offline HTML file.

Exit status: 0 when the report was written; 2 for a user error (unknown experiment or
template, bad parameter, a template cell failing on the data).
"""

from __future__ import annotations

import argparse
import sys


def _parse_param(text: str) -> tuple[str, object]:
    """``NAME=VALUE``: VALUE is read as JSON when it parses (numbers, lists), else a string."""
    import json

    from abkit.errors import ConfigError

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--param needs NAME=VALUE, got {text!r}", field="param")
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def _handler(args: argparse.Namespace) -> int:
    from abkit.report.render import render_report

    impact = {
        "metric": args.impact_metric,
        "period": args.period,
        "eligible_units_per_day": args.eligible_per_day,
        "value_per_unit": args.value_per_unit,
        "currency": args.currency,
    }
    business = {k: v for k, v in impact.items() if v is not None} or None
    extra = dict(_parse_param(p) for p in (args.param or ()))
    report = render_report(
        args.db,
        args.experiment,
        template=args.template,
        out=args.out,
        metrics=args.metrics,
        alpha=args.alpha,
        method=args.method,
        segments=args.segment,
        guardrails=args.guardrail,
        business=business,
        traffic_per_day=args.traffic_per_day,
        title=args.title,
        parameters=extra,
        save_notebook=args.save_notebook,
        timeout=args.timeout,
    )
    size_kb = report.size_bytes / 1024
    print(
        f"report written to {report.path} ({size_kb:,.0f} KB, {report.seconds:.1f} s)"
        + (f"; executed notebook: {report.notebook_path}" if report.notebook_path else ""),
        file=sys.stdout,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report",
        help="render an executive HTML report (or the deep-dive / planner notebook)",
        description=(
            "Execute a notebook template for one experiment, with the options injected as "
            "data, and export it to one self-contained HTML file that opens offline. "
            "Templates: executive (code hidden, for decision makers), deep-dive (every "
            "metric, segment and check, with code), planner (sample size; no experiment)."
        ),
    )
    parser.add_argument(
        "--db",
        default=None,
        help=(
            "SQLAlchemy URL (default $ABKIT_DATABASE_URL, else ./abkit.db, else the demo's "
            "abkit-demo.db here or one folder up)"
        ),
    )
    parser.add_argument(
        "--experiment", default=None, help="experiment key (required except for the planner)"
    )
    parser.add_argument(
        "--template",
        default="executive",
        help="executive (default), deep-dive, planner, or a path to an .ipynb",
    )
    parser.add_argument(
        "--out", default=None, help="output HTML file (default reports/<experiment>.html)"
    )
    parser.add_argument("--metrics", default=None, help="TOML file of [[metric]] tables")
    parser.add_argument("--guardrail", action="append", help="guardrail metric name (repeatable)")
    parser.add_argument(
        "--segment",
        action="append",
        help="exposure attribute to break results down by (repeatable)",
    )
    parser.add_argument("--method", choices=("fixed", "sequential", "bayesian"), default=None)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument(
        "--traffic-per-day",
        type=float,
        default=None,
        help="exposed units per day (default: observed)",
    )
    parser.add_argument("--impact-metric", default=None, help="metric projected onto the business")
    parser.add_argument(
        "--period", default=None, choices=("day", "week", "month", "quarter", "year")
    )
    parser.add_argument(
        "--eligible-per-day",
        type=float,
        default=None,
        help="eligible units per day if shipped to everyone",
    )
    parser.add_argument(
        "--value-per-unit", type=float, default=None, help="money per unit of the impact metric"
    )
    parser.add_argument(
        "--currency", default=None, help="ISO currency of the impact (e.g. USD, EUR)"
    )
    parser.add_argument("--title", default=None, help="heading of the report")
    parser.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="any other template parameter (JSON value or text; repeatable)",
    )
    parser.add_argument(
        "--save-notebook",
        action="store_true",
        help="also write the executed notebook next to the HTML",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds allowed per notebook cell"
    )
    parser.set_defaults(handler=_handler)
