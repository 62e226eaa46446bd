"""What the API reads from the store, as plain JSON-ready data, run on a small thread pool.

Store calls block, so none of them runs on tornado's event loop: ``StoreAccess.call`` hands
each query to a pool thread, which keeps its own connection (``RunStore``) to the store
(a SQLite file or PostgreSQL, whichever ``LABLOOM_DATABASE_URL`` names).
The reads reuse ``labloom.store.reader``; nothing here writes SQL of its own. No query returns
task data: run parameters, states, timings, log lines and tracebacks only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..dag.model import PAGE_SIZE
from ..dag.payload import graph_payload
from ..dag.stored import stored_graph
from ..store.db import database_url
from ..store.reader import RunRecord, RunStore

T = TypeVar("T")

MAX_PAGE = 500
MAX_LOG_LINES = 5000


class StoreAccess:
    """The store, read from a thread pool; one connection per pool thread and store file."""

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="labloom-api")
        self._local = threading.local()
        self.layouts = LayoutCache()
        self.graphs = EndedGraphs()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, fn, args)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        url = database_url()  # read per call: LABLOOM_HOME may differ between servers in tests
        stores: dict[str, RunStore] = getattr(self._local, "stores", None) or {}
        self._local.stores = stores
        store = stores.get(url)
        if store is None:
            store = stores[url] = RunStore(url=url)
        return fn(self, store, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class LayoutCache:
    """Laying out a graph can call ``dot``: do it once per run and shape of the graph."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: dict[tuple[str, int, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, graph: Any) -> dict[str, Any]:
        key = (run_id, len(graph.nodes), len(graph.edges()))
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        payload = graph_payload(graph)
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = payload
        return payload


class EndedGraphs:
    """The graphs of runs that have ended, kept: they no longer change, and rebuilding one from
    the store costs a read of every task run (about 0.1 s for a map of 10,000)."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: dict[tuple[str, str, float | None], tuple[list[Any], Any]] = {}
        self._lock = threading.Lock()

    def get(self, store: RunStore, run: RunRecord) -> tuple[list[Any], Any]:
        key = (run.id, run.state, run.ended)  # an in-kernel retry reopens a run: a new key
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        tasks = store.task_runs(run.id)
        built = (tasks, stored_graph(run, tasks, store.nodes(run.id)))
        if run.state not in _OPEN:
            with self._lock:
                if len(self._items) >= self._size:
                    self._items.pop(next(iter(self._items)))
                self._items[key] = built
        return built


_OPEN = ("Pending", "Running")


# --- the queries (each runs on a pool thread: ``fn(access, store, *args)``) ----------------


def run_summary(run: RunRecord) -> dict[str, Any]:
    """One row of the runs list."""
    total = sum(run.counts.values())
    done = sum(n for state, n in run.counts.items() if state not in ("Pending", "Running",
                                                                     "Retrying"))
    end = run.ended if run.ended is not None else (
        time.time() if run.state in ("Pending", "Running") else None
    )
    return {
        "id": run.id,
        "flow": run.flow_name,
        "state": run.state,
        "message": run.message,
        "origin": run.origin,
        "host": run.host,
        "user": run.user,
        "pid": run.pid,
        "executor": run.executor,
        "created": run.created,
        "started": run.started,
        "ended": run.ended,
        "duration": None if run.started is None or end is None else end - run.started,
        "counts": run.counts,
        "done": done,
        "total": total,
        "retry_of": run.retry_of,
    }


def list_runs(
    access: StoreAccess, store: RunStore, filters: dict[str, Any], limit: int
) -> dict[str, Any]:
    runs = store.list_runs(limit=limit + 1, **filters)
    more = len(runs) > limit
    runs = runs[:limit]
    running = store.list_runs(state="Running", limit=None) if filters.get("before") is None else []
    return {
        "runs": [run_summary(run) for run in runs],
        # The cursor for the next page: pass it as ``before``.
        "next": runs[-1].id if more and runs else None,
        "running": len(running),
        "now": time.time(),
    }


def exact_run(store: RunStore, run_id: str) -> RunRecord | None:
    """The run with exactly this id (the CLI also accepts a prefix; the API does not)."""
    run = store.get_run(run_id)
    return run if run is not None and run.id == run_id else None


def run_detail(
    access: StoreAccess, store: RunStore, run_id: str, with_tasks: bool
) -> dict[str, Any] | None:
    run = exact_run(store, run_id)
    if run is None:
        return None
    tasks, graph = access.graphs.get(store, run)
    now = time.time()
    detail: dict[str, Any] = {
        **run_summary(run),
        "parameters": run.parameters,
        "dashboard": run.metadata.get("dashboard"),
        "cluster": run.metadata.get("cluster"),
        "metadata": run.metadata,
        "target": run.target,
        # What the DAG renderer draws (the same shapes as the notebook widget's traits).
        "graph": access.layouts.get(run.id, graph),
        "states": graph.states_json(),
        "header": {**graph.header_json(now), "elapsed": _elapsed(run, now)},
    }
    if with_tasks:
        detail["task_runs"] = [
            {key: value for key, value in task.to_json().items() if key != "history"}
            for task in tasks
        ]
    return detail


def _elapsed(run: RunRecord, now: float) -> float | None:
    if run.started is None:
        return None
    return max(0.0, (run.ended if run.ended is not None else now) - run.started)


def node_detail(
    access: StoreAccess, store: RunStore, run_id: str, node_id: str, page: int
) -> dict[str, Any] | None:
    """One node of the DAG: its state, the task run a click shows, a page of a map's children."""
    run = exact_run(store, run_id)
    if run is None:
        return None
    _tasks, graph = access.graphs.get(store, run)
    node = graph.nodes.get(node_id)
    if node is None:
        return None
    current = graph.current_run(node_id) if node.kind == "task" else None
    return {
        "node": node.id,
        "name": node.name,
        "kind": node.kind,
        "state": graph.node_state(node).value,
        "task_run": None if current is None else {
            **current.to_json(), "traceback": current.traceback
        },
        "children": graph.children_page(node_id, page, PAGE_SIZE) if node.kind == "map" else None,
    }


def log_page(
    access: StoreAccess, store: RunStore, run_id: str, task: str | None, after: int, limit: int
) -> dict[str, Any] | None:
    """Log lines written after the cursor ``after``, the task runs they belong to (state,
    message, traceback) and how many lines were not stored."""
    run = exact_run(store, run_id)
    if run is None:
        return None
    if task:
        chosen = store.find_task_runs(run.id, task)
        ids: list[str] | None = [t.id for t in chosen]
        names = {t.id: t.name for t in chosen}
    else:
        chosen, ids = [], None
        names = {t.id: t.name for t in access.graphs.get(store, run)[0]}
    lines = store.log_page(run.id, ids, after, limit)
    cuts = store.log_cuts(run.id, ids)
    return {
        "run_id": run.id,
        "state": run.state,
        "lines": [
            {"id": line.id, "task_run_id": line.task_run_id,
             "task": names.get(line.task_run_id or "", ""), "level": line.level,
             "time": line.time, "text": line.text}
            for line in lines
        ],
        # Read on from here: ``after=next`` returns only newer lines.
        "next": lines[-1].id if lines else after,
        "more": len(lines) == limit,
        "task_runs": [
            {"id": t.id, "name": t.name, "state": t.state, "message": t.message,
             "traceback": t.traceback, "attempts": t.attempts}
            for t in chosen
        ],
        "cut": [{"task_run_id": c.task_run_id, "task": names.get(c.task_run_id, ""),
                 "kept": c.kept, "cut": c.cut} for c in cuts],
    }

