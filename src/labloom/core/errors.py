"""labloom's exceptions: the whole tree, in this one module.

    LabloomError
    ├── FlowFailed                 a flow's return value needs a task run that did not succeed
    ├── UpstreamFailedError        .result() of a task run that never ran: an upstream failed
    ├── RunCancelledError          .result() of a cancelled task run or flow run
    ├── TaskTimeoutError           (also a TimeoutError) a task run exceeded its timeout
    ├── FlowTimeoutError           (also a TimeoutError) a flow run exceeded its timeout
    ├── TaskCrashedError           a task raised a BaseException that is not an Exception
    ├── WorkerDiedError            (also a RuntimeError) Dask gave up: the workers running it died
    ├── SchedulerLostError         (also a ConnectionError) the Dask scheduler went away mid-run
    ├── ResourceUnavailableError   (also a RuntimeError) no Dask worker offers the resources
    ├── ResultLoadError            a task run's value, made on a Dask worker, cannot be loaded here
    ├── ClusterConfigError         (also a ValueError) a cluster class, its options or a profile
    ├── TargetError                a file, notebook or recorded run cannot be loaded or run
    ├── ExportError                a notebook cannot be exported to a module
    ├── ScheduleError              (also a ValueError) a schedule cannot be stored as given
    ├── MagicArgsError             (also a ValueError) a %%tasks / %%flow option line is invalid
    ├── StoreVersionError          the store was written by a newer labloom
    ├── StoreUnavailableError      the state folder cannot be made, or the store file is damaged
    │   └── StoreUnreachableError  the store's database server cannot be reached now
    │       └── StoreChangeUnknownError  a change sent to commit, its answer lost: made or not
    ├── StoreDataError             (also a ValueError) a row of the store cannot be read back
    ├── DatabaseURLError           (also a ValueError) a database URL labloom cannot use
    ├── NotAllowedError            (also a PermissionError) acting on another user's run
    ├── ExperimentValueError       (also a ValueError) a param or metric labloom cannot record
    ├── UnknownColumnError         (also a ValueError) a sort names no column of the rows
    └── GraphvizNotFound           (also a RuntimeError) graphviz's ``dot`` is not installed

Every public one is exported by ``labloom`` (``tests/test_exceptions.py`` checks the tree).
"""

from __future__ import annotations

from typing import Any


class LabloomError(Exception):
    """Base of labloom's own errors."""


