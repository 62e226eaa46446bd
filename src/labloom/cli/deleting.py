"""`labloom delete`: runs deleted from the store, named or older than some days
(``store/pruning.py``): a history that only grew, and logs kept past a retention period."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..store import open_store
from .options import days
from .terminal import echo

DAY = 86_400.0


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    delete = subparsers.add_parser(
        "delete", help="delete ended runs from the store: named, or older than some days",
        description="Delete ended runs with their task runs, states, logs, params and metrics. "
        "A run still going is kept, and so is a run marked Crashed whose process may still "
        "write; another user's only by an admin (LABLOOM_ADMINS). Their result files go too, "
        "unless a run left in the store names them (a cached result is shared by every run "
        "with its key).",
    )
    delete.add_argument("run_ids", metavar="RUN_ID", nargs="*", help="runs to delete")
    delete.add_argument("--older-than", metavar="DAYS", type=days("--older-than"),
                        help="every run created more than DAYS days ago (0.5: 12 hours)")
    delete.add_argument("--flow", help="only runs of this flow")
    delete.add_argument("--dry-run", action="store_true",
                        help="say what would be deleted, delete nothing")
    delete.add_argument("--files-left", action="store_true",
                        help="delete the result files an earlier delete left when the store's "
                        "server went away (no run need be named)")
    delete.add_argument("--json", action="store_true", help="print JSON")
    delete.set_defaults(handler=_delete, tells="labloom runs")


def _delete(args: argparse.Namespace) -> int:
    from ..core.errors import StoreUnreachableError
    from ..store.pruning import delete_runs, listed, older_runs
    from . import CLIError, one_line
    from .history import _find

    named = bool(args.run_ids) + (args.older_than is not None)
    if named > 1 or (named == 0 and not args.files_left):
        raise CLIError("name the runs to delete (RUN_ID ...) or give --older-than DAYS, "
                       "not both and not neither (or --files-left alone)")
    with open_store() as store:
        if args.run_ids:
            runs = [_find(store, run_id) for run_id in args.run_ids]
            wrong = [run.id for run in runs if args.flow and run.flow_name != args.flow]
            if wrong:
                raise CLIError(f"run(s) {', '.join(wrong)} are not runs of flow {args.flow!r}")
        elif args.older_than is not None:
            runs = older_runs(store, time.time() - args.older_than * DAY, args.flow)
        else:
            runs = []  # --files-left alone: those files only (``store/files_left.py``)
        try:
            pruned = delete_runs(store, runs, dry_run=args.dry_run)
        except StoreUnreachableError as exc:  # the server gone midway: what each run became
            if args.json and exc.done is not None:  # as the Flows panel's delete is told
                print(json.dumps({"dry_run": args.dry_run, "message": one_line(exc),
                                  **exc.done}, indent=1))
            raise  # its line on stderr, its exit status (4: the cut batch may be deleted)
    files = pruned.files
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "deleted": pruned.deleted,
                          "task_runs": pruned.task_runs, "kept_running": pruned.running,
                          "kept_not_allowed": pruned.not_allowed,
                          "kept_may_live": pruned.may_live,
                          "result_files": {"deleted": files.deleted, "bytes": files.freed,
                                           "kept_shared": files.shared,
                                           "errors": files.errors}}, indent=1))
    else:
        verb = "would delete" if args.dry_run else "deleted"
        freed = "" if args.dry_run else f", {_size(files.freed)}"
        with_files = f", {files.deleted} result file(s){freed}" if files.deleted else ""
        echo(f"{verb} {len(pruned.deleted)} run(s) ({pruned.task_runs} task runs{with_files})")
        if files.shared:
            echo(f"kept {files.shared} result file(s) that runs left in the store still name")
        for error in [error for error in files.errors if error != files.left][:10]:
            echo(f"could not delete result file {error}")
        if files.left:
            echo(files.left)
        if pruned.running:
            echo(f"kept {len(pruned.running)} run(s) still going: {listed(pruned.running, 10)}")
        for run_id, why in pruned.may_live.items():
            echo(f"kept run {run_id}: {why}")
        if pruned.not_allowed:
            echo(f"kept {len(pruned.not_allowed)} run(s) of other users (only an admin may "
                 f"delete them, LABLOOM_ADMINS): {listed(pruned.not_allowed, 10)}")
    kept = pruned.running or pruned.not_allowed or pruned.may_live
    return 0 if not (args.run_ids and kept) else 1


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return ""
