"""Scheduling inside one flow run: the graph as the flow body builds it, when each task run
may start, what happens when it ends, and the state changes it emits.

A mixin of ``FlowRun`` (``_engine.py``), which sets every attribute declared below. All of it
runs holding ``self._lock``, except the sink methods at the end, which take it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..executors.base import Executor, Outcome
from ..store.limiter import Limiter
from . import events as ev
from .attempt import TaskCall
from .errors import UpstreamFailedError
from .futures import MappedFuture, TaskFuture, allow_failure, find_futures, replace_futures
from .graph import MapNode, StateEntry, TaskRun
from .mapping import MapSources, expand_map, map_source
from .states import State

if TYPE_CHECKING:
    from .flow_run import FlowRun
    from .results import ResultPlanner
    from .tasks import Task

# Log lines kept in memory per task run; the store keeps its own (capped) copy.
MAX_LOG_LINES = 10_000


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


class Scheduling:
    id: str
    flow_name: str
    executor: Executor
    message: str
    _lock: threading.RLock
    _changed: threading.Condition
    _task_runs: list[TaskRun]
    _by_id: dict[str, TaskRun]
    _maps: list[MapNode]
    _node_ids: itertools.count[int]
    _bus: ev.EventBus
    _logs: list[LogLine]
    _log_counts: dict[str | None, int]
    _open: int
    _cancelled: bool
    _return: Any
    _limiter: Limiter
    _results: ResultPlanner

    def _as_run(self) -> FlowRun:
        return cast("FlowRun", self)  # Scheduling is only ever a FlowRun's base

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
        return TaskFuture(self._as_run(), tr)

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
            [map_source(self._as_run(), task, f"argument {i + 1}", value) for i, value in enumerate(iterables)],
            {key: map_source(self._as_run(), task, f"{key}=", value) for key, value in kwargs.items()},
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
        return MappedFuture(self._as_run(), node)

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
        result = expand_map(self._as_run(), node)
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
        self._report_dropped_lines(tr.id)

    def _report_dropped_lines(self, task_run_id: str) -> None:
        # Lines past the cap are counted, not kept; the store says how many it never saw.
        dropped = self._log_counts.get(task_run_id, 0) - MAX_LOG_LINES
        if dropped > 0:
            self._emit(ev.LogLinesDropped(self.id, task_run_id, dropped, time.time()))

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
        tr = self._by_id.get(task_run_id)
        if count > MAX_LOG_LINES:
            if tr is None or tr.done:  # a late line: the count at the end is already out
                self._report_dropped_lines(task_run_id)
            return
        name = tr.name if tr is not None else ""
        self._logs.append(LogLine(task_run_id, name, level, when, text))
        self._emit(ev.LogRecord(self.id, task_run_id, level, when, text))
