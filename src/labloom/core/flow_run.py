"""The engine: one ``FlowRun`` resolves dependencies, expands maps, retries, applies timeouts
and concurrency limits, and emits every event of the run. It never imports Jupyter.

Threads: the flow body runs in the driver thread (the caller's, or a background one);
executor callbacks arrive from any thread. All graph mutations hold ``self._lock``.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..executors.base import Executor
from ..store.limiter import Limiter, process_limiter
from . import at_exit
from . import events as ev
from .attempt import register_local_run, unregister_local_run
from .errors import FlowFailed, RunCancelledError, UpstreamFailedError
from .futures import MappedFuture, allow_failure, replace_futures
from .graph import MapNode, TaskRun
from .launching import LogLine
from .logs import current_task
from .rerun import Rerunning
from .results import ResultPlanner
from .states import State

if TYPE_CHECKING:
    from .flows import Flow

log = logging.getLogger("labloom")

_ACTIVE: contextvars.ContextVar[FlowRun | None] = contextvars.ContextVar(
    "labloom_flow_run", default=None
)


def active_run() -> FlowRun | None:
    """The flow run whose body is executing here, unless we are inside a task."""
    if current_task() is not None:
        return None
    return _ACTIVE.get()


class FlowRun(Rerunning):
    """One run of a flow: its live handle. ``Flow.run(...)`` returns it.

    >>> run = sweep.run(grid=grid, background=True)
    >>> run.state, len(run.tasks)
    >>> run.wait(); run.result()
    """

    def __init__(
        self,
        flow: Flow[Any, Any],
        parameters: dict[str, Any],
        executor: Executor,
        origin: str = "script",
        limiter: Limiter | None = None,
        owns_executor: bool = False,
    ) -> None:
        self._owns_executor = owns_executor
        self.id = uuid.uuid4().hex[:12]
        self.flow = flow
        self.flow_name = flow.name
        self.parameters = parameters
        self.executor = executor
        self.origin = origin
        self.state = State.PENDING
        self.message = ""
        self.started: float | None = None
        self.ended: float | None = None
        self.metadata: dict[str, Any] = {}
        self._limiter = limiter or executor_limiter(executor)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._task_runs: list[TaskRun] = []
        self._by_id: dict[str, TaskRun] = {}
        self._maps: list[MapNode] = []
        self._node_ids = itertools.count()
        self._bus = ev.EventBus()
        self._logs: list[LogLine] = []
        self._log_counts: dict[str | None, int] = {}
        self._open = 0  # task runs not final, maps not expanded
        self._cancelled = False
        self._body_done = False
        self._body_error: BaseException | None = None
        self._return: Any = None
        self._finished = threading.Event()
        self._finalizing = False  # one thread finalizes (at exit, two may try)
        self._tracing = False  # Flow.visualize: nothing runs, so nothing may be waited for
        # Cache hits, persisted results and reuse on retry (see _cache.py).
        self._results = ResultPlanner(self)

    # --- public handle --------------------------------------------------------------------

    @property
    def tasks(self) -> list[TaskRun]:
        """Task runs so far, in creation order (map children included)."""
        with self._lock:
            return list(self._task_runs)

    def logs(self, task: str | None = None) -> list[LogLine]:
        """Log lines of the run, or of one task run (by id, ``name`` or ``name[i]``)."""
        lines = list(self._logs)
        if task is None:
            return lines
        return [
            line
            for line in lines
            if task in (line.task_run_id, line.task_name)
            or line.task_name.split("[", 1)[0] == task
        ]

    def subscribe(self, callback: ev.Subscriber, replay: bool = False) -> Callable[[], None]:
        """Receive the run's events in batches (lists); returns a function to unsubscribe."""
        return self._bus.subscribe(callback, replay=replay)

    def wait(self, timeout: float | None = None) -> State:
        """Block until the run ends (or ``timeout`` seconds); returns its state.

        Interrupting the wait (Ctrl-C, a kernel interrupt) cancels the run.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._finished.is_set():
                remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if remaining <= 0:
                    break
                if self.executor.run_pending():
                    continue
                self._finished.wait(remaining)
        except KeyboardInterrupt:
            self.cancel("interrupted")
            raise
        return self.state

    def result(self, timeout: float | None = None) -> Any:
        """The flow's return value with futures resolved.

        Raises the flow body's own exception if it raised, ``RunCancelledError`` if the run
        was cancelled, and ``FlowFailed`` if the return value needs a task run that failed.
        """
        self.wait(timeout)
        if not self._finished.is_set():
            raise TimeoutError(f"flow run {self.id} is still {self.state} after {timeout}s")
        if self._body_error is not None:
            raise self._body_error
        if self.state is State.CANCELLED:
            raise RunCancelledError(f"flow run {self.id} of {self.flow_name!r} was cancelled")
        return self._resolve_return()

    def cancel(self, reason: str = "cancelled by user") -> None:
        """Cancel what has not finished: pending task runs become Cancelled at once."""
        with self._lock:
            if self._finished.is_set() or self._cancelled:
                return
            self._cancelled = True
            self.message = reason
            handles = []
            finished: list[TaskRun | MapNode] = []
            for node in self._maps:
                if not node.expanded:
                    finished += self._fail_map(node, State.CANCELLED, reason)
            for tr in self._task_runs:
                if not tr.done:
                    if tr.handle is not None:
                        handles.append(tr.handle)
                    self._set_final(tr, State.CANCELLED, reason)
                    finished.append(tr)
            self._settle(finished)
        self.executor.cancel(handles)

    def retry(self, background: bool = False) -> FlowRun:
        """Rerun failed, upstream-failed and cancelled task runs and what depends on them,
        reusing completed results; same run id. Returns self (waited unless background)."""
        with self._lock:
            if not self._finished.is_set():
                raise RuntimeError(
                    f"flow run {self.id} is still {self.state}; wait() or cancel() it first"
                )
            if self._body_error is not None:
                raise RuntimeError(
                    f"flow run {self.id} failed in the flow body itself "
                    f"({type(self._body_error).__name__}); fix it and run the flow again"
                )
            self._reopen()
            self._rerun_bad()
        if background:
            threading.Thread(target=self._finish_run, name=f"labloom-{self.id}", daemon=True).start()
        else:
            self._finish_run()
        return self

    def widget(self) -> Any:
        """The live DAG of this run, for a notebook."""
        from ..notebook.widget import widget_for

        return widget_for(self)

    def __repr__(self) -> str:
        return f"<FlowRun {self.flow_name} {self.id} {self.state.value}>"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, background: bool = False) -> FlowRun:
        self.executor.start()
        register_local_run(self.id, self)
        at_exit.track(self)
        self.started = time.time()
        self.metadata.update(self.executor.metadata())
        self._emit(
            ev.RunCreated(
                self.id,
                self.flow_name,
                dict(self.parameters),
                self.executor.describe(),
                self.origin,
                socket.gethostname(),
                self.started,
                self.flow.source_hash,
                dict(self.metadata),
            )
        )
        for observer in ev.run_observers():
            observer(self)
        self._set_run_state(State.RUNNING)
        if background:
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run, args=(self._drive,), name=f"labloom-{self.id}", daemon=True
            )
            thread.start()
        else:
            self._drive()
        return self

    def trace(self) -> None:
        """Run only the body, with an executor that runs nothing, to record the graph."""
        self._tracing = True
        token = _ACTIVE.set(self)
        try:
            self._return = self.flow.fn(**self.parameters)
        finally:
            _ACTIVE.reset(token)
            self._cancelled = True
            self._bus.close()

    def _drive(self) -> None:
        token = _ACTIVE.set(self)
        try:
            self._return = self.flow.fn(**self.parameters)
        except KeyboardInterrupt:
            self._body_error = KeyboardInterrupt()
            _ACTIVE.reset(token)
            self.cancel("interrupted")
            self._finish_run()
            raise
        except BaseException as exc:
            self._body_error = exc
            self._cancel_unstarted(f"not started: the flow body raised {type(exc).__name__}")
        else:
            self._check_return()
        finally:
            if _ACTIVE.get() is self:
                _ACTIVE.reset(token)
            self._body_done = True
        self._finish_run()

    def _finish_run(self) -> None:
        try:
            self._wait_until(lambda: self._open == 0, None)
        except KeyboardInterrupt:
            self.cancel("interrupted")
            self._finalize()
            raise
        self._finalize()

    def wait_finished(self, timeout: float) -> bool:
        """Wait for the run to be finished and recorded, without driving the executor."""
        return self._finished.wait(timeout)

    def finish_now(self) -> None:
        """Finish a cancelled run from this thread (at process exit: its own may be stuck)."""
        self._finalize()

    def _finalize(self) -> None:
        with self._lock:
            if self._finished.is_set() or self._finalizing:
                return
            self._finalizing = True
            failed = [tr for tr in self._task_runs if tr.bad and not self._tolerated(tr)]
            if self._cancelled:
                state = State.CANCELLED
            elif self._body_error is not None:
                state = State.FAILED
                self.message = f"flow body raised {type(self._body_error).__name__}: " + str(
                    self._body_error
                )
            elif failed:
                state = State.FAILED
                first = failed[0]
                self.message = f"{len(failed)} task run(s) did not succeed; first: {first.name}"
                if first.message:
                    self.message += f": {first.message}"
            else:
                state = State.COMPLETED
            self.ended = time.time()
            self.state = state
            self._emit(ev.RunFinished(self.id, state, self.ended, self.message))
        self._bus.close()
        unregister_local_run(self.id)
        at_exit.untrack(self)
        self.executor.run_ended(self.id)
        if self._owns_executor:
            self.executor.shutdown()
        self._finished.set()
        with self._lock:
            self._changed.notify_all()

    # --- waiting and results ----------------------------------------------------------------

    def _wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._tracing:
            self.executor.result(None)  # says why a traced body cannot wait
        while True:
            with self._lock:
                if predicate():
                    return True
            if self.executor.run_pending():
                continue
            with self._lock:
                if predicate():
                    return True
                remaining = 0.1 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"still waiting after {timeout}s (flow run {self.id})")
                self._changed.wait(min(remaining, 0.1))

    def _result_of(self, tr: TaskRun, timeout: float | None) -> Any:
        self._wait_until(lambda: tr.done, timeout)
        if tr.state.is_success:
            return self.executor.result(tr.handle)
        if tr.state is State.FAILED and tr.error is not None:
            raise tr.error
        if tr.state is State.CANCELLED:
            raise RunCancelledError(f"task run {tr.name} was cancelled: {tr.message}")
        raise UpstreamFailedError(f"task run {tr.name} did not run: {tr.message}")

    def _results_of(self, runs: list[TaskRun], timeout: float | None) -> list[Any]:
        """Values of several task runs, fetched together (one round trip on Dask)."""
        self._wait_until(lambda: all(tr.done for tr in runs), timeout)
        for tr in runs:
            if not tr.state.is_success:
                self._result_of(tr, timeout)  # raises what went wrong
        return self.executor.results([tr.handle for tr in runs])

    def _resolve_return(self) -> Any:
        needed: list[TaskRun] = []

        def runs_of(item: Any) -> list[TaskRun]:
            future = item.future if isinstance(item, allow_failure) else item
            if isinstance(future, MappedFuture):
                return future._node.children
            return [future._task_run]

        succeeded: dict[int, TaskRun] = {}

        def collect(item: Any) -> None:
            succeeded.update((id(tr), tr) for tr in runs_of(item) if tr.state.is_success)

        replace_futures(self._return, collect)
        fetched = self.executor.results([tr.handle for tr in succeeded.values()])
        values_by_run = dict(zip(succeeded, fetched, strict=True))

        def value_of(item: Any) -> Any:
            allowed = isinstance(item, allow_failure)
            future = item.future if allowed else item
            values = []
            for tr in runs_of(item):
                if tr.state.is_success:
                    values.append(values_by_run[id(tr)])
                elif allowed:
                    values.append(tr.error or UpstreamFailedError(tr.message))
                else:
                    needed.append(tr)
                    values.append(None)
            return values if isinstance(future, MappedFuture) else values[0]

        value = replace_futures(self._return, value_of)
        if needed:
            failed = [tr for tr in self._task_runs if tr.state is State.FAILED]
            summary = "; ".join(f"{tr.name}: {tr.message}" for tr in failed[:5])
            raise FlowFailed(
                f"flow {self.flow_name!r} (run {self.id}) failed: its return value needs "
                + ", ".join(f"{tr.name} ({tr.state})" for tr in needed[:5])
                + (f". Failed: {summary}" if summary else "")
                + f". Logs: run.logs(task_name) or `labloom logs {self.id}`",
                run=self,
                failed=[(tr.name, tr.message) for tr in failed],
            ) from (failed[0].error if failed else None)
        return value

    # --- retry ----------------------------------------------------------------------------------

    def _reopen(self) -> None:
        self._finished.clear()
        self._finalizing = False
        self._cancelled = False
        self.message = ""
        self.ended = None
        self._bus.reopen()
        register_local_run(self.id, self)
        at_exit.track(self)
        self._set_run_state(State.RUNNING)

def executor_limiter(executor: Executor) -> Limiter:
    factory = getattr(executor, "limiter", None)
    limiter = factory() if callable(factory) else None
    return limiter if limiter is not None else process_limiter()


__all__ = ["FlowRun", "LogLine", "active_run"]
