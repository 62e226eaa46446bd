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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _events as ev
from ._cache import ResultPlanner
from ._errors import FlowFailed, RunCancelledError, UpstreamFailedError
from ._executors.base import Executor, Outcome
from ._futures import MappedFuture, TaskFuture, allow_failure, find_futures, replace_futures
from ._graph import MapNode, StateEntry, TaskRun
from ._limits_local import Limiter, process_limiter
from ._logs import current_task
from ._mapping import MapSources, expand_map, map_source
from ._runner import TaskCall, register_local_run, unregister_local_run
from ._states import BAD_STATES, State

if TYPE_CHECKING:
    from ._flows import Flow
    from ._tasks import Task

log = logging.getLogger("labloom")

_ACTIVE: contextvars.ContextVar[FlowRun | None] = contextvars.ContextVar(
    "labloom_flow_run", default=None
)
# Log lines kept in memory per task run; the store keeps its own (capped) copy.
MAX_LOG_LINES = 10_000


def active_run() -> FlowRun | None:
    """The flow run whose body is executing here, unless we are inside a task."""
    if current_task() is not None:
        return None
    return _ACTIVE.get()


@dataclass(frozen=True)
class LogLine:
    task_run_id: str | None
    task_name: str
    level: int
    time: float
    text: str

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)


