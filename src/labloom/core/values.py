"""Values of a run: one task run's, several at once (one round trip on Dask), and the flow's
return value with its futures replaced by their values."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .context import active_engine
from .errors import (
    FlowFailed,
    FlowTimeoutError,
    LabloomError,
    ResultLoadError,
    RunCancelledError,
    UpstreamFailedError,
)
from .futures import Flattened, MappedFuture, allow_failure, find_futures, replace_futures
from .launching import LAUNCHING
from .map_nodes import MapNode
from .states import State
from .task_runs import TaskRun

if TYPE_CHECKING:
    from .engine import RunEngine


def tolerated(tr: TaskRun, returned: frozenset[int] = frozenset(),
              _seen: set[int] | None = None) -> bool:
    """A failure that a downstream task accepted through allow_failure and survived, also
    through the UpstreamFailed task runs it caused (``step3.map(allow_failure(step2.map(
    step1.map(xs))))`` handles a failed step1 child: its step2 child arrives as an error).
    ``returned``: the task runs the flow returned under allow_failure (their errors are items
    of its value), which handle the failures upstream of them the same way."""
    consumers = [*tr.dependents, *(tr.parent.dependents if tr.parent else ())]
    if any(
        consumer.state.is_success
        and (consumer.allows(tr) or (tr.parent is not None and consumer.allows(tr.parent)))
        for consumer in consumers
    ):
        return True
    seen = _seen if _seen is not None else set()
    seen.add(id(tr))
    return any(
        isinstance(consumer, TaskRun) and consumer.state is State.UPSTREAM_FAILED
        and id(consumer) not in seen
        and (id(consumer) in returned or tolerated(consumer, returned, seen))
        for consumer in consumers
    )


def _runs_of(item: Any) -> list[TaskRun]:
    future = item.future if isinstance(item, (allow_failure, Flattened)) else item
    if isinstance(future, MappedFuture):
        return future.node.children
    return [future.task_run]


def _check_kept(engine: RunEngine, tr: TaskRun) -> None:
    if engine.released:
        raise LabloomError(
            f"the value of task run {tr.name} is gone: its flow run {engine.id} was let go "
            "(nothing held its FlowRun any more), so its results were released; keep the "
            "FlowRun (run = flow.run(...)) for as long as you read its futures"
        )


def _handled_by_the_body(engine: RunEngine, tr: TaskRun) -> None:
    """The flow body is about to receive ``tr``'s error: if it goes on to return normally, it
    handled the failure (and the upstream failures behind it), as a task under allow_failure
    does, and the run can complete."""
    if active_engine() is not engine:
        return  # read after the run, or by another run: nobody handles anything
    stack: list[TaskRun | MapNode] = [tr]
    while stack:
        item = stack.pop()
        if id(item) in engine.graph.handled:
            continue
        engine.graph.handled.add(id(item))
        if isinstance(item, MapNode):
            upstream: list[Any] = [*item.children, *item.wait_for]
            upstream += [s.value for s in (*item.sources, *item.keywords.values())
                         if s.kind in ("future", "mapped")]
        else:  # a map that could not expand failed its placeholder: why is upstream of the map
            upstream = [*item.upstream, *([item.parent] if item.parent is not None else [])]
        stack += [up for up in upstream if up.bad]


def _fetched(engine: RunEngine, runs: list[TaskRun], fetch: Callable[[Any], Any],
             handles: Any) -> Any:
    """``fetch(handles)``: the executor's values of ``runs``. One that this process cannot load
    (made on a Dask worker of what only the workers import) names its task run and the fix."""
    try:
        return fetch(handles)
    except ResultLoadError as exc:
        if not exc.handles:  # named already
            raise
        names = [tr.name for tr in runs if any(tr.handle is h for h in exc.handles)] or ["?"]
        which = (f"task run {names[0]}" if len(names) == 1 else
                 f"task runs {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
        raise ResultLoadError(
            f"[labloom] {which} of flow run {engine.id} completed, but a value made on a Dask "
            f"worker cannot be loaded in this process ({exc}): the worker can import what the "
            "value is made of, and this process cannot. Install that module here too (or put "
            "its folder on sys.path), or have the task return plain data (numbers, str, lists, "
            f"dicts, arrays). The run stays recorded as it ended: `labloom show {engine.id}`"
        ) from exc.__cause__


def value_of(engine: RunEngine, tr: TaskRun, timeout: float | None) -> Any:
    engine.wait_until(lambda: tr.done, timeout)
    if tr.state.is_success:
        _check_kept(engine, tr)
        return _fetched(engine, [tr], engine.executor.result, tr.handle)
    _handled_by_the_body(engine, tr)
    if tr.state is State.FAILED and tr.error is not None:
        raise tr.error
    if tr.state is State.CANCELLED:
        raise RunCancelledError(f"task run {tr.name} was cancelled: {tr.message}")
    raise UpstreamFailedError(f"task run {tr.name} did not run: {tr.message}")


def values_of(engine: RunEngine, runs: list[TaskRun], timeout: float | None) -> list[Any]:
    engine.wait_until(lambda: all(tr.done for tr in runs), timeout)
    bad = [tr for tr in runs if not tr.state.is_success]
    for tr in bad[1:]:
        _handled_by_the_body(engine, tr)  # the body gets the first error, for all of them
    for tr in bad[:1]:
        value_of(engine, tr, timeout)  # raises what went wrong
    if runs:
        _check_kept(engine, runs[0])
    values: list[Any] = _fetched(engine, runs, engine.executor.results,
                                 [tr.handle for tr in runs])
    return values


def flow_value(engine: RunEngine, returned: Any) -> Any:
    """The finished run's value. Raises the flow body's own exception if it raised,
    ``RunCancelledError`` if the run was cancelled, ``FlowFailed`` if the value needs a task
    run that did not succeed."""
    if engine.clock.stopped_it:  # the body's own wait was cancelled by it: not its error
        raise FlowTimeoutError(f"[labloom] run {engine.id}: {engine.clock.expired}")
    if engine.body_error is not None:
        raise engine.body_error
    if engine.state is State.CANCELLED:
        raise RunCancelledError(f"flow run {engine.id} of {engine.flow.name!r} was cancelled")
    succeeded: dict[int, TaskRun] = {}

    def collect(item: Any) -> None:
        succeeded.update((id(tr), tr) for tr in _runs_of(item) if tr.state.is_success)

    replace_futures(returned, collect)
    fetched = _fetched(engine, list(succeeded.values()), engine.executor.results,
                       [tr.handle for tr in succeeded.values()])
    values_by_run = dict(zip(succeeded, fetched, strict=True))
    needed: list[TaskRun] = []

    def value_of(item: Any) -> Any:
        allowed = isinstance(item, allow_failure)
        future = item.future if allowed else item
        values = []
        for tr in _runs_of(item):
            if tr.state.is_success:
                values.append(values_by_run[id(tr)])
            elif allowed:
                values.append(tr.error or UpstreamFailedError(tr.message))
            else:
                needed.append(tr)
                values.append(None)
        if isinstance(item, Flattened):  # the flow returned flatten(a map's result)
            return [x for value in values if value is not None for x in value]
        return values if isinstance(future, MappedFuture) else values[0]

    value = replace_futures(returned, value_of)
    if needed or engine.state is State.FAILED:
        failed = [tr for tr in failures(engine, returned) if tr.state is State.FAILED]
        summary = "; ".join(f"{tr.name}: {tr.message}" for tr in failed[:5])
        why = ("its return value needs " + ", ".join(f"{tr.name} ({tr.state})" for tr in needed[:5])
               if needed else
               "task runs failed that nothing handled (catch the error of .result() in the "
               "flow body, or pass the future on under allow_failure, to a task or in the "
               "flow's return value, to go on without them)")
        raise FlowFailed(
            f"flow {engine.flow.name!r} (run {engine.id}) failed: {why}"
            + (f". Failed: {summary}" if summary else "")
            + f". Logs: run.logs(task_name) or `labloom logs {engine.id}`",
            run=engine.handle,
            failed=[(tr.name, tr.message) for tr in failed],
        ) from (failed[0].error if failed else None)
    return value


def failures(engine: RunEngine, returned: Any) -> list[TaskRun]:
    """The task runs whose failure fails the run: every bad one, except those a task took
    under allow_failure and those whose error the flow body caught; but always those the
    return value needs. So a flow's call and its run agree: it returns when the run
    completed and raises ``FlowFailed`` when it failed. A failure the flow returns under
    allow_failure is handled: its error is in the value (as ``asyncio.gather``'s
    ``return_exceptions``); before, the run failed, while its error message said to do so."""
    graph = engine.graph
    needed: set[int] = set()
    allowed: set[int] = set()

    def need(item: Any) -> None:
        bad = {id(tr) for tr in _runs_of(item) if tr.bad}
        (allowed if isinstance(item, allow_failure) else needed).update(bad)

    replace_futures(returned, need)
    returned_allowed = frozenset(allowed - needed)
    # A placeholder a retry replaced (``graph.retired``) is history, not a failure.
    return [
        tr for tr in graph.task_runs
        if tr.bad and id(tr) not in graph.retired
        and (id(tr) in needed or (id(tr) not in graph.handled and id(tr) not in returned_allowed
                                  and not tolerated(tr, returned_allowed)))
    ]


def resolved(value: Any) -> Any:
    """``value`` with its futures replaced by their values, waiting for them: what a flow
    called inside another's body (a subflow) receives for the caller's futures. Under
    ``allow_failure`` a failed value arrives as its exception, as a task would receive it."""
    found: list[Any] = []
    find_futures(value, found)
    if not found:
        return value

    def resolve(item: Any) -> Any:
        if not isinstance(item, allow_failure):
            return item.result()
        item.future.wait()
        mapped = isinstance(item.future, MappedFuture)
        values = []
        for future in item.future.futures if mapped else [item.future]:
            try:
                values.append(future.result())
            except Exception as exc:
                values.append(exc)
        return values if mapped else values[0]

    return replace_futures(value, resolve)


def release(engine: RunEngine) -> None:
    """The user let go of the run: drop the executor's handles (Dask futures pin results),
    task inputs and the return value now, not when the cyclic collector reaches the engine's
    cycles. No lock: nothing reaches the run, and a finalizer must never wait."""
    engine.released = True
    engine.returned = None
    for tr in engine.graph.task_runs:
        if tr.handle is not LAUNCHING:
            tr.handle = None
        tr.drop_inputs()
