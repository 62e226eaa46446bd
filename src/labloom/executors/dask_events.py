"""Worker-side events of task runs (running, log lines, timings) on their way to the engine.

On a worker process the run's engine is elsewhere, so ``TaskCall`` reports to a sink that
publishes each event with ``Worker.log_event`` on the run's topic. Those messages travel on the
worker's batched stream, ahead of the task's own "finished" message, so the client receives a
task's lines in order and before its completion, within milliseconds, without extra round trips.

On the client, the topic handler runs on Dask's event loop, which must never wait for the run's
lock (the engine holds it while it submits). It only queues; one dispatcher thread per executor
delivers events and completions to the engine in arrival order, and ends with the executor.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core import attempt, sink_registry
from ..core.executor import check_mappable
from ..core.idle_thread import IdleEndingThread
from . import dask_messages as messages
from .dask_arguments import unship_arguments
from .dask_shipping import unship
from .dask_text import received_text, received_values, sendable_text, sendable_values

TOPIC_PREFIX = "labloom-"
def topic(run_id: str) -> str:
    return TOPIC_PREFIX + run_id


class WorkerSink:
    """Installed on worker processes: forwards a task run's events to the client's topic.

    Events are buffered per run and sent as one message when the task ends, or every
    ``FLUSH_EVERY`` seconds while it runs: a quick task costs one message, a long one shows
    its lines live.
    """

    FLUSH_EVERY = 0.2
    # A logging call here goes through ``task_values`` (a task call's context reads this).
    add_call = None

    def __init__(self, worker: Any) -> None:
        self._worker = worker
        self._lock = threading.Lock()
        self._buffers: dict[str, list[list[Any]]] = {}
        # Per run: the starts and ends of chunk children, sent with the run's next message.
        self._columns: dict[str, messages.Columns] = {}
        self._held = threading.local()  # set while this thread runs a chunk of children
        threading.Thread(target=self._flush_loop, name="labloom-log-flush", daemon=True).start()

    @contextmanager
    def holding(self, run_id: str) -> Iterator[None]:
        """Within: task ends queue with the rest; at the end, one message for them all (a
        chunk of map children costs one message, not one per child)."""
        self._held.on = True
        try:
            yield
        finally:
            self._held.on = False
            with self._lock:
                self._send(run_id, self._buffers.pop(run_id, []))

    def _send(self, run_id: str, rows: list[list[Any]]) -> None:
        """``rows`` and the run's chunk children's starts and ends as one message (under the
        lock): starts first, so that each comes before its child's log lines."""
        columns = self._columns.pop(run_id, None)
        batch = columns.around(rows) if columns is not None else rows
        if batch:
            self._worker.log_event(topic(run_id), batch)

    def _held_columns(self, run_id: str) -> messages.Columns | None:
        """The run's columns when this thread runs a chunk (call under the lock)."""
        if not getattr(self._held, "on", False):
            return None
        columns = self._columns.get(run_id)
        if columns is None:
            columns = self._columns[run_id] = messages.Columns()
        return columns

    def task_started(self, run_id: str, task_run_id: str, when: float, attempt: int,
                     worker: str = "", rerun: int | None = None) -> None:
        # One timeline lane per worker thread, as Dask's own task stream draws them.
        where = f"{self._worker.address} {worker}".strip()
        rerun = rerun or 0
        with self._lock:
            columns = self._held_columns(run_id)
            if columns is not None:  # a chunk's child: its start travels in a column
                columns.started(task_run_id, when, attempt, where, rerun)
                return
            self._buffers.setdefault(run_id, []).append(
                ["s", task_run_id, when, attempt, where, rerun])

    def task_log(self, run_id: str, task_run_id: str, level: int, when: float, text: str) -> None:
        self._add(run_id, ["l", task_run_id, level, when, sendable_text(text)])

    def task_keyed(self, run_id: str, task_run_id: str, attempt: int, key: str | None,
                   path: str | None, message: str, rerun: int | None = None) -> None:
        self._add(run_id, ["k", task_run_id, attempt, key, path, message, rerun or 0])

    def task_values(self, run_id: str, task_run_id: str, when: float, kind: str,
                    values: dict[str, Any], step: int | None, attempt: int | None = None,
                    rerun: int | None = None) -> None:
        self._add(run_id, ["v", task_run_id, when, kind, sendable_values(values), step, attempt,
                           rerun])

    def task_ended(self, run_id: str, task_run_id: str, attempt: int, started: float,
                   ok: bool | None = None, rerun: int = 0) -> None:
        # ``ok``: whether the call returned (a chunk's children all returned: the client
        # learns their outcomes from these, without asking the cluster).
        now = time.time()
        with self._lock:
            columns = self._held_columns(run_id)
            if columns is not None:  # sent with the chunk's other ends (``holding``)
                columns.ended(task_run_id, attempt, started, now, ok, rerun)
                return
            batch = self._buffers.pop(run_id, [])
            batch.append(["e", task_run_id, attempt, started, now, ok, rerun])
            # Sent before the task's result is announced, on the same ordered stream.
            self._send(run_id, batch)

    def give_back(self, run_id: str, task_run_id: str, attempt: int, rerun: int,
                  slow: int) -> None:
        """The chunk first run by that attempt runs none of its children after ``slow``, which
        holds them (``dask_chunk_ends``): said at once, after the ends of those before it."""
        with self._lock:
            batch = self._buffers.pop(run_id, [])
            batch.append(["g", task_run_id, attempt, rerun, slow])
            self._send(run_id, batch)

    def _add(self, run_id: str, msg: list[Any]) -> None:
        with self._lock:
            self._buffers.setdefault(run_id, []).append(msg)

    def _flush_loop(self) -> None:
        # Owned by the worker: it ends when the worker closes.
        while getattr(self._worker.status, "name", "running") not in _WORKER_GONE:
            time.sleep(self.FLUSH_EVERY)
            with self._lock:
                buffers, self._buffers = self._buffers, {}
                for run_id in {*buffers, *self._columns}:
                    self._send(run_id, buffers.get(run_id, []))


