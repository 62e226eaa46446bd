"""The graphs of the runs that views look at: built once per run, then kept up to date by cursor.

A run tab polls its run once a second, and ten tabs may poll the same running run of 100,000
task runs. Rebuilding its graph from every task-run row for each poll (as this server once did)
cost seconds a poll and filled the thread pool. Here each run's graph is built once, by node
(``store.follow.node_counts``: the run's task runs counted by node and state in SQL), and a
later look asks only how the task runs that changed since the graph's cursor moved between
states, counted by node in SQL too (``node_moves``), at most every ``FRESH_FOR`` seconds while
the run goes on (looks in between share the last one). No look holds an object or reads a row
per task run: a map's children are read from the store a page at a time, when a view asks. A
run whose row changes (it ended, a crash found late, a retry in its kernel reopening it) is
counted afresh once; an ended run is not read again.

A ``Cursor`` is what an answer hands a view so that its next poll asks only for what changed:
the last task-run state change folded in, the last log line sent, and a digest of what has no
cursor of its own (nodes, edges, the run's state). It is opaque to clients: ``str`` it out,
``Cursor.parse`` it back.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..dag.payload import graph_shape
from ..dag.stored import FollowedGraph, stored_graph
from ..store import follow
from ..store.reader import RunRecord, RunStore

FRESH_FOR = 0.5  # seconds during which looks at a running run share one read of the store


@dataclass(frozen=True)
class Cursor:
    states: int  # the last task-run state change the answer included
    lines: int  # the last log line the answer included
    digest: int  # FollowedGraph.digest: nodes, edges and the run's state

    def __str__(self) -> str:
        return f"{self.states}.{self.lines}.{self.digest:x}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``ValueError`` unless ``text`` is a cursor a previous answer handed out."""
        parts = text.split(".")
        if len(parts) != 3:
            raise ValueError(text)
        states, lines, digest = int(parts[0]), int(parts[1]), int(parts[2], 16)
        if min(states, lines, digest) < 0:
            raise ValueError(text)
        return cls(states, lines, digest)


@dataclass(frozen=True)
class Look:
    """What one look at a run found, sized by its graph's nodes: enough to answer a poll
    without holding the graph while another thread folds changes into it."""

    cursor: int  # FollowedGraph.cursor
    digest: int  # FollowedGraph.digest
    states: dict[str, dict[str, Any]]  # every node's
    changed_at: dict[str, int]  # the cursor at which each node last changed
    header: dict[str, Any]  # its ``now`` and ``elapsed`` are the look's
    counts: dict[str, int]  # task runs by state, every one (as the store counts)
    shape: Any  # ``graph_shape``: what the layout needs

    def states_since(self, cursor: int) -> dict[str, dict[str, Any]]:
        return {node: self.states[node] for node, at in self.changed_at.items() if at > cursor}


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.graph: FollowedGraph | None = None
        self.look: Look | None = None
        self.looked = 0.0  # time.monotonic() of the last read of the store


