"""The ``labloom`` command. Each group of subcommands lives in its own module and adds itself
through ``register(subparsers)``; a handler returns the exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import history, limits, running, schedules

_GROUPS = (running, history, schedules, limits)


class CLIError(Exception):
    """A user mistake on the command line: printed without a traceback, exit status 2."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labloom",
        description="Run, export, schedule and inspect labloom flows.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in _GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        status: int = handler(args)
    except CLIError as exc:
        print(f"labloom: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("labloom: interrupted", file=sys.stderr)
        return 130
    return status