_WORKER_GONE = ("closing", "closed", "closing_gracefully", "failed")


# One sink (and one flush thread) per worker: in-process workers (LocalCluster(processes=False))
# share a process, and a sink must not outlive its worker nor send through another's.
_sinks: weakref.WeakKeyDictionary[Any, WorkerSink] = weakref.WeakKeyDictionary()
_sinks_lock = threading.Lock()


def worker_sink() -> WorkerSink:
    """This worker's sink, installed on first use."""
    from distributed import get_worker

    worker = get_worker()
    sink = _sinks.get(worker)
    if sink is None:
        with _sinks_lock:
            sink = _sinks.get(worker)
            if sink is None:
                sink = _sinks[worker] = WorkerSink(worker)
                sink_registry.set_remote_sink(sink)
    return sink


def invoke(call: attempt.TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any],
           sink: WorkerSink | None = None) -> Any:
    """What a Dask worker runs for one attempt of one task run (``sink``: this worker's, when
    the caller has it: a chunk asks once for all its children)."""
    if sink is None:
        sink = worker_sink()
    started = time.time()
    ok = False
    try:
        call.fn = unship(call.fn, call.task_name)
        args, kwargs = unship_arguments(call, args, kwargs)
        value = call(*args, **kwargs)
        check_serializable(call.task_name, value)
        ok = True
        return value
    finally:
        sink.task_ended(call.run_id, call.task_run_id, call.attempt, started, ok, call.rerun)


def check_serializable(task_name: str, value: Any) -> None:
    """Fail the task run now if Dask could not move its result to another worker or to the
    client: otherwise it is recorded Completed and breaks later, far from its cause.

    Pickled as Dask does (pickle, then cloudpickle; calling distributed's own function would log
    its traceback), with array data passed out of band, into a sink that keeps nothing: a
    large result (bytes, a bytearray) costs no copy of itself, which on a
    worker near its memory limit would get it killed.
    """
    exc = pickling_error(value)
    if exc is not None:
        kind = type(value)
        raise TypeError(
            f"task {task_name!r} returned a {kind.__module__}.{kind.__qualname__} that Dask "
            f"cannot serialize ({type(exc).__name__}: {exc}); Dask must serialize a result to "
            "pass it to another task or back to you. Return plain data (numbers, strings, "
            "lists, dicts, arrays, DataFrames), or create the object inside the task that "
            "uses it"
        ) from None


