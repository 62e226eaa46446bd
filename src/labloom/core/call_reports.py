"""What a launched call reports back (its start, its end) is counted only for the launch that
made it: the task run's attempt and the run's rerun (``RunEngine.reruns``) at launch.

``run.cancel()`` leaves a running call running (Python cannot stop a thread; a Dask task runs
on), and ``run.retry()`` launches its task run again from attempt 1. Compared by attempt alone,
the old call's end was taken as the rerun's: the task run showed the old call's result and a
duration of microseconds while the rerun's own call ran on, and the flow ended without waiting
for it; the old call's late start flipped the rerun's state and start time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .executor import Outcome
    from .launching import Launcher
    from .task_runs import TaskRun


class Done:
    """What an executor calls when a launched call ends (an ``on_done``); it names its
    launcher, so that ``executor.report_all`` hands it many outcomes at once, and the
    (rerun, attempt) that launched the call: only that one's outcome it is (``is_stale``)."""

    __slots__ = ("attempt", "launcher", "rerun", "tr")

    def __init__(self, launcher: Launcher, tr: TaskRun, attempt: int, rerun: int) -> None:
        self.launcher = launcher
        self.tr = tr
        self.attempt = attempt
        self.rerun = rerun

    def __call__(self, outcome: Outcome) -> None:
        launcher = self.launcher
        launcher.inbox.put(launcher.outcome, self.tr, self.attempt, self.rerun, outcome)


def is_stale(tr: TaskRun, attempt: int, rerun: int | None, reruns: int) -> bool:
    """Whether a call's report is no longer its task run's (under the run's lock): the task
    run ended (cancelled meanwhile), or the call is of a superseded attempt, or of an earlier
    rerun (``reruns``: the run's count now). ``rerun`` None: a report that does not say (a Dask
    worker of an older labloom), checked by its attempt alone."""
    return tr.done or attempt != tr.attempts or (rerun is not None and rerun != reruns)


def not_recorded(attempts: str, after: str, count: int | None = None) -> str:
    """labloom's line in a task run's logs for its logging calls of ``attempts`` dropped as
    no longer its own, ``after`` what: one wording for a given-up thread's calls
    (``attempt._stop_recording``, said at the first, ``count`` None) and for those that
    arrive once their task run moved on (``sinks.ExecutorSink._say_late``, counted in the
    batch that says it). Said once per attempt either way: the rest are not said again.
    Without it a metric missing from a row left its user nothing to go by."""
    calls = ("logging calls" if count is None
             else f"{count} logging call{'' if count == 1 else 's'}")
    return (f"{calls} of attempt {attempts} came after {after}: not recorded, nor will later "
            "ones be (only a live attempt's values count)")
