"""The task runs a ``--task`` names, as SQL, and their log lines read through them: ``labloom
logs RUN --task NAME`` (with ``--follow`` too) and ``run.logs(NAME)`` from the store.

A name is a task run's id, a task's name (a plain call, also ``cfg[0]``, an indexed future) or
``name[i]`` (child i of a map, unless a task is called ``name[i]`` itself: ``named_clause``);
with ``children`` a map's name names its children too, as
``run_logs.names`` says for the lines a kernel keeps. The lines are read by a join that starts
from the run's task runs (``task_runs_by_run``) and looks up each one's lines
(``logs_by_run``: run, task run, and the line's id after them on SQLite), so a map's name reads
its children's lines and no other, and one child's reads its few: not a set of ids built in
Python and sent back (0.89 s for a map of 20,000 children, benchmarks/task_logs.py), nor the
run's every line filtered in Python (``labloom logs -f``).
"""

from __future__ import annotations

from typing import Any

from ..core.run_logs import split_index
from .log_records import LogCut, LogEntry

# SQLite takes CROSS JOIN's order as written: the task runs first, then their lines by index.
# Left to choose, it read the run's every line and looked each one's task run up by key (58
# ms for one child's 5 lines of 100,000, 3.5 ms this way). PostgreSQL plans it as an inner join.
_LINES = (
    "SELECT l.id, l.task_run_id, l.level, l.time, l.text, t.task_name, t.map_index "
    "FROM task_runs t CROSS JOIN logs l WHERE t.run_id = ? AND {named} "
    "AND l.run_id = t.run_id AND l.task_run_id = t.id"
)
_CUTS = (
    "SELECT c.task_run_id, t.task_name, t.map_index, c.kept, c.cut "
    "FROM task_runs t CROSS JOIN log_cuts c WHERE t.run_id = ? AND {named} "
    "AND c.run_id = t.run_id AND c.task_run_id = t.id"
)


def named_clause(run_id: str, task: str, children: bool, table: str = ""
                 ) -> tuple[str, list[Any]]:
    """A condition on ``task_runs`` (``table``: its alias) true for the task runs of run
    ``run_id`` that ``task`` names, and its parameters.

    ``name[i]`` is a task's own name first: ``@task(name="fold[3]")`` is that task, and child 3
    of a map ``fold`` only in a run with no task of that name. Both at once read the task's
    lines with the child's. The look for a task of that name is made once a question (its
    subquery names no outer row): the run's task runs by ``task_runs_by_run``, until one has it."""
    name, index = split_index(task)
    t = f"{table}." if table else ""
    plain = f"{t}task_name = ?" if children else f"({t}task_name = ? AND {t}map_index IS NULL)"
    if index is None:
        return f"({t}id = ? OR {plain})", [task, name]
    return (f"({t}id = ? OR {plain} OR ({t}task_name = ? AND {t}map_index = ? AND NOT EXISTS "
            f"(SELECT 1 FROM task_runs own WHERE own.run_id = ? AND own.task_name = ?)))",
            [task, task, name, index, run_id, task])


def named_logs(conn: Any, run_id: str, task: str) -> tuple[list[LogEntry], list[LogCut]]:
    """The lines of the task runs ``task`` names (a map's children too), in time order, and
    a note per one of them whose lines were cut."""
    named, params = named_clause(run_id, task, children=True, table="t")
    rows = conn.execute(_LINES.format(named=named) + " ORDER BY l.time, l.id",
                        [run_id, *params]).fetchall()
    names: dict[str, str] = {}
    lines = [LogEntry(tr_id, _name(names, tr_id, name, index), level, when, text, line_id)
             for line_id, tr_id, level, when, text, name, index in rows]
    cuts = [LogCut(tr_id, _name(names, tr_id, name, index), kept, cut)
            for tr_id, name, index, kept, cut in conn.execute(
                _CUTS.format(named=named), [run_id, *params])]
    return lines, cuts


def named_lines_after(conn: Any, run_id: str, task: str, after: int) -> list[LogEntry]:
    """The lines of the task runs ``task`` names written after the line ``after``, in the
    order written (``labloom logs -f --task``). Each task run's lines after the cursor are a
    range of ``logs_by_run`` on SQLite, so a look at a run going on reads what is new, in 18 ms
    for a map of 20,000 children. All of them in one statement: pages of them (``LIMIT``) each
    joined and sorted every named line after the cursor again, 4 s for that map's 100,000."""
    named, params = named_clause(run_id, task, children=True, table="t")
    names: dict[str, str] = {}
    return [LogEntry(tr_id, _name(names, tr_id, name, index), level, when, text, line_id)
            for line_id, tr_id, level, when, text, name, index in conn.execute(
                _LINES.format(named=named) + " AND l.id > ? ORDER BY l.id",
                [run_id, *params, after]).fetchall()]


def _name(names: dict[str, str], tr_id: str, name: str, index: int | None) -> str:
    # One string a task run, not one a line (a map's 100,000 lines name 20,000 task runs).
    shown = names.get(tr_id)
    if shown is None:
        shown = names[tr_id] = name if index is None else f"{name}[{index}]"
    return shown
