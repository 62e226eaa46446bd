"""The event stream: typed events, and a bus that feeds subscribers in batches off the hot path.

The engine is the only producer. Emitting appends to each subscriber's own queue; each
subscriber's own thread delivers its queue every ``FLUSH_INTERVAL`` seconds, so a slow observer
(the store, a widget) never slows task execution, another observer or another run, and a
subscriber that raises is reported once and otherwise ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from .delivery import BLOCK_SLICE as BLOCK_SLICE
from .delivery import FLUSH_INTERVAL as FLUSH_INTERVAL
from .delivery import MAX_BATCH as MAX_BATCH
from .delivery import NO_PROGRESS as NO_PROGRESS
from .delivery import PACE as PACE
from .delivery import Delivery
from .delivery import EventBlock as EventBlock
from .delivery import numbered as numbered
from .event_holding import Held, Holder, Holding
from .interrupts_held import InterruptsHeld
from .states import State

T = TypeVar("T")


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


def _equal_to_its_own_kind(cls: type[T]) -> type[T]:
    """A tuple event equal only to an event of its class with the same fields, as a
    dataclass is, never to a plain tuple or another event's tuple."""
    def __eq__(self: tuple[Any, ...], other: object) -> bool:
        return type(other) is cls and tuple.__eq__(self, other)

    def __ne__(self: tuple[Any, ...], other: object) -> bool:
        return not self == other

    cls.__eq__ = __eq__  # type: ignore[method-assign,assignment]
    cls.__ne__ = __ne__  # type: ignore[method-assign,assignment]
    cls.__hash__ = tuple.__hash__  # type: ignore[method-assign,assignment]
    return cls


@_equal_to_its_own_kind
class TaskRunCreated(NamedTuple):
    """A task run was made. A tuple, as ``StateChanged`` (see there): one is built per task
    run, and a frozen dataclass's ``__init__`` cost 0.94 µs against 0.25 µs for the tuple."""

    run_id: str
    task_run_id: str
    node_id: str
    task_name: str
    map_index: int | None
    upstream: tuple[str, ...]  # task run ids
    time: float
    cache_key: str | None = None


@_equal_to_its_own_kind
class StateChanged(NamedTuple):
    """A task run's new state. A tuple, not a frozen dataclass: two are built per task run
    (started, ended), and a frozen dataclass's ``__init__`` sets each of its ten fields through
    ``object.__setattr__`` (1.0 us against 0.3 us for the tuple); a tuple is as immutable for
    the subscribers that share it. Equal only to a ``StateChanged`` with the same fields, as a
    dataclass is, never to a plain tuple."""

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
    # The task run's state before this one and its graph node, stored with the state row so
    # that a view following the store counts changes by node without a read per task run
    # (``store/follow.py``); None when the sender does not know them (a replay).
    before: State | None = None
    node_id: str | None = None


@dataclass(frozen=True)
class TaskRunKeyed:
    """A task run's cache key is known, and where its result is read from or saved to."""

    run_id: str
    task_run_id: str
    cache_key: str
    result_path: str | None
    time: float


@dataclass(frozen=True)
class TaskRunLeftMap:
    """A map's child is its child no more: a retry split the map's input again into fewer
    items, or the flow body, run again, mapped over fewer. Its record stays, as history (its
    state, why in ``message``, its last run's ``started`` and ``ended``); views count it out
    of the map (its counts, state and width). What it logged is forgotten as a retry's is
    (a "reset" logging call): no row of the run's sweep."""

    run_id: str
    task_run_id: str
    node_id: str
    time: float
    message: str
    started: float | None = None
    ended: float | None = None


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
    (``kind``), by name; ``step`` for a point of a curve. A running run sends its calls a
    batch at a time (``ExperimentCalls``); a late subscriber is replayed them one by one."""

    run_id: str
    task_run_id: str
    time: float
    kind: str  # "param", "metric", or "reset" (the task run starts over: experiments.RESET)
    values: dict[str, Any]
    step: int | None = None

    @property
    def calls(self) -> tuple[Call, ...]:
        """This call as ``ExperimentCalls.calls`` gives each: (task run id, kind, values, step,
        time), so readers take either event alike."""
        return ((self.task_run_id, self.kind, self.values, self.step, self.time),)

    @property
    def columns(self) -> Columns:
        """This call as ``ExperimentCalls.columns`` gives a batch's."""
        return [self.task_run_id], [self.kind], [self.values], [self.step], [self.time]


# One logging call as a run keeps it, stored and read back in this order (``Logged`` in
# ``experiments.py``): (task run id, kind, values by name, step, time).
Call = tuple[str, str, dict[str, Any], int | None, float]
# Calls by column, in that order: how the store packs a batch of them (``store/logged_calls.py``).
# Lists or tuples (a batch's own columns are the tuples ``zip`` made of its calls).
Columns = tuple[Sequence[str], Sequence[str], Sequence[dict[str, Any]], Sequence[int | None],
                Sequence[float]]