class FlowRun:
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
        from ._widget import widget_for

        return widget_for(self)

    def __repr__(self) -> str:
        return f"<FlowRun {self.flow_name} {self.id} {self.state.value}>"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, background: bool = False) -> FlowRun:
        self.executor.start()
        register_local_run(self.id, self)
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

    def _finalize(self) -> None:
        with self._lock:
            if self._finished.is_set():
                return
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
        if self._owns_executor:
            self.executor.shutdown()
        self._finished.set()
        with self._lock:
            self._changed.notify_all()

    # --- building the graph (called from the flow body) ------------------------------------

    def _submit(
        self,
        task: Task[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        wait_for: Any,
    ) -> TaskFuture[Any]:
        deps = self._dependencies((args, kwargs), wait_for)
        with self._lock:
            node_id = self._new_node_id()
            tr = self._new_task_run(task, node_id, None, args, kwargs)
            self._emit(ev.NodeCreated(self.id, node_id, task.name, "task", self._node_ids_of(deps), time.time()))
            self._add_task_run(tr, deps)
        return TaskFuture(self, tr)

    def _map(
        self,
        task: Task[Any, Any],
        iterables: tuple[Any, ...],
        kwargs: dict[str, Any],
        wait_for: Any,
    ) -> MappedFuture[Any]:
        if not iterables and not kwargs:
            raise TypeError(f"{task.name}.map() needs at least one iterable to map over")
        sources = MapSources(
            [map_source(self, task, f"argument {i + 1}", value) for i, value in enumerate(iterables)],
            {key: map_source(self, task, f"{key}=", value) for key, value in kwargs.items()},
        )
        sources.check_known_widths(task.name)
        waits = self._dependencies((), wait_for)
        with self._lock:
            node = MapNode(self._new_node_id(), task, sources.positional, sources.keywords)
            node.wait_for = [dep for dep, _ in waits]
            upstream = [*sources.upstream_nodes(), *self._node_ids_of(waits)]
            self._maps.append(node)
            self._open += 1
            self._emit(ev.NodeCreated(self.id, node.id, task.name, "map", tuple(dict.fromkeys(upstream)), time.time()))
            for pending in sources.unresolved():
                node.waiting_to_expand += 1
                pending.expand_dependents.append(node)
            if node.waiting_to_expand == 0:
                self._settle(self._expand(node))
        return MappedFuture(self, node)

    def _dependencies(self, values: Any, wait_for: Any) -> list[tuple[TaskRun | MapNode, bool]]:
        found: list[Any] = []
        find_futures(values, found)
        if wait_for is not None:
            items = wait_for if isinstance(wait_for, (list, tuple, set)) else [wait_for]
            for item in items:
                if not isinstance(item, (TaskFuture, MappedFuture, allow_failure)):
                    raise TypeError(
                        f"wait_for takes futures of task runs in this flow, got {item!r}"
                    )
                found.append(item)
        deps: dict[int, tuple[TaskRun | MapNode, bool]] = {}
        for item in found:
            allowed = isinstance(item, allow_failure)
            future = item.future if allowed else item
            self._check_owned(future)
            target: TaskRun | MapNode = (
                future._task_run if isinstance(future, TaskFuture) else future._node
            )
            previous = deps.get(id(target))
            deps[id(target)] = (target, allowed and (previous is None or previous[1]))
        return list(deps.values())

    def _check_owned(self, future: TaskFuture[Any] | MappedFuture[Any]) -> None:
        if future._run is not self:
            raise ValueError(
                f"the future of {future.name!r} belongs to flow run {future._run.id} "
                f"({future._run.flow_name!r}), not to this one ({self.id}); a future is only "
                "valid inside its own run: pass its value, future.result(), instead"
            )

    def _node_ids_of(self, deps: Sequence[tuple[TaskRun | MapNode, bool]]) -> tuple[str, ...]:
        ids = [dep.id if isinstance(dep, MapNode) else dep.node_id for dep, _ in deps]
        return tuple(dict.fromkeys(ids))

    def _new_node_id(self) -> str:
        return f"n{next(self._node_ids)}"

    def _new_task_run(
        self,
        task: Task[Any, Any],
        node_id: str,
        map_index: int | None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> TaskRun:
        tr = TaskRun(
            f"{self.id}.{len(self._task_runs)}", task, node_id, map_index, args, kwargs or {}
        )
        self._task_runs.append(tr)
        self._by_id[tr.id] = tr
        return tr

    def _add_task_run(self, tr: TaskRun, deps: list[tuple[TaskRun | MapNode, bool]]) -> None:
        """Link a new task run to its upstreams and start it if it can (holds the lock)."""
        self._settle(self._link(tr, deps))

    def _link(
        self, tr: TaskRun, deps: list[tuple[TaskRun | MapNode, bool]]
    ) -> list[TaskRun | MapNode]:
        """Wire ``tr`` to its upstreams; returns what ended at once, for the caller to settle."""
        now = time.time()
        tr.history.append(StateEntry(State.PENDING, now))
        self._open += 1
        for dep, allowed in deps:
            tr.upstream.append(dep)
            if allowed:
                tr.allowed.add(id(dep))
            # Registered even when dep is done: retry() and allow_failure walk these links.
            dep.dependents.append(tr)
            if not dep.done:
                tr.waiting += 1
        upstream_runs = tuple(dep.id for dep, _ in deps if isinstance(dep, TaskRun))
        self._emit(
            ev.TaskRunCreated(
                self.id, tr.id, tr.node_id, tr.task.name, tr.map_index, upstream_runs, now
            )
        )
        if self._cancelled:
            self._set_final(tr, State.CANCELLED, self.message or "cancelled")
            return [tr]
        return self._on_ready(tr) if tr.waiting == 0 else []

    def _check_return(self) -> None:
        found: list[Any] = []
        find_futures(self._return, found)
        for item in found:
            self._check_owned(item.future if isinstance(item, allow_failure) else item)

    # --- scheduling -------------------------------------------------------------------------

    def _on_ready(self, tr: TaskRun) -> list[TaskRun | MapNode]:
        """Every upstream of ``tr`` is final: start it, or end it if it cannot run."""
        if tr.done:
            return []
        if self._cancelled:
            self._set_final(tr, State.CANCELLED, self.message or "cancelled")
            return [tr]
        blocked = [up for up in tr.upstream if up.bad and id(up) not in tr.allowed]
        if blocked:
            culprits: list[TaskRun] = []
            for up in blocked:
                culprits += [c for c in up.children if c.bad] if isinstance(up, MapNode) else [up]
            names = ", ".join(c.name for c in culprits[:3])
            more = f" and {len(culprits) - 3} more" if len(culprits) > 3 else ""
            self._set_final(
                tr, State.UPSTREAM_FAILED, f"upstream {names}{more} did not succeed"
            )
            return [tr]
        if self._limiter.acquire(tr.task.tags, tr.id, lambda: self._granted(tr)):
            tr.holds_slot = bool(tr.task.tags)
            self._launch(tr)
        return []

    def _granted(self, tr: TaskRun) -> None:
        with self._lock:
            if tr.done:
                self._limiter.release(tr.task.tags, tr.id)
                return
            tr.holds_slot = True
            self._launch(tr)

    def _launch(self, tr: TaskRun) -> None:
        tr.attempts += 1
        task = tr.task
        if tr.upstream:  # arguments may hold futures: swap them for executor-side references
            args = replace_futures(tr.args, self._argument_value)
            kwargs = replace_futures(tr.kwargs, self._argument_value)
        else:
            args, kwargs = tr.args, tr.kwargs
        call = TaskCall(task.fn, tr.name, self.id, tr.id, tr.attempts, task.timeout, task.log_prints)
        args, kwargs = self._results.prepare(tr, call, args, kwargs)
        attempt = tr.attempts
        tr.handle = self.executor.submit(
            call,
            args,
            kwargs,
            lambda outcome: self._on_done(tr, attempt, outcome),
            task.resources or None,
        )
        self._changed.notify_all()

    def _argument_value(self, item: Any) -> Any:
        """What a launched call receives in place of a future (executor-side reference)."""
        allowed = isinstance(item, allow_failure)
        future = item.future if allowed else item
        if isinstance(future, MappedFuture):
            return [self._child_value(child, allowed) for child in future._node.children]
        return self._child_value(future._task_run, allowed)

    def _child_value(self, tr: TaskRun, allowed: bool) -> Any:
        if tr.state.is_success:
            return self.executor.value_ref(tr.handle)
        if allowed:
            return tr.error or UpstreamFailedError(f"{tr.name} ended {tr.state}: {tr.message}")
        raise AssertionError(f"{tr.name} is {tr.state}, yet a dependent was launched")

    def _on_done(self, tr: TaskRun, attempt: int, outcome: Outcome) -> None:
        with self._lock:
            if tr.done or attempt != tr.attempts:
                return  # cancelled meanwhile, or a superseded attempt
            if outcome.started and tr.started is None:
                tr.started = outcome.started
            if outcome.ok:
                state, note = self._results.finished(tr)
                self._set_final(tr, state, note, when=outcome.ended or None)
                self._settle([tr])
                return
            if self._results.load_failed(tr, outcome):
                tr.attempts -= 1  # reading a stored result is not an attempt of the task
                self._launch(tr)
                return
            error = outcome.error
            message = f"{type(error).__name__}: {error}" if error is not None else "failed"
            if tr.attempts <= tr.task.retries and not self._cancelled:
                delay = tr.task.delay_before(tr.attempts + 1)
                self._release_slot(tr)
                self._set_state(
                    tr,
                    State.RETRYING,
                    f"{message} (attempt {tr.attempts} of {tr.task.retries + 1}; "
                    f"retrying in {delay:g}s)",
                    traceback=outcome.traceback,
                )
                timer = threading.Timer(delay, self._relaunch, args=(tr, attempt))
                timer.daemon = True
                timer.start()
                return
            tr.error = error
            self._set_final(tr, State.FAILED, message, traceback=outcome.traceback)
            self._settle([tr])

    def _relaunch(self, tr: TaskRun, attempt: int) -> None:
        with self._lock:
            if tr.done or tr.attempts != attempt:
                return
            if self._limiter.acquire(tr.task.tags, tr.id, lambda: self._granted(tr)):
                tr.holds_slot = bool(tr.task.tags)
                self._launch(tr)

    def _expand(self, node: MapNode) -> list[TaskRun | MapNode]:
        """The width of ``node`` is known: create its children (or fail it)."""
        result = expand_map(self, node)
        if isinstance(result, tuple):
            state, message = result
            return self._fail_map(node, state, message)
        node.expanded = True
        self._open -= 1
        finished: list[TaskRun | MapNode] = []
        for index, (args, kwargs) in enumerate(result):
            child = self._new_task_run(node.task, node.id, index, args, kwargs)
            child.parent = node
            node.children.append(child)
        for child in node.children:
            deps = self._dependencies((child.args, child.kwargs), None)
            seen = {id(dep) for dep, _ in deps}
            deps += [(dep, False) for dep in node.wait_for if id(dep) not in seen]
            finished += self._link(child, deps)
        for downstream in node.expand_dependents:
            downstream.waiting_to_expand -= 1
            if downstream.waiting_to_expand == 0:
                finished += self._expand(downstream)
        if not node.children:
            finished.append(node)
        return finished

    def _fail_map(self, node: MapNode, state: State, message: str) -> list[TaskRun | MapNode]:
        """A map that cannot expand gets one placeholder task run carrying why."""
        placeholder = self._new_task_run(node.task, node.id, None)
        placeholder.parent = node
        placeholder.history.append(StateEntry(State.PENDING, time.time()))
        node.placeholder = placeholder
        node.children = [placeholder]
        node.expanded = True
        self._emit(
            ev.TaskRunCreated(self.id, placeholder.id, node.id, node.task.name, None, (), time.time())
        )
        self._set_final(placeholder, state, message)
        finished: list[TaskRun | MapNode] = [placeholder]
        for downstream in node.expand_dependents:
            downstream.waiting_to_expand -= 1
            if downstream.waiting_to_expand == 0:
                finished += self._expand(downstream)
        return finished

    def _settle(self, finished: list[TaskRun | MapNode]) -> None:
        """Propagate completions without recursion (a long chain of UpstreamFailed is fine)."""
        stack = list(finished)
        while stack:
            item = stack.pop()
            for dependent in item.dependents:
                dependent.waiting -= 1
                if dependent.waiting == 0:
                    stack += self._on_ready(dependent)
            if isinstance(item, TaskRun):
                # Maps over this run's result learn their width now.
                for node in item.expand_dependents:
                    node.waiting_to_expand -= 1
                    if node.waiting_to_expand == 0 and not node.expanded:
                        stack += self._expand(node)
            if isinstance(item, TaskRun) and item.parent is not None:
                parent = item.parent
                parent.children_done += 1
                if parent.done:
                    stack.append(parent)
        self._changed.notify_all()

    # --- states -------------------------------------------------------------------------------

    def _set_state(
        self, tr: TaskRun, state: State, message: str = "", when: float | None = None,
        traceback: str = "",
    ) -> None:
        now = when or time.time()
        tr.state = state
        tr.message = message
        if traceback:
            tr.traceback = traceback
        tr.history.append(StateEntry(state, now, message))
        self._emit(ev.StateChanged(self.id, tr.id, state, now, message, tr.attempts, traceback))

    def _set_final(
        self, tr: TaskRun, state: State, message: str = "", when: float | None = None,
        traceback: str = "",
    ) -> None:
        self._set_state(tr, state, message, when, traceback)
        tr.ended = tr.history[-1].time
        self._open -= 1
        self._release_slot(tr)

    def _release_slot(self, tr: TaskRun) -> None:
        if tr.holds_slot:
            tr.holds_slot = False
            self._limiter.release(tr.task.tags, tr.id)

    def _set_run_state(self, state: State) -> None:
        self.state = state
        self._emit(ev.RunStateChanged(self.id, state, time.time(), self.message))

    def _emit(self, event: ev.Event) -> None:
        self._bus.emit(event)

    # --- sink for TaskCall (same process) ---------------------------------------------------

    def task_started(self, run_id: str, task_run_id: str, when: float, attempt: int) -> None:
        with self._lock:
            tr = self._by_id.get(task_run_id)
            if tr is None or tr.done or attempt != tr.attempts:
                return
            if tr.started is None:
                tr.started = when
            self._set_state(tr, State.RUNNING, "", when)

    def task_log(self, run_id: str, task_run_id: str, level: int, when: float, text: str) -> None:
        count = self._log_counts.get(task_run_id, 0) + 1
        self._log_counts[task_run_id] = count
        if count > MAX_LOG_LINES:
            return
        tr = self._by_id.get(task_run_id)
        name = tr.name if tr is not None else ""
        self._logs.append(LogLine(task_run_id, name, level, when, text))
        self._emit(ev.LogRecord(self.id, task_run_id, level, when, text))

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

    def _tolerated(self, tr: TaskRun) -> bool:
        """A failure that a downstream task accepted through allow_failure and survived."""
        consumers = tr.dependents + (tr.parent.dependents if tr.parent else [])
        for consumer in consumers:
            if consumer.state.is_success and (
                id(tr) in consumer.allowed or (tr.parent is not None and id(tr.parent) in consumer.allowed)
            ):
                return True
        return False

    def _cancel_unstarted(self, reason: str) -> None:
        with self._lock:
            finished: list[TaskRun | MapNode] = []
            for node in self._maps:
                if not node.expanded:
                    finished += self._fail_map(node, State.CANCELLED, reason)
            for tr in self._task_runs:
                if not tr.done and tr.handle is None:
                    self._set_final(tr, State.CANCELLED, reason)
                    finished.append(tr)
            self._settle(finished)

    # --- retry ----------------------------------------------------------------------------------

    def _reopen(self) -> None:
        self._finished.clear()
        self._cancelled = False
        self.message = ""
        self.ended = None
        self._bus.reopen()
        register_local_run(self.id, self)
        self._set_run_state(State.RUNNING)

    def _rerun_bad(self) -> None:
        """Reset bad task runs and everything downstream of them, then start what can start."""
        to_reset: dict[int, TaskRun] = {}
        stack = [tr for tr in self._task_runs if tr.bad]
        while stack:
            tr = stack.pop()
            if id(tr) in to_reset:
                continue
            to_reset[id(tr)] = tr
            stack += tr.dependents
            if tr.parent is not None and tr.parent.done:
                stack += tr.parent.dependents
        maps_to_expand = []
        for node in self._maps:
            if node.placeholder is not None:
                to_reset.pop(id(node.placeholder), None)
                node.placeholder.parent = None
                node.placeholder = None
                node.children = []
                node.children_done = 0
                node.expanded = False
                self._open += 1
                node.waiting_to_expand = 0
                maps_to_expand.append(node)
        for tr in to_reset.values():
            if tr.parent is not None:
                tr.parent.children_done -= 1
            tr.state = State.PENDING
            tr.attempts = 0
            tr.error = None
            tr.handle = None
            tr.message = ""
            tr.ended = None
            tr.started = None
            self._open += 1
            tr.history.append(StateEntry(State.PENDING, time.time(), "retrying the run"))
            self._emit(ev.StateChanged(self.id, tr.id, State.PENDING, time.time(), "retrying the run"))
        for tr in to_reset.values():
            tr.waiting = sum(1 for up in tr.upstream if not up.done)
        finished: list[TaskRun | MapNode] = []
        for node in maps_to_expand:
            for pending in MapSources(node.sources, node.keywords).unresolved():
                node.waiting_to_expand += 1
                if node not in pending.expand_dependents:
                    pending.expand_dependents.append(node)
        for node in maps_to_expand:
            if node.waiting_to_expand == 0 and not node.expanded:
                finished += self._expand(node)
        for tr in to_reset.values():
            if tr.waiting == 0:
                finished += self._on_ready(tr)
        self._settle(finished)


def executor_limiter(executor: Executor) -> Limiter:
    factory = getattr(executor, "limiter", None)
    limiter = factory() if callable(factory) else None
    return limiter if limiter is not None else process_limiter()


__all__ = ["BAD_STATES", "FlowRun", "LogLine", "active_run"]
