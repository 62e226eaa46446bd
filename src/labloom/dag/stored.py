"""A run's graph rebuilt from the store, for views of runs owned by other processes.

The store keeps the run's graph nodes and its task runs (node, name, map index, state, times);
this module replays those records as the events ``ViewGraph`` folds, so a run read back from the
store is drawn exactly like a live one. Runs recorded before nodes were stored get their nodes
from the task runs' upstream lists (a map whose width never became known is then missing).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..core import events as ev
from ..core.left_maps import LEFT
from ..core.states import State
from .model import NodeInfo, TaskRunInfo, ViewGraph


def stored_graph(run: Any, tasks: Sequence[Any], nodes: Sequence[Any] = ()) -> ViewGraph:
    """``run``: a store ``RunRecord``; ``tasks``: its ``TaskRunRecord`` list; ``nodes``: its
    ``NodeRecord`` list (``RunStore.nodes``)."""
    graph = ViewGraph()
    graph.apply(_events(run, tasks, nodes))
    return graph


def _events(run: Any, tasks: Sequence[Any], nodes: Sequence[Any]) -> Iterator[ev.Event]:
    start = run.started or run.created or 0.0
    yield from _created_events(run, nodes, start)
    node_of = {tr.id: _node_id(tr) for tr in tasks}
    # A node's upstream nodes: those of every task run of it (a map's children share a node).
    upstream_of: dict[str, dict[str, None]] = {}
    for tr in tasks:
        ups = upstream_of.setdefault(node_of[tr.id], {})
        for u in tr.upstream:
            if u in node_of and node_of[u] != node_of[tr.id]:
                ups[node_of[u]] = None
    announced = {node.id for node in nodes}
    for tr in tasks:
        node = node_of[tr.id]
        if node not in announced:
            announced.add(node)
            yield _node_of_task_run(run.id, tr, tuple(upstream_of[node]), start)
        yield _created(run.id, tr, start)
        if tr.started is not None:
            yield ev.StateChanged(run.id, tr.id, State.RUNNING, tr.started, "", tr.attempts)
        yield ev.StateChanged(
            run.id, tr.id, _STATES[tr.state], tr.ended or tr.started or start, tr.message,
            tr.attempts, tr.traceback,
        )
        if getattr(tr, "left_map", None):  # history, out of its map (``TaskRunLeftMap``)
            yield ev.TaskRunLeftMap(run.id, tr.id, node, tr.ended or start, tr.left_map,
                                    tr.started, tr.ended)
    yield _run_state(run, start)


def _run_state(run: Any, start: float) -> ev.Event:
    state = State(run.state)
    if state.is_final:
        return ev.RunFinished(run.id, state, run.ended or start, run.message)
    return ev.RunStateChanged(run.id, state, start, run.message)


def _node_of_task_run(run_id: str, tr: Any, upstream: tuple[str, ...], when: float) -> ev.Event:
    kind = "task" if tr.map_index is None else "map"
    return ev.NodeCreated(run_id, _node_id(tr), tr.task_name, kind, upstream, when)


def _created(run_id: str, tr: Any, when: float) -> ev.Event:
    return ev.TaskRunCreated(
        run_id, tr.id, _node_id(tr), tr.task_name, tr.map_index, tuple(tr.upstream), when
    )


def _node_id(tr: Any) -> str:
    # Stores written before node ids were recorded: one node per task name.
    return str(getattr(tr, "node_id", None) or f"task:{tr.task_name}")


_STATES = {state.value: state for state in State}  # faster than State(text), per row


def task_run_info(run: Any, record: Any) -> TaskRunInfo:
    """A stored task run (a ``TaskRunRecord``) as a graph rebuilt from the store shows it."""
    info = stored_graph(run, [record]).task_runs[record.id]
    info.traceback = record.traceback
    return info


def child_page(node_id: str, total: int, page: int, page_size: int,
               read: Callable[[int, int], Sequence[Any]]) -> dict[str, Any]:
    """``ViewGraph.children_page`` for a node kept by counts: ``read(offset, limit)`` reads
    the node's task runs (``TaskRunRecord``) from the store, by map index."""
    pages = max(1, math.ceil(total / page_size))
    page = min(max(0, page), pages - 1)
    return {
        "node": node_id, "page": page, "pages": pages, "page_size": page_size, "total": total,
        "children": [{"id": tr.id, "index": tr.map_index, "state": tr.state}
                     for tr in read(page * page_size, page_size)],
    }


