"""What `labloom run` says of its run once it ended: the --report that `labloom serve` records
the run's slot from, the lines on stderr, --notify's alert."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any


def report(run: Any, args: argparse.Namespace, done: list[int]) -> None:
    """The run's --report, unless ``done`` says it was written (then it holds the count of
    the run's missing records); a Ctrl-C or SIGTERM meanwhile is raised once it is (held:
    the store's last writes are waited for up to 5 s)."""
    from ..core.interrupts_held import InterruptsHeld

    with InterruptsHeld():
        if not done:
            lost = _say_unrecorded(run)
            _write_report(run, args, lost)
            done.append(lost)


def point_slot(run: Any, args: argparse.Namespace) -> bool:
    """In a run `labloom serve` started: its slot names the run from the start, so a server
    that replaces a killed one follows the run. One interrupted inside ``flow.run`` left it
    unnamed: that server called it lost, "its scheduler stopped before the run started".
    True once done (or nothing to do)."""
    if args.origin == "schedule":
        from ..schedule.stored_schedules import point_slot_at_run

        point_slot_at_run(run.id)
    return True


def report_unstarted(run: Any, args: argparse.Namespace, wish: Any) -> None:
    """A run whose executor could not start ended Failed inside ``flow.run``, recorded so:
    reported now as any run that failed: its --report (without it `labloom serve` called
    the slot refused, with no run) and its alert (its wish would have a serve send it later,
    saying this command died)."""
    if run is not None and run.wait_finished(0):
        point_slot(run, args)
        _after(run, args, 0, wish is not None and wish.kept)


def _after(run: Any, args: argparse.Namespace, lost: int = 0, wished: bool = False) -> None:
    _write_report(run, args, lost)
    if args.notify:
        alert(run, args.notify, wished)


def _write_report(run: Any, args: argparse.Namespace, lost: int) -> None:
    from ..schedule.alerts import run_summary

    if args.report:
        failed, error = run_summary(run)
        said = {
            "run_id": run.id,
            "flow": run.flow_name,
            "state": run.state.value,
            "failed_tasks": failed,
            "error": error,
            "unrecorded": lost,
        }
        Path(args.report).write_text(json.dumps(said), encoding="utf-8")


def _say_unrecorded(run: Any) -> int:
    """How many records of the run the store is missing, said on stderr when any: a run
    that completed with a hole in its history exits with status 3, not 0."""
    from ..store import unrecorded

    lost = unrecorded(run.id)
    if lost is None:
        return 0
    _tell(f"labloom: the store {lost.store} is missing {lost.count} record(s) of run {run.id}: "
          f"{'; '.join(lost.reasons)}")
    return int(lost.count)


def _tell(text: str) -> None:
    """A line on stderr after the run, which must not keep the report and exit status from
    `labloom serve` when stderr is a file on a full disk."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr)


def say_failure(run: Any) -> None:
    """Without terminal progress (LABLOOM_PROGRESS=0, as in cron jobs and schedules) a run
    that did not complete would otherwise end with nothing but its exit status."""
    from ..core.states import State
    from ..defaults import progress_enabled

    if run.state is State.COMPLETED or progress_enabled():
        return
    why = f": {run.message}" if run.message else ""
    _tell(f"labloom: run {run.id} of flow {run.flow_name!r} {run.state.value}{why}")


def alert(run: Any, url: str, wished: bool) -> None:
    """The run's failure alert, or for a run that completed, its wish let go of."""
    from ..core.states import State
    from ..schedule import run_alerts
    from ..schedule.alerts import failure_payload, run_summary

    if run.state is State.COMPLETED:
        run_alerts.completed(run.id, wished)  # its wish for an alert, kept at its start
        return
    failed, error = run_summary(run)
    sent = run_alerts.send(url, failure_payload(run.flow_name, run.id, run.state.value,
                                                failed, error), wished)
    if sent.reason is None:
        _tell("labloom: failure alert delivered")
    elif sent.kept:
        _tell(f"labloom: failure alert not delivered yet ({sent.reason}); kept in the store: "
              f"the next `labloom serve` on it sends it (`labloom show {run.id}` says when)")
    else:
        _tell("labloom: failure alert not delivered (see the log above)")
