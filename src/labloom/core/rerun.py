"""Retrying a finished run in its own process (``FlowRun.retry``): bad task runs and everything
downstream of them go back to Pending, maps that could not expand (or, growing, ended early)
expand again, then what can start starts; each runs its task's function as defined now (a
notebook's fixed cell). The engine holds its lock."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as ev
from .map_nodes import MapNode, waiting_for_width
from .mapping import MapSources
from .states import State
from .task_runs import TaskRun
from .tasks import as_defined_now

if TYPE_CHECKING:
    from .task_graph import TaskGraph


def reset_bad(graph: TaskGraph, forget_values: Callable[[str], None],
              lost: Callable[[Any], bool] = lambda handle: False,
              within: MapNode | None = None,
              noted: Callable[[TaskRun], None] = lambda tr: None) -> list[TaskRun]:
    """Bad task runs and everything downstream back to Pending, each one's logged values
    forgotten (``forget_values``, before any can start again), then what can start starts.
    A completed task run whose value the executor ``lost`` (a Dask cluster restarted since:
    its downstream failed as "cancelled" when reused) counts as bad, and is ``noted`` (for
    ``run.notes``). Only the map ``within`` when given (a flow body's rerun calls it again:
    what is downstream, it calls later). Returns the task runs reset."""
    if within is None:
        recount(graph)
    to_reset: dict[int, TaskRun] = {}
    # A placeholder an earlier retry replaced is history (``retired``): reset, it launched
    # as a call of the map's task with no inputs.
    stack = [tr for tr in (graph.task_runs if within is None else within.children)
             if id(tr) not in graph.retired and (tr.bad or (
                 tr.state is State.COMPLETED and tr.handle is not None and lost(tr.handle)))]
    for tr in stack:
        if not tr.bad:  # (before they are reset: ``noted`` reads their handles)
            noted(tr)
    while stack:
        tr = stack.pop()
        if id(tr) in to_reset:
            continue
        to_reset[id(tr)] = tr
        if within is not None:
            continue
        stack += tr.dependents
        if tr.parent is not None and tr.parent.done:
            stack += tr.parent.dependents
    maps_to_expand: list[MapNode] = []
    grown: list[MapNode] = []
    for node in graph.maps if within is None else [within]:
        placeholder = node.placeholder
        if placeholder is None or (within is None and id(placeholder) in graph.retired):
            continue  # (retired: a map the rerun flow body no longer made, left as history)
        to_reset.pop(id(placeholder), None)
        graph.retired.add(id(placeholder))  # else the run would still count it as failed
        placeholder.parent = None
        node.placeholder = None
        node.expanded = False
        graph.open += 1
        if node.growth is not None:
            # A growing map keeps the children it made and grows on from where it ended.
            node.children.remove(placeholder)
            node.children_done -= 1
            grown.append(node)
            continue
        node.children, node.batches, node.times = [], [], array("d")
        node.children_done = 0
        node.waiting_to_expand = 0
        maps_to_expand.append(node)
    for node in [*maps_to_expand, *grown]:
        node.task = as_defined_now(node.task)  # its children to come run the fixed code
    for tr in to_reset.values():
        tr.task = as_defined_now(tr.task)
        _back_to_pending(graph, tr, forget_values)
    for tr in to_reset.values():
        tr.waiting = sum(1 for up in tr.upstream if not up.done)
    finished: list[TaskRun | MapNode] = []
    for node in maps_to_expand:
        for pending in MapSources(node.sources, node.keywords).unresolved():
            node.waiting_to_expand += 1
            waiting = waiting_for_width(pending)
            if node not in waiting:
                waiting.append(node)
    for node in maps_to_expand:
        if node.waiting_to_expand == 0 and not node.expanded:
            finished += graph.expand(node)
    for node in grown:
        finished += graph.grow(node)
    for tr in to_reset.values():
        if tr.waiting == 0:
            finished += graph.resolve(tr)
    graph.settle(finished)
    return list(to_reset.values())


def recount(graph: TaskGraph) -> None:
    """The graph's counts made again from the states, for a retry of a finished run or a
    cancel: a Ctrl-C landing between a task run's final state and its count
    (``TaskGraph.set_final``, whose run it cancelled) left one open for good, and the retry
    waited for ever for it to close (tests/test_interrupt_retry.py), as did the run's own
    thread after a ``run.wait()`` the Ctrl-C cancelled (tests/test_interrupt_slots.py)."""
    graph.open = sum(not tr.done for tr in graph.task_runs) + \
        sum(not node.expanded for node in graph.maps)
    for node in graph.maps:
        node.children_done = sum(child.done for child in node.children)


def reset_call(graph: TaskGraph, tr: TaskRun, forget_values: Callable[[str], None]) -> None:
    """A task run the flow body calls again at its retry (``flow_retries.py``) back to
    Pending, alone: its downstream are the body's later calls, each reset when made."""
    _back_to_pending(graph, tr, forget_values)
    tr.waiting = sum(1 for up in tr.upstream if not up.done)
    if tr.waiting == 0:
        graph.settle(graph.resolve(tr))


def _back_to_pending(graph: TaskGraph, tr: TaskRun, forget_values: Callable[[str], None]) -> None:
    if tr.parent is not None:
        tr.parent.children_done -= 1
    tr.keep_history()  # its entries are rebuilt from the fields reset here
    tr.earlier_attempts = tr.all_attempts  # ``attempts`` counts this retry's, as retries do
    tr.state, tr.attempts, tr.error, tr.handle = State.PENDING, 0, None, None
    tr.message, tr.ended, tr.started = "", None, None
    graph.open += 1
    tr.record(State.PENDING, time.time(), "retrying the run")
    forget_values(tr.id)
    graph.owner.emit(ev.StateChanged(
        graph.run_id, tr.id, State.PENDING, time.time(), "retrying the run", tr.all_attempts
    ))
