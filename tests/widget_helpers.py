"""Shared by the widget tests: a stand-in run handle, a manual clock, event builders.

``FakeRun`` replaces ``FlowRun`` only until the engine lands: it carries a real ``EventBus``
and records the user actions the widget asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from labloom.core.events import (
    Event,
    EventBus,
    LogRecord,
    NodeCreated,
    RunCreated,
    RunFinished,
    RunStateChanged,
    StateChanged,
    TaskRunCreated,
)
from labloom.core.states import State

RUN = "run-1"


class FakeRun:
    def __init__(self, run_id: str = RUN) -> None:
        self.id = run_id
        self.bus = EventBus()
        self.calls: list[str] = []
        self.retry_result: Any = None
        self.fail_with: Exception | None = None

    def subscribe(self, callback: Callable[[Sequence[Event]], None], replay: bool = True) -> Any:
        return self.bus.subscribe(callback, replay=replay)

    def cancel(self) -> None:
        self.calls.append("cancel")
        if self.fail_with is not None:
            raise self.fail_with

    def retry(self) -> Any:
        self.calls.append("retry")
        return self.retry_result

    def emit(self, *events: Event) -> None:
        for event in events:
            self.bus.emit(event)
        self.bus.flush()


class ManualClock:
    """A clock and scheduler the test advances by hand, so throttling is counted, not timed."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[list[Any]] = []

    def __call__(self) -> float:
        return self.now

    def schedule(self, delay: float, fn: Callable[[], None]) -> Callable[[], None]:
        entry: list[Any] = [self.now + delay, fn]
        self.timers.append(entry)
        return lambda: self.timers.remove(entry) if entry in self.timers else None

    def advance(self, seconds: float = 0.0) -> None:
        """Move time forward, firing each due timer at its own due time, in order."""
        target = self.now + seconds
        while True:
            due = [t for t in self.timers if t[0] <= target]
            if not due:
                self.now = target
                return
            entry = min(due, key=lambda t: t[0])
            self.timers.remove(entry)
            self.now = max(self.now, entry[0])
            entry[1]()


def run_created(run_id: str = RUN, **metadata: Any) -> RunCreated:
    return RunCreated(run_id, "sweep", {}, "local", "notebook", "host", 100.0, metadata=metadata)


def node(nid: str, name: str, kind: str = "task", upstream: tuple[str, ...] = ()) -> NodeCreated:
    return NodeCreated(RUN, nid, name, kind, upstream, 100.0)


def task_run(trid: str, nid: str, name: str, index: int | None = None) -> TaskRunCreated:
    return TaskRunCreated(RUN, trid, nid, name, index, (), 100.0)


def state(trid: str, st: State, t: float = 101.0, tb: str = "", msg: str = "") -> StateChanged:
    return StateChanged(RUN, trid, st, t, message=msg, traceback=tb)


def log(trid: str, text: str, t: float = 101.0, level: int = 20) -> LogRecord:
    return LogRecord(RUN, trid, level, t, text)


def run_state(st: State, t: float = 100.0) -> RunStateChanged:
    return RunStateChanged(RUN, st, t)


def finished(st: State, t: float = 110.0) -> RunFinished:
    return RunFinished(RUN, st, t)


def map_events(nid: str, name: str, width: int, upstream: tuple[str, ...] = ()) -> list[Event]:
    events: list[Event] = [node(nid, name, "map", upstream)]
    events += [task_run(f"{nid}-{i}", nid, name, i) for i in range(width)]
    return events


def small_flow() -> list[Event]:
    """load -> train (map of 3) -> best, with one failed child."""
    return [
        run_created(dashboard="http://127.0.0.1:8787/status"),
        run_state(State.RUNNING),
        node("n-load", "load"),
        task_run("t-load", "n-load", "load"),
        state("t-load", State.RUNNING),
        log("t-load", "loading 3 rows"),
        state("t-load", State.COMPLETED, 102.0),
        *map_events("n-train", "train", 3, ("n-load",)),
        state("n-train-0", State.COMPLETED),
        state("n-train-1", State.RUNNING),
        state("n-train-2", State.FAILED, tb="Traceback...\nValueError: bad alpha"),
        node("n-best", "best", upstream=("n-train",)),
        task_run("t-best", "n-best", "best"),
    ]
