"""A run's log lines in the kernel (the engine's sink, ``sinks.ExecutorSink``, adds them).

One copy of each line: the ``LogRecord`` event that subscribers receive is the line kept here.
Bounded twice: at most ``MAX_TASK_LINES`` per task run (the rest are counted) and at most
``LABLOOM_RUN_LOG_LINES`` (default 100,000) per run in all, the oldest going first. The store
keeps its own copy of every line up to its per-task cap, so nothing is lost from history:
``FlowRun.logs()`` asks it for the lines the kernel dropped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import events as ev
from .env_numbers import env_number

if TYPE_CHECKING:
    from .task_graph import TaskGraph

# Log lines kept in memory per task run; the store keeps its own (capped) copy.
MAX_TASK_LINES = 10_000
DEFAULT_RUN_LINES = 100_000


def run_line_limit() -> int:
    """``LABLOOM_RUN_LOG_LINES``, read as a run is made (``RunLogs``): a bad value raises
    before the run starts (before, it fell back to the default, or raised a bare ValueError)."""
    return int(env_number("LABLOOM_RUN_LOG_LINES", DEFAULT_RUN_LINES, "a whole number >= 1",
                          lambda lines: lines >= 1, meaning="log lines a run keeps in memory",
                          whole=True))


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

    def select(self, task: str | None, graph: TaskGraph) -> list[LogLine]:
        """The lines ``task`` names, told by each line's task run (its task's name and map
        index): a task called ``fold[3]`` itself is not child 3 of a map ``fold``."""
        lines = []
        called = task is not None and split_index(task)[1] is not None and any(
            tr.base_name == task for tr in list(graph.task_runs))
        for r in list(self.lines):
            tr = graph.get(r.task_run_id or "")
            if task is not None and (tr is None or not names(
                    task, tr.id, tr.base_name, tr.map_index, called)):
                continue
            lines.append(LogLine(r.task_run_id, "" if tr is None else tr.name, r.level, r.time,
                                 r.text))
        return lines


def select(lines: Iterable[LogLine], task: str | None) -> list[LogLine]:
    """The lines of one task run (by id, ``name`` or ``name[i]``), or all when ``task`` is None."""
    if task is None:
        return list(lines)
    return [line for line in lines if named(task, line.task_run_id, line.task_name)]


def named(task: str, task_run_id: str | None, name: str) -> bool:
    """Whether ``task`` names a task run known by its shown name only (``fold[3]``: a task
    called so, or child 3 of a map ``fold``, the two alike here): see ``names``."""
    base, index = split_index(name)
    return names(task, task_run_id, base, index, called=False)


def names(task: str, task_run_id: str | None, base: str, index: int | None, called: bool
          ) -> bool:
    """Whether ``task`` names the task run ``task_run_id`` of task ``base`` (map child
    ``index``): its id; its task's name (a map's names its children); or ``name[i]``, child i
    of the map ``name``, unless a task of the run is called ``task`` itself (``called``). The
    one rule, live and stored (``store.named_logs.named_clause`` says it in SQL)."""
    if task in (task_run_id, base):
        return True
    wanted, i = split_index(task)
    return i is not None and not called and index == i and base == wanted


def split_index(task: str) -> tuple[str, int | None]:
    """``name[i]`` as (name, i), anything else as (task, None). Only an index written as a
    task run's name shows it (ASCII digits, no leading zero): ``noop[03]`` names no child,
    and ``noop[²]`` is no index (``int`` refused it: a traceback)."""
    if task.endswith("]") and "[" in task:
        head, _, tail = task[:-1].rpartition("[")
        if tail.isascii() and tail.isdigit() and len(tail) < 10 and str(int(tail)) == tail:
            return head, int(tail)
    return task, None


__all__ = ["LogLine", "RunLogs", "named", "names", "select", "split_index"]
