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
from .left_maps import leave
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
    _take(stack, to_reset, downstream=within is None)
    resplit: list[MapNode] = []
    # Maps splitting a value reset, until no new one is found (a map over a re-split map's
    # children is found on the next pass): every child, as its item comes from the new value.
    while within is None and (found := _splits_of(graph, to_reset, resplit)):
        resplit += found
        _take([child for node in found for child in node.children], to_reset, downstream=True)
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
    for node in resplit:  # its children wait for it to split the new value (``split_again``)
        node.expanded = False
        graph.open += 1
        node.task = as_defined_now(node.task)
        for child in node.children:
            child.waiting += 1
    finished: list[TaskRun | MapNode] = []
    for node in [*maps_to_expand, *resplit]:
        for pending in MapSources(node.sources, node.keywords).unresolved():
            node.waiting_to_expand += 1
            waiting = waiting_for_width(pending)
            if node not in waiting:
                waiting.append(node)
    for node in [*maps_to_expand, *resplit]:
        if node.waiting_to_expand == 0 and not node.expanded:
            finished += graph.expand(node)
    for node in grown:
        finished += graph.grow(node)
    for tr in to_reset.values():
        if tr.waiting == 0:
            finished += graph.resolve(tr)
    graph.settle(finished)
    return list(to_reset.values())


def _take(stack: list[TaskRun], to_reset: dict[int, TaskRun], downstream: bool) -> None:
    """The task runs of ``stack`` into ``to_reset`` (emptying it) and, ``downstream``, all
    that depends on them: their dependents, and those of a finished map they are children of."""
    while stack:
        tr = stack.pop()
        if id(tr) in to_reset:
            continue
        to_reset[id(tr)] = tr
        if downstream:
            stack += tr.dependents
            if tr.parent is not None and tr.parent.done:
                stack += tr.parent.dependents


def _splits_of(graph: TaskGraph, to_reset: dict[int, TaskRun],
               found: list[MapNode]) -> list[MapNode]:
    """Maps that split the result of a task run a retry runs again: their items were made
    from its earlier value (on Dask, futures of the lost value: sent again, each child failed
    at once with the lost value's error), so they split the new one; and maps over the
    children of such a map (``b.map(a_children)``): they pair with its new children."""
    return [node for node in graph.maps if node.expanded and node.placeholder is None
            and node.growth is None and node not in found and any(
                (source.kind == "future" and id(source.value) in to_reset)
                or (source.kind == "mapped" and source.value in found)
                for source in MapSources(node.sources, node.keywords).all())]


def split_again(graph: TaskGraph, node: MapNode, split: Any) -> list[Any]:
    """``node``'s children (reset by ``reset_bad``) take their inputs from ``split``
    (``expand_map``'s of the new value), in order; past a shorter one's end a child ends
    Cancelled and is history (as a map run again over a shorter list leaves them:
    ``map_replay``); a longer one's last are new children. A split that failed (the task run
    failed again) ends each child with its state and why. Returns what finished."""
    node.expanded = True
    graph.close()
    children = node.children
    if isinstance(split, tuple):
        for child in children:
            child.waiting -= 1
            graph.set_final(child, *split)
        return list(children)
    for child, (args, kwargs) in zip(children, split, strict=False):
        child.args, child.kwargs = args, kwargs
        child.waiting -= 1
    past = children[len(split):]
    items = f"{len(split)} item{'' if len(split) == 1 else 's'}"
    why = f"left {node.name}: its input was split again into {items} {graph.again_at}"
    for child in past:
        graph.set_final(child, State.CANCELLED, why)
        leave(graph, child, why)
    kept = len(children)
    if past:  # a new list, as map_replay's: the earlier one's events may still be in the making
        node.children = children = children[:len(split)]
    # The ended ones too: what waits on them (a map's over them) is told, else it waits on.
    finished: list[Any] = [*past, *(done for child in children if child.waiting == 0
                                    for done in graph.resolve(child))]
    if len(split) > kept:
        finished += graph.add_children(node, [(*both, ()) for both in split[kept:]])
    return finished + ([] if children else [node])  # an empty split: the map is done


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
