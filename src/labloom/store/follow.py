"""Reading a run by cursor, what changed since the last look, in short reads (for views of
runs that are going on: the server extension's run tabs and runs list).

Every state a task run takes is appended to ``task_states`` (its first, Pending, in the same
transaction as the task run's own row) and nothing there is ever updated or deleted, so a row's
``rowid`` is a cursor: the rows after it are everything that changed since. A view counts a
run's task runs by graph node and state once (``node_counts``, one grouped statement that also
takes the cursor, so both are of one snapshot), then asks only how the task runs that changed
after its cursor moved between states (``node_moves``): counted in SQL, by node, so following a
running run costs about a microsecond of the database per state row and a few rows per node
for Python, never a row per task run (each state row says its task run's node and state
before, schema version 12, so that count is one grouped read of a range of rows; rows written
without them are counted per task run, the way before). Task runs themselves are read a page
at a time, on demand (``task_runs_after``, ``node_task_runs``). Each read is one statement
over a bounded range, so no read holds a snapshot for long: a long read transaction keeps
SQLite from checkpointing the WAL the run's writer is filling.

Why ``rowid`` order is commit order here: one run's rows are written by one writer thread, one
transaction after another (``writer.py``), so a row of the run that a reader has not seen yet
always gets a larger rowid than the ones it has. On PostgreSQL ``rowid`` is a ``BIGSERIAL``
column, read through the index ``task_states_by_run`` (run_id, rowid) (schema version 8).
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from .listed_parameters import listed_columns
from .log_records import NodeRecord
from .multirow import rows_in
from .reader import (
    _RUN_COLUMNS,
    _TASK_COLUMNS,
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


def run_without_counts(
    store: RunStore, run_id: str, parameters: bool = True
) -> RunRecord | None:
    """The run with exactly this id, without its counts by state (``get_run`` counts every
    task run of it: a read of the whole run). ``parameters=False``: without them (``{}``), for
    a view that does not show them (an older labloom may have stored tens of MB)."""
    store.reconcile()
    columns = _RUN_COLUMNS if parameters else listed_columns(_RUN_COLUMNS, store.conn.kind, False)
    row = store.conn.execute(
        f"SELECT {columns} FROM flow_runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is not None and not parameters:
        return _run(row, listed=True)
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
    """(id, task name, map index, worker, state, started, ended, left_map) of each task run
    of a run, read a page at a time: what its timeline needs, lighter than ``TaskRunRecord``s."""
    after = 0
    while True:
        rows = store.conn.execute(
            "SELECT rowid, id, task_name, map_index, worker, state, started, ended, left_map "
            "FROM task_runs WHERE run_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            (run_id, after, PAGE),
        ).fetchall()
        for row in rows:
            yield tuple(row[1:])
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def task_runs_by_id(store: RunStore, ids: list[str]) -> dict[str, TaskRunRecord]:
    records = map(_task, rows_in(
        store.conn, f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE id IN ({{marks}})", ids))
    return {record.id: record for record in records}


# A task run's graph node (one per task call or map): runs recorded before node ids were
# stored have one node per task name (``dag.stored`` names them alike).
_NODE = "COALESCE(t.node_id, 'task:' || t.task_name)"
_IS_MAP = "CASE WHEN t.map_index IS NULL THEN 0 ELSE 1 END"
SPAN = 60_000  # cursor positions per read of changes: about 20,000 task runs, tens of ms

# The run's task runs by node and state: (node id, task name, a map: 0 or 1, state, count).
NodeCount = tuple[str, str, int, str, int]
# The task runs that changed after a cursor, by node and move: (node id, task name, a map: 0 or
# 1, state now, state before or None for a task run created, count). A task run that moved
# more than once since may count as each of its moves (Pending to Running, Running to
# Completed) or as one (Pending to Completed): applied in turn, they come to the same.
NodeMove = tuple[str, str, int, str, str | None, int]


def node_counts(store: RunStore, run_id: str) -> tuple[int, list[NodeCount]]:
    """The run's task runs counted by node and state (not those that left their map: history),
    and the state cursor they are counted at: one statement, so both are of one snapshot (a task run's row and its states are
    written in one transaction). A grouped read of the run's task runs, in SQL."""
    top = "(SELECT COALESCE(MAX(rowid), 0) FROM task_states)" if store.conn.kind == "sqlite" else (
        "(SELECT COALESCE(MAX(rowid), 0) FROM task_states WHERE run_id = ?)")
    params = [run_id, run_id] if store.conn.kind == "postgresql" else [run_id]
    rows = store.conn.execute(
        f"SELECT '', '', -1, '', {top} UNION ALL SELECT {_NODE}, t.task_name, {_IS_MAP}, t.state, "
        "COUNT(*) FROM task_runs t WHERE t.run_id = ? AND t.left_map IS NULL "
        "GROUP BY 1, 2, 3, 4", params
    ).fetchall()
    cursor = next(int(row[4]) for row in rows if row[2] == -1)
    return cursor, [(r[0], r[1], int(r[2]), r[3], int(r[4])) for r in rows if r[2] != -1]


