"""The rows of task runs created in one write, and which of them carry where they stand.

A task run created and moved in the same write (a no-op map child usually is) is written as
one INSERT of its row as it stands at the end of the write, not an INSERT of a Pending row and
an UPDATE: the UPDATE was one of a no-op child's five rows. Were its row there already (a run
written again into a file that holds it), the INSERT changes it as the UPDATE would have.

Rows go in the order their task runs were created, which readers page by (``follow.py``), a
stretch of one kind per statement; a short stretch of such rows among Pending ones is written
the old way (an INSERT and an UPDATE), so that interleaved ones never cost a statement each.
A write whose new task runs all moved is one stretch however short: a flow of a few task runs
whose whole run goes in one write is one INSERT of them, not an INSERT and an UPDATE.
"""

from __future__ import annotations

from itertools import groupby, repeat
from operator import is_not
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .row_tables import Table

COLUMNS = ("id", "run_id", "node_id", "task_name", "map_index", "upstream", "state",
           "created", "cache_key", "result_path")
CONFLICT = "ON CONFLICT (id) DO NOTHING"
BORN_COLUMNS = (*COLUMNS, "message", "attempts", "started", "ended", "traceback", "worker")
# As ``rows._UPDATE_SQL`` changes a row.
BORN_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, message = excluded.message, "
    "attempts = excluded.attempts, started = COALESCE(excluded.started, task_runs.started), "
    "ended = excluded.ended, traceback = CASE WHEN excluded.traceback = '' "
    "THEN task_runs.traceback ELSE excluded.traceback END, "
    "worker = COALESCE(excluded.worker, task_runs.worker)"
)
LEAST = 16  # rows of a stretch written with where they stand, at least
Stretches = list[list[Any]]  # [born?, how many] of new task runs, in the order created


def _stretches(changes: list[Any]) -> Stretches:
    return [[born, sum(1 for _ in group)]
            for born, group in groupby(map(is_not, changes, repeat(None)))]


def split(tasks: Table, moved: dict[str, list[Any]], born: Table) -> Stretches:
    """Moves from ``tasks`` to ``born`` each task run that ``moved`` (its folded change, taken
    out of ``moved``), unless in a short stretch; returns the stretches to write."""
    rows = tasks.rows
    changes: list[Any] = [moved.pop(r[0], None) for r in rows]  # a creation there twice: its first row
    stretches = _stretches(changes)
    at = 0
    for is_born, n in stretches if len(stretches) > 1 else ():
        # Back to an UPDATE when among Pending ones. A write whose new task runs all moved
        # (a small flow's whole run in one write) is one stretch: one INSERT, no UPDATE.
        if is_born and n < LEAST:
            for i in range(at, at + n):
                moved[rows[i][0]] = changes[i]
                changes[i] = None
        at += n
    stretches = _stretches(changes)
    if len(stretches) == 1 and not stretches[0][0]:
        return []
    kept, runs, add = [], [], born.add
    for r, run_id, change in zip(rows, tasks.runs, changes, strict=True):
        if change is None:
            kept.append(r)
            runs.append(run_id)
        else:
            _, s, m, a, st, en, tb, w = change
            add(run_id, (r[0], r[1], r[2], r[3], r[4], r[5], s, r[7], r[8], r[9],
                         m, a, st, en, tb, w))
    tasks.rows, tasks.runs = kept, runs
    return stretches


def join(tasks: Table, born: Table, updates: Table, stretches: Stretches) -> None:
    """Back to an INSERT and an UPDATE each, in the order created, to be written one by one:
    a refused row then costs what it did before (a refused message keeps the task run's row)."""
    rows: list[tuple[Any, ...]] = []
    runs: list[str] = []
    t = b = 0
    for is_born, n in stretches:
        if not is_born:
            rows += tasks.rows[t:t + n]
            runs += tasks.runs[t:t + n]
            t += n
            continue
        for r, run_id in zip(born.rows[b:b + n], born.runs[b:b + n], strict=True):
            rows.append((*r[:6], "Pending", *r[7:10]))
            runs.append(run_id)
            updates.add(run_id, (r[6], r[10], r[11], r[12], r[13], r[14], r[14], r[15], r[0]))
        b += n
    if stretches:
        tasks.rows, tasks.runs = rows, runs
    born.rows.clear()
    born.runs.clear()
    stretches.clear()


def insert(conn: Any, tasks: Table, born: Table, stretches: Stretches) -> None:
    """Inside the caller's transaction: each stretch of one kind at once."""
    t = b = 0
    for is_born, n in stretches or [[False, len(tasks.rows)]]:
        if is_born:
            conn.insert_rows("task_runs", BORN_COLUMNS, born.rows[b:b + n], BORN_CONFLICT)
            b += n
        else:
            conn.insert_rows("task_runs", COLUMNS, tasks.rows[t:t + n], CONFLICT)
            t += n


def where(row: tuple[Any, ...], fixed: tuple[Any, ...], names: str, texts: str) -> set[str]:
    """What of a run a born row's escaped text was: its ``names``, its messages (``texts``)."""
    n = len(COLUMNS)
    return {what for what, part in ((names, slice(0, n)), (texts, slice(n, None)))
            if row[part] != fixed[part]}
