"""Getting task runs to the Dask scheduler: in batches, and short map children in chunks.

``Submitter`` sends what accumulated since its last message as one graph: ``client.submit``
costs the scheduler one graph update per task, so a map of 5,000 children submitted one by
one took about 1.5x the time of ``client.map``.

A task with ``batch_size=N`` has its map children packed N to a Dask task (``run_chunk``):
scheduling, transfer and bookkeeping are paid per chunk, not per child, while each child keeps
its own task run. Inside a chunk each child is a ``TaskCall`` of its own: it reports running,
its log lines, its start and end to the engine as any task run does, has its own timeout and
cache file, and fails alone: ``chunk_outcomes`` (a second, tiny Dask task) says which
children failed and why, without moving their values. A failed child is retried on its own.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.attempt import TaskCall, user_traceback
from ..core.executor import DoneCallback, Outcome
from . import dask_events as events
from .dask_internals import send_graph, task_spec, watch

if TYPE_CHECKING:
    from .dask import DaskExecutor

log = logging.getLogger("labloom")

IDLE_EXIT = 5.0  # seconds the submitting thread waits for work before it ends
GATHER_WAIT = 0.005  # how long an unfilled chunk waits for more children to arrive


class Handle:
    """A task run on Dask: its future, or its chunk's future and its place in the chunk."""

    __slots__ = ("cancelled", "future", "index", "item")

    def __init__(self) -> None:
        self.future: Any = None
        self.index: int | None = None
        self.item: Any = None  # the future of this child's value alone, made when needed
        self.cancelled = False


class ChildFailed:
    """In a chunk's result, where a child raised (its value is not there)."""

    __slots__ = ("error", "traceback")

    def __init__(self, error: BaseException, traceback: str) -> None:
        self.error = error
        self.traceback = traceback