class RunGraphs:
    """The followed graphs of the last ``size`` runs looked at, one lock per run. Polls of a
    run that goes on share one read of the store every ``FRESH_FOR`` seconds; while one poll
    reads, the others answer from the look before (at most that much older) instead of
    queueing behind it. Polls of two runs never wait for each other."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def look(
        self, store: RunStore, run: RunRecord, fresh_for: float = FRESH_FOR,
        most: int | None = None,
    ) -> Look:
        """The run as its graph stands, up to date with ``run`` (read just before). The
        watcher (``push.py``) passes ``fresh_for=0`` (it looks once a tick and must see all)
        and ``most``: a look folds in at most that many state changes, so that a view sees a
        busy run move every tick rather than once a long read is done."""
        entry = self._entry(run.id)
        last = entry.look
        due = run.is_open and time.monotonic() - entry.looked >= fresh_for
        if last is not None and not due and not self._stale(entry.graph, run):
            return last
        must = last is None or self._stale(entry.graph, run)  # a new run, or its row changed
        if not entry.lock.acquire(blocking=must):
            assert last is not None
            return last  # another poll is reading the store for it right now
        try:
            self._refresh(entry, store, run, fresh_for, most)
            assert entry.look is not None
            return entry.look
        finally:
            entry.lock.release()

    def clear(self) -> None:
        """Forget every graph: the store is another one (a backup in place of the file)."""
        with self._lock:
            self._items.clear()

    @contextmanager
    def use(self, store: RunStore, run: RunRecord) -> Iterator[FollowedGraph]:
        """The run's graph itself, up to date with ``run`` at least; held only for the
        ``with`` block: other threads fold changes in after it."""
        entry = self._entry(run.id)
        with entry.lock:
            self._refresh(entry, store, run)
            assert entry.graph is not None
            yield entry.graph

    def recent(self, run: RunRecord, age: float) -> Look | None:
        """The last look at ``run`` if one was taken in the last ``age`` seconds (no read)."""
        with self._lock:
            entry = self._items.get(run.id)
        if entry is None or entry.look is None or time.monotonic() - entry.looked > age:
            return None
        graph = entry.graph
        return entry.look if graph is not None and graph.run_key == (run.created, run.started) else None

    def _entry(self, run_id: str) -> _Entry:
        with self._lock:
            entry = self._items.get(run_id)
            if entry is None:
                entry = self._items[run_id] = _Entry()
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
            self._items.move_to_end(run_id)
            return entry

    @staticmethod
    def _stale(graph: FollowedGraph | None, run: RunRecord) -> bool:
        return graph is None or graph.run_key != (run.created, run.started) or (
            graph.run_seen != (run.state, run.ended, run.message)
        )

    def _refresh(
        self, entry: _Entry, store: RunStore, run: RunRecord, fresh_for: float = FRESH_FOR,
        most: int | None = None,
    ) -> None:
        """Under the entry's lock: build or catch up, as the run and the time say."""
        graph = entry.graph
        if graph is None or self._stale(graph, run):
            # Also when the run's row changed (it ended): an ended run is counted afresh, in
            # one grouped read, so that what a view keeps of it is exactly what the store says.
            entry.graph = graph = _build(store, run)
        elif run.is_open and time.monotonic() - entry.looked >= fresh_for:
            _catch_up(store, run, graph, most)
        else:
            return
        entry.looked = time.monotonic()
        now = time.time()
        entry.look = Look(
            graph.cursor, graph.digest, graph.graph.states_json(), dict(graph.changed_at),
            graph.graph.header_json(now), graph.store_counts(), graph_shape(graph.graph),
        )


def _build(store: RunStore, run: RunRecord) -> FollowedGraph:
    # Nodes after the counts: every counted task run's node is among them.
    cursor, counts = follow.node_counts(store, run.id)
    found = follow.nodes_after(store, run.id)
    nodes: list[Any] = [node for _, node in found]
    known = {node.id for node in nodes}
    if any(row[0] not in known for row in counts):
        # Recorded before nodes were stored: the nodes and edges come from the task runs'
        # upstream lists, a read of every task run (once per run and server).
        tasks = [record for _, record in follow.all_task_runs(store, run.id)]
        nodes = list(stored_graph(run, tasks, nodes).nodes.values())
    return FollowedGraph(run, counts, nodes, cursor, found[-1][0] if found else 0)


def _catch_up(
    store: RunStore, run: RunRecord, graph: FollowedGraph, most: int | None = None
) -> None:
    # Nodes after the moves: each moved task run's node is among them.
    cursor, moves = follow.node_moves(store, run.id, graph.cursor, most)
    nodes = follow.nodes_after(store, run.id, graph.nodes_cursor)
    graph.follow(run, moves, cursor, [node for _, node in nodes], nodes[-1][0] if nodes else 0)
