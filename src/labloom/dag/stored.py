"""A run's graph rebuilt from the store, for views of runs owned by other processes.

The store keeps the run's graph nodes and its task runs (node, name, map index, state, times);
this module replays those records as the events ``RunGraph`` folds, so a run read back from the
store is drawn exactly like a live one. Runs recorded before nodes were stored get their nodes
from the task runs' upstream lists (a map whose width never became known is then missing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..core import events as ev
from ..core.states import State
from .model import RunGraph


def stored_graph(run: Any, tasks: Sequence[Any], nodes: Sequence[Any] = ()) -> RunGraph:
    """``run``: a store ``RunRecord``; ``tasks``: its ``TaskRunRecord`` list; ``nodes``: its
    ``NodeRecord`` list (``RunStore.nodes``)."""
    graph = RunGraph()
    graph.apply(_events(run, tasks, nodes))
    return graph


def _events(run: Any, tasks: Sequence[Any], nodes: Sequence[Any]) -> Iterator[ev.Event]:
    start = run.started or run.created or 0.0
    yield ev.RunCreated(
        run.id, run.flow_name, dict(run.parameters), run.executor or "", run.origin or "",
        run.host or "", start, run.source_hash or "", dict(run.metadata),
    )
    node_of = {tr.id: _node_id(tr) for tr in tasks}
    # A node's upstream nodes: those of every task run of it (a map's children share a node).
    upstream_of: dict[str, dict[str, None]] = {}
    for tr in tasks:
        ups = upstream_of.setdefault(node_of[tr.id], {})
        for u in tr.upstream:
            if u in node_of and node_of[u] != node_of[tr.id]:
                ups[node_of[u]] = None
    announced: set[str] = set()
    for node in nodes:
        announced.add(node.id)
        yield ev.NodeCreated(run.id, node.id, node.name, node.kind, tuple(node.upstream), start)
    for tr in tasks:
        node = node_of[tr.id]
        if node not in announced:
            announced.add(node)
            kind = "task" if tr.map_index is None else "map"
            upstream = tuple(upstream_of[node])
            yield ev.NodeCreated(run.id, node, tr.task_name, kind, upstream, start)
        yield ev.TaskRunCreated(
            run.id, tr.id, node, tr.task_name, tr.map_index, tuple(tr.upstream), start
        )
        if tr.started is not None:
            yield ev.StateChanged(run.id, tr.id, State.RUNNING, tr.started, "", tr.attempts)
        yield ev.StateChanged(
            run.id, tr.id, State(tr.state), tr.ended or tr.started or start, tr.message,
            tr.attempts, tr.traceback,
        )
    state = State(run.state)
    if state.is_final:
        yield ev.RunFinished(run.id, state, run.ended or start, run.message)
    else:
        yield ev.RunStateChanged(run.id, state, start, run.message)


def _node_id(tr: Any) -> str:
    # Stores written before node ids were recorded: one node per task name.
    return str(getattr(tr, "node_id", None) or f"task:{tr.task_name}")
