"""The ``labloom`` command. Each group of subcommands lives in its own module and adds itself
through ``register(subparsers)``; a handler returns the exit status."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from . import (
    cancelling,
    database,
    deleting,
    experiments,
    history,
    limit_commands,
    running,
    schedules,
)

_GROUPS = (running, cancelling, history, experiments, schedules, limit_commands, database,
           deleting)


UNKNOWN_CHANGE = 4  # exit status: a change may or may not have been made (its answer was lost)


class CLIError(Exception):
    """A user mistake on the command line: printed without a traceback, exit status 2."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def _closed_pipe() -> int:
    """``labloom logs RUN | head``: the reader has gone, so stop quietly, as Unix tools do
    (status 128 + SIGPIPE). Python flushes stdout again at exit: point it at /dev/null so that
    flush has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def one_line(exc: BaseException) -> str:
    """An error for the terminal without labloom's own "[labloom]" prefix: the command
    already says "labloom: error:"."""
    return str(exc).strip().removeprefix("[labloom]").strip() or type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labloom",
        description="Run, export, schedule and inspect labloom flows.",
    )
    parser.add_argument(
        "--database-url", metavar="URL",
        help="the store: postgresql://user@host/dbname for a team's PostgreSQL (default: "
        "LABLOOM_DATABASE_URL, else LABLOOM_HOME/labloom.db)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in _GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CLIError as exc:  # a numeric option out of range (options.py): one line, not usage
        print(f"labloom: error: {one_line(exc)}", file=sys.stderr)
        return exc.status
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    from ..core.errors import LabloomError, StoreChangeUnknownError

    try:
        _use_database_url(args.database_url)
        status: int = handler(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
    except BrokenPipeError:
        return _closed_pipe()
    except CLIError as exc:
        print(f"labloom: error: {one_line(exc)}", file=sys.stderr)
        return exc.status
    except StoreChangeUnknownError as exc:  # its own status: a script must not just run it again
        tells = getattr(args, "tells", "")
        print(f"labloom: error: {one_line(exc)}" + (f": `{tells}` tells" if tells else ""),
              file=sys.stderr)
        return UNKNOWN_CHANGE
    except LabloomError as exc:  # the store cannot be used, a target cannot be loaded, ...
        print(f"labloom: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labloom: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from ..store.db import is_transient

        if not is_transient(exc):
            raise
        # A full disk or a store busy past every wait: one line, not a traceback.
        print(f"labloom: error: the store cannot be used now ({one_line(exc)}); try again "
              "later", file=sys.stderr)
        return 2
    return status


def _use_database_url(url: str | None) -> None:
    """``--database-url``: through the environment, so the runs ``labloom serve`` starts and
    every layer of this process see the same store."""
    if not url:
        return
    from ..core.errors import DatabaseURLError
    from ..store.db import URL_ENV, kind_of
    from ..store.sqlite_urls import absolute

    try:
        kind = kind_of(url)
        if kind == "sqlite":  # the runs `labloom serve` starts work in their schedules' folders
            url = absolute(url)
    except DatabaseURLError as exc:
        raise CLIError(str(exc).removeprefix("[labloom] ")) from None
    os.environ[URL_ENV] = url
