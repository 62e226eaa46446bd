"""In-process executors: sequential (in the waiting thread) and a thread pool."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..core.attempt import TaskCall, user_traceback
from ..core.executor import DoneCallback, Executor, Outcome, Submission
from ..core.logs import capturing
from ..core.process_log import warn_later
from ..core.sink_registry import sink_for
from .thread_pool import ThreadPool


class _Handle:
    """A finished local call's value lives here; downstream calls receive it directly.

    ``cancelled`` stops a call that has not started. The pool's own future is not kept: with
    its lock and condition it would be most of a finished task run's memory; one field, not
    two, for the same reason (a call not started holds no value: it may hold "cancelled").
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None

    @property
    def cancelled(self) -> bool:
        return self.value is _CANCELLED

    @cancelled.setter
    def cancelled(self, value: bool) -> None:
        if value and self.value is None:
            self.value = _CANCELLED


_CANCELLED = object()


# Calls queued in this process at most; the engine keeps the rest as ready task runs.
QUEUED = 1000


def _execute(
    call: TaskCall,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    handle: _Handle,
    on_done: DoneCallback,
) -> None:
    if handle.cancelled:
        return  # cancelled while it waited in the queue: the engine already ended it
    started = time.time()
    try:
        handle.value = call(*args, **kwargs)
    except Exception as exc:
        outcome = Outcome(
            ok=False,
            error=exc,
            traceback=user_traceback(exc),
            started=started,
            ended=time.time(),
        )
    else:
        outcome = Outcome(ok=True, started=started, ended=time.time())
    on_done(outcome)


class _InProcess(Executor):
    reports_cancelled_calls = True  # Python cannot stop the thread: the call returns in time
    runs_each_attempt_once_here = True

    def settled(self, handle: Any) -> Any:
        # The value in place of its handle once the call succeeded (``Executor.settled``):
        # 48 bytes less per finished task run. A value that is itself a handle (never from a
        # task, but be exact) keeps its handle, so that ``_value`` cannot misread it.
        value = handle.value if type(handle) is _Handle else handle
        return handle if type(value) is _Handle else value

    def value_ref(self, handle: Any) -> Any:
        return _value(handle)

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            # A task run's handle is its value once the call succeeded (``settled``); a Ctrl-C
            # landing before its state followed leaves that value where a cancel looks: the
            # interrupted run's cancel raised AttributeError and the run never ended.
            if isinstance(handle, _Handle):
                handle.cancelled = True

    def result(self, handle: Any, timeout: float | None = None) -> Any:
        return _value(handle)


def _value(handle: Any) -> Any:
    """A call's value from its handle, or the value itself once ``settled``."""
    return handle.value if type(handle) is _Handle else handle


class LocalExecutor(_InProcess):
    """Runs task runs one at a time, in the thread that waits for the flow.

    Good for debugging (pdb, breakpoints and Ctrl-C behave as in plain Python) and for
    flows whose tasks are quick.
    """

    name = "local"

    def __init__(self) -> None:
        self._queue: deque[tuple[TaskCall, tuple[Any, ...], dict[str, Any], _Handle, DoneCallback]]
        self._queue = deque()
        self._taking = threading.Lock()
        self._busy = False  # a thread runs a call

    def submit(
        self,
        call: TaskCall,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_done: DoneCallback,
        resources: dict[str, float] | None = None,
    ) -> Any:
        handle = _Handle()
        self._queue.append((call, args, kwargs, handle, on_done))
        return handle

    def room(self) -> int:
        return QUEUED - len(self._queue)

    def run_pending(self) -> bool:
        # One call at a time, even when two threads wait on the same run. Not a lock taken with
        # ``acquire(blocking=False)`` before a ``try``: a Ctrl-C landing right after it returned
        # kept it taken for good, and no run of this executor (a flow's ``LocalExecutor()``)
        # ran a call again. The flag is set inside the ``try``, with no call in between.
        if not self._queue:
            return False
        taken = False
        try:
            with self._taking:
                if self._busy:
                    return False
                self._busy = taken = True
            try:
                call, args, kwargs, handle, on_done = self._queue.popleft()
            except IndexError:
                return False
            _execute(call, args, kwargs, handle, on_done)
            return True
        finally:
            if taken:
                self._busy = False


class ThreadExecutor(_InProcess):
    """Runs task runs on a pool of threads in this process (I/O-bound work, quick tasks).

    >>> @flow(executor=ThreadExecutor(max_workers=8))
    """

    name = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ValueError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self._pool: ThreadPool | None = None
        self._lock = threading.Lock()
        # (run, task function) whose ``resources=`` were said to be ignored.
        self._said: set[tuple[str, Any]] = set()

    def submit_all(self, calls: Sequence[Submission], resources: dict[str, float] | None,
                   handles: list[Any]) -> None:
        if resources and calls:
            call = calls[0][0]
            if (call.run_id, call.fn) not in self._said:
                self._said.add((call.run_id, call.fn))
                say_resources_ignored(call, resources, self.name)
        super().submit_all(calls, resources, handles)

    def start(self) -> None:
        with self._lock:
            if self._pool is None:
                # A task thread keeps the capture of prints and log records while calls keep
                # coming: each call's own is then a count (``logs.capturing``).
                self._pool = ThreadPool(self.max_workers, "labloom-task", busy=capturing)

    def submit(
        self,
        call: TaskCall,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_done: DoneCallback,
        resources: dict[str, float] | None = None,
    ) -> Any:
        pool = self._pool
        if pool is None:
            self.start()
            pool = self._pool
            assert pool is not None
        handle = _Handle()
        pool.submit(_execute, call, args, kwargs, handle, on_done)
        return handle

    def room(self) -> int:
        pool = self._pool
        return QUEUED - (pool.queued() if pool is not None else 0)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def describe(self) -> str:
        return f"threads({self.max_workers or 'auto'})"


def say_resources_ignored(call: TaskCall, resources: dict[str, float], executor: str) -> None:
    """Once per task and run, on the process's log and in the first call's task run logs: on
    threads, task runs asking a GPU each ran beside the others, each one taking the GPU, and
    nothing said that ``resources=`` was not honoured."""
    task = call.task_name.partition("[")[0]
    asked = ", ".join(f"{name}={amount:g}" for name, amount in resources.items())
    text = (f"task {task!r} asks for resources {asked}, which the {executor} executor "
            "cannot honour: its calls run as many at once as it has threads. Run the flow on "
            "a DaskExecutor whose workers offer them (dask worker --resources \"GPU=1\"), or "
            "bound the calls with a tag and a concurrency limit (labloom.limits.set(tag, n))")
    warn_later("[labloom] %s", text)
    sink = sink_for(call.run_id)
    if sink is not None:
        sink.task_log(call.run_id, call.task_run_id, logging.WARNING, time.time(),
                      f"[labloom] {text}")
