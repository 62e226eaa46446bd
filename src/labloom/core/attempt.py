"""What runs where the task runs (a thread, a Dask worker): one attempt of one task run.

``TaskCall`` is small and picklable. It reports "running" and log lines to a sink: the engine
itself when the run lives in this process, else the sink that the Dask executor installs on its
workers (``sink_registry.py``). It never imports Jupyter or Dask.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from . import result_files
from .call_reports import not_recorded
from .errors import TaskCrashedError, TaskTimeoutError
from .logs import TaskContext, capturing, current_task, task_context
from .sink_registry import sink_for
from .threading_internals import stack_of

if TYPE_CHECKING:
    from .cache_keys import KeyPlan
    from .experiment_values import Recording


@dataclass
class TaskCall:
    fn: Callable[..., Any]
    task_name: str
    run_id: str
    task_run_id: str
    attempt: int = 1
    timeout: float | None = None
    log_prints: bool = True
    # Where to persist a successful result (cache); written where the task ran.
    save_to: str | None = None
    # Map children of a task with ``batch_size`` may share one executor call (Dask); "auto"
    # lets the executor choose from measured durations.
    batch_size: int | str | None = None
    # A cached task whose key needs its inputs' values: made here, where they are.
    keying: KeyPlan | None = None
    # Also write prints and run-logger records to the terminal where the call runs (False
    # while a view shows them: the process running the call may be a Dask worker).
    echo: bool = True
    # Params and metrics the call records by itself (@task(params=True, metrics=[...])).
    record: Recording | None = None
    # The run's reruns before this call's launch (``RunEngine.reruns``): its logging calls
    # carry it with the attempt, which starts again at 1 in a rerun.
    rerun: int = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sink = sink_for(self.run_id)
        if sink is not None:
            sink.task_started(self.run_id, self.task_run_id, time.time(), self.attempt,
                              threading.current_thread().name, self.rerun)

        def log_line(task_run_id: str, level: int, when: float, text: str) -> None:
            if sink is not None:
                sink.task_log(self.run_id, task_run_id, level, when, text)

        # The run's own list of calls waiting when its engine is in this process
        # (``waiting_calls.py``), else the sink's way in, if it has one.
        waiting = getattr(sink, "waiting", None)
        ctx = TaskContext(self.run_id, self.task_run_id, self.task_name, self.log_prints, log_line,
                          echo=self.echo, waiting=waiting,
                          add_call=(waiting.calls.append if waiting is not None
                                    else getattr(sink, "add_call", None)),
                          attempt=self.attempt, rerun=self.rerun,
                          kept=[] if self.save_to is not None or self.keying is not None else None)
        with capturing(), task_context(ctx):
            if self.record is not None:
                self.record.before(args, kwargs)
            if self.keying is not None:
                from .cache_keys import run_keyed

                value = run_keyed(self, sink, args, kwargs, lambda: self._compute(args, kwargs))
                if self.record is not None:
                    self.record.after(self.task_name, value)
                return value
            value = self._compute(args, kwargs)
            if self.record is not None:
                self.record.after(self.task_name, value)
            if self.save_to is not None:
                # Inside the task's context, so a warning from saving lands in its logs.
                result_files.save_result(self.save_to, value, ctx.kept)
        return value

    def _compute(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.timeout is None:
            return guarded(self.task_name, self.fn, args, kwargs)
        return _call_with_timeout(self, self.timeout, args, kwargs)


def _call_with_timeout(call: TaskCall, timeout: float, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
    # Python cannot stop a thread: the call runs in a helper thread that we stop waiting for.
    # The task run fails now and the flow goes on; the abandoned call's output is still captured.
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()
    running = StillRunning()

    def target() -> None:
        try:
            outcome["value"] = context.run(guarded, call.task_name, call.fn, args, kwargs)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            running.ended()

    worker = threading.Thread(target=target, name=f"labloom-timeout-{call.task_name}", daemon=True)
    worker.start()
    behind = _behind.calls
    if behind is None:
        worker.join(timeout)
    else:  # calls wait behind this one: past the caller's patience, tell it
        patience = min(timeout, behind[0])
        worker.join(patience)
        if worker.is_alive():
            behind[1]()
            worker.join(timeout - patience)
    if worker.is_alive():
        _stop_recording(current_task())  # this call's context, shared with ``worker``
        where = stack_of(worker)
        error = TaskTimeoutError(
            f"task {call.task_name!r} timed out after {call.timeout:g}s "
            f"(timeout={call.timeout:g}); raise the timeout or make the task faster. "
            "Python cannot kill a thread: the call may still be running in the background "
            "(on threads it keeps its task run's concurrency slots until it returns, and a "
            "retry waits for them); on Dask, a worker can be restarted instead"
        )
        error.task_traceback = _timed_out_at(where, error)
        error.still_running = running
        raise error
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class StillRunning:
    """A timed-out call's thread, which runs on: ``when_ended(fn)`` calls ``fn`` once it
    returned (at once if it has). Kept on its ``TaskTimeoutError`` (``still_running``), so that
    the engine holds the task run's concurrency slots until then: a limit of 1 on a GPU or a
    licence seat let a second call start beside the first, still running, at its timeout.
    Not pickled with its error (a Dask worker's): the kernel cannot see a worker's thread."""

    __slots__ = ("_callbacks", "_lock", "done")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.done = False

    def ended(self) -> None:
        with self._lock:
            self.done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def when_ended(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self.done:
                self._callbacks.append(callback)
                return
        callback()


def still_running(error: BaseException | None) -> StillRunning | None:
    """The thread of a timed-out call in this process, if it has not returned."""
    running = getattr(error, "still_running", None)
    return None if running is None or running.done else running


class _Behind(threading.local):
    # (patience, what to call once a call has run that long) while calls wait behind this
    # thread's, else None.
    calls: tuple[float, Callable[[], None]] | None = None


_behind = _Behind()


@contextmanager
def waiting_behind(patience: float, hold_no_longer: Callable[[], None]) -> Iterator[None]:
    """Within, in this thread: other calls wait behind each call with a timeout (a Dask chunk
    runs its children in turn), and one still running after ``patience`` seconds (or its
    timeout, if shorter) calls ``hold_no_longer`` (in this thread) before it goes on waiting
    for it. Calls without a timeout run in this thread, unwatched."""
    _behind.calls = (patience, hold_no_longer)
    try:
        yield
    finally:
        _behind.calls = None


def _stop_recording(ctx: TaskContext | None) -> None:
    """The given-up call's thread runs on, but its task run has moved on (a retry, a failure,
    the run's end): what it logs from now on is not the task run's. Kept, a timed-out first
    attempt finishing late overwrote its retry's metric with a stale one (the row showed the
    value of an attempt that never completed) and a sweep's best was picked by it. Its calls are
    dropped, with one line in its logs saying so; its prints are still captured."""
    if ctx is None:
        return
    said = False

    def dropped(_call: tuple[Any, ...]) -> None:
        nonlocal said  # only the given-up thread calls this
        if not said:
            said = True
            ctx.sink(ctx.task_run_id, logging.WARNING, time.time(),
                     "[labloom] " + not_recorded(str(ctx.attempt), "the attempt timed out"))

    ctx.add_call = dropped  # checked first by every logging call (experiment_values.record)
    ctx.waiting = None  # nothing of its own to send


def guarded(
    task_name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call the task's function; a ``BaseException`` that is not an ``Exception`` comes out as
    ``TaskCrashedError``. Executors, thread pools and Dask workers are built to catch
    ``Exception``: anything else escaping a task left its run Running and the flow waiting
    forever (on threads), or killed Dask workers one after another.

    A ``KeyboardInterrupt`` in the main thread is let through: that is where Python delivers
    Ctrl-C, and a task runs there only on the local executor, whose caller's Ctrl-C cancels the
    run. Elsewhere (a pool thread, a Dask worker, a timeout's thread) only the task's own code
    can have raised it.
    """
    try:
        return fn(*args, **kwargs)
    except Exception:
        raise
    except BaseException as exc:
        main = threading.main_thread()
        if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is main:
            raise
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise TaskCrashedError(
            f"task {task_name!r} raised {text} (a BaseException, not an Exception), so its "
            "task run fails and is not retried; to fail a task raise an Exception, to stop the "
            "whole run cancel it (run.cancel(), or Ctrl-C where the flow was called)",
            type(exc).__qualname__,
            user_traceback(exc),
        ) from exc


# labloom's own frames: the whole package, not just this layer.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_traceback(exc: BaseException, tb: TracebackType | None = None) -> str:
    """The traceback text from the user's code on: labloom's own frames above it say nothing
    about what went wrong in a task."""
    if isinstance(exc, (TaskCrashedError, TaskTimeoutError)) and exc.task_traceback:
        return exc.task_traceback  # the task's own, taken where it crashed or was stuck
    tb = tb or exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        if not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR):
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _timed_out_at(frame: FrameType | None, error: TaskTimeoutError) -> str:
    """Where a timed-out call's code was (its thread's stack from the task's function on, as
    a traceback reads) and the error: what it was waiting for, rather than labloom's line that
    raised the timeout."""
    stack = traceback.extract_stack(frame) if frame is not None else []
    ours = (_PACKAGE_DIR, threading.__file__)
    while stack and os.path.abspath(stack[0].filename).startswith(ours):
        stack.pop(0)  # the thread's start and labloom's call of the task
    if not stack:
        return ""
    return ("Traceback (most recent call last), where the task was when it timed out:\n"
            + "".join(traceback.format_list(stack))
            + "".join(traceback.format_exception_only(type(error), error)))
