"""What the API reads from the store, as plain JSON-ready data, run on small thread pools.

Store calls block, so none runs on tornado's event loop: ``StoreAccess.call`` hands each query
to a pool thread, which keeps its own connection (``RunStore``) to the store (SQLite or
PostgreSQL, as ``LABLOOM_DATABASE_URL`` names). Two lanes, each its own pool: "list" (the runs
list, schedules, actions: what the Flows panel asks) and "run" (a run's detail, nodes, task
runs, logs, experiments: what run and compare tabs poll), so the panel never queues behind
them. The reads reuse ``store.reader`` and ``store.follow``; no SQL of their own. No query
returns task data: run parameters, states, timings, log lines and tracebacks only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..core.states import shown_traceback
from ..dag.model import PAGE_SIZE
from ..dag.payload import lay_out
from ..dag.stored import child_page, task_run_info
from ..dag.timeline import Span, timeline
from ..store import follow
from ..store.db import database_url, get_database
from ..store.reader import RunRecord, RunStore
from . import EVENTS_SCHEMA_ID
from .across_rows import AcrossRows
from .experiment_rows import ExperimentRows
from .graphs import Cursor, RunGraphs
from .thread_stores import ThreadStores

T = TypeVar("T")

MAX_PAGE = 500
MAX_LOG_LINES = 5000
MAX_TASK_PAGE = 1000
TASKS_INLINE = 100  # task runs in a run's detail; the rest through ``runs/{id}/tasks``
LANES = ("list", "run", "watch")  # "watch": the one watcher's reads (``push.py``)


class StoreAccess:
    """The store, read from one thread pool per lane; one connection per pool thread and
    store file."""

    def __init__(self, workers: int = 2) -> None:
        self._workers = {lane: 1 if lane == "watch" else workers for lane in LANES}
        self._pools = {
            lane: ThreadPoolExecutor(n, thread_name_prefix=f"labloom-api-{lane}")
            for lane, n in self._workers.items()
        }
        self._stores = ThreadStores()
        self.layouts = LayoutCache()
        self.graphs = RunGraphs()
        self.counts = ListCounts(self.graphs)
        self.experiments = ExperimentRows()
        self.across = AcrossRows()

    async def call(self, fn: Callable[..., T], *args: Any, lane: str = "run") -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pools[lane], self._run, fn, args)

    def later(self, fn: Callable[..., Any], *args: Any, lane: str = "run") -> None:
        """Run ``fn(store, *args)`` on the lane's pool, not waited for (a big run's whole read
        after its first page: ``experiment_rows.py``)."""
        self._pools[lane].submit(self._later, fn, args)

    def _later(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._run(lambda _access, store, *rest: fn(store, *rest), args)

    def warm(self, log: logging.Logger) -> None:
        """Open the store on every pool thread in the background, at the server's start, so
        that no route's first request pays it (on PostgreSQL psycopg's import, the pool's first
        connection and the schema check: about a second; on SQLite the schema check); for any
        backend. Not waited for: the server starts at once. A store that cannot be opened is
        said once in the log; each request tries again and answers with the store's error."""
        self._pools["watch"].submit(self._warm, log)

    def _warm(self, log: logging.Logger) -> None:
        try:  # one thread first: an unreachable store costs one wait, not one per thread
            database = get_database(database_url())
            if database.kind == "sqlite" and database.file_id() is None:
                return  # no store yet: none is made at the start; a run or a request makes it
            self._run(_nothing, ())
        except Exception as exc:
            log.warning("labloom: the store cannot be opened yet (%s); each request tries "
                        "again", exc)
            return
        for lane in ("run", "list"):
            # Every thread of the lane: each task waits for the others, so none takes two.
            together = threading.Barrier(self._workers[lane], timeout=2.0)
            for _ in range(self._workers[lane]):
                self._pools[lane].submit(self._warm_thread, together)

    def _warm_thread(self, together: threading.Barrier) -> None:
        with contextlib.suppress(Exception):  # said by the first open or by the request
            self._run(_nothing, ())
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait()

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        # The URL is read per call: LABLOOM_HOME may differ between servers in tests.
        return self._stores.call(database_url(), lambda store: fn(self, store, *args))

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False)


def _nothing(_access: StoreAccess, _store: RunStore) -> None:
    """What a pool thread runs to open its store (``StoreAccess.warm``)."""


