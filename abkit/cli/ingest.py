"""``abkit ingest`` and ``abkit quarantine``.

Exit status of ``abkit ingest``: 0 on success; 2 for a user error (missing column, bad
file, unknown timezone...); 4 with ``--strict`` when any row was quarantined; 5 when rows
were read and none was accepted (every row quarantined: a wrong map or time zone?).

Options per file follow the file name after a colon, e.g.
``events.csv:map=unit_id=customer_id,timestamp=created_at:timezone=Europe/Paris``; keys
are ``map``, ``timezone``, ``kind``, ``delimiter`` and ``source``. They override ``--map``
(entry by entry), ``--timezone``, ``--kind``, ``--delimiter`` and ``--source`` for that
file only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

STRICT_EXIT = 4
NOTHING_ACCEPTED_EXIT = 5
FILE_OPTIONS = ("map", "timezone", "kind", "delimiter", "source")
# ":key=" starts a per-file option; a path holding such text is still read as a path
# when a file of that exact name exists.
_OPTION_START = re.compile(r":(?=(?:map|timezone|kind|delimiter|source)=)")


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


def _delimiter(text: str | None, where: str) -> str | None:
    from abkit.errors import ConfigError

    if text is None:
        return None
    delimiter = {"tab": "\t", "\\t": "\t"}.get(text, text)
    if len(delimiter) != 1:
        raise ConfigError(f"{where} must be one character, not {text!r}")
    return delimiter


def parse_file_argument(text: str) -> Any:
    """A FILE argument: a path, or an ``IngestSource`` when options follow the name."""
    from abkit.errors import ConfigError
    from abkit.ingest.ingestor import IngestSource

    if os.path.exists(text) or not _OPTION_START.search(text):
        return text
    path, *options = _OPTION_START.split(text)
    values: dict[str, str] = {}
    for option in options:
        key, _, value = option.partition("=")
        if key in values:
            raise ConfigError(f"{text!r}: option {key!r} is given twice")
        values[key] = value
    kind = values.get("kind")
    if kind is not None and kind not in ("auto", "events", "exposures"):
        raise ConfigError(f"{text!r}: kind must be auto, events or exposures, not {kind!r}")
    return IngestSource(
        path,
        column_map=_parse_map(values["map"]) if "map" in values else None,
        timezone=values.get("timezone") or None,
        kind=kind,
        delimiter=_delimiter(values.get("delimiter"), f"{path}: delimiter"),
        name=values.get("source") or None,
    )


def _ingest(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from abkit.ingest.ingestor import ingest
    from abkit.ingest.progress import ProgressReporter
    from abkit.store.store import open_store

    mapping: dict[str, str] = {}
    for text in args.map or []:
        mapping.update(_parse_map(text))
    delimiter = _delimiter(args.delimiter, "--delimiter")
    sources = [parse_file_argument(text) for text in args.files]
    store = open_store(args.db)
    reporter = None
    try:
        if args.experiments:
            from abkit.assignment.registry import load_experiments

            loaded: Any = load_experiments(args.experiments)
            # A Registry keeps its Experiment objects in .experiments (key -> Experiment).
            experiments = list(getattr(loaded, "experiments", loaded).values())
            count = store.register_experiments(experiments)
            print(f"registered {count} experiment(s) from {args.experiments}", file=sys.stderr)
        if args.progress is not False:
            # A bar on a terminal; otherwise (cron, CI) one line every 10 s.
            reporter = ProgressReporter(tty=sys.stderr.isatty() or bool(args.progress))
        report = ingest(
            sources,
            db=store,
            kind=args.kind,
            source_name=args.source,
            column_map=mapping,
            timezone=args.timezone,
            chunk_size=args.chunk_size,
            progress=reporter or False,
            delimiter=delimiter,
            force=args.force,
            max_future=timedelta(days=args.max_future_days),
        )
    finally:
        if reporter is not None:
            reporter.close()
        store.close()
    print(report.summary())
    with_rejects = [f.batch_id for f in report.files if f.quarantined and f.batch_id is not None]
    if with_rejects:
        more = f" (batches {', '.join(map(str, with_rejects))})" if len(with_rejects) > 1 else ""
        print(
            f"see the rejected rows with: abkit quarantine --batch {with_rejects[0]}{more}; "
            "fix them with "
            "abkit quarantine --export FILE.csv, then abkit ingest FILE.csv"
        )
    if report.nothing_accepted:
        print(
            f"abkit ingest: nothing accepted: all {report.rows_read:,} row(s) were quarantined",
            file=sys.stderr,
        )
        return NOTHING_ACCEPTED_EXIT
    if args.strict and report.quarantined:
        print(
            f"abkit ingest: strict mode: {report.quarantined:,} row(s) quarantined", file=sys.stderr
        )
        return STRICT_EXIT
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from abkit.errors import ConfigError
    from abkit.ingest.quarantine import export_quarantine, purge_quarantine, quarantined_rows

    if args.purge:
        count = purge_quarantine(args.db, source=args.source, older_than_days=args.older_than)
        print(f"purged {count:,} resolved quarantine row(s)")
        return 0
    if args.spreadsheet and not args.export:
        raise ConfigError("--spreadsheet goes with --export FILE.csv")
    filters = {
        "batch": args.batch,
        "reason": args.reason,
        "source": args.source,
        "latest": args.latest,
        "unresolved": args.unresolved,
    }
    if args.limit == 0:
        args.limit = None
    if args.export:
        count = export_quarantine(args.export, args.db, spreadsheet=args.spreadsheet, **filters)
        if args.spreadsheet:
            what = "for a spreadsheet (formula cells prefixed with '; do not re-ingest this copy)"
        else:
            what = (
                "to re-ingest after fixing (abkit column names, timestamps with offsets; "
                "values verbatim: use --spreadsheet for a copy to open in a spreadsheet)"
            )
        print(f"exported {count:,} quarantined row(s) to {args.export} {what}")
        return 0
    shown = 0
    for entry in quarantined_rows(args.db, limit=args.limit, **filters):
        if shown == 0:
            print("batch  row       reason                  state     message")
        state = "resolved" if entry["resolved_at_us"] is not None else "open"
        print(
            f"{entry['batch_id']:<6} {entry['row_number'] or '':<9} {entry['reason_code']:<23} "
            f"{state:<9} {entry['reason']}"
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
        "files",
        nargs="+",
        metavar="FILE[:OPTION=VALUE...]",
        help="CSV, JSON Lines or Parquet, optionally .gz; options for this file only follow "
        "its name: map=NAME=COLUMN,..., timezone=ZONE, kind=KIND, delimiter=CHAR, source=NAME "
        "(e.g. events.csv:map=unit_id=customer_id:timezone=Europe/Paris)",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="database URL (default $ABKIT_DATABASE_URL, else ./abkit.db or the demo's "
        "./abkit-demo.db, else a new ./abkit.db)",
    )
    parser.add_argument(
        "--source", default=None, help="source name for drift reports (default: the file name)"
    )
    parser.add_argument(
        "--map",
        action="append",
        metavar="NAME=COLUMN[,...]",
        help="read an abkit field from another column, e.g. unit_id=customer_id,timestamp=created_at "
        "(every file; FILE:map=... for one file)",
    )
    parser.add_argument(
        "--timezone",
        default=None,
        help="IANA zone for timestamps without an offset (every file; FILE:timezone=... for one)",
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
        help="progress bar on stderr (default: a bar on a terminal, else one line every 10 s)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress output"
    )
    parser.set_defaults(handler=_ingest)

    q = subparsers.add_parser(
        "quarantine",
        help="list or export quarantined rows",
        description="List quarantined rows, or export them (CSV/JSON Lines) to fix and re-ingest.",
    )
    q.add_argument(
        "--db",
        default=None,
        help="database URL (default $ABKIT_DATABASE_URL, else ./abkit.db or ./abkit-demo.db)",
    )
    q.add_argument("--batch", type=int, default=None)
    q.add_argument("--reason", default=None, help="a reason code, e.g. naive_timestamp")
    q.add_argument("--source", default=None)
    q.add_argument("--limit", type=int, default=50, help="rows to list (0 for all)")
    q.add_argument(
        "--export",
        default=None,
        metavar="FILE",
        help="write FILE.csv or FILE.jsonl to fix and re-ingest as is (values verbatim)",
    )
    q.add_argument(
        "--spreadsheet",
        action="store_true",
        help="with --export FILE.csv: a copy safe to open in a spreadsheet (cells starting "
        "with = + - @ tab CR prefixed with '); not for re-ingesting",
    )
    q.add_argument("--latest", action="store_true", help="only rows of each source's latest batch")
    q.add_argument(
        "--unresolved", action="store_true", help="hide rows whose fix was accepted since"
    )
    q.add_argument(
        "--purge",
        action="store_true",
        help="delete resolved rows (with --source, --older-than DAYS); open rows are kept",
    )
    q.add_argument("--older-than", type=float, default=None, metavar="DAYS")
    q.set_defaults(handler=_quarantine)
