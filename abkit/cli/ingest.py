"""``abkit ingest`` and ``abkit quarantine``.

Exit status of ``abkit ingest``: 0 on success; 4 with ``--strict`` when any row was
quarantined; 2 for a user error (missing column, bad file, unknown timezone...).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

STRICT_EXIT = 4


def _parse_map(text: str) -> dict[str, str]:
    from abkit.errors import ConfigError

    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise ConfigError(
                f"--map expects name=column pairs, e.g. unit_id=customer_id; got {item!r}"
            )
        mapping[name.strip()] = column.strip()
    return mapping


def _ingest(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from abkit.errors import ConfigError
    from abkit.ingest.ingestor import ingest
    from abkit.store.store import open_store

    mapping: dict[str, str] = {}
    for text in args.map or []:
        mapping.update(_parse_map(text))
    delimiter = args.delimiter
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1:
            raise ConfigError(f"--delimiter must be one character, not {args.delimiter!r}")
    store = open_store(args.db)
    try:
        if args.experiments:
            from abkit.assignment.registry import load_experiments

            loaded: Any = load_experiments(args.experiments)
            # A Registry keeps its Experiment objects in .experiments (key -> Experiment).
            experiments = list(getattr(loaded, "experiments", loaded).values())
            count = store.register_experiments(experiments)
            print(f"registered {count} experiment(s) from {args.experiments}", file=sys.stderr)
        progress = args.progress if args.progress is not None else sys.stderr.isatty()
        report = ingest(
            args.files,
            db=store,
            kind=args.kind,
            source_name=args.source,
            column_map=mapping,
            timezone=args.timezone,
            chunk_size=args.chunk_size,
            progress=progress,
            delimiter=delimiter,
            force=args.force,
            max_future=timedelta(days=args.max_future_days),
        )
    finally:
        store.close()
    print(report.summary())
    if report.quarantined:
        print("see the rejected rows with: abkit quarantine --batch N (or --export FILE.csv)")
    if args.strict and report.quarantined:
        print(
            f"abkit ingest: strict mode: {report.quarantined:,} row(s) quarantined", file=sys.stderr
        )
        return STRICT_EXIT
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from abkit.ingest.quarantine import export_quarantine, quarantined_rows

    filters = {"batch": args.batch, "reason": args.reason, "source": args.source}
    if args.limit == 0:
        args.limit = None
    if args.export:
        count = export_quarantine(args.export, args.db, **filters)
        print(f"exported {count:,} quarantined row(s) to {args.export}")
        return 0
    shown = 0
    for entry in quarantined_rows(args.db, limit=args.limit, **filters):
        if shown == 0:
            print("batch  row       reason                  message")
        print(
            f"{entry['batch_id']:<6} {entry['row_number'] or '':<9} {entry['reason_code']:<23} {entry['reason']}"
        )
        shown += 1
    if shown == 0:
        print("no quarantined rows match")
    elif args.limit is not None and shown >= args.limit:
        print(
            f"(first {args.limit} shown; --limit 0 for all, --export FILE.csv to fix and re-ingest)"
        )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load exposures and events (CSV, JSON Lines, Parquet, .gz) into the store",
        description="Validate and load files into the store; rejected rows go to quarantine.",
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="CSV, JSON Lines or Parquet, optionally .gz"
    )
    parser.add_argument(
        "--db",
        default=None,
        help="database URL (default $ABKIT_DATABASE_URL or sqlite:///abkit.db)",
    )
    parser.add_argument(
        "--source", default=None, help="source name for drift reports (default: the file name)"
    )
    parser.add_argument(
        "--map",
        action="append",
        metavar="NAME=COLUMN[,...]",
        help="read an abkit field from another column, e.g. unit_id=customer_id,timestamp=created_at",
    )
    parser.add_argument(
        "--timezone", default=None, help="IANA zone for timestamps without an offset"
    )
    parser.add_argument(
        "--kind",
        choices=("auto", "events", "exposures"),
        default="auto",
        help="auto: exposures when the file has experiment and variant columns",
    )
    parser.add_argument(
        "--max-future-days",
        type=float,
        default=1.0,
        help="quarantine timestamps further ahead of now than this (default 1)",
    )
    parser.add_argument(
        "--delimiter", default=None, help="CSV delimiter (default: detected from the header)"
    )
    parser.add_argument(
        "--experiments", default=None, help="register experiments from this registry file first"
    )
    parser.add_argument(
        "--chunk-size", type=int, default=50_000, help="rows per transaction (default 50000)"
    )
    parser.add_argument("--force", action="store_true", help="re-read files already ingested")
    parser.add_argument(
        "--strict", action="store_true", help=f"exit {STRICT_EXIT} if any row was quarantined"
    )
    parser.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(handler=_ingest)

    q = subparsers.add_parser(
        "quarantine",
        help="list or export quarantined rows",
        description="List quarantined rows, or export them (CSV/JSON Lines) to fix and re-ingest.",
    )
    q.add_argument("--db", default=None)
    q.add_argument("--batch", type=int, default=None)
    q.add_argument("--reason", default=None, help="a reason code, e.g. naive_timestamp")
    q.add_argument("--source", default=None)
    q.add_argument("--limit", type=int, default=50, help="rows to list (0 for all)")
    q.add_argument("--export", default=None, metavar="FILE", help="write FILE.csv or FILE.jsonl")
    q.set_defaults(handler=_quarantine)
