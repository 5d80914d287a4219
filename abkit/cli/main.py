"""Entry point of the ``abkit`` console script.

Each command lives in its own module exposing ``register(subparsers)``; registering must
stay import-light (no pandas, SQLAlchemy or scipy at module level) so ``abkit --help``
and ``abkit assign`` start fast. A command's handler is ``args.handler(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from abkit._version import __version__
from abkit.errors import AbkitError
from abkit.extras import missing_extra_message

# Order is the order shown by ``abkit --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "abkit.cli.assign",
    "abkit.cli.ingest",
    "abkit.cli.analyze",
    "abkit.cli.report",
    "abkit.cli.demo",
    "abkit.cli.experiments",
    "abkit.cli.controller",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abkit",
        description="A/B experimentation and business-impact toolkit for ML model variants.",
    )
    parser.add_argument("--version", action="version", version=f"abkit {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an unexpected error (or set ABKIT_DEBUG=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A command whose module is not written yet, or whose optional extra is
            # missing, is simply absent from this installation.
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ABKIT_DEBUG") == "1"
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except AbkitError as exc:
        if debug:
            raise
        print(f"abkit {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if debug:
            raise
        wanted = f"abkit {args.command}"
        print(
            f"abkit {args.command}: error: {missing_extra_message(exc.name, wanted=wanted)}",
            file=sys.stderr,
        )
        return 3
    except BrokenPipeError:
        # The reader went away (``abkit analyze | head``): stop quietly, as a shell tool does.
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print(f"abkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI promises one line, never a bare traceback
        if debug:
            raise
        print(
            f"abkit {args.command}: unexpected error: {one_line(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line; a database driver's error without its SQL and links.

    SQLAlchemy wraps driver errors (``exc.orig``) and appends the statement, its parameters
    and a documentation link on further lines; the user needs the driver's first line.
    """
    inner = getattr(exc, "orig", None)
    source = inner if isinstance(inner, BaseException) else exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    return f"{type(source).__name__}: {message}" if message else type(source).__name__


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
