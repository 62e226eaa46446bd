"""A run's log lines in the kernel (the engine's sink, ``sinks.ExecutorSink``, adds them).

One copy of each line: the ``LogRecord`` event that subscribers receive is the line kept here.
Bounded twice: at most ``MAX_TASK_LINES`` per task run (the rest are counted) and at most
``LABLOOM_RUN_LOG_LINES`` (default 100,000) per run in all, the oldest going first. The store
keeps its own copy of every line up to its per-task cap, so nothing is lost from history:
``FlowRun.logs()`` asks it for the lines the kernel dropped.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import events as ev

if TYPE_CHECKING:
    pass

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
        # Task runs past their own cap: empty most of the time, so that a task run's end looks
        # for a count of lines dropped only when one has any (``RunEngine.on_final``).
        self.capped: set[str | None] = set()

    def add(self, record: ev.LogRecord) -> bool:
        """Keep ``record``; False when its task run is over its own cap (not kept, not sent)."""
        count = self.per_task.get(record.task_run_id, 0) + 1
        self.per_task[record.task_run_id] = count
        if count > MAX_TASK_LINES:
            self.capped.add(record.task_run_id)
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


__all__ = ["LogLine", "RunLogs", "named", "select"]