class LayoutCache:
    """Laying out a graph can call ``dot``: do it once per run and shape of the graph."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: dict[tuple[str, int, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, shape: Any) -> dict[str, Any]:
        """``shape``: ``graph_shape(graph)``, taken while holding the graph."""
        nodes, edges = shape
        key = (run_id, len(nodes), len(edges))
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        payload = lay_out(shape)
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = payload
        return payload


class ListCounts:
    """Task runs by state for the runs list, without reading every task run of the page at
    each poll: an ended run's counts no longer change (kept, by its state and end), and a
    running run's come from a run tab's look at it when one is recent."""

    RECENT = 2.0  # seconds: a look older than this is read again from the store

    def __init__(self, graphs: RunGraphs, size: int = 4096) -> None:
        self._graphs = graphs
        self._size = size
        self._ended: dict[tuple[str, str, float | None], dict[str, int]] = {}
        self._lock = threading.Lock()

    def fill(self, store: RunStore, runs: list[RunRecord]) -> None:
        missing = []
        for run in runs:
            if run.is_open:
                look = self._graphs.recent(run, self.RECENT)
                found = None if look is None else look.counts
            else:
                with self._lock:
                    found = self._ended.get((run.id, run.state, run.ended))
            if found is None:
                missing.append(run)
            else:
                run.counts = dict(found)
        follow.add_counts(store, missing)
        with self._lock:
            for run in missing:
                if not run.is_open:
                    if len(self._ended) >= self._size:
                        self._ended.pop(next(iter(self._ended)))
                    self._ended[(run.id, run.state, run.ended)] = dict(run.counts)


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
    runs = store.list_runs(limit=limit + 1, counts=False, parameters=False, **filters)
    more = len(runs) > limit
    runs = runs[:limit]
    access.counts.fill(store, runs)
    running = follow.count_runs(store, "Running") if filters.get("before") is None else 0
    return {
        "runs": [run_summary(run) for run in runs],
        # The cursor for the next page: pass it as ``before``.
        "next": runs[-1].id if more and runs else None,
        "running": running,
        "now": time.time(),
        "events": EVENTS_SCHEMA_ID,  # changes are pushed as these events (``push.py``)
    }


def exact_run(store: RunStore, run_id: str, parameters: bool = False) -> RunRecord | None:
    """The run with exactly this id (the CLI also accepts a prefix; the API does not), without
    its task runs counted (no action reads them) and without its parameters unless asked (a
    retry replays them; a delete does not)."""
    run = store.get_run(run_id, counts=False, parameters=parameters)
    return run if run is not None and run.id == run_id else None


def run_detail(
    access: StoreAccess, store: RunStore, run_id: str, with_tasks: bool,
    since: Cursor | None = None, lines: int = 0,
) -> dict[str, Any] | None:
    """The run, bounded by its graph's nodes. Without ``since``: everything a run tab draws and
    a ``cursor``; with ``since`` (a previous answer's cursor): only what changed after it."""
    run = follow.run_without_counts(store, run_id, parameters=since is None)  # (a poll: none)
    if run is None:
        return None
    now = time.time()
    look = access.graphs.look(store, run)
    run.counts = look.counts
    whole = since is None or since.digest != look.digest or since.states > look.cursor
    detail: dict[str, Any] = run_summary(run)
    if since is None:
        from ..schedule import run_alerts

        detail.update(
            parameters=run.shown_parameters(),
            dashboard=run.metadata.get("dashboard"),
            cluster=run.metadata.get("cluster"), metadata=run.metadata, target=run.target,
            retried_by=[rid for rid, _ in store.retries(run.id)],
            alert=run_alerts.of_run(store.conn, run.id),  # `labloom show`'s "failure alert"
        )
    if whole:
        # What the DAG renderer draws (the same shapes as the notebook widget's traits).
        detail["graph"] = access.layouts.get(run.id, look.shape)
        detail["states"] = look.states
    else:
        assert since is not None
        detail["states"] = look.states_since(since.states)
    detail["header"] = {**look.header, "now": now, "elapsed": _elapsed(run, now)}
    last_line = 0 if since is None else since.lines
    if since is not None and lines:
        new = store.log_page(run.id, None, since.lines, lines)
        names = _names(store, {line.task_run_id for line in new})
        detail["lines"] = [
            {"id": line.id, "task_run_id": line.task_run_id,
             "task": names.get(line.task_run_id or "", ""), "level": line.level,
             "time": line.time, "text": line.text}
            for line in new
        ]
        detail["more_lines"] = len(new) == lines
        last_line = new[-1].id if new else last_line
    detail["cursor"] = str(Cursor(look.cursor, last_line, look.digest))
    if with_tasks and since is None:
        page = follow.task_runs_after(store, run.id, 0, TASKS_INLINE + 1)
        detail["task_runs"] = [_task_run(task) for _, task in page[:TASKS_INLINE]]
        # More than fit: read on with ``runs/{id}/tasks?after=task_runs_next``.
        detail["task_runs_next"] = page[TASKS_INLINE - 1][0] if len(page) > TASKS_INLINE else None
    return detail


def task_page(
    access: StoreAccess, store: RunStore, run_id: str, after: int, limit: int, state: str | None
) -> dict[str, Any] | None:
    """Task runs in the order they were created, after the cursor ``after``."""
    run = follow.run_without_counts(store, run_id)
    if run is None:
        return None
    page = follow.task_runs_after(store, run.id, after, limit, state)
    return {
        "run_id": run.id,
        "task_runs": [_task_run(task) for _, task in page],
        # Read on from here: ``after=next`` returns only task runs created since.
        "next": page[-1][0] if page else after,
        "more": len(page) == limit,
    }


def run_timeline(access: StoreAccess, store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The run's task runs by lane and time, bounded (``dag.timeline``): bars, or buckets."""
    run = follow.run_without_counts(store, run_id)
    if run is None:
        return None
    spans = (
        Span(tr_id, name if index is None else f"{name}[{index}]", worker or "", state,
             started, ended, bool(left))
        for tr_id, name, index, worker, state, started, ended, left
        in follow.timeline_rows(store, run.id)
    )
    # A task run the store never saw end (its process died) ends with its run.
    answer = timeline(spans, run.ended or time.time())
    answer.update(run=run.id, state=run.state)
    return answer


def _task_run(task: Any) -> dict[str, Any]:
    return {key: value for key, value in task.to_json().items() if key != "history"}


def _names(store: RunStore, ids: set[str | None]) -> dict[str, str]:
    """The names (``name`` or ``name[i]``) of these task runs: one primary-key read each."""
    return {i: t.name for i, t in follow.task_runs_by_id(store, sorted(filter(None, ids))).items()}


def _elapsed(run: RunRecord, now: float) -> float | None:
    if run.started is None:
        return None
    return max(0.0, (run.ended if run.ended is not None else now) - run.started)


def node_detail(
    access: StoreAccess, store: RunStore, run_id: str, node_id: str, page: int
) -> dict[str, Any] | None:
    """One node of the DAG: its state, the task run a click shows, a page of a map's children
    (the task runs are read from the store: the followed graph keeps counts by node)."""
    run = follow.run_without_counts(store, run_id)
    if run is None:
        return None
    with access.graphs.use(store, run) as followed:
        node = followed.graph.nodes.get(node_id)
        if node is None:
            return None
        name, kind, total = node.name, node.kind, node.total
        state = followed.graph.node_state(node).value
    current = None
    if kind == "task":
        found = follow.node_task_runs(store, run.id, node_id)
        current = task_run_info(run, found[0]) if found else None
    return {
        "node": node_id,
        "name": name,
        "kind": kind,
        "state": state,
        "task_run": None if current is None else {
            **current.to_json(), "traceback": shown_traceback(current.state, current.traceback)
        },
        "children": child_page(
            node_id, total, page, PAGE_SIZE,
            lambda offset, limit: follow.node_task_runs(store, run.id, node_id, offset, limit),
        ) if kind == "map" else None,
    }


def log_page(
    access: StoreAccess, store: RunStore, run_id: str, task: str | None, after: int, limit: int
) -> dict[str, Any] | None:
    """Log lines written after the cursor ``after``, the task runs they belong to (state,
    message, traceback) and how many lines were not stored."""
    run = follow.run_without_counts(store, run_id)
    if run is None:
        return None
    if task:
        # A run tab follows one task run by its id, every second: one primary-key read.
        by_id = follow.task_runs_by_id(store, [task]).get(task)
        chosen = [by_id] if by_id is not None and by_id.run_id == run.id else (
            store.find_task_runs(run.id, task)
        )
        ids: list[str] | None = [t.id for t in chosen]
        names = {t.id: t.name for t in chosen}
    else:
        chosen, ids = [], None
    lines = store.log_page(run.id, ids, after, limit)
    cuts = store.log_cuts(run.id, ids)
    if ids is None:  # the names of these lines' task runs only, not of every task run
        names = _names(store, {line.task_run_id for line in lines} | {c.task_run_id for c in cuts})
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
             "traceback": shown_traceback(t.state, t.traceback), "attempts": t.attempts,
             "left_map": t.left_map}
            for t in chosen
        ],
        "cut": [{"task_run_id": c.task_run_id, "task": names.get(c.task_run_id, ""),
                 "kept": c.kept, "cut": c.cut} for c in cuts],
    }

