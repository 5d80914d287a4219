"""``abkit report``: render an experiment's notebook template to one offline HTML file.

Exit status: 0 when the report was written; 2 for a user error (unknown experiment or
template, bad parameter, a template cell failing on the data).
"""

from __future__ import annotations

import argparse
import sys

from abkit.vocabulary import METHODS


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


def _parse_value(text: str) -> tuple[str, float]:
    """``METRIC=AMOUNT``: money per unit of a metric."""
    import math

    from abkit.errors import ConfigError

    name, sep, raw = text.partition("=")
    try:
        amount = float(raw)
    except ValueError:
        amount = math.nan
    if not sep or not name.strip() or not math.isfinite(amount):
        raise ConfigError(f"--value needs METRIC=AMOUNT (a number), got {text!r}", field="value")
    return name.strip(), amount


def _registered(db: str | None) -> list[tuple[str, str]]:
    """(key, status) of every experiment registered in the store, for the index page."""
    from abkit.errors import AbkitError
    from abkit.report.adapt import resolve_db_url
    from abkit.store.store import open_store

    try:
        url = resolve_db_url(db, field="db")
        store = open_store(url, readonly=True)  # a listing writes nothing
    except AbkitError:  # no store: the index lists the reports it finds
        return []
    try:
        return [
            (key, str(config.get("status") or ""))
            for key, config in store.experiment_configs().items()
        ]
    finally:
        store.close()


def _index(args: argparse.Namespace, reports_dir: str) -> None:
    from abkit.report.index import write_index

    path = write_index(reports_dir, registered=_registered(args.db), force=args.force)
    print(f"index written to {path}", file=sys.stdout)


def _check_experiment(db: str | None, key: str, spec: str | None) -> None:
    """Raise ``NotEnoughDataError`` when the store has no exposure of ``key``: a user error
    found in a second, before a kernel starts (the report itself never opens the store).
    An experiment whose spec declares a ``source`` is read from the user's own tables: no
    store to check (and none to create in the user's database)."""
    if spec is not None:
        from abkit.lifecycle.spec import load_specs

        declared = load_specs(spec).specs.get(key)
        if declared is not None and declared.source is not None:
            return
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from abkit.errors import NotEnoughDataError, StoreError
    from abkit.report.adapt import resolve_db_url
    from abkit.store.store import open_store

    # Opening a missing SQLite file would create it and then report "no exposures".
    store = open_store(resolve_db_url(db, field="db"), create=False)
    exposures = store.tables.exposures
    try:
        with store.engine.connect() as conn:
            found = conn.execute(
                select(exposures.c.event_id).where(exposures.c.experiment == key).limit(1)
            ).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read exposures from {store.url}: {exc}") from None
    finally:
        store.close()
    if found is None:
        raise NotEnoughDataError(f"experiment {key!r} has no exposures in {store.url}")


def _spec(args: argparse.Namespace) -> str | None:
    """--spec, else the default spec file when it declares the experiment (as analyze)."""
    from abkit.lifecycle.spec import default_spec_path, load_specs

    if args.spec is not None or not args.experiment:
        return args.spec
    path = default_spec_path()
    if path is None or args.experiment not in load_specs(path).specs:
        return None
    print(f"spec: {path}", file=sys.stderr)
    return str(path)


def _handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from abkit.report.render import render_report

    if args.index and not args.experiment:
        _index(args, args.reports_dir)
        return 0

    impact = {
        "metric": args.impact_metric,
        "period": args.period,
        "eligible_units_per_day": args.eligible_per_day,
        "value_per_unit": args.value_per_unit,
        "currency": args.currency,
    }
    business = {k: v for k, v in impact.items() if v is not None} or None
    extra = dict(_parse_param(p) for p in (args.param or ()))
    spec = _spec(args)
    if args.experiment:
        _check_experiment(args.db, args.experiment, spec)
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
        since=args.since,
        until=args.until or args.as_of,
        horizon_days=args.horizon_days,
        values=dict(_parse_value(v) for v in (args.value or ())) or None,
        spec=spec,
        title=args.title,
        parameters=extra,
        save_notebook=args.save_notebook,
        force=args.force,
        timeout=args.timeout,
    )
    size_kb = report.size_bytes / 1024
    print(
        f"report written to {report.path} ({size_kb:,.0f} KB, {report.seconds:.1f} s)"
        + (f"; executed notebook: {report.notebook_path}" if report.notebook_path else ""),
        file=sys.stdout,
    )
    if args.index:
        _index(args, str(Path(report.path).parent))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    parser.add_argument(
        "--spec",
        default=None,
        help="experiment spec file: its metrics, method and business (default $ABKIT_SPEC, "
        "./experiments.toml, ./reports/experiments.toml when it declares the experiment)",
    )
    parser.add_argument("--metrics", default=None, help="TOML file of [[metric]] tables")
    parser.add_argument("--guardrail", action="append", help="guardrail metric name (repeatable)")
    parser.add_argument(
        "--segment",
        action="append",
        help="exposure attribute to break results down by (repeatable)",
    )
    parser.add_argument("--method", choices=METHODS, default=None)
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
    parser.add_argument(
        "--since", default=None, help="read only data from this ISO date-time on (UTC)"
    )
    parser.add_argument(
        "--until",
        default=None,
        help="read the experiment as of this ISO date-time (UTC; later data is left out)",
    )
    parser.add_argument("--as-of", default=None, help="the same as --until")
    parser.add_argument(
        "--horizon-days",
        type=float,
        default=None,
        help="days from the first exposure a test may run before the report says it "
        "cannot finish (default 56: eight weeks)",
    )
    parser.add_argument(
        "--value",
        action="append",
        metavar="METRIC=AMOUNT",
        help="money per unit of a metric (in --currency), to price a harmed guardrail "
        "(repeatable), e.g. errors_per_user=0.40",
    )
    parser.add_argument(
        "--index",
        action="store_true",
        help="write the index page of every experiment (reports/index.html); with "
        "--experiment, after rendering its report",
    )
    parser.add_argument(
        "--reports-dir",
        default="reports",
        help="folder of reports the index page lists (default reports)",
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
        "--force",
        action="store_true",
        help="replace an existing --out (or notebook) file that is not a report; "
        "the database itself is never replaced",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds allowed per notebook cell"
    )
    parser.set_defaults(handler=_handler)
