"""`labloom limit set TAG N`, `limit list [--json]`, `limit delete TAG`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .options import count
from .terminal import echo


def register(subparsers: Any) -> None:
    """Add the `limit` subcommands to the parser."""
    parser = subparsers.add_parser(
        "limit", help="concurrency limits by tag", description="Concurrency limits by task tag."
    )
    commands = parser.add_subparsers(dest="limit_command", metavar="ACTION", required=True)
    setter = commands.add_parser("set", help="at most N task runs tagged TAG run at once")
    setter.add_argument("tag")
    setter.add_argument("n", metavar="N", type=count("N"))
    setter.set_defaults(handler=_set, tells="labloom limit list")
    lister = commands.add_parser("list", help="every limit")
    lister.add_argument("--json", action="store_true", help="print JSON")
    lister.set_defaults(handler=_list)
    # One verb with `schedule`: "remove"; "delete" (the name in labloom.limits) still works.
    deleter = commands.add_parser("remove", aliases=["delete"], help="remove the limit of TAG")
    deleter.add_argument("tag")
    deleter.set_defaults(handler=_delete, tells="labloom limit list")


def _set(args: argparse.Namespace) -> int:
    from .. import limits
    from . import CLIError

    try:
        limits.set(args.tag, args.n)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    echo(f"limit {args.tag}: {args.n}")  # a tag is any text: its controls shown escaped
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..store import concurrency_slots as store

    current = store.all_limits()
    if args.json:
        print(json.dumps([
            {"tag": tag, "limit": n, "running": store.holders(tag)} for tag, n in current.items()
        ]))
        return 0
    if not current:
        print("no limits; add one with: labloom limit set TAG N")
        return 0
    width = max(len(tag) for tag in current)
    echo(f"{'TAG'.ljust(width)}  LIMIT  RUNNING (local and thread runs)")
    for tag, n in current.items():
        echo(f"{tag.ljust(width)}  {n:>5}  {store.holders(tag):>7}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from .. import limits
    from . import CLIError

    try:
        limits.delete(args.tag)
    except KeyError as exc:
        raise CLIError(str(exc.args[0])) from None
    echo(f"limit {args.tag} deleted")
    return 0