# Not frozen, unlike the other events (nothing changes one once made all the same): a frozen
# dataclass's __init__ sets each field through object.__setattr__, 10.9k instructions an event
# against 3.3k, and a batch of reports makes one, most often for a single call (issue 19).
@dataclass(slots=True)
class ExperimentCalls:
    """The logging calls of a run's task runs applied in one batch of its reports
    (``sinks.ExecutorSink``), in the order logged: the same as one ``ExperimentValues`` per
    call, as one event. A map whose children each log once emitted as many events more as
    task runs, each built, queued, delivered and folded by the store (issue 19's cost). By
    column, nothing per call: what waits for the store is no work for the garbage collector."""

    run_id: str
    task_run_ids: Sequence[str]
    kinds: Sequence[str]
    values: Sequence[dict[str, Any]]
    steps: Sequence[int | None]
    times: Sequence[float]

    @property
    def calls(self) -> Iterator[Call]:
        """Each call as (task run id, kind, values, step, time)."""
        return zip(self.task_run_ids, self.kinds, self.values, self.steps, self.times,
                   strict=True)

    @property
    def columns(self) -> Columns:
        """The calls by column: (task run ids, kinds, values, steps, times)."""
        return self.task_run_ids, self.kinds, self.values, self.steps, self.times

    def each(self) -> list[ExperimentValues]:
        return [ExperimentValues(self.run_id, task_run_id, when, kind, values, step)
                for task_run_id, kind, values, step, when in self.calls]


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
    RunCreated | NodeCreated | TaskRunCreated | StateChanged | TaskRunKeyed | TaskRunLeftMap |
    LogRecord | LogLinesDropped | ExperimentValues | ExperimentCalls | RunStateChanged |
    RunFinished
)
Subscriber = Callable[[list[Event]], None]
# What of a task run may be delivered before the rest of a block that does not announce it.
_NEWS = (StateChanged, LogRecord, TaskRunKeyed, TaskRunLeftMap, ExperimentValues,
         ExperimentCalls, LogLinesDropped)

class Subscription:
    """What ``EventBus.subscribe`` returns: call it to unsubscribe."""

    def __init__(self, bus: EventBus, delivery: Delivery) -> None:
        self._bus = bus
        self._delivery = delivery

    def __call__(self) -> None:
        self._bus._remove(self._delivery)

    def drain(self) -> None:
        """Deliver what is queued for this subscriber now, in the caller's thread."""
        self._delivery.drain()


class EventBus:
    """One run's event stream. ``subscribe(callback)`` gets lists of events, in order.

    Each subscriber has its own queue and thread (see ``Delivery``); emitting is an append
    per subscriber. The bus keeps no history when its producer can describe the run so far
    (``subscribe(..., replay=events)``); a bus built without one (``EventBus(history=True)``,
    for tests and tools) keeps every event to replay.
    """

    def __init__(self, history: bool = True, name: str = "labloom-events") -> None:
        self._lock = threading.Lock()
        self._deliveries: tuple[Delivery, ...] = ()
        self._name = name
        self._closed = False
        self.history: list[Event] | None = [] if history else None
        self._unpaced_until = 0.0
        self._holding = Held()  # .events: what this thread holds (``holding``)
        self.holder = Holder(self._holding, self._emit_all, self._emit_each)

    def pace(self) -> None:
        """Wait while a subscriber's queue is over its limit and shrinking (outside any lock)."""
        if time.monotonic() < self._unpaced_until:
            return
        lowest = self._over()
        since = time.monotonic()
        while lowest > 0:
            time.sleep(0.002)
            now, backlog = time.monotonic(), self._over()
            if backlog < lowest:
                lowest, since = backlog, now
            elif now - since > NO_PROGRESS:
                self._unpaced_until = now + 6 * NO_PROGRESS
                return

    def holding(self) -> Holding:
        """What this thread emits inside reaches the subscribers' queues at once, in order, when
        the outermost ``holding`` ends (also on an error): a Dask chunk's ends, a thousand
        state changes, take the bus's lock and each queue once, not once per event. Other
        threads' events go on as before."""
        return Holding(self.holder)

    def emit(self, event: Event | EventBlock) -> None:
        held = self._holding.events
        if held is not None:
            held.append(event)
            if type(event) is EventBlock:
                self._holding.blocks = True
            return
        with self._lock:
            self._append(event)

    def emit_all(self, events: list[Event]) -> None:
        """``emit`` of each (a Dask chunk's children's state changes): one call, not one each."""
        held = self._holding.events
        if held is not None:
            held += events
            return
        self._emit_all(events)

    def _emit_all(self, events: list[Event]) -> None:
        """``emit`` of each (no block among them), under the bus's lock once."""
        if not events:
            return
        with self._lock:
            if self.history is not None:
                self.history += events
            for delivery in self._deliveries:
                delivery.queue.extend(events)

    def _emit_each(self, events: list[Event | EventBlock]) -> None:
        """``emit`` of each, a block among them (a map expanded inside a hold): rare."""
        with self._lock:
            for event in events:
                self._append(event)

    def _append(self, event: Event | EventBlock) -> None:
        """Queue ``event`` for every subscriber (the bus's lock held)."""
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

    def _over(self) -> int:
        return max((len(d.queue) - d.limit() for d in self._deliveries if d.running), default=0)

    def subscribe(
        self, callback: Subscriber, replay: bool | Sequence[Event] = False, now: bool = True
    ) -> Subscription:
        """Add ``callback``; returns a ``Subscription``: call it to unsubscribe.

        ``replay=True`` first hands it every event so far (a bus with history); a list of
        events hands it those (the producer's account of the run so far), so the callback
        sees the run exactly once, in order. With ``now`` the replay is delivered before this
        returns, in the caller's thread; else call ``.drain()`` on the result.
        """
        # Whole or not at all (interrupts_held.py): a Ctrl-C landing as the subscriber's thread
        # started (``Thread.start`` waits for it) left that thread looping for good and the
        # subscriber unknown to the bus: the store's, the run was never recorded.
        with InterruptsHeld(), self._lock:
            # On a closed bus (a finished run) the replay is all there is: no thread.
            delivery = Delivery(callback, self._name, running=not self._closed, news=_NEWS)
            if replay is True:
                delivery.queue.extend(self.history or ())
            elif replay:
                delivery.queue.extend(replay)
            self._deliveries += (delivery,)
        subscription = Subscription(self, delivery)
        if now:
            delivery.drain()
        return subscription

    def _remove(self, delivery: Delivery) -> None:
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
