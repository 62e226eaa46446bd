"""A run's graph rebuilt from the store, for views of runs owned by other processes.

The store keeps the run's graph nodes and its task runs (node, name, map index, state, times);
this module replays those records as the events ``RunGraph`` folds, so a run read back from the
store is drawn exactly like a live one. Runs recorded before nodes were stored get their nodes
from the task runs' upstream lists (a map whose width never became known is then missing).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
            yield _node_of_task_run(run.id, tr, tuple(upstream_of[node]), start)
        yield _created(run.id, tr, start)
        if tr.started is not None:
            yield ev.StateChanged(run.id, tr.id, State.RUNNING, tr.started, "", tr.attempts)
        yield ev.StateChanged(
            run.id, tr.id, _STATES[tr.state], tr.ended or tr.started or start, tr.message,
            tr.attempts, tr.traceback,
        )
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


# A state change read back from the store: (cursor, task run id, state, time, message, attempt).
Change = tuple[int, str, str, float, str, int]
_TRACEBACK_STATES = ("Failed", "Retrying")
_STATES = {state.value: state for state in State}  # faster than State(text), per row


class FollowedGraph:
    """A stored run's graph kept up to date by cursor, for views of a run that is still going.

    Built once from the run's records, then ``follow`` folds in only the task-run state changes
    written since (``store.follow``), so a poll of a wide running run costs what changed, not a
    read and a fold of every task run. Also kept, for answers by cursor: the cursor at which
    each node last changed, the run's task runs counted by state (every task run, as the store
    counts them) and a digest of what has no cursor of its own (the nodes, edges and the run's
    state): a view whose digest differs needs the whole graph again. Not thread-safe: the owner
    serialises ``follow`` and reads.
    """

    def __init__(self, run: Any, tasks: Iterable[tuple[int, Any]], nodes: Sequence[Any],
                 cursor: int, nodes_cursor: int = 0) -> None:
        """``tasks``: (cursor, record) pairs in creation order, read after taking ``cursor``
        (the state cursor); ``nodes``: read after them, up to ``nodes_cursor``."""
        pairs = list(tasks)
        records = [record for _, record in pairs]
        self.run_key = (run.created, run.started)  # a run reopened by a retry: build again
        self.graph = stored_graph(run, records, nodes)
        self.counts: Counter[str] = Counter(tr.state for tr in records)
        self.cursor = cursor
        self.tasks_cursor = pairs[-1][0] if pairs else 0
        self.nodes_cursor = nodes_cursor
        self.changed_at = dict.fromkeys(self.graph.nodes, cursor)
        self.run_seen = (run.state, run.ended, run.message)
        self.digest = self._digest()

    @staticmethod
    def failures(changes: Iterable[Change]) -> list[str]:
        """The task runs whose tracebacks ``follow`` needs (kept on the task run's row, not
        with each state)."""
        return list(dict.fromkeys(c[1] for c in changes if c[2] in _TRACEBACK_STATES))

    def follow(self, run: Any, changes: Sequence[Change], tasks: Sequence[tuple[int, Any]] = (),
               tracebacks: Mapping[str, str] | None = None, nodes: Sequence[Any] = (),
               nodes_cursor: int = 0) -> None:
        """Fold in what was read after the cursors, in this order: ``changes`` (state
        changes), ``tasks`` (new task runs, (cursor, record) pairs), ``nodes`` (new nodes, up
        to ``nodes_cursor``); and the run's own state. A change folded in twice is harmless:
        the last state wins. ``tracebacks``: by task run, for those ``failures`` named."""
        start = self.graph.start or run.started or run.created or 0.0
        seen = (run.state, run.ended, run.message)
        events = self._events(run, changes, tasks, tracebacks or {}, nodes, start, seen)
        folded = self.graph.apply(events)
        cursor = max(self.cursor, changes[-1][0]) if changes else self.cursor
        for node_id in folded.nodes:
            self.changed_at[node_id] = cursor
        for node_id in self.graph.nodes:
            self.changed_at.setdefault(node_id, cursor)
        self.cursor = cursor
        self.tasks_cursor = max(self.tasks_cursor, tasks[-1][0]) if tasks else self.tasks_cursor
        self.nodes_cursor = max(self.nodes_cursor, nodes_cursor)
        if folded.graph or seen != self.run_seen:
            self.run_seen = seen
            self.digest = self._digest()

    def _events(self, run: Any, changes: Sequence[Change], tasks: Sequence[tuple[int, Any]],
                tracebacks: Mapping[str, str], nodes: Sequence[Any], start: float,
                seen: tuple[Any, ...]) -> Iterator[ev.Event]:
        graph, counts = self.graph, self.counts
        for node in nodes:
            if node.id not in graph.nodes:
                yield ev.NodeCreated(run.id, node.id, node.name, node.kind,
                                     tuple(node.upstream), start)
        for _, record in tasks:
            if record.id not in graph.task_runs:
                if _node_id(record) not in graph.nodes:
                    yield _node_of_task_run(run.id, record, (), start)
                yield _created(run.id, record, start)
                counts["Pending"] += 1
        # Of a task run's changes in this batch only the last counts (and when it started
        # running): a quick task's Pending, Running and Completed fold in as one event.
        last: dict[str, Change] = {}
        began: dict[str, float] = {}
        for change in changes:
            last[change[1]] = change
            if change[2] == "Running" and change[1] not in began:
                began[change[1]] = change[3]
        for tr_id, (_, _, state, when, message, attempt) in last.items():
            known = graph.task_runs.get(tr_id)  # read as the graph folds: the state before
            if known is None:
                continue  # not in the store (a row without its task run): nothing to draw
            counts[known.state.value] -= 1
            counts[state] += 1
            if known.start is None and tr_id in began:
                known.start = began[tr_id]  # as a Running event would: one event fewer
            yield ev.StateChanged(run.id, tr_id, _STATES[state], when, message, attempt,
                                  tracebacks.get(tr_id, ""))
        if seen != self.run_seen:
            yield _run_state(run, start)

    def store_counts(self) -> dict[str, int]:
        """Task runs by state, every one of them (as ``RunStore.get_run`` counts)."""
        return {state: n for state, n in self.counts.items() if n}

    def _digest(self) -> int:
        graph = self.graph
        shape = [(n.id, n.kind, n.name) for n in graph.nodes.values()]
        text = repr((shape, graph.edges(), self.run_seen))
        return zlib.crc32(text.encode())