def run_chunk(members: list[tuple[TaskCall, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
    """On a worker: each child's call in turn, one failing not stopping the others; their
    ends reach the engine in one message, before the chunk's own result."""
    out: list[Any] = []
    if not members:
        return out
    with events.worker_sink().holding(members[0][0].run_id):
        for call, args, kwargs in members:
            try:
                out.append(events.invoke(call, args, kwargs))
            except Exception as exc:
                out.append(ChildFailed(exc, user_traceback(exc)))
    return out


def chunk_outcomes(values: list[Any]) -> list[tuple[bool, BaseException | None, str]]:
    return [(False, v.error, v.traceback) if isinstance(v, ChildFailed) else (True, None, "")
            for v in values]


Member = tuple[TaskCall, tuple[Any, ...], dict[str, Any], Handle, DoneCallback]


class Submitter:
    def __init__(self, executor: DaskExecutor) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        # key -> (spec, resources, not_sent, future, done)
        self._pending: dict[str, tuple[Any, tuple[tuple[str, float], ...], Any, Any, Any]] = {}
        self._members: list[Member] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(
        self, key: str, spec: Any, resources: dict[str, float] | None,
        not_sent: Callable[[Exception], None], future: Any, done: Callable[[Any], None],
    ) -> None:
        """Send ``spec`` with the next batch; ``done(future)`` runs once it finished."""
        with self._lock:
            resource_key = tuple(sorted((resources or {}).items()))
            self._pending[key] = (spec, resource_key, not_sent, future, done)
            self._start()
        self._wake.set()

    def add_member(self, member: Member) -> None:
        """A map child of a task with ``batch_size``: it waits to fill a chunk."""
        with self._lock:
            self._members.append(member)
            self._start()
        self._wake.set()

    def _start(self) -> None:
        self._stopped = False
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="labloom-dask-submit",
                                            daemon=True)
            self._thread.start()

    def drop(self, keys: set[str]) -> None:
        with self._lock:
            for key in keys:
                self._pending.pop(key, None)

    def stop(self) -> None:
        """End the thread (the executor's shutdown); a later ``add`` starts another."""
        with self._lock:
            self._stopped = True
        self._wake.set()

    def _loop(self) -> None:
        while True:
            woken = self._wake.wait(IDLE_EXIT)
            self._wake.clear()
            growing = self._gather_members()
            with self._lock:
                batch, self._pending = self._pending, {}
                members, self._members = self._members, []
                if not batch and not members and (self._stopped or not woken):
                    self._thread = None  # stopped, or idle: a later add starts another
                    return
            failed: set[str] = set()  # keys whose task runs were already told they failed
            try:
                self._send(batch, members, growing, failed)
            except Exception as exc:  # a dead thread would leave its runs waiting forever
                self._not_sent(batch, members, exc, failed)
            # Not kept while waiting: they hold futures, and a run's futures must go with it.
            del batch, members

    def _not_sent(
        self, batch: dict[str, Any], members: list[Member], error: Exception, failed: set[str]
    ) -> None:
        """Each task run of a batch that broke off is told once, except those put back."""
        log.exception("labloom: sending tasks to Dask failed")
        with self._lock:
            waiting = {id(member) for member in self._members}  # put back for the next batch
        for key, entry in batch.items():
            if key not in failed:
                entry[2](error)
        _chunk_not_sent([
            member for member in members if id(member) not in waiting
            and (member[3].future is None or member[3].future.key not in failed)
        ])(error)

    def _gather_members(self) -> bool:
        """Children are launched one by one: wait while they keep coming, but no longer than
        it takes to fill a chunk. True when more were still arriving."""
        seen = -1
        while True:
            with self._lock:
                count = len(self._members)
                full = max((m[0].batch_size for m in self._members
                            if isinstance(m[0].batch_size, int)), default=1)
            if count in (0, seen):
                return False
            if count >= full:
                return True
            seen = count
            time.sleep(GATHER_WAIT)

    def _send(
        self, batch: dict[str, Any], members: list[Member], growing: bool, failed: set[str]
    ) -> None:
        from distributed import Future

        client = self._executor.client
        batch = dict(batch)  # chunks join it here; the caller's copy says what was asked
        chunks, rest = self._chunks(members, full_only=growing)
        if rest:  # an unfilled chunk waits for the children still arriving
            with self._lock:
                self._members[:0] = rest
            self._wake.set()
        for key, chunk in chunks.items():
            future: Any = Future(key, client)
            for index, (_, _, _, handle, _) in enumerate(chunk):
                handle.future, handle.index = future, index
            calls = [(call, args, kwargs) for call, args, kwargs, _, _ in chunk]
            batch[key] = (task_spec(key, run_chunk, calls), (), _chunk_not_sent(chunk), future,
                          None)
        groups: dict[tuple[tuple[str, float], ...], dict[str, Any]] = {}
        for key, (spec, resources, *_) in batch.items():
            groups.setdefault(resources, {})[key] = spec
        watched: list[tuple[Any, Callable[[Any], None]]] = []
        for resources, graph in groups.items():
            try:
                send_graph(client, graph, dict(resources) or None)
            except Exception as exc:  # e.g. an argument that cannot be pickled
                for key in graph:
                    batch[key][2](exc)
                failed.update(graph)
                continue
            for key in graph:
                if key in chunks:
                    watched.append(self._status_of(chunks[key]))
                else:
                    watched.append((batch[key][3], batch[key][4]))
        watch(client, watched)

    def _chunks(
        self, members: list[Member], full_only: bool = False
    ) -> tuple[dict[str, list[Member]], list[Member]]:
        by_task: dict[tuple[str, str, int], list[Member]] = {}
        for member in members:
            call, handle = member[0], member[3]
            if handle.cancelled:
                continue
            name = call.task_name.split("[", 1)[0]
            size = call.batch_size if isinstance(call.batch_size, int) else 1
            by_task.setdefault((call.run_id, name, size), []).append(member)
        chunks: dict[str, list[Member]] = {}
        rest: list[Member] = []
        for (_, name, size), group in by_task.items():
            for start in range(0, len(group), size):
                chunk = group[start:start + size]
                if full_only and len(chunk) < size:
                    rest += chunk
                    continue
                first = chunk[0][0]
                chunks[f"{name}-chunk-{first.task_run_id}-{first.attempt}"] = chunk
        return chunks, rest

    def _status_of(self, chunk: list[Member]) -> tuple[Any, Callable[[Any], None]]:
        """The chunk's outcomes task, and what to do when it is done."""
        executor = self._executor
        dispatcher = executor.dispatcher
        future = chunk[0][3].future
        status = executor.client.submit(chunk_outcomes, future, key=f"status-{future.key}")
        return status, lambda done: dispatcher.put(_report_chunk, done, future, chunk, dispatcher)


def _chunk_not_sent(chunk: list[Member]) -> Callable[[Exception], None]:
    def not_sent(error: Exception) -> None:
        for _, _, _, _, on_done in chunk:
            on_done(Outcome(ok=False, error=error, traceback=str(error)))

    return not_sent


def _report_chunk(
    status: Any, chunk_future: Any, chunk: list[Member], dispatcher: events.Dispatcher
) -> None:
    """Each child's Outcome from its chunk's (in the delivery thread)."""
    from .dask import report

    if status.status != "finished":
        for call, _, _, _, on_done in chunk:  # the chunk itself failed: a dead worker, a cancel
            report(chunk_future, call, on_done, dispatcher)
        return
    for (call, _, _, _, on_done), (ok, error, text) in zip(chunk, status.result(), strict=True):
        started, ended = dispatcher.ended(call)
        on_done(Outcome(ok=ok, error=error, traceback=text, started=started, ended=ended))


def item_future(client: Any, handle: Handle) -> Any:
    """The future of one child's value (a chunk's item, picked on the cluster)."""
    if handle.index is None:
        return handle.future
    if handle.item is None:
        chunk = handle.future
        handle.item = client.submit(operator.getitem, chunk, handle.index,
                                    key=f"item-{handle.index}-{chunk.key}")
    return handle.item
