"""A launch block's calls handed to the executor (``Launcher._launch_all``): a task's calls
in a row at once (``Executor.submit_all``: a map's children share its look-ups), each
prepared first (a cached result read, a result file named: ``results.py``). A call that
cannot be prepared, or that the executor refuses, fails alone, as when submitted one by one.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from .attempt import TaskCall
from .call_reports import Done
from .executor import Executor, Outcome, Submission
from .experiment_values import recording_for
from .task_runs import TaskRun

if TYPE_CHECKING:
    from .launching import Launcher

# A task run with the arguments its attempt is launched with.
Prepared = list[tuple[TaskRun, int, tuple[Any, ...], dict[str, Any]]]
# Each launched call, in order: (task run, attempt, handle, None), or (task run, attempt,
# None, (attempt, rerun, the failed outcome)) for one that failed at its launch.
Launched = list[tuple[TaskRun, int, Any, tuple[int, int, Outcome] | None]]


def submit_all(launcher: Launcher, prepared: Prepared, rerun: int, echo: bool,
               launched: Launched) -> None:
    """The executor's calls for ``prepared``, appended to ``launched`` as each is known."""
    for task, runs in itertools.groupby(prepared, key=lambda item: item[0].task):
        resources = task.resources or None
        batch_size = task.batch_size
        group: list[tuple[TaskRun, int]] = []
        calls: list[Submission] = []
        # What the task's calls share, read once (each a property, a map's 20,000 calls).
        fn, run_id, timeout, log_prints = task.fn, launcher.engine.id, task.timeout, \
            task.log_prints
        records = bool(task.params or task.metrics)  # else ``recording_for`` says None
        for tr, attempt, args, kwargs in runs:
            call = TaskCall(fn, tr.name, run_id, tr.id, attempt, timeout, log_prints,
                            batch_size=batch_size if tr.map_index is not None else None,
                            echo=echo, rerun=rerun,
                            record=recording_for(tr, args, kwargs) if records else None)
            try:
                args, kwargs = launcher.results.prepare(tr, call, args, kwargs)
            except Exception as exc:  # a KeyboardInterrupt propagates: the run cancels
                hand_over(launcher.executor, group, calls, resources, rerun, launched)
                launched.append((tr, attempt, None,
                                 (attempt, rerun, Outcome(ok=False, error=exc))))
                continue
            group.append((tr, attempt))
            calls.append((call, args, kwargs, Done(launcher, tr, attempt, rerun)))
        hand_over(launcher.executor, group, calls, resources, rerun, launched)


def hand_over(executor: Executor, group: list[tuple[TaskRun, int]], calls: list[Submission],
              resources: dict[str, float] | None, rerun: int, launched: Launched) -> None:
    """One task's prepared calls to the executor at once; empties ``group`` and ``calls``.
    A call the executor refuses (it raises) fails alone, as when submitted one by one: the
    calls after it are handed over again."""
    start = 0
    while start < len(group):
        handles: list[Any] = []
        error: Exception | None = None
        try:
            executor.submit_all(calls[start:] if start else calls, resources, handles)
        except Exception as exc:
            error = exc
        finally:  # a KeyboardInterrupt: the calls with a handle were submitted, in order
            launched += [(tr, attempt, handle, None) for (tr, attempt), handle
                         in zip(group[start:start + len(handles)], handles, strict=True)]
            start += len(handles)
        if error is not None:
            tr, attempt = group[start]
            launched.append((tr, attempt, None,
                             (attempt, rerun, Outcome(ok=False, error=error))))
            start += 1
    group.clear()
    calls.clear()
