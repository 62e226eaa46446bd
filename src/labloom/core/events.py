"""The event stream: typed events, and a bus that feeds subscribers in batches off the hot path.

The engine is the only producer. Emitting is a deque append; one daemon thread per process
delivers pending events to each bus's subscribers every ``FLUSH_INTERVAL`` seconds, so a slow
observer (the store, a widget) never slows task execution, and a subscriber that raises is
reported once and otherwise ignored.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
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


@dataclass(frozen=True)
class TaskRunCreated:
    run_id: str
    task_run_id: str
    node_id: str
    task_name: str
    map_index: int | None
    upstream: tuple[str, ...]  # task run ids
    time: float
    cache_key: str | None = None


@dataclass(frozen=True)
class StateChanged:
    run_id: str
    task_run_id: str
    state: State
    time: float
    message: str = ""
    attempt: int = 0
    traceback: str = ""


@dataclass(frozen=True)
class TaskRunKeyed:
    """A task run's cache key is known, and where its result is read from or saved to."""

    run_id: str
    task_run_id: str
    cache_key: str
    result_path: str | None
    time: float


@dataclass(frozen=True)
class LogRecord:
    run_id: str
    task_run_id: str | None  # None: logged by the flow body itself
    level: int
    time: float
    text: str


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


Event = (
    RunCreated
    | NodeCreated
    | TaskRunCreated
    | StateChanged
    | TaskRunKeyed
    | LogRecord
    | LogLinesDropped
    | RunStateChanged
    | RunFinished
)
Subscriber = Callable[[list[Event]], None]


class EventBus:
    """One run's event stream. ``subscribe(callback)`` gets lists of events, in order."""

    def __init__(self) -> None:
        self._pending: deque[Event] = deque()
        # Every event delivered so far, so a view attached late (a widget shown after the run
        # started, ``%flow_runs``) can replay the run; bounded by the run's size.
        self.history: list[Event] = []
        self._subscribers: list[Subscriber] = []
        self._deliver_lock = threading.Lock()
        self._reported: set[int] = set()
        _Dispatcher.instance().register(self)

    def emit(self, event: Event) -> None:
        self._pending.append(event)

    def subscribe(self, callback: Subscriber, replay: bool = False) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it.

        With ``replay=True`` the callback first receives every event delivered so far, so it
        sees the whole run exactly once, in order.
        """
        with self._deliver_lock:
            if replay and self.history:
                self._call(callback, list(self.history))
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._deliver_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def flush(self) -> None:
        """Deliver everything emitted so far (blocking). Safe from any thread."""
        with self._deliver_lock:
            batch: list[Event] = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                return
            self.history.extend(batch)
            for callback in list(self._subscribers):
                self._call(callback, batch)

    def _call(self, callback: Subscriber, batch: list[Event]) -> None:
        try:
            callback(batch)
        except Exception:
            # A broken observer must never break the run; say so once per observer.
            if id(callback) not in self._reported:
                self._reported.add(id(callback))
                log.exception("[labloom] event subscriber %r raised; ignoring it", callback)

    def close(self) -> None:
        self.flush()
        _Dispatcher.instance().unregister(self)

    def reopen(self) -> None:
        """After close(): deliver again (a retried run emits more events)."""
        _Dispatcher.instance().register(self)


class _Dispatcher:
    _instance: _Dispatcher | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._buses: weakref.WeakSet[EventBus] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="labloom-events", daemon=True)
        self._thread.start()

    @classmethod
    def instance(cls) -> _Dispatcher:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def register(self, bus: EventBus) -> None:
        with self._lock:
            self._buses.add(bus)

    def unregister(self, bus: EventBus) -> None:
        with self._lock:
            self._buses.discard(bus)

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            with self._lock:
                buses = list(self._buses)
            for bus in buses:
                bus.flush()


# Observers that attach themselves to every run when it is created (the store, the console
# progress, the notifier). Each gets the run handle and may call ``run.subscribe``.
RunObserver = Callable[[Any], None]
_run_observers: list[RunObserver] = []


def add_run_observer(observer: RunObserver) -> Callable[[], None]:
    _run_observers.append(observer)
    return lambda: _run_observers.remove(observer) if observer in _run_observers else None


def run_observers() -> list[RunObserver]:
    return list(_run_observers)