def pickling_error(value: Any) -> Exception | None:
    """Why Dask could not serialize ``value`` (None: it can), found as Dask would (pickle, then
    cloudpickle), with array data out of band and into a sink that keeps nothing."""
    import pickle

    import cloudpickle

    def drop(buffer: Any) -> None:
        pass

    try:
        try:
            pickle.Pickler(_Discard(), protocol=5, buffer_callback=drop).dump(value)
        except Exception:
            cloudpickle.Pickler(_Discard(), protocol=5, buffer_callback=drop).dump(value)
    except Exception as exc:
        return exc
    return None


def unsendable(exc: Exception) -> TypeError:
    """A task's arguments Dask cannot serialize (a lock, a connection, an open file)."""
    return TypeError(
        f"the task's arguments cannot be sent to a Dask worker ({type(exc).__name__}: {exc}): "
        "Dask must serialize them. Pass plain data (numbers, strings, lists, dicts, arrays, "
        "DataFrames, paths), or create the object (a database connection, a lock, an open "
        "file) inside the task that uses it"
    )


class _Discard:
    """A file that keeps nothing written to it."""

    def write(self, data: Any) -> int:
        return len(data)


def item_count(value: Any) -> int:
    check_mappable(value)  # on the worker: the value stays there
    try:
        return len(value)
    except TypeError:
        return len(list(value))


def item_at(value: Any, index: int) -> Any:
    try:
        return value[index]
    except (TypeError, KeyError):
        return list(value)[index]


