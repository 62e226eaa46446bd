"""What runs where the task runs (a thread, a Dask worker): one attempt of one task run.

``TaskCall`` is small and picklable. It reports "running" and log lines to a sink: the engine
itself when the run lives in this process, else the sink that the Dask executor installs on its
workers (see ``set_remote_sink``). It never imports Jupyter or Dask.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from .errors import TaskTimeoutError
from .logs import TaskContext, capturing, task_context

if TYPE_CHECKING:
    from .experiment_values import Recording


class RunSink(Protocol):
    def task_started(self, run_id: str, task_run_id: str, when: float, attempt: int) -> None: ...

    def task_log(self, run_id: str, task_run_id: str, level: int, when: float, text: str) -> None:
        ...

    def task_values(self, run_id: str, task_run_id: str, when: float, kind: str,
                    values: dict[str, Any], step: int | None) -> None:
        """The params or metrics of one logging call (``experiment_values.record``)."""


# Runs living in this process, by id: their engine receives events directly.
_local_sinks: dict[str, RunSink] = {}
# Set on Dask worker processes, where the run's engine is elsewhere.
_remote_sink: RunSink | None = None


def register_local_run(run_id: str, sink: RunSink) -> None:
    _local_sinks[run_id] = sink


def unregister_local_run(run_id: str) -> None:
    _local_sinks.pop(run_id, None)


def set_remote_sink(sink: RunSink | None) -> None:
    global _remote_sink
    _remote_sink = sink


def local_sink(run_id: str) -> RunSink | None:
    """The sink of a run living in this process, if it is still running."""
    return _local_sinks.get(run_id)


def _sink_for(run_id: str) -> RunSink | None:
    return _local_sinks.get(run_id) or _remote_sink


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
    # Params and metrics the call records by itself (@task(params=True, metrics=[...])).
    record: Recording | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sink = _sink_for(self.run_id)
        if sink is not None:
            sink.task_started(self.run_id, self.task_run_id, time.time(), self.attempt)

        def log_line(task_run_id: str, level: int, when: float, text: str) -> None:
            if sink is not None:
                sink.task_log(self.run_id, task_run_id, level, when, text)

        ctx = TaskContext(self.run_id, self.task_run_id, self.task_name, self.log_prints, log_line)
        with capturing(), task_context(ctx):
            if self.record is not None:
                self.record.before(args, kwargs)
            if self.timeout is None:
                value = self.fn(*args, **kwargs)
            else:
                value = _call_with_timeout(self, args, kwargs)
            if self.record is not None:
                self.record.after(self.task_name, value)
            if self.save_to is not None:
                # Inside the task's context, so a warning from saving lands in its logs.
                from .results import save_result

                save_result(self.save_to, value)
        return value


def _call_with_timeout(call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # Python cannot stop a thread: the call runs in a helper thread that we stop waiting for.
    # The task run fails now and the flow goes on; the abandoned call's output is still captured.
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(call.fn, *args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"labloom-timeout-{call.task_name}", daemon=True)
    worker.start()
    worker.join(call.timeout)
    if worker.is_alive():
        raise TaskTimeoutError(
            f"task {call.task_name!r} timed out after {call.timeout:g}s "
            f"(timeout={call.timeout:g}); raise the timeout or make the task faster. "
            "Python cannot kill a thread: the call may still be running in the background "
            "(it holds no concurrency slot); on Dask, a worker can be restarted instead"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# labloom's own frames: the whole package, not just this layer.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_traceback(exc: BaseException, tb: TracebackType | None = None) -> str:
    """The traceback text from the user's code on: labloom's own frames above it say nothing
    about what went wrong in a task."""
    tb = tb or exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        if not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR):
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def load_cached(path: str) -> Any:
    """Runs where a cached task would have run: the value never passes through the kernel."""
    from .results import load_result

    return load_result(path)
