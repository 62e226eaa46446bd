"""The run's graph as a view sees it, rebuilt from the event stream alone.

Pure Python (no Jupyter imports) so the widget, the static HTML summary and the tests share it.
Everything a front end receives from here is sized by the number of graph nodes: a map node
carries counts by state, and its children (possibly thousands of task runs) are only handed out
a page at a time, on request.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..core.events import (
    Event,
    LogRecord,
    NodeCreated,
    RunCreated,
    RunFinished,
    RunStateChanged,
    StateChanged,
    TaskRunCreated,
    TaskRunLeftMap,
)
from ..core.states import BAD_STATES, State, overall_state

PAGE_SIZE = 100
# A view shows the tail of a task run's log; older lines stay in the run's own store.
MAX_LOG_LINES = 1000



def web_link(url: Any) -> str | None:
    """``url`` if it is a web page: http(s), or a path on this server (a JupyterHub proxy's
    ``/user/ada/proxy/8787/status``); else None. A run's dashboard link is read from the store,
    where anything may have been written, and a ``javascript:`` URL must never become a live
    link in a view."""
    if not isinstance(url, str) or not url or any(c.isspace() or not c.isprintable() for c in url):
        return None
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https") or (not scheme and url.startswith("/")):
        return url
    return None


@dataclass
class TaskRunInfo:
    id: str
    node_id: str
    name: str
    map_index: int | None
    state: State = State.PENDING
    message: str = ""
    attempt: int = 0
    traceback: str = ""
    start: float | None = None
    end: float | None = None
    worker: str = ""  # where it ran: its lane in the run's timeline
    logs: list[tuple[float, int, str]] = field(default_factory=list)
    logged: int = 0  # lines ever received; ``logs`` keeps only the tail
    left_map: str | None = None  # why it left its map (``TaskRunLeftMap``): history

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node_id,
            "name": self.name,
            "index": self.map_index,
            "state": self.state.value,
            "message": self.message,
            "attempt": self.attempt,
            "start": self.start,
            "end": self.end,
            "left_map": self.left_map,  # the panel says it left its map, and why
        }

    def child_json(self) -> dict[str, Any]:
        # A row in a map's child list: the node and name are the page's, not repeated.
        return {"id": self.id, "index": self.map_index, "state": self.state.value}


@dataclass
class NodeInfo:
    id: str
    name: str
    kind: str  # "task" or "map"
    upstream: tuple[str, ...] = ()
    # map_index (None for a plain task) -> the current task run; a rerun replaces the entry.
    runs: dict[int | None, str] = field(default_factory=dict)
    counts: Counter[State] = field(default_factory=Counter)
    # Set where the node is kept by counts alone (a stored run followed by a server): its
    # task runs then stay in the store, and ``runs`` stays empty.
    width: int | None = None

    @property
    def total(self) -> int:
        return len(self.runs) if self.width is None else self.width


class ViewGraph:
    """Folds a run's events into nodes, edges, node states and a header.

    ``apply`` returns which parts changed, so a view sends only those. Not thread-safe: the
    owner serialises ``apply`` and reads.
    """

    def __init__(self) -> None:
        self.run_id = ""
        self.flow_name = ""
        self.executor = ""
        self.metadata: dict[str, Any] = {}
        self.state = State.PENDING
        self.message = ""
        self.start: float | None = None
        self.end: float | None = None
        self.nodes: dict[str, NodeInfo] = {}
        self.task_runs: dict[str, TaskRunInfo] = {}
        # Bumped whenever the node set or the edges change: the layout is redone only then.
        self.graph_version = 0

    # -- folding events -------------------------------------------------------------------

    def apply(self, events: Iterable[Event]) -> Changes:
        changes = Changes()
        for event in events:
            if isinstance(event, StateChanged):
                self._state_changed(event, changes)
            elif isinstance(event, LogRecord):
                self._log(event, changes)
            elif isinstance(event, TaskRunCreated):
                self._task_run_created(event, changes)
            elif isinstance(event, NodeCreated):
                self._node_created(event, changes)
            elif isinstance(event, TaskRunLeftMap):
                self._left_map(event, changes)
            elif isinstance(event, RunCreated):
                self.run_id, self.flow_name = event.run_id, event.flow_name
                self.executor, self.metadata = event.executor, dict(event.metadata)
                self.start = event.time
                changes.header = True
            elif isinstance(event, RunStateChanged | RunFinished):
                self.state, self.message = event.state, event.message
                if isinstance(event, RunFinished) or event.state.is_final:
                    self.end = event.time
                changes.header = True
                changes.states = True  # empty nodes take their final state from the run
        return changes

    def _node_created(self, event: NodeCreated, changes: Changes) -> None:
        node = self.nodes.get(event.node_id)
        if node is None:
            self.nodes[event.node_id] = NodeInfo(event.node_id, event.name, event.kind)
        node = self.nodes[event.node_id]
        node.name, node.kind, node.upstream = event.name, event.kind, tuple(event.upstream)
        self.graph_version += 1
        changes.graph = changes.states = changes.header = True

    def _task_run_created(self, event: TaskRunCreated, changes: Changes) -> None:
        node = self.nodes.get(event.node_id)
        if node is None:
            # The engine announces nodes first; tolerate the reverse rather than lose a run.
            node = self.nodes[event.node_id] = NodeInfo(event.node_id, event.task_name, "task")
            self.graph_version += 1
            changes.graph = True
        run = TaskRunInfo(event.task_run_id, node.id, event.task_name, event.map_index)
        previous = node.runs.get(event.map_index)
        if previous is not None and previous in self.task_runs:
            node.counts[self.task_runs[previous].state] -= 1
        node.runs[event.map_index] = run.id
        node.counts[run.state] += 1
        self.task_runs[run.id] = run
        changes.states = changes.header = True
        changes.nodes.add(node.id)

    def _state_changed(self, event: StateChanged, changes: Changes) -> None:
        run = self.task_runs.get(event.task_run_id)
        if run is None:
            return
        node = self.nodes[run.node_id]
        if node.runs.get(run.map_index) == run.id:
            node.counts[run.state] -= 1
            node.counts[event.state] += 1
        run.state, run.message, run.attempt = event.state, event.message, event.attempt
        if event.traceback:
            run.traceback = event.traceback
        if event.worker:
            run.worker = event.worker
        if event.state is State.RUNNING:
            # Each attempt's start, as the engine and the store keep it: a retried task run's
            # duration and timeline bar are its last attempt's (the first's took in the
            # failed attempts, a rerun's the time between the runs).
            run.start = event.time
        run.end = event.time if event.state.is_final else None  # a rerun opens it again
        changes.states = changes.header = True
        changes.nodes.add(node.id)
        changes.task_runs.add(run.id)

    def _left_map(self, event: TaskRunLeftMap, changes: Changes) -> None:
        """Out of its map's counts and width (a new child at its index replaced it there
        already, or not); kept, to be read by id."""
        run = self.task_runs.get(event.task_run_id)
        if run is None:
            return
        run.left_map = event.message
        run.start, run.end = event.started, event.ended
        node = self.nodes[run.node_id]
        if node.runs.get(run.map_index) == run.id:
            del node.runs[run.map_index]
            node.counts[run.state] -= 1
            if node.width is not None:  # kept by counts (a followed stored run)
                node.width -= 1
        changes.states = changes.header = True
        changes.nodes.add(node.id)
        changes.task_runs.add(run.id)

    def _log(self, event: LogRecord, changes: Changes) -> None:
        run = self.task_runs.get(event.task_run_id or "")
        if run is None:
            return
        run.logs.append((event.time, event.level, event.text))
        run.logged += 1
        if len(run.logs) > MAX_LOG_LINES:
            del run.logs[: len(run.logs) - MAX_LOG_LINES]
        changes.logs.add(run.id)

    # -- reading --------------------------------------------------------------------------

    def node_state(self, node: NodeInfo) -> State:
        if node.total == 0 and self.state.is_final:
            # A map that never got a width (its input failed) or an empty map.
            if any(self.node_state(self.nodes[u]) in BAD_STATES for u in self._known(node)):
                return State.UPSTREAM_FAILED
            stopped = self.state in (State.CANCELLED, State.CRASHED)
            return State.CANCELLED if stopped else State.COMPLETED
        return overall_state(node.counts, node.total)

    def _known(self, node: NodeInfo) -> list[str]:
        return [u for u in node.upstream if u in self.nodes and u != node.id]

    def edges(self) -> list[tuple[str, str]]:
        return [(u, node.id) for node in self.nodes.values() for u in self._known(node)]

    def counts(self) -> Counter[State]:
        total: Counter[State] = Counter()
        for node in self.nodes.values():
            total.update(node.counts)
        return total

    def states_json(self, only: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Per node (every node, or those of ``only``): aggregated state, counts by state
        (non-zero only) and width."""
        nodes = self.nodes.values() if only is None else (
            self.nodes[i] for i in only if i in self.nodes
        )
        return {
            node.id: {
                "state": self.node_state(node).value,
                "counts": {s.value: n for s, n in node.counts.items() if n},
                "total": node.total,
            }
            for node in nodes
        }

    def header_json(self, now: float) -> dict[str, Any]:
        end = self.end if self.end is not None else now
        return {
            "run_id": self.run_id,
            "flow": self.flow_name,
            "state": self.state.value,
            "message": self.message,
            "executor": self.executor,
            "start": self.start,
            "end": self.end,
            "now": now,
            "elapsed": None if self.start is None else max(0.0, end - self.start),
            "counts": {s.value: n for s, n in self.counts().items() if n},
            "total": sum(node.total for node in self.nodes.values()),
            "nodes": len(self.nodes),
            "dashboard": web_link(self.metadata.get("dashboard")),
        }

    def current_run(self, node_id: str) -> TaskRunInfo | None:
        """The task run a click on a plain task node shows (the latest attempt)."""
        node = self.nodes.get(node_id)
        if node is None or not node.runs:
            return None
        return self.task_runs.get(node.runs[min(node.runs, key=_index_key)])

    def children_page(self, node_id: str, page: int, page_size: int = PAGE_SIZE) -> dict[str, Any]:
        node = self.nodes.get(node_id)
        runs = node.runs if node is not None else {}
        keys = sorted(runs, key=_index_key)
        pages = max(1, math.ceil(len(keys) / page_size))
        page = min(max(0, page), pages - 1)
        chosen = keys[page * page_size : (page + 1) * page_size]
        children = [self.task_runs[runs[k]].child_json() for k in chosen]
        return {
            "node": node_id,
            "page": page,
            "pages": pages,
            "page_size": page_size,
            "total": len(keys),
            "children": children,
        }


def _index_key(index: int | None) -> int:
    return -1 if index is None else index


@dataclass
class Changes:
    """What one ``apply`` touched; a view merges these until it next sends."""

    graph: bool = False
    states: bool = False
    header: bool = False
    nodes: set[str] = field(default_factory=set)
    task_runs: set[str] = field(default_factory=set)
    logs: set[str] = field(default_factory=set)

    def merge(self, other: Changes) -> None:
        self.graph |= other.graph
        self.states |= other.states
        self.header |= other.header
        self.nodes |= other.nodes
        self.task_runs |= other.task_runs
        self.logs |= other.logs

    def __bool__(self) -> bool:
        return bool(
            self.graph or self.states or self.header or self.nodes or self.task_runs or self.logs
        )


def log_lines(entries: Sequence[tuple[float, int, str]]) -> list[dict[str, Any]]:
    return [{"time": t, "level": level, "text": text} for t, level, text in entries]
