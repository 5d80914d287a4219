"""``abkit controller run``: one pass of the lifecycle controller (safe from cron).

    abkit controller run --spec experiments.toml --db URL [--dry-run] [--experiment KEY]
        [--hook package.module:function] [--command "notify-send abkit"] [--webhook URL]
        [--audit-log FILE]

For each running experiment: roll back on guardrail harm (always-valid test), advance the
ramp when the stage's minimum is met, ship or stop when the primary decision is final (per
the spec's policy). Each action writes a new spec version atomically, an audit entry in
the store and in the JSON-lines audit log (default: ``<spec>.audit.jsonl``), then calls
the hooks. ``--dry-run`` prints what it would do and changes nothing. Exit status: 0 ok;
1 when an experiment could not be evaluated (the others were acted on); 2 for a user error.
"""

from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from datetime import datetime

    from abkit.cli.experiments import notifiers_from, spec_path, store_url
    from abkit.lifecycle.controller import run_controller

    spec = spec_path(args)
    notifiers = notifiers_from(args, spec)
    now = None if args.now is None else datetime.fromisoformat(args.now.replace("Z", "+00:00"))
    report = run_controller(
        spec,
        store_url(args),
        now=now,
        dry_run=args.dry_run,
        notifiers=notifiers,
        only=tuple(args.experiment or ()),
    )
    for line in report.lines():
        print(line)
    for entry in report.applied:
        print(f"{entry.experiment}: {entry.action} recorded ({entry.reason})")
    for text in report.already_done:
        print(f"{text}: already recorded by another controller")
    for text in report.deferred:
        print(f"{text}: the next run evaluates the new version")
    for error in report.hook_errors:
        print(f"warning: notification failed: {error}", file=sys.stderr)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    # the other experiments were acted on; cron still hears that one could not be read
    return 1 if report.errors else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from abkit.cli.experiments import add_notifier_arguments

    parser = subparsers.add_parser(
        "controller",
        help="run the lifecycle controller: ramp, roll back on harm, ship (audited)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="controller_command", metavar="ACTION")
    run = sub.add_parser("run", help="one controller pass over the running experiments")
    run.add_argument("--spec", default=None, help="spec file (default $ABKIT_SPEC)")
    run.add_argument("--db", default=None, help="SQLAlchemy URL (default $ABKIT_DATABASE_URL)")
    run.add_argument("--dry-run", action="store_true", help="print the actions, change nothing")
    run.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    add_notifier_arguments(run)
    run.add_argument("--now", default=None, help=argparse.SUPPRESS)  # simulations and tests
    run.set_defaults(handler=_run)
