"""``abkit assign``: assign units from the command line, and check config changes.

    abkit assign --experiments FILE --experiment KEY [--attr K=V ...] UNIT_ID... | -
    abkit assign diff OLD NEW [--experiment KEY] [--ids FILE] [--sample N] [--json]
                              [--fail-on-reshuffle]

The first form prints one JSON line per unit (and per experiment when ``--experiment`` is
omitted). The second reports which share of units would switch variant, leave or join
each experiment if NEW replaced OLD; with ``--fail-on-reshuffle`` it exits 4 when a
running experiment would move enrolled units (use it in CI before deploying a registry).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

RESHUFFLE_EXIT = 4


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "assign",
        help="assign units to variants (JSON lines); 'assign diff OLD NEW' checks a config change",
        usage=(
            "abkit assign [--experiments FILE] [--experiment KEY] [--attr NAME=VALUE]... "
            "[--now ISO8601] [--exposures FILE] UNIT_ID... | -\n"
            "       abkit assign diff OLD NEW [--experiment KEY] [--ids FILE] [--sample N] "
            "[--json] [--fail-on-reshuffle]"
        ),
        description=(
            "Assign unit ids to experiment variants and print one JSON line each. "
            "Options go before the unit ids; '-' reads ids from stdin, one per line. "
            "'abkit assign diff OLD NEW' reports the impact of a registry change instead."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  abkit assign --experiments experiments.toml --experiment ranker-v2 u1 u2\n"
            "  abkit assign --experiments experiments.toml --attr country=US - < ids.txt\n"
            "  abkit assign diff old.toml new.toml --fail-on-reshuffle"
        ),
    )
    p.add_argument(
        "--experiments",
        metavar="FILE",
        default=os.environ.get("ABKIT_EXPERIMENTS"),
        help="registry file, TOML or JSON (default: $ABKIT_EXPERIMENTS)",
    )
    p.add_argument("--experiment", metavar="KEY", help="experiment key (default: every experiment)")
    p.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="unit attribute for targeting (repeatable); VALUE is parsed as JSON when it can be",
    )
    p.add_argument(
        "--now", metavar="ISO8601", help="evaluation time (default: now), e.g. 2026-03-01T12:00:00Z"
    )
    p.add_argument(
        "--exposures", metavar="FILE", help="append an exposure row (JSON line) per enrolled unit"
    )
    p.add_argument(
        "units", nargs=argparse.REMAINDER, metavar="UNIT_ID", help="unit ids, or '-' for stdin"
    )
    p.set_defaults(handler=_handle)


def _diff_parser() -> argparse.ArgumentParser:
    d = argparse.ArgumentParser(
        prog="abkit assign diff",
        description="Impact of replacing registry OLD by NEW: share of units that switch "
        "variant, leave or join each experiment.",
    )
    d.add_argument("old", metavar="OLD", help="current registry file")
    d.add_argument("new", metavar="NEW", help="proposed registry file")
    d.add_argument("--experiment", metavar="KEY", help="only this experiment")
    d.add_argument(
        "--ids",
        metavar="FILE",
        help="unit ids to evaluate, one per line (default: a synthetic sample)",
    )
    d.add_argument(
        "--sample",
        type=int,
        default=100_000,
        metavar="N",
        help="synthetic sample size (default 100000)",
    )
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.add_argument(
        "--fail-on-reshuffle",
        action="store_true",
        help=f"exit {RESHUFFLE_EXIT} when a running experiment would move or drop enrolled units",
    )
    return d


def _handle(args: argparse.Namespace) -> int:
    units: list[str] = list(args.units)
    if units[:1] == ["diff"]:
        return _handle_diff(_diff_parser().parse_args(units[1:]))
    return _handle_assign(args, units)


def _handle_assign(args: argparse.Namespace, units: list[str]) -> int:
    from abkit.assignment import add_exposure_hook, assign, load_experiments, remove_exposure_hook
    from abkit.assignment.config import parse_time
    from abkit.errors import ConfigError

    if not args.experiments:
        raise ConfigError("--experiments FILE is required (or set ABKIT_EXPERIMENTS)")
    misplaced = [
        u
        for u in units
        if u.split("=", 1)[0] in ("--experiments", "--experiment", "--attr", "--now", "--exposures")
    ]
    if misplaced:
        raise ConfigError(f"option {misplaced[0]!r} must come before the unit ids")
    if units == ["-"]:
        units = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if not units:
        raise ConfigError("give at least one UNIT_ID (or '-' to read ids from stdin)")
    registry = load_experiments(args.experiments)
    experiments = [registry[args.experiment]] if args.experiment else list(registry.values())
    attributes = _parse_attrs(args.attr)
    now = parse_time(args.now, "--now") if args.now else None
    hook = None
    sink = None
    if args.exposures:
        sink = open(args.exposures, "a", encoding="utf-8")  # noqa: SIM115 - closed below

        def hook(record):
            sink.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")

        add_exposure_hook(hook)
    try:
        out = sys.stdout
        for uid in units:
            for exp in experiments:
                a = assign(exp, uid, attributes, now=now)
                out.write(json.dumps(a.to_dict(), ensure_ascii=False) + "\n")
    finally:
        if hook is not None:
            remove_exposure_hook(hook)
        if sink is not None:
            sink.close()
    return 0


def _parse_attrs(items: list[str]) -> dict[str, Any] | None:
    from abkit.errors import ConfigError

    attrs: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--attr {item!r}: expected NAME=VALUE", field="--attr")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare string such as Mozilla/5.0
        if not isinstance(value, (str, int, float, bool)) or value is None:
            value = raw
        attrs[name] = value
    return attrs or None


def _handle_diff(args: argparse.Namespace) -> int:
    from abkit.assignment import diff_experiments, load_experiments
    from abkit.errors import ConfigError

    old, new = load_experiments(args.old), load_experiments(args.new)
    if args.experiment:
        if args.experiment not in old and args.experiment not in new:
            raise ConfigError(
                f"experiment {args.experiment!r} is in neither registry", field="--experiment"
            )
        old = {k: v for k, v in old.items() if k == args.experiment}
        new = {k: v for k, v in new.items() if k == args.experiment}
    ids = None
    if args.ids:
        try:
            with open(args.ids, encoding="utf-8") as fh:
                ids = [line.rstrip("\r\n") for line in fh if line.strip()]
        except OSError as exc:
            raise ConfigError(f"cannot read ids: {exc.strerror}", file=args.ids) from None
    if args.sample < 1:
        raise ConfigError("--sample must be positive", field="--sample")
    result = diff_experiments(old, new, ids, sample=args.sample)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(result.to_text())
    if args.fail_on_reshuffle and not result.ok:
        return RESHUFFLE_EXIT
    return 0
