"""`labloom cancel RUN...`: stop a run from another terminal, as the Flows panel's Cancel does
(a request through the store, ``store/cancel.py``, that the run's own process acts on within
half a second): a `labloom run` started elsewhere, a scheduled run that hung."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..store import open_store
from .options import seconds
from .terminal import echo

REASON = "cancelled from the command line (labloom cancel)"


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    cancel = subparsers.add_parser(
        "cancel", help="cancel running runs",
        description="Cancel runs still going (Pending or Running), in whatever process or on "
        "whatever host they run: their process cancels them within about half a second. What "
        "has not ended is Cancelled; a task call running on threads may go on until it returns. "
        "Another user's runs only by an admin (LABLOOM_ADMINS).",
    )
    cancel.add_argument("run_ids", metavar="RUN_ID", nargs="+", help="runs to cancel")
    cancel.add_argument("--wait", metavar="S", type=seconds("--wait"), default=10.0,
                        help="seconds to wait for the runs to end (default 10; 0: do not wait)")
    cancel.set_defaults(handler=_cancel, tells="labloom runs")


def _cancel(args: argparse.Namespace) -> int:
    from ..core.errors import NotAllowedError, StoreUnreachableError
    from ..store.cancel import NotCancellable, request_cancel
    from . import CLIError, one_line
    from .history import _find

    asked: list[str] = []
    refused = 0
    with open_store() as store:
        runs = [_find(store, run_id) for run_id in args.run_ids]
        for at, run in enumerate(runs):
            try:
                request_cancel(run.id, REASON, store.path)
            except StoreUnreachableError as exc:  # the server away: which runs were asked
                raise _which(exc, run.id, asked, [r.id for r in runs[at + 1:]]) from None
            except NotCancellable as exc:
                echo(f"run {run.id}: not cancelled: {one_line(exc)}")
                refused += 1
            except KeyError:  # found above, deleted since (`labloom delete`, the Flows panel)
                echo(f"run {run.id}: not cancelled: it was deleted meanwhile")
                refused += 1
            except NotAllowedError as exc:  # stops here: say what the runs named became
                later = [r.id for r in runs[at + 1:]]
                raise CLIError("; ".join([one_line(exc), *_others(
                    asked, later, "asks them")])) from None
            else:
                asked.append(run.id)
        left = _wait(store, asked, args.wait)
    for run_id, run in left:
        if run is None:  # it ended (only an ended run is deleted), then went
            echo(f"run {run_id}: cancel requested; it ended and was deleted meanwhile")
        elif run.is_open:
            echo(f"run {run.id}: cancel requested; still {run.state} after {args.wait:g}s (its "
                 "process acts on it at its next look, or the run is marked Crashed once its "
                 "process is found gone)")
        else:
            echo(f"run {run.id}: {run.state}")
    return 1 if refused else 0


def _which(exc: Exception, run_id: str, asked: list[str], later: list[str]) -> Exception:
    """``exc`` (the store's server away as run ``run_id``'s cancel was asked: it may or may
    not have been made, or was not) saying what became of each run named: before, a cancel of
    several said only that one change's fate, not which run's, nor of the others."""
    said = [f"cancel of run {run_id}: {' '.join(str(exc).removeprefix('[labloom]').split())}",
            *_others(asked, later, "once the server is back")]
    return type(exc)("[labloom] " + "; ".join(said))


def _others(asked: list[str], later: list[str], when: str) -> list[str]:
    """What became of the other runs named, a cancel stopped at one: those asked before it, and
    those never asked, with the command that asks them ``when`` it can."""
    said = []
    if asked:
        said.append(f"cancel requested before it of run(s) {', '.join(asked)}")
    if later:
        said.append(f"not asked of run(s) {', '.join(later)} (`labloom cancel "
                    f"{' '.join(later)}` {when})")
    return said


def _wait(store: Any, run_ids: list[str], wait: float) -> list[tuple[str, Any]]:
    """Each run id with its run once they ended, or as they stand after ``wait`` seconds;
    None for a run deleted meanwhile."""
    deadline = time.monotonic() + wait
    while True:
        # matching_runs marks a run whose process is gone Crashed first (``reconcile``).
        runs = [(run_id, next(iter(store.matching_runs(run_id, limit=1)), None))
                for run_id in run_ids]
        if not any(run is not None and run.is_open for _, run in runs) \
                or time.monotonic() >= deadline:
            return runs
        time.sleep(0.2)
