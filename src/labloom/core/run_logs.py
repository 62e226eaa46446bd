"""A run's log lines in the kernel, and the sink through which executors report task runs
(running, log lines).

One copy of each line: the ``LogRecord`` event that subscribers receive is the line kept here.
Bounded twice: at most ``MAX_TASK_LINES`` per task run (the rest are counted) and at most
``LABLOOM_RUN_LOG_LINES`` (default 100,000) per run in all, the oldest going first. The store
keeps its own copy of every line up to its per-task cap, so nothing is lost from history:
``FlowRun.logs()`` asks it for the lines the kernel dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import events as ev
from .states import State

if TYPE_CHECKING:
    from .graph import TaskRun
    from .results import ResultPlanner
    from .task_graph import TaskGraph

# Log lines kept in memory per task run; the store keeps its own (capped) copy.
MAX_TASK_LINES = 10_000
DEFAULT_RUN_LINES = 100_000


def run_line_limit() -> int:
    try:
        return max(1, int(os.environ.get("LABLOOM_RUN_LOG_LINES", DEFAULT_RUN_LINES)))
    except ValueError:
        return DEFAULT_RUN_LINES


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line of a run as ``FlowRun.logs()`` gives it."""

    task_run_id: str | None
    task_name: str
    level: int
    time: float
    text: str

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)


class RunLogs:
    def __init__(self, limit: int | None = None) -> None:
        self.lines: deque[ev.LogRecord] = deque(maxlen=limit or run_line_limit())
        self.per_task: dict[str | None, int] = {}
        self.dropped = 0  # lines pushed out by the run's total bound (they are in the store)

    def add(self, record: ev.LogRecord) -> bool:
        """Keep ``record``; False when its task run is over its own cap (not kept, not sent)."""
        count = self.per_task.get(record.task_run_id, 0) + 1
        self.per_task[record.task_run_id] = count
        if count > MAX_TASK_LINES:
            return False
        if len(self.lines) == self.lines.maxlen:
            self.dropped += 1
        self.lines.append(record)
        return True

    def select(self, task: str | None, name_of: Callable[[str | None], str]) -> list[LogLine]:
        return select(
            (LogLine(r.task_run_id, name_of(r.task_run_id), r.level, r.time, r.text)
             for r in list(self.lines)),
            task,
        )


def select(lines: Iterable[LogLine], task: str | None) -> list[LogLine]:
    """The lines of one task run (by id, ``name`` or ``name[i]``), or all when ``task`` is None."""
    if task is None:
        return list(lines)
    return [line for line in lines if named(task, line.task_run_id, line.task_name)]


def named(task: str, task_run_id: str | None, name: str) -> bool:
    """Whether ``task`` names this task run: its id, its name, or the name of its map (for
    ``name[i]``; not for an indexed future's ``name['key']``). The one rule, live and stored."""
    if task in (task_run_id, name):
        return True
    child = f"{task}["
    return name.startswith(child) and name.endswith("]") and name[len(child):-1].isdigit()


class SinkOwner(Protocol):
    """What the sink needs from its run's engine."""

    id: str
    lock: threading.RLock
    graph: TaskGraph
    logs: RunLogs
    results: ResultPlanner

    def emit(self, event: ev.Event) -> None: ...


class ExecutorSink:
    """What executors report about one run's task runs (running, log lines), from any thread;
    registered by run id (``sinks.register_local_run``) for the run's lifetime."""

    def __init__(self, engine: SinkOwner) -> None:
        self._engine = engine
        # What the run's task runs logged with log_params/log_metrics, for run.experiments():
        # one entry per logging call, nothing for task runs that log none. Kept as plain
        # tuples (task run id, time, kind, step) beside the values' dicts, not as the events:
        # the garbage collector stops tracking tuples of strings and numbers and dicts of them,
        # while 100,000 event objects made each full collection of a fresh process (about 20
        # in a run of 100,000 task runs, a quarter of its CPU) walk 100,000 more objects.
        self._calls: list[tuple[str, float, str, int | None]] = []
        self._values: list[dict[str, Any]] = []

    def task_started(self, run_id: str, task_run_id: str, when: float, attempt: int,
                     worker: str = "") -> None:
        engine = self._engine
        with engine.lock:
            tr = engine.graph.get(task_run_id)
            if tr is None or tr.done or attempt != tr.attempts:
                return  # cancelled meanwhile, or a superseded attempt
            if tr.started is None:
                tr.started = when
            tr.worker = worker
            engine.graph.set_state(tr, State.RUNNING, "", when)

    def task_keyed(self, run_id: str, task_run_id: str, attempt: int, key: str | None,
                   path: str | None, message: str) -> None:
        engine = self._engine
        with engine.lock:
            tr = engine.graph.get(task_run_id)
            if tr is None or tr.done or attempt != tr.attempts:
                return
            engine.results.keyed(tr, key, path, message)

    def task_log(self, run_id: str, task_run_id: str, level: int, when: float, text: str) -> None:
        self.log(ev.LogRecord(run_id, task_run_id, level, when, text))

    def warn(self, tr: TaskRun, message: str) -> None:
        """A line from labloom itself in a task run's logs (and on the process's log)."""
        self.log(ev.LogRecord(self._engine.id, tr.id, logging.WARNING, time.time(),
                              f"[labloom] {message}"))
        logging.getLogger("labloom").warning("[labloom] %s: %s", tr.name, message)

    @property
    def logged(self) -> list[tuple[str, float, str, dict[str, Any], int | None]]:
        """The logging calls so far: (task run id, time, kind, values, step); under the
        engine's lock."""
        calls = zip(self._calls, self._values, strict=True)
        return [(trid, when, kind, values, step) for (trid, when, kind, step), values in calls]

    @property
    def experiments(self) -> list[ev.ExperimentValues]:
        """The logging calls so far, as events (a late subscriber's replay)."""
        run_id = self._engine.id
        return [ev.ExperimentValues(run_id, *logged) for logged in self.logged]

    def task_values(self, run_id: str, task_run_id: str, when: float, kind: str,
                    values: dict[str, Any], step: int | None) -> None:
        event = ev.ExperimentValues(run_id, task_run_id, when, kind, values, step)
        engine = self._engine
        with engine.lock:  # kept and sent together, as log lines are
            self._calls.append((task_run_id, when, kind, step))
            self._values.append(values)
            engine.emit(event)

    def log(self, record: ev.LogRecord) -> None:
        engine = self._engine
        with engine.lock:  # kept and sent together, so a late subscriber sees it exactly once
            if engine.logs.add(record):
                engine.emit(record)
                return
            tr = engine.graph.get(record.task_run_id or "")
            if tr is None or tr.done:  # a late line: the count at the end is already out
                self.report_dropped(record.task_run_id or "")

    def report_dropped(self, task_run_id: str) -> None:
        # Lines past the cap are counted, not kept; the store says how many it never saw.
        engine = self._engine
        dropped = engine.logs.per_task.get(task_run_id, 0) - MAX_TASK_LINES
        if dropped > 0:
            engine.emit(ev.LogLinesDropped(engine.id, task_run_id, dropped, time.time()))


__all__ = ["ExecutorSink", "LogLine", "RunLogs", "named", "select"]
