"""The graphs of the runs that views look at: built once per run, then kept up to date by cursor.

A run tab polls its run once a second, and ten tabs may poll the same running run of 100,000
task runs. Rebuilding its graph from every task-run row for each poll (as this server once did)
cost seconds a poll and filled the thread pool. Here each run's graph is built once
(``store.follow`` pages through its task runs), and a later look reads only the task-run state
changes written since the graph's cursor, at most every ``FRESH_FOR`` seconds while the run
goes on (looks in between share the last one); a run that has ended is never read again unless
its row changes (a crash found late, a retry in its kernel reopening it).

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

from ..dag.stored import FollowedGraph
from ..store import follow
from ..store.reader import RunRecord, RunStore

FRESH_FOR = 0.2  # seconds during which looks at a running run share one read of the store
_OPEN = ("Pending", "Running")


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


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.graph: FollowedGraph | None = None
        self.looked = 0.0  # time.monotonic() of the last read of the store


class RunGraphs:
    """The followed graphs of the last ``size`` runs looked at, one lock per run: two polls of
    one run take turns (the second finds the graph fresh), polls of two runs do not wait."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def use(self, store: RunStore, run: RunRecord) -> Iterator[FollowedGraph]:
        """The run's graph, up to date with ``run`` (read just before) at least; hold it only
        for the ``with`` block: other threads fold changes in after it."""
        with self._lock:
            entry = self._items.get(run.id)
            if entry is None:
                entry = self._items[run.id] = _Entry()
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
            self._items.move_to_end(run.id)
        with entry.lock:
            graph = entry.graph
            if graph is None or graph.run_key != (run.created, run.started):
                entry.graph = graph = _build(store, run)
                entry.looked = time.monotonic()
            elif graph.run_seen != (run.state, run.ended, run.message) or (
                run.state in _OPEN and time.monotonic() - entry.looked >= FRESH_FOR
            ):
                _catch_up(store, run, graph)
                entry.looked = time.monotonic()
            yield graph


def _build(store: RunStore, run: RunRecord) -> FollowedGraph:
    # The cursor first: whatever changes while the task runs are read is read again later,
    # and folding a change twice is harmless. Nodes after task runs: every task run's node.
    cursor = follow.state_cursor(store, run.id)
    tasks = list(follow.all_task_runs(store, run.id))
    nodes = follow.nodes_after(store, run.id)
    return FollowedGraph(run, tasks, [node for _, node in nodes], cursor,
                         nodes[-1][0] if nodes else 0)


def _catch_up(store: RunStore, run: RunRecord, graph: FollowedGraph) -> None:
    changes = list(follow.state_changes(store, run.id, graph.cursor))
    wanted = graph.wants(changes)
    records = follow.task_runs_by_id(store, wanted) if wanted else {}
    nodes = follow.nodes_after(store, run.id, graph.nodes_cursor)
    graph.follow(run, changes, records, [node for _, node in nodes],
                 nodes[-1][0] if nodes else 0)