class FlowFailed(LabloomError):
    """Raised by calling a flow (or ``FlowRun.result()``) when its return value needs a task
    run that failed. ``.run`` is the FlowRun; ``.failed`` lists ``(task run name, message)``."""

    def __init__(self, message: str, run: Any = None, failed: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.run = run
        self.failed = failed or []


class UpstreamFailedError(LabloomError):
    """The task run did not run because a task it depends on failed."""


class RunCancelledError(LabloomError):
    """The task run or flow run was cancelled."""


class FlowTimeoutError(LabloomError, TimeoutError):
    """A flow run exceeded its ``timeout`` (``@flow(timeout=...)``): what had not ended was
    cancelled and the run is Failed; raised by calling the flow and by ``run.result()``."""


class TaskTimeoutError(LabloomError, TimeoutError):
    """A task run exceeded its ``timeout``. ``task_traceback`` is where the task's code was
    when it timed out, as text (kept across processes), the one thing that says what it was
    waiting for."""

    # In the process that gave up the call: its thread, running on (``attempt.StillRunning``).
    still_running: Any = None

    def __init__(self, message: str, task_traceback: str = "") -> None:
        super().__init__(message)
        self.task_traceback = task_traceback

    def __reduce__(self) -> tuple[Any, ...]:  # Dask pickles it back from the worker
        return (type(self), (str(self), self.task_traceback))


class TaskCrashedError(LabloomError):
    """A task's code raised a ``BaseException`` that is not an ``Exception`` (``sys.exit()``,
    ``asyncio.CancelledError``, a ``BaseException`` subclass; ``KeyboardInterrupt`` outside the
    main thread). Its task run fails with this in place of it (never retried): re-raised in the
    caller, ``SystemExit`` would end the kernel. ``kind`` names the original type and
    ``task_traceback`` is the task's own traceback as text (kept across processes)."""

    def __init__(self, message: str, kind: str = "", task_traceback: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.task_traceback = task_traceback

    def __reduce__(self) -> tuple[Any, ...]:  # Dask pickles it back from the worker
        return (type(self), (str(self), self.kind, self.task_traceback))


class WorkerDiedError(LabloomError, RuntimeError):
    """Dask gave up on a task because the workers running it died (``KilledWorker``)."""


class SchedulerLostError(LabloomError, ConnectionError):
    """The client lost its Dask scheduler (it died, or the network between them failed) while
    the task run was queued or running there."""


class ResourceUnavailableError(LabloomError, RuntimeError):
    """No worker of a (non-adaptive) cluster offers what a task asks in ``resources``."""


class ResultLoadError(LabloomError):
    """A task run completed, but its value cannot be loaded in this process: the Dask worker
    that made it could import what it is made of (a class of a module only the workers have)
    and this process cannot. Raised by ``.result()``, by calling the flow and by
    ``run.result()``; the run stays recorded as it ended. The loader's own error is its
    ``__cause__``."""

    def __init__(self, message: str, handles: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        # The executor's handles of the values that cannot be loaded (several when a read of
        # many values met more than one): the engine names their task runs, and leaves this
        # empty.
        self.handles = handles


class ClusterConfigError(LabloomError, ValueError):
    """A cluster per run cannot be made as configured: ``DaskExecutor(cluster_class=...,
    cluster_kwargs=..., adapt_kwargs=...)`` or a named cluster profile (``--cluster NAME``)
    names a class that cannot be imported or is not a cluster, or options it refuses."""


class TargetError(LabloomError):
    """A target (``file.py:flow``, ``notebook.ipynb``), its parameters, or the code of a
    recorded run cannot be loaded or used."""


class ExportError(LabloomError):
    """A notebook cannot be exported to a module; ``cell`` and ``line`` (1-based, counting every
    cell from the top and the cell's lines from its first) say where, when a cell is at fault."""

    def __init__(self, message: str, *, cell: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.cell = cell
        self.line = line


class ScheduleError(LabloomError, ValueError):
    """A schedule that cannot be stored as given."""


class MagicArgsError(LabloomError, ValueError):
    """The option line of a ``%%tasks`` or ``%%flow`` cell is not valid."""

    def _render_traceback_(self) -> list[str]:
        # IPython's hook for how an exception shows in a cell: one line, as IPython shows its
        # own magics' mistakes, not a traceback through the magic, its grammar and argparse.
        return [f"MagicArgsError: {str(self).removeprefix('[labloom] ')}"]


class StoreVersionError(LabloomError):
    """The store file was written by a newer labloom than this one."""


class StoreUnavailableError(LabloomError):
    """The state folder (``LABLOOM_HOME``) cannot be created or used, or the store file in it
    is not a database. Commands stop with the message; a flow still runs, unrecorded."""

    # What a change cut off midway had done before, for an answer that lists it beside the
    # message (a delete over several batches: the runs deleted, ``store/pruning.py``).
    done: dict[str, Any] | None = None


class StoreUnreachableError(StoreUnavailableError):
    """The store's database server cannot be reached now (down, restarting, a network cut):
    passing, so the writer waits it out; a command stops with the message."""


class StoreChangeUnknownError(StoreUnreachableError):
    """A change (a schedule added, a limit set, a cancel asked) whose COMMIT was sent but never
    answered, the server still away after the connection wait: it may have been made or not.
    ``labloom`` exits 4 with the command that tells (``labloom schedule list``); a change known
    not made (its connection went before the COMMIT) is a ``StoreUnreachableError`` saying so."""


class StoreDataError(LabloomError, ValueError):
    """A row of the store holds what this labloom cannot read back (damaged, or written by
    another program); the message names the row."""


class DatabaseURLError(LabloomError, ValueError):
    """A database URL labloom cannot use (``LABLOOM_DATABASE_URL``, ``--database-url``)."""


class NotAllowedError(LabloomError, PermissionError):
    """Cancel, retry or a schedule change on another user's run or schedule, by a user who is
    not an admin (``LABLOOM_ADMINS``); see ``store/access.py``."""


class ExperimentValueError(LabloomError, ValueError):
    """A param or metric that cannot be recorded (``log_params``, ``log_metrics``): not a
    number, bool or short string, a ``Secret``, or a bad name or step. Nothing of that call is
    recorded; what was recorded before stays."""


class UnknownColumnError(LabloomError, ValueError):
    """A sort (``run.experiments(sort=...)``, ``labloom.experiments``, ``labloom experiments
    --sort``) or a filter term (``labloom experiments --filter``) names a column no row has;
    the message lists those they have."""


class GraphvizNotFound(LabloomError, RuntimeError):
    """graphviz's ``dot`` program is not installed (or not on PATH)."""


__all__ = [
    "ClusterConfigError",
    "DatabaseURLError",
    "ExperimentValueError",
    "ExportError",
    "FlowFailed",
    "GraphvizNotFound",
    "LabloomError",
    "MagicArgsError",
    "NotAllowedError",
    "ResourceUnavailableError",
    "RunCancelledError",
    "ScheduleError",
    "SchedulerLostError",
    "StoreUnavailableError",
    "StoreUnreachableError",
    "StoreVersionError",
    "TargetError",
    "TaskCrashedError",
    "TaskTimeoutError",
    "UpstreamFailedError",
    "WorkerDiedError",
]


def error_text(error: BaseException) -> str:
    """"ValueError: bad input": a failed attempt's message. An error whose ``__str__`` raises
    (a library's, reading what its ``__init__`` did not set) is named without it: raised
    here, in the engine's report of the attempt, it left a run on threads Running forever."""
    try:
        text = str(error)
    except Exception as exc:
        text = f"<unprintable: {type(exc).__name__} in its __str__>"
    return f"{type(error).__name__}: {text}"