class FollowedGraph:
    """A stored run's graph kept up to date by cursor, by node, for views of a run that is
    still going.

    Built from the run's nodes and its task runs counted by node and state (``store.follow.
    node_counts``), then ``follow`` adds how the task runs that changed since moved between
    states, counted by node (``node_moves``): a poll of a wide running run costs a few rows
    per node, never a row or an object per task run. The task runs stay in the store (a map's
    children are read a page at a time, on request: ``child_page``). Also kept, for answers by
    cursor: the cursor at which each node last changed, and a digest of what has no cursor of
    its own (the nodes, edges and the run's state): a view whose digest differs needs the
    whole graph again. Not thread-safe: the owner serialises ``follow`` and reads.
    """

    def __init__(self, run: Any, counts: Iterable[tuple[str, str, int, str, int]],
                 nodes: Sequence[Any], cursor: int, nodes_cursor: int = 0) -> None:
        """``counts``: (node, task name, a map: 0/1, state, count) rows at the state cursor
        ``cursor``; ``nodes``: ``NodeRecord``s (or ``NodeInfo``s) read after them, up to
        ``nodes_cursor``."""
        self.run_key = (run.created, run.started)  # a run reopened by a retry: build again
        self.graph = ViewGraph()
        start = run.started or run.created or 0.0
        self.cursor = cursor
        self.nodes_cursor = nodes_cursor
        self.changed_at: dict[str, int] = {}
        self.graph.apply(_created_events(run, nodes, start))
        for node_id, name, is_map, state, n in counts:
            node = self._node(run, node_id, name, is_map, start)
            node.counts[_STATES[state]] += n
            node.width = (node.width or 0) + n
        self.graph.apply([_run_state(run, start)])
        for node in self.graph.nodes.values():
            node.width = node.width or 0
            self.changed_at[node.id] = cursor
        self.run_seen = (run.state, run.ended, run.message)
        self.digest = self._digest()

    def follow(self, run: Any, moves: Iterable[tuple[str, str, int, str, str | None, int]],
               cursor: int, nodes: Sequence[Any] = (), nodes_cursor: int = 0) -> None:
        """Fold in what was read after the cursors: ``nodes`` (new nodes, up to
        ``nodes_cursor``; read after ``moves``, so every move's node is among them), then
        ``moves`` (``node_moves`` up to the state cursor ``cursor``), and the run's state."""
        graph = self.graph
        start = graph.start or run.started or run.created or 0.0
        had = len(graph.nodes)
        graph.apply(ev.NodeCreated(run.id, node.id, node.name, node.kind, tuple(node.upstream),
                                   start) for node in nodes if node.id not in graph.nodes)
        for node_id in list(graph.nodes)[had:]:
            graph.nodes[node_id].width = 0
            self.changed_at[node_id] = cursor
        for node_id, name, is_map, state, before, n in moves:
            node = self._node(run, node_id, name, is_map, start)
            if state == LEFT:  # out of its map (``TaskRunLeftMap``): history
                if before is not None:  # (else never counted here)
                    node.counts[_STATES[before]] -= n
                    node.width = (node.width or 0) - n
                self.changed_at[node_id] = cursor
                continue
            if before is None:  # created since the last look
                node.width = (node.width or 0) + n
            else:
                node.counts[_STATES[before]] -= n
            node.counts[_STATES[state]] += n
            self.changed_at[node_id] = cursor
        seen = (run.state, run.ended, run.message)
        if seen != self.run_seen:
            graph.apply([_run_state(run, start)])
        self.cursor = max(self.cursor, cursor)
        self.nodes_cursor = max(self.nodes_cursor, nodes_cursor)
        if len(graph.nodes) != had or seen != self.run_seen:
            self.run_seen = seen
            self.digest = self._digest()

    def _node(self, run: Any, node_id: str, name: str, is_map: int, start: float) -> NodeInfo:
        node = self.graph.nodes.get(node_id)
        if node is None:  # a run recorded before nodes were stored: named after its task
            kind = "map" if is_map else "task"
            self.graph.apply([ev.NodeCreated(run.id, node_id, name, kind, (), start)])
            node = self.graph.nodes[node_id]
            self.changed_at[node_id] = self.cursor
        if node.width is None:
            node.width = 0
        return node

    def store_counts(self) -> dict[str, int]:
        """Task runs by state, every one of them (as ``RunStore.get_run`` counts)."""
        return {state.value: n for state, n in self.graph.counts().items() if n}

    def _digest(self) -> int:
        graph = self.graph
        shape = [(n.id, n.kind, n.name) for n in graph.nodes.values()]
        text = repr((shape, graph.edges(), self.run_seen))
        return zlib.crc32(text.encode())


def _created_events(run: Any, nodes: Sequence[Any], start: float) -> Iterator[ev.Event]:
    # No parameters: a graph never shows them (the run's REST answer does), and a big one an
    # older labloom stored whole would be parsed for nothing at each look.
    yield ev.RunCreated(
        run.id, run.flow_name, {}, run.executor or "",
        run.origin or "",
        run.host or "", start, run.source_hash or "", dict(run.metadata),
    )
    for node in nodes:
        yield ev.NodeCreated(run.id, node.id, node.name, node.kind, tuple(node.upstream), start)
