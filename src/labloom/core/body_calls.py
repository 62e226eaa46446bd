"""What a task called in the flow body adds to its run's graph: ``task(...)`` or
``task.submit(...)`` a task run, ``task.map(...)`` a map; each an earlier attempt's when the
flow retries its body (``flow_retries.py``), and launched at once when it can start. The
caller gets its future straight away (``RunEngine.submit`` and ``RunEngine.map``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .call_copies import arguments_as_called
from .futures import MappedFuture, TaskFuture
from .mapping import MapSources, map_source

if TYPE_CHECKING:
    from .engine import RunEngine
    from .tasks import Task


def submit(engine: RunEngine, task: Task[Any, Any], args: tuple[Any, ...],
           kwargs: dict[str, Any], wait_for: Any) -> TaskFuture[Any]:
    """One call of ``task``: a task run that waits for the futures among its arguments."""
    args, kwargs = arguments_as_called(args, kwargs)
    with engine.lock:
        tr = engine.attempts.replayed_call(task, args, kwargs, wait_for)  # flow_retries.py
        if tr is None:
            deps = engine.graph.dependencies((args, kwargs), wait_for)
            tr = engine.graph.add_task(task, args, kwargs, deps)
    engine.launcher.work()
    return TaskFuture(engine, tr)


def map_calls(engine: RunEngine, task: Task[Any, Any], iterables: tuple[Any, ...],
              kwargs: dict[str, Any], wait_for: Any) -> MappedFuture[Any]:
    """``task.map(...)``: a map node whose children are made as its iterables' widths are
    known (unequal known widths are refused here, before anything is added)."""
    if not iterables and not kwargs:
        raise TypeError(f"{task.name}.map() needs at least one iterable to map over")
    check = engine.graph.check_owned
    sources = MapSources(
        [map_source(check, task, f"argument {i + 1}", v) for i, v in enumerate(iterables)],
        {key: map_source(check, task, f"{key}=", v) for key, v in kwargs.items()},
    )
    sources.check_known_widths(task.name)
    with engine.lock:
        node = engine.attempts.replayed_map(task, sources)  # flow_retries.py
    if node is not None:
        engine.launcher.work()  # its children to run again
        return MappedFuture(engine, node)
    with engine.lock:
        waits = engine.graph.dependencies((), wait_for)
        node = engine.graph.add_map(task, sources, waits)
    engine.launcher.work()
    return MappedFuture(engine, node)
