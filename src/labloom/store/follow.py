"""Reading a run by cursor, what changed since the last look, in short reads (for views of
runs that are going on: the server extension's run tabs and runs list).

Every state a task run takes is appended to ``task_states`` (its first, Pending, in the same
transaction as the task run's own row) and nothing there is ever updated or deleted, so a row's
``rowid`` is a cursor: the rows after it are everything that changed since. A view reads a run
once (``task_runs_after`` in pages, after taking ``state_cursor``), then only the rows after its
cursor (``state_changes``), so following a running run costs what changed, not a read of
every task run. Reads are paged so that no read holds a snapshot for long: a long read
transaction keeps SQLite from checkpointing the WAL the run's writer is filling.

Why ``rowid`` order is commit order here: one run's rows are written by one writer thread, one
transaction after another (``writer.py``), so a row of the run that a reader has not seen yet
always gets a larger rowid than the ones it has. On PostgreSQL ``rowid`` is a ``BIGSERIAL``
column; these reads then filter ``task_states`` by run without an index (correct, but a scan).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from .reader import (
    _RUN_COLUMNS,
    _TASK_COLUMNS,
    NodeRecord,
    RunRecord,
    RunStore,
    TaskRunRecord,
    _loads,
    _run,
    _task,
)

PAGE = 20_000  # rows per read: a few tens of milliseconds, so snapshots stay short


def count_runs(store: RunStore, state: str) -> int:
    """How many runs are in ``state`` (read after a reconciling read such as ``list_runs``)."""
    row = store.conn.execute("SELECT COUNT(*) FROM flow_runs WHERE state = ?", (state,)).fetchone()
    return int(row[0])


def add_counts(store: RunStore, runs: list[RunRecord]) -> None:
    """Count the task runs of ``runs`` by state (one grouped read of all their task runs)."""
    store._add_counts(runs)


def run_without_counts(store: RunStore, run_id: str) -> RunRecord | None:
    """The run with exactly this id, without its counts by state (``get_run`` counts every
    task run of it: a read of the whole run)."""
    store.reconcile()
    row = store.conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE id = ?", (run_id,)
    ).fetchone()
    return None if row is None else _run(row)


def state_cursor(store: RunStore, run_id: str) -> int:
    """A cursor to take before reading a run whole: every change after it is read later."""
    if store.conn.kind == "sqlite":
        # One writer per file: rows not yet committed will all get larger rowids.
        row = store.conn.execute("SELECT MAX(rowid) FROM task_states").fetchone()
    else:
        # Other runs' transactions may commit sequence numbers out of order; this run's may not.
        row = store.conn.execute(
            "SELECT MAX(rowid) FROM task_states WHERE run_id = ?", (run_id,)
        ).fetchone()
    return int(row[0] or 0)


def task_runs_after(
    store: RunStore, run_id: str, after: int = 0, limit: int = PAGE, state: str | None = None
) -> list[tuple[int, TaskRunRecord]]:
    """Up to ``limit`` task runs of a run in the order they were created, after the one whose
    cursor is ``after``: (cursor, record) pairs. One indexed range read on SQLite (the
    ``run_id`` index is ordered by rowid within a run)."""
    sql = f"SELECT rowid, {_TASK_COLUMNS} FROM task_runs WHERE run_id = ? AND rowid > ?"
    params: list[Any] = [run_id, after]
    if state is not None:
        sql += " AND state = ?"
        params.append(state)
    params.append(limit)
    rows = store.conn.execute(sql + " ORDER BY rowid LIMIT ?", params).fetchall()
    return [(int(row[0]), _task(row[1:])) for row in rows]


def all_task_runs(
    store: RunStore, run_id: str, after: int = 0
) -> Iterator[tuple[int, TaskRunRecord]]:
    """Every task run of a run created after the cursor ``after``, read a page at a time:
    (cursor, record) pairs."""
    while True:
        page = task_runs_after(store, run_id, after)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1][0]


def timeline_rows(store: RunStore, run_id: str) -> Iterator[tuple[Any, ...]]:
    """(id, task name, map index, worker, state, started, ended) of each task run of a run,
    read a page at a time: what its timeline needs, lighter than ``TaskRunRecord``s."""
    after = 0
    while True:
        rows = store.conn.execute(
            "SELECT rowid, id, task_name, map_index, worker, state, started, ended "
            "FROM task_runs WHERE run_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            (run_id, after, PAGE),
        ).fetchall()
        for row in rows:
            yield tuple(row[1:])
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


class NewTaskRun(NamedTuple):
    """What a view needs of a task run created since it last looked (its state comes from
    ``state_changes``): lighter to read than a ``TaskRunRecord``."""

    cursor: int
    id: str
    node_id: str | None
    task_name: str
    map_index: int | None
    upstream: tuple[str, ...] = ()  # not read: a view draws edges between nodes


def new_task_runs(store: RunStore, run_id: str, after: int) -> Iterator[NewTaskRun]:
    """The run's task runs created after the cursor ``after``, a page at a time."""
    while True:
        rows = store.conn.execute(
            "SELECT rowid, id, node_id, task_name, map_index FROM task_runs WHERE run_id = ? "
            "AND rowid > ? ORDER BY rowid LIMIT ?", (run_id, after, PAGE)
        ).fetchall()
        for row in rows:
            yield NewTaskRun(int(row[0]), row[1], row[2], row[3], row[4])
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def task_runs_by_id(store: RunStore, ids: list[str]) -> dict[str, TaskRunRecord]:
    found: dict[str, TaskRunRecord] = {}
    for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE id IN ({marks})", chunk
        ):
            record = _task(row)
            found[record.id] = record
    return found


def state_changes(
    store: RunStore, run_id: str, after: int
) -> Iterator[tuple[int, str, str, float, str, int]]:
    """The run's task-run state changes after the cursor ``after``, oldest first: (cursor,
    task run id, state, time, message, attempt). On SQLite a range of the table's own b-tree,
    starting at the cursor."""
    while True:
        rows = store.conn.execute(
            "SELECT rowid, task_run_id, state, time, message, attempt FROM task_states "
            "WHERE rowid > ? AND run_id = ? ORDER BY rowid LIMIT ?", (after, run_id, PAGE)
        ).fetchall()
        for row in rows:
            yield int(row[0]), row[1], row[2], row[3], row[4] or "", int(row[5] or 0)
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def nodes_after(store: RunStore, run_id: str, after: int = 0) -> list[tuple[int, NodeRecord]]:
    """The run's graph nodes created after the cursor ``after`` (a node is written once, before
    its task runs), in creation order: (cursor, node) pairs."""
    return [
        (int(rowid), NodeRecord(node_id, name, kind, _loads(upstream) or []))
        for rowid, node_id, name, kind, upstream in store.conn.execute(
            "SELECT rowid, node_id, name, kind, upstream FROM run_nodes WHERE run_id = ? "
            "AND rowid > ? ORDER BY rowid", (run_id, after)
        ).fetchall()
    ]
