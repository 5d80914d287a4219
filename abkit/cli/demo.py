"""``abkit demo``: simulate a recommender model experiment end to end and render its report.

Exit status: 0 when the report was written; 2 for a user error (unknown scenario).
"""

from __future__ import annotations

import argparse
import sys


def _handler(args: argparse.Namespace) -> int:
    import shlex
    import time

    from abkit.demo import DEMO_BUSINESS, SCENARIOS, run_demo

    started = time.perf_counter()
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    db = args.db
    if db is None:
        # One file per scenario, so running the other scenario keeps this one's data;
        # "all" puts both experiments in the default file.
        db = (
            "abkit-demo.db"
            if args.scenario in ("ship", "all")
            else f"abkit-demo-{args.scenario}.db"
        )
    for index, name in enumerate(scenarios):
        result = run_demo(
            name,
            fresh=index == 0,  # "all" puts both experiments in one database
            db=db,
            reports_dir=args.reports_dir,
            n_units=args.units,
            seed=args.seed,
            log=lambda line: print(f"  {line}", file=sys.stderr),
        )
        db_arg = shlex.quote(result.db_url)  # a path with spaces still pastes
        print(f"{result.experiment}: recommendation: {result.verdict.upper()}")
        print(f"  report: {result.report.resolve()}")
        print(
            f"  re-render: abkit report --db {db_arg} --experiment {result.experiment} "
            f"--metrics {shlex.quote(str(result.report.with_name(result.experiment + '.metrics.toml')))} "
            f"--impact-metric {DEMO_BUSINESS['metric']} --period {DEMO_BUSINESS['period']} "
            f"--currency {DEMO_BUSINESS['currency']}"
        )
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "demo",
        help="run the end-to-end demo: simulate, assign, ingest, analyse, report",
        description=(
            "Simulate a recommender model experiment (v1 against v2) with a true lift in "
            "conversion, assign every user with abkit.assign, log exposures through the "
            "exposure hook, ingest exposures and events into SQLite, analyse, and render the "
            "executive report into reports/. --scenario guardrail-breach gives a model that "
            "lifts conversion but raises client errors: the report says roll back."
        ),
    )
    parser.add_argument(
        "--scenario",
        choices=("ship", "guardrail-breach", "all"),
        default="ship",
        help="ship (default): v2 wins; guardrail-breach: v3 breaks a guardrail; all: both",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="SQLite file rebuilt by each run (default abkit-demo.db, or abkit-demo-SCENARIO.db "
        "for guardrail-breach), or a SQLAlchemy URL",
    )
    parser.add_argument("--reports-dir", default="reports", help="where the HTML report goes")
    parser.add_argument("--units", type=int, default=40_000, help="simulated users")
    parser.add_argument("--seed", type=int, default=7)
    parser.set_defaults(handler=_handler)