class Dispatcher:
    """One thread delivering topic events and future completions in the order they arrived.

    Its owner is the executor: ``stop`` (the executor's shutdown) ends the thread once what is
    queued is delivered. Between runs it also ends when idle, and a later ``put`` starts another.
    """

    def __init__(self, durations: dict[str, tuple[int, float]] | None = None) -> None:
        # Started with work, ended when idle (or by ``stop``).
        self._delivery = IdleEndingThread("labloom-dask-events",
                                          "labloom: Dask event delivery failed")
        # (task_run_id, attempt, rerun) -> (started, ended, returned), from the worker's "e"
        # events (returned: None, rerun: 0 from a worker of an older labloom). The rerun: a
        # cancelled call running on ends with its rerun's attempt (a rerun counts from 1
        # again), and keyed by attempt alone its end gave the rerun's call its times. An end
        # nobody pops (a cancelled call's, arriving after its report; an earlier rerun's)
        # goes with its run: kept only while the run's engine is here (``_route``) and
        # dropped as it ends (``forget``); else a kernel that cancels runs for days grew it.
        self.times: dict[tuple[str, int, int], tuple[float, float, bool | None]] = {}
        # Per task name: (runs measured, their total seconds), for batch_size="auto"; shared by
        # the executors of one client, so a later run starts from what earlier ones measured.
        self.durations = {} if durations is None else durations
        # Each worker thread's lane, kept once: every child's start names one, and a task run
        # (its state change, its row) holds it for the whole run.
        self._lanes: dict[str, str] = {}
        # What a chunk giving children back calls (its first child's attempt, the slow one's
        # place: ``ChunkEnds.given_back``), set by the executor.
        self.given_back: Callable[[tuple[str, int, int], int], None] | None = None

    def ended(self, call: attempt.TaskCall) -> tuple[float, float]:
        """(started, ended) of an attempt, from its worker's events; its duration is counted."""
        started, ended, _ = self.times.pop((call.task_run_id, call.attempt, call.rerun),
                                           (0.0, 0.0, None))
        if ended > started > 0:
            name = call.task_name.split("[", 1)[0]
            count, total = self.durations.get(name, (0, 0.0))
            self.durations[name] = (count + 1, total + ended - started)
        return started, ended

    def returned(self, calls: list[attempt.TaskCall]) -> list[bool]:
        """Whether each of ``calls`` reported that it returned (nothing is taken)."""
        times = self.times
        return [(times.get((call.task_run_id, call.attempt, call.rerun)) or (0, 0, None))[2]
                is True for call in calls]

    def ended_all(self, calls: list[attempt.TaskCall]) -> list[tuple[float, float]] | None:
        """As ``ended`` for each of ``calls`` (a chunk's children, of one task) when each
        reported that it returned, their durations counted once for the chunk; else None,
        and nothing is taken."""
        times = self.times
        keys = [(call.task_run_id, call.attempt, call.rerun) for call in calls]
        found = [times.get(key) for key in keys]
        if not all(t is not None and t[2] is True for t in found):
            return None
        spans: list[tuple[float, float]] = []
        count, total = 0, 0.0
        for key, (started, ended, _) in zip(keys, found, strict=True):  # type: ignore[misc]
            del times[key]
            spans.append((started, ended))
            if ended > started > 0:
                count, total = count + 1, total + ended - started
        if count:
            name = calls[0].task_name.split("[", 1)[0]
            before, seconds = self.durations.get(name, (0, 0.0))
            self.durations[name] = (before + count, seconds + total)
        return spans

    def forget(self, run_id: str) -> None:
        """The run ended (``DaskExecutor.run_ended`` puts this): the ends kept of its calls
        go, none awaited any more. Here, not at each end's arrival: which calls are awaited
        is the engine's to know, and asking it per end would cost every call. In this thread,
        after the run's events queued before it; those after it find the run's engine gone
        (its topic's events still come for a while: the scheduler forwards them until it
        takes the unsubscription) and keep nothing, or are a rerun's, dropped at its end."""
        prefix = f"{run_id}."  # a task run's id is its run's, numbered (``TaskGraph``)
        for key in [key for key in self.times if key[0].startswith(prefix)]:
            del self.times[key]

    def mean_duration(self, task_name: str) -> float | None:
        count, total = self.durations.get(task_name, (0, 0.0))
        return total / count if count else None

    def put(self, fn: Callable[..., None], *args: Any) -> None:
        self._delivery.put(fn, *args)

    def stop(self) -> None:
        """End the thread once what is queued is delivered."""
        self._delivery.stop()

    def handler(self, run_id: str) -> Callable[[Any], None]:
        def on_event(event: Any) -> None:
            self.put(self._route, run_id, event[1])
        # Each event is a batch of messages from one worker, in the order they happened.

        return on_event

    def _route(self, run_id: str, batch: list[list[Any]]) -> None:
        sink = sink_registry.local_sink(run_id)
        if sink is None:
            return  # the run ended (its engine is gone): nobody waits for its news any more
        # Starts are handed over together (a chunk's children: one step of the engine for all
        # of them), before any other news of theirs.
        starts: list[tuple[str, float, int, str, int | None]] = []
        given_back: list[list[Any]] = []
        lanes = self._lanes
        for msg in batch:
            kind = msg[0]
            if kind == "e":
                self.times[(msg[1], msg[2], msg[6] if len(msg) > 6 else 0)] = \
                    (msg[3], msg[4], msg[5] if len(msg) > 5 else None)
                continue
            if kind == "E":  # a chunk's ends, packed (``dask_messages``)
                self.times.update({(trid, attempt, rerun or 0): (started, ended, ok)
                                   for trid, attempt, started, ended, ok, rerun
                                   in messages.ends_of(msg)})
                continue
            if kind == "s":
                # A worker of an older labloom sends no lane.
                lane = msg[4] if len(msg) > 4 else ""
                starts.append((msg[1], msg[2], msg[3], lanes.setdefault(lane, lane),
                               msg[5] if len(msg) > 5 else None))
                continue
            if kind == "S":
                starts += [(trid, when, attempt, lanes.setdefault(lane, lane), rerun)
                           for trid, when, attempt, lane, rerun in messages.starts_of(msg)]
                continue
            if starts:
                sink_registry.started_all(sink, run_id, starts)
                starts = []
            if kind == "l":
                sink.task_log(run_id, msg[1], msg[2], msg[3], received_text(msg[4]))
            elif kind == "k":
                sink.task_keyed(run_id, msg[1], msg[2], msg[3], msg[4], msg[5],
                                msg[6] if len(msg) > 6 else None)
            elif kind == "v":
                # Its attempt and rerun: the engine drops a call of one that is no longer
                # current (a worker's call still in flight after its task run's retry started,
                # a cancelled call running on after the run's rerun started).
                sink.task_values(run_id, msg[1], msg[2], msg[3], received_values(msg[4]),
                                 msg[5], msg[6] if len(msg) > 6 else None,
                                 msg[7] if len(msg) > 7 else None)
            elif kind == "g":
                given_back.append(msg)
        if starts:
            sink_registry.started_all(sink, run_id, starts)
        # Last: the ends of the children that ran before the slow one come after its "g".
        for msg in given_back:
            if self.given_back is not None:
                self.given_back((msg[1], msg[2], msg[3]), msg[4])
