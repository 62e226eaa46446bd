"""The event stream: typed events, and a bus that feeds subscribers in batches off the hot path.

The engine is the only producer. Emitting appends to each subscriber's own queue; each
subscriber's own thread delivers its queue every ``FLUSH_INTERVAL`` seconds, so a slow observer
(the store, a widget) never slows task execution, another observer or another run, and a
subscriber that raises is reported once and otherwise ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .states import State

log = logging.getLogger("labloom")

FLUSH_INTERVAL = 0.05


@dataclass(frozen=True)
class RunCreated:
    run_id: str
    flow_name: str
    parameters: dict[str, Any]
    executor: str
    origin: str  # "script", "notebook" or "schedule"
    host: str
    time: float
    source_hash: str = ""
    # Free-form facts for views, e.g. {"dashboard": "http://127.0.0.1:8787/status"}.
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeCreated:
    """A node of the run's graph: one task call, or one map (whatever its width)."""

    run_id: str
    node_id: str
    name: str
    kind: str  # "task" or "map"
    upstream: tuple[str, ...]  # node ids
    time: float


@dataclass(frozen=True, slots=True)
class TaskRunCreated:
    run_id: str
    task_run_id: str
    node_id: str
    task_name: str
    map_index: int | None
    upstream: tuple[str, ...]  # task run ids
    time: float
    cache_key: str | None = None


@dataclass(frozen=True, slots=True)
class StateChanged:
    run_id: str
    task_run_id: str
    state: State
    time: float
    message: str = ""
    attempt: int = 0
    traceback: str = ""
    # Where the attempt runs (a thread's name; a Dask worker's address and thread), for the
    # run's timeline; "" when not known (not started, or an old store).
    worker: str = ""


@dataclass(frozen=True)
class TaskRunKeyed:
    """A task run's cache key is known, and where its result is read from or saved to."""

    run_id: str
    task_run_id: str
    cache_key: str
    result_path: str | None
    time: float


@dataclass(frozen=True, slots=True)
class LogRecord:
    run_id: str
    task_run_id: str | None  # None: logged by the flow body itself
    level: int
    time: float
    text: str


@dataclass(frozen=True, slots=True)
class ExperimentValues:
    """What one logging call of a task run recorded (``log_metrics``, ...): params or metrics
    (``kind``), by name; ``step`` for a point of a curve."""

    run_id: str
    task_run_id: str
    time: float
    kind: str  # "param" or "metric"
    values: dict[str, Any]
    step: int | None = None


@dataclass(frozen=True)
class LogLinesDropped:
    """The engine kept no more of a task run's lines past its cap: ``dropped`` so far in all."""

    run_id: str
    task_run_id: str
    dropped: int
    time: float


@dataclass(frozen=True)
class RunStateChanged:
    run_id: str
    state: State
    time: float
    message: str = ""


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    state: State
    time: float
    message: str = ""
    # The run's metadata when the executor learned more while it ran (the most workers a
    # cluster per run had); empty when nothing changed since RunCreated.
    metadata: dict[str, Any] = field(default_factory=dict)


Event = (
    RunCreated
    | NodeCreated
    | TaskRunCreated
    | StateChanged
    | TaskRunKeyed
    | LogRecord
    | LogLinesDropped
    | ExperimentValues
    | RunStateChanged
    | RunFinished
)
Subscriber = Callable[[list[Event]], None]

# The most events one delivery hands a subscriber: a map of a million children is delivered
# (and stored) a slice at a time, never as one batch.
MAX_BATCH = 10_000
# Events waiting for a subscriber (the store, mostly) past which the engine waits before it
# launches more task runs: memory stays bounded when a million of them run faster than they
# can be recorded. Waiting stops when the queue stops shrinking (a store that is down).
PACE = 20_000
NO_PROGRESS = 5.0  # seconds without a shrinking queue before pacing gives up for a while


class EventBlock:
    """Many events of one kind, made when delivered: ``make(i)`` for i in ``range(count)``.
    A map's children are announced this way, so a million ``TaskRunCreated`` never wait in
    a queue at once; ``make`` must read only what no longer changes."""

    __slots__ = ("count", "make")

    def __init__(self, make: Callable[[int], Event], count: int) -> None:
        self.make = make
        self.count = count