def node_moves(
    store: RunStore, run_id: str, after: int, most: int | None = None
) -> tuple[int, list[NodeMove]]:
    """How the run's task runs that changed after the cursor ``after`` moved, counted by node
    and (state before, state now), and the cursor this reaches. Read ``SPAN`` cursor
    positions at a time; the moves of consecutive reads add up (a task run's state before a
    read is its last state before the read's range). ``most``: read at most that many cursor
    positions (a watcher that wants each answer soon goes on from the cursor returned)."""
    top = state_cursor(store, run_id)
    if most is not None:
        top = min(top, after + most)
    moves: dict[tuple[str, str, int, str, str | None], int] = {}
    while after < top:
        upto = min(top, after + SPAN)
        params = (after, upto, run_id, run_id)
        rows = store.conn.execute(_COUNTS, params).fetchall()
        if any(row[0] is None for row in rows):
            # Rows that do not say their node and state before (an older writer, a retried
            # run): this range is counted per task run instead.
            rows = store.conn.execute(_MOVES, params).fetchall()
        for node, name, is_map, state, before, n in rows:
            key = (node, name, int(is_map), state, before)
            moves[key] = moves.get(key, 0) + int(n)
        after = upto
    return top, [(*key, n) for key, n in moves.items()]


# Each state row in (cursor, upto] as a move of its task run (from its state before), counted
# by node: one grouped read of the range, then the few nodes' names (a node id of NULL: a row
# that does not say, see ``_MOVES``).
_COUNTS = """
SELECT c.node_id, COALESCE(r.name, ''), CASE WHEN r.kind = 'map' THEN 1 ELSE 0 END,
    c.state, c.before_state, c.moved
FROM (
    SELECT node_id, before_state, state, COUNT(*) AS moved FROM task_states
    WHERE rowid > ? AND rowid <= ? AND run_id = ? GROUP BY 1, 2, 3
) c LEFT JOIN run_nodes r ON r.run_id = ? AND r.node_id = c.node_id
"""

# Per task run that changed in (cursor, upto]: its first and last rows there, its state at the
# last and at the row before the first (an index seek: ``task_states_by_task_run``), then
# counted by node. ``|| ''`` keeps SQLite from scanning the whole table in task-run order to
# group it, where a range of the rowid is what is wanted.
_MOVES = f"""
SELECT {_NODE}, t.task_name, {_IS_MAP}, x.state, x.before, COUNT(*)
FROM (
    SELECT w.id, s.state, (
        SELECT p.state FROM task_states p WHERE p.task_run_id = w.id AND p.rowid < w.first
        ORDER BY p.rowid DESC LIMIT 1
    ) AS before
    FROM (
        SELECT task_run_id || '' AS id, MIN(rowid) AS first, MAX(rowid) AS last
        FROM task_states WHERE rowid > ? AND rowid <= ? AND run_id = ? GROUP BY 1
    ) w JOIN task_states s ON s.rowid = w.last AND s.run_id = ?
) x JOIN task_runs t ON t.id = x.id
GROUP BY 1, 2, 3, 4, 5
"""


def node_task_runs(
    store: RunStore, run_id: str, node_id: str, offset: int = 0, limit: int = 1
) -> list[TaskRunRecord]:
    """A page of one node's task runs, by map index (a plain task's one task run first; not
    a child that left the map)."""
    rows = store.conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM task_runs t WHERE t.run_id = ? AND {_NODE} = ? "
        "AND t.left_map IS NULL ORDER BY COALESCE(t.map_index, -1), t.rowid LIMIT ? OFFSET ?",
        (run_id, node_id, limit, offset),
    ).fetchall()
    return [_task(row) for row in rows]


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


def runs_to_watch(
    store: RunStore, ids: set[str], created_since: float,
    known: AbstractSet[str] = frozenset(), most_new: int | None = None,
) -> tuple[list[RunRecord], list[str]]:
    """What a watcher of the whole store looks at each time (without counts): the runs going
    on, the runs it saw going on last time (``ids``: to see them end) and those created since
    ``created_since`` that it does not know yet (``known``; new ones, also those recorded
    already ended; the newest ``most_new`` of them); and the ids of all runs created since
    ``created_since``, newest first. Indexed reads: ``flow_runs_by_state``, the primary key
    and ``flow_runs_by_created``; whole rows only for the runs going on and the new ones, so
    looks after a sweep of thousands of runs do not read them all again each time."""
    recent = [str(row[0]) for row in store.conn.execute(
        "SELECT id FROM flow_runs WHERE created >= ? ORDER BY created DESC", (created_since,)
    ).fetchall()]
    new = [run_id for run_id in recent if run_id not in known][:most_new]
    wanted = sorted(ids.union(new))
    columns = listed_columns(_RUN_COLUMNS, store.conn.kind, False)  # a watch shows none
    rows = store.conn.execute(
        f"SELECT {columns} FROM flow_runs WHERE state IN (?, ?)", ("Pending", "Running")
    ).fetchall()
    seen = {str(row[0]) for row in rows}
    wanted = [run_id for run_id in wanted if run_id not in seen]
    rows += rows_in(store.conn, f"SELECT {columns} FROM flow_runs WHERE id IN ({{marks}})",
                    wanted)
    return [_run(row, listed=True) for row in rows], recent


def log_tops(store: RunStore, after: int) -> tuple[int, dict[str, int]]:
    """The last log line of each run that logged after the line ``after``, and the last line
    of all: a range read of the primary key (log lines are numbered as they are written)."""
    tops = {
        str(run_id): int(top) for run_id, top in store.conn.execute(
            "SELECT run_id, MAX(id) FROM logs WHERE id > ? GROUP BY run_id", (after,)
        ).fetchall()
    }
    return max(tops.values(), default=after), tops


def last_log_line(store: RunStore) -> int:
    row = store.conn.execute("SELECT MAX(id) FROM logs").fetchone()
    return int(row[0] or 0)
