"""``abkit experiments``: the declared experiments, their state, and manual actions.

    abkit experiments list --spec experiments.toml [--db URL] [--format table|json]
    abkit experiments schema                          # JSON Schema of a spec file
    abkit experiments history KEY --db URL            # the audit trail
    abkit experiments pause|resume|rollback|ship|stop KEY --spec FILE --db URL [--winner V]
        [--hook package.module:function] [--command CMD] [--webhook URL] [--audit-log FILE]

Manual actions go through the controller's path (new spec version written atomically,
audit entry in the store and in the JSON-lines audit log, default ``<spec>.audit.jsonl``,
notification hooks); they need an existing store. Exit status: 0 ok; 2 for a user error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abkit.lifecycle.controller import Notifiers


def spec_path(args: argparse.Namespace) -> str:
    from abkit.errors import ConfigError
    from abkit.lifecycle.spec import SPEC_CANDIDATES, SPEC_ENV, default_spec_path

    path = args.spec or default_spec_path()
    if path is None:
        raise ConfigError(
            f"no spec file: give --spec FILE, set {SPEC_ENV}, or run where "
            f"{' or '.join(SPEC_CANDIDATES)} exists",
            field="spec",
        )
    return str(path)


def store_url(args: argparse.Namespace) -> str | None:
    """--db, else $ABKIT_DATABASE_URL, else ./abkit.db or ./abkit-demo.db if one exists;
    None lists the spec alone (no units, no verdicts)."""
    import os
    from pathlib import Path

    if args.db or os.environ.get("ABKIT_DATABASE_URL"):
        return str(args.db or os.environ["ABKIT_DATABASE_URL"])
    for name in ("abkit.db", "abkit-demo.db"):
        if Path(name).is_file():
            return f"sqlite:///{Path(name).resolve()}"
    return None


def _list(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from abkit.lifecycle.listing import list_experiments

    rows = list_experiments(spec_path(args), store_url(args))
    if args.format == "json":
        json.dump([asdict(r) for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    header = (
        "experiment",
        "status",
        "stage",
        "traffic",
        "days",
        "units",
        "last verdict",
        "last action",
    )
    table = [header]
    for r in rows:
        table.append(
            (
                r.key,
                r.status,
                r.stage,
                f"{r.traffic:.0%}" if r.traffic >= 0.01 else f"{r.traffic:.1%}",
                "-" if r.days_running is None else f"{r.days_running:.1f}",
                "-" if r.units is None else f"{r.units:,}",
                r.last_verdict or "-",
                r.last_action or "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        sys.stdout.write(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )
    return 0


def _schema(args: argparse.Namespace) -> int:
    import json

    from abkit.lifecycle.schema import spec_json_schema

    json.dump(spec_json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _history(args: argparse.Namespace) -> int:
    import json

    from abkit.lifecycle.audit import read_audit
    from abkit.store.store import open_store

    for entry in read_audit(open_store(store_url(args), create=False), args.key):
        if args.format == "json":
            sys.stdout.write(json.dumps(entry.to_dict(), sort_keys=True, default=str) + "\n")
        else:
            sys.stdout.write(
                f"{entry.at:%Y-%m-%d %H:%M:%S} {entry.action:<16} {entry.actor:<12} {entry.reason}\n"
            )
    return 0


def add_notifier_arguments(parser: argparse.ArgumentParser) -> None:
    """Where an action is announced: the controller's and the manual actions' options."""
    parser.add_argument("--hook", action="append", help="Python hook package.module:function")
    parser.add_argument(
        "--command",
        action="append",
        help="command run with the audit JSON on stdin (split like a shell line, no shell)",
    )
    parser.add_argument("--webhook", action="append", help="URL to POST the audit JSON to")
    parser.add_argument(
        "--audit-log", default=None, help="JSON-lines audit log (default <spec>.audit.jsonl)"
    )


def notifiers_from(args: argparse.Namespace, spec: str) -> Notifiers:
    """The notifiers of :func:`add_notifier_arguments`' options."""
    from pathlib import Path

    from abkit.lifecycle.controller import Notifiers, entry_point_hook

    return Notifiers(
        hooks=tuple(entry_point_hook(h) for h in args.hook or ()),
        commands=tuple(args.command or ()),
        webhooks=tuple(args.webhook or ()),
        audit_log=Path(args.audit_log) if args.audit_log else Path(spec + ".audit.jsonl"),
    )


def _manual(args: argparse.Namespace) -> int:
    import getpass

    from abkit.lifecycle.controller import manual_action

    spec = spec_path(args)
    entry = manual_action(
        spec,
        store_url(args),
        args.key,
        args.action,
        actor=f"manual:{getpass.getuser()}",
        reason=args.reason or "",
        winner=args.winner,
        notifiers=notifiers_from(args, spec),
    )
    if entry is None:
        print(f"{args.key}: {args.action} was just recorded by another controller; nothing to do")
    else:
        version = (entry.to_version or "")[:12]
        print(f"{args.key}: {entry.action} recorded; spec version {version}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiments",
        help="list declared experiments (state, ramp stage, units, verdict); manual actions",
        description=(
            "Read the experiment spec file and the store: each experiment's state, ramp "
            "stage, days running, units and the controller's last verdict. Manual actions "
            "(pause, resume, rollback, ship, stop) write a new spec version and an audit entry."
        ),
    )
    sub = parser.add_subparsers(dest="experiments_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser, spec: bool = True) -> None:
        if spec:
            p.add_argument(
                "--spec",
                default=None,
                help="spec file (default $ABKIT_SPEC, ./experiments.toml, ./reports/experiments.toml)",
            )
        p.add_argument("--db", default=None, help="SQLAlchemy URL (default $ABKIT_DATABASE_URL)")

    listing = sub.add_parser("list", help="state of every declared experiment")
    common(listing)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

    schema = sub.add_parser("schema", help="print the JSON Schema of a spec file")
    schema.set_defaults(handler=_schema)

    history = sub.add_parser("history", help="the audit trail of one experiment")
    history.add_argument("key")
    common(history, spec=False)
    history.add_argument("--format", choices=("table", "json"), default="table")
    history.set_defaults(handler=_history)

    from abkit.lifecycle.actions import MANUAL_ACTIONS

    for action in MANUAL_ACTIONS:
        manual = sub.add_parser(action, help=f"{action} an experiment (audited)")
        manual.add_argument("key")
        common(manual)
        manual.add_argument("--winner", default=None, help="the variant to ship (ship only)")
        manual.add_argument("--reason", default=None, help="why (kept in the audit trail)")
        add_notifier_arguments(manual)
        manual.set_defaults(handler=_manual, action=action)

    # ``abkit experiments`` alone lists.
    common(parser)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=_list)