class _Delivery:
    """One subscriber's queue and pace: its own thread hands it what queued, in order, every
    ``FLUSH_INTERVAL`` seconds, so a slow subscriber only ever delays itself."""

    def __init__(self, callback: Subscriber, name: str, running: bool = True) -> None:
        self.callback = callback
        # Events, and [block, next index] for an EventBlock being delivered.
        self.queue: deque[Any] = deque()
        self._lock = threading.RLock()  # one delivery at a time, whoever drives it
        self._stop = threading.Event()
        self._reported = False
        self._name = name
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if running:
            self.start()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop,), name=self._name,
                                        daemon=True)
        self._thread.start()

    def drain(self) -> None:
        with self._lock:
            while self.queue:
                batch = self._take()
                try:
                    self.callback(batch)
                except Exception:
                    # A broken observer must never break the run; say so once.
                    if not self._reported:
                        self._reported = True
                        log.exception(
                            "[labloom] event subscriber %r raised; ignoring it", self.callback
                        )

    def _take(self) -> list[Event]:
        queue = self.queue
        batch: list[Event] = []
        while queue and len(batch) < MAX_BATCH:
            item = queue[0]
            if type(item) is not list:
                batch.append(queue.popleft())
                continue
            block, start = item
            end = min(block.count, start + MAX_BATCH - len(batch))
            batch += [block.make(i) for i in range(start, end)]
            item[1] = end
            if end >= block.count:
                queue.popleft()
        return batch

    def stop(self, wait: bool = True) -> None:
        """Deliver what is queued, then end the thread (the bus owns it)."""
        self._stop.set()
        thread = self._thread
        if wait and thread is not None and threading.current_thread() is not thread:
            thread.join()
        self.drain()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(FLUSH_INTERVAL):
            self.drain()


class Subscription:
    """What ``EventBus.subscribe`` returns: call it to unsubscribe."""

    def __init__(self, bus: EventBus, delivery: _Delivery) -> None:
        self._bus = bus
        self._delivery = delivery

    def __call__(self) -> None:
        self._bus._remove(self._delivery)

    def drain(self) -> None:
        """Deliver what is queued for this subscriber now, in the caller's thread."""
        self._delivery.drain()


class EventBus:
    """One run's event stream. ``subscribe(callback)`` gets lists of events, in order.

    Each subscriber has its own queue and thread (see ``_Delivery``); emitting is an append
    per subscriber. The bus keeps no history when its producer can describe the run so far
    (``subscribe(..., replay=events)``); a bus built without one (``EventBus(history=True)``,
    for tests and tools) keeps every event to replay.
    """

    def __init__(self, history: bool = True, name: str = "labloom-events") -> None:
        self._lock = threading.Lock()
        self._deliveries: tuple[_Delivery, ...] = ()
        self._name = name
        self._closed = False
        self.history: list[Event] | None = [] if history else None
        self._unpaced_until = 0.0

    def pace(self) -> None:
        """Wait while a subscriber's queue is over ``PACE`` and shrinking (outside any lock)."""
        if time.monotonic() < self._unpaced_until:
            return
        lowest = self.backlog()
        since = time.monotonic()
        while lowest > PACE:
            time.sleep(0.002)
            now, backlog = time.monotonic(), self.backlog()
            if backlog < lowest:
                lowest, since = backlog, now
            elif now - since > NO_PROGRESS:
                self._unpaced_until = now + 6 * NO_PROGRESS
                return

    def emit(self, event: Event | EventBlock) -> None:
        with self._lock:
            if isinstance(event, EventBlock):
                if self.history is not None:
                    self.history += [event.make(i) for i in range(event.count)]
                for delivery in self._deliveries:
                    delivery.queue.append([event, 0])  # each subscriber's own place in it
                return
            if self.history is not None:
                self.history.append(event)
            for delivery in self._deliveries:
                delivery.queue.append(event)

    def backlog(self) -> int:
        """The longest queue of a subscriber whose thread delivers it (a block counts once):
        the engine waits for it to shrink before launching more (``Launcher.work``)."""
        return max((len(d.queue) for d in self._deliveries if d.running), default=0)

    def subscribe(
        self, callback: Subscriber, replay: bool | Sequence[Event] = False, now: bool = True
    ) -> Subscription:
        """Add ``callback``; returns a ``Subscription``: call it to unsubscribe.

        ``replay=True`` first hands it every event so far (a bus with history); a list of
        events hands it those (the producer's account of the run so far), so the callback
        sees the run exactly once, in order. With ``now`` the replay is delivered before this
        returns, in the caller's thread; else call ``.drain()`` on the result.
        """
        with self._lock:
            # On a closed bus (a finished run) the replay is all there is: no thread.
            delivery = _Delivery(callback, self._name, running=not self._closed)
            if replay is True:
                delivery.queue.extend(self.history or ())
            elif replay:
                delivery.queue.extend(replay)
            self._deliveries += (delivery,)
        subscription = Subscription(self, delivery)
        if now:
            delivery.drain()
        return subscription

    def _remove(self, delivery: _Delivery) -> None:
        with self._lock:
            self._deliveries = tuple(d for d in self._deliveries if d is not delivery)
        delivery.stop(wait=False)

    def flush(self) -> None:
        """Deliver everything emitted so far (blocking, in the caller's thread)."""
        for delivery in self._deliveries:
            delivery.drain()

    def close(self) -> None:
        """Deliver what is queued and stop every subscriber's thread; subscribers stay, so
        ``reopen`` (a retried run) delivers to them again."""
        with self._lock:
            self._closed = True
        for delivery in self._deliveries:
            delivery.stop()

    def reopen(self) -> None:
        with self._lock:
            self._closed = False
        for delivery in self._deliveries:
            delivery.start()
