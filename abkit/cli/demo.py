"""``abkit demo``: simulate a recommender model experiment end to end and render its report.

Exit status: 0 when the report was written; 2 for a user error (unknown scenario).
"""

from __future__ import annotations

import argparse
import sys


def _abkit_command() -> str:
    """How the reader can run abkit: ``abkit`` when it is on PATH, else the script's path.

    After ``make demo`` the console script is in ``.venv/bin``, which is not on PATH unless
    the environment is activated; a printed command must paste and run as it is.
    """
    import os
    import shutil
    from pathlib import Path

    script = Path(sys.executable).parent / "abkit"
    on_path = shutil.which("abkit")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "abkit"
    if script.exists():
        try:
            relative = os.path.relpath(script)
        except ValueError:  # another drive on Windows
            return str(script)
        # .venv/bin/abkit from the clone's root; an absolute path from anywhere else
        return str(script) if relative.startswith("..") else relative
    return f"{sys.executable} -m abkit"


def _handler(args: argparse.Namespace) -> int:
    import shlex
    import time

    from abkit.demo import DEMO_BUSINESS, SCENARIOS, run_demo

    started = time.perf_counter()
    abkit = shlex.quote(_abkit_command())
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
            loop=not args.fixed_launch,
            days=args.days,
        )
        db_arg = shlex.quote(result.db_url)  # a path with spaces still pastes
        print(f"{result.experiment}: recommendation: {result.verdict.upper()}")
        if result.actions:
            print(f"  controller: {' -> '.join(result.actions)}; now {result.status}")
        print(f"  report: {result.report.resolve()}")
        print(
            f"  re-render: {abkit} report --db {db_arg} --experiment {result.experiment} "
            f"--metrics {shlex.quote(str(result.report.with_name(result.experiment + '.metrics.toml')))} "
            f"--impact-metric {DEMO_BUSINESS['metric']} --period {DEMO_BUSINESS['period']} "
            f"--currency {DEMO_BUSINESS['currency']}"
        )
    if result.spec is not None:
        spec_arg = shlex.quote(str(result.spec))
        print(f"  experiments: {abkit} experiments --spec {spec_arg} --db {db_arg}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the end-to-end demo: simulate, assign, ingest, analyse, report",
        description=(
            "Simulate a recommender model experiment (v1 against v2) with a true lift in "
            "conversion, assign every user with abkit.assign, log exposures through the "
            "exposure hook, ingest exposures and events into SQLite, analyse, and render the "
            "executive report into reports/. --scenario guardrail-breach gives a model that "
            "lifts conversion but raises client errors: the report says roll back. By default "
            "the experiment runs through the closed loop: declared in reports/experiments.toml, "
            "ramped 1% -> 5% -> 20% -> 50% by the controller, shipped or rolled back "
            "automatically (abkit experiments shows it)."
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
    parser.add_argument(
        "--days", type=int, default=14, help="simulated days (the loop may stop earlier)"
    )
    parser.add_argument(
        "--fixed-launch",
        action="store_true",
        help="a fixed 50/50 launch of --units users read at the end; default: the closed "
        "loop (ramp 1%% -> 50%% by the controller, --units eligible users a day)",
    )
    parser.set_defaults(handler=_handler)
