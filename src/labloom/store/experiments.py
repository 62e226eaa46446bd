"""Params and metrics in the store, and reading them back as experiment rows
(``core/experiments.py``), for one run or across runs.

One row per logging call (``log_metrics(auc=..., loss=...)``, ``@task(metrics=[...])``):
run, task run, kind ("param" or "metric"), step, time, and ``data``, the call's values as a JSON
object by name. JSON keeps each value's type as logged (an int stays an int, 1.0 a float, True
a bool, big ints exact) and Python's encoder writes NaN and inf as ``NaN``/``Infinity``, which
it reads back, the same on both backends. One row per call, not per value: the writer's cost
per logged metric is what issue 19's 1.10x target is about (benchmarks/README.md), and the
readers sort and page rows in Python anyway (``core/experiments.page``; the server keeps a
run's rows between pages, ``server_extension/experiment_rows.py``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..core import experiments as ex
from ..core.errors import TargetError

if TYPE_CHECKING:  # the writer imports this module, and the reader imports the writer
    from .reader import RunStore

# Runs read across when none are named: the newest 20 (Python, the CLI and the REST API alike).
RECENT_RUNS = 20
COLUMNS = ("run_id", "task_run_id", "kind", "step", "time", "data")


def row_of(event: Any) -> tuple[Any, ...]:
    """The row of one ``ExperimentValues`` event, for the writer's batch: its values still a
    dict, encoded with the whole batch (``insert``) or one by one (``encoded``)."""
    return (event.run_id, event.task_run_id, event.kind, event.step, event.time, event.values)


def encoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as a statement's parameters take it: the values as JSON text."""
    return (*row[:5], json.dumps(row[5]))


# SQLite from 3.38 (``->>``): one statement reads the whole batch from one JSON parameter.
_JSON_INSERT = sqlite3.sqlite_version_info >= (3, 38)
_COLUMNS = ", ".join(COLUMNS)


def insert(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """The writer's batch of rows, inside its transaction.

    On SQLite, one statement over ``json_each`` of the whole batch rather than
    ``executemany``: sqlite3 lets go of the GIL at every row, and with task threads and the
    engine waiting for it, each row then waits its turn (100,000 rows: 8 s beside four busy
    threads, against 0.8 s for one statement; 0.25 s against 0.3 s with no one else). The
    values go in as JSON objects of the batch's one document, which SQLite writes back as the
    row's text (numbers as they were written): no encoding per row (2.5 µs of the writer's
    6.5 µs per row). SQLite's JSON refuses NaN and Infinity, so a batch holding one sends
    each row's values as a string instead. On PostgreSQL, ``COPY`` (``Conn.insert_rows``).
    """
    if not rows:
        return
    if conn.kind == "sqlite" and _JSON_INSERT:
        try:
            batch, data = json.dumps(rows, allow_nan=False), "value->5"
        except ValueError:  # NaN or inf in some row
            batch, data = json.dumps([encoded(row) for row in rows]), "value->>5"
        conn.execute(
            f"INSERT INTO experiment_values ({_COLUMNS}) SELECT value->>0, value->>1, "
            f"value->>2, value->>3, value->>4, {data} FROM json_each(?)", (batch,),
        )
        return
    conn.insert_rows("experiment_values", COLUMNS, [encoded(row) for row in rows])


# Rows per read: a few tens of milliseconds, so no read holds a snapshot for long (follow.py).
PAGE = 20_000


def read_logged(store: RunStore, run_id: str, after: int = 0, limit: int = PAGE,
                ) -> tuple[list[ex.Logged], int]:
    """Up to ``limit`` logging calls of the run after the row ``after`` (rows are append-only,
    so an id is a cursor), in the order logged, and the cursor after them.

    The database writes the whole chunk as one JSON array and Python parses it in one call:
    three times faster than a ``json.loads`` per row (0.75 s against 2.3 s for 200,000 rows),
    and the row's values never go through SQL's JSON functions, which refuse the NaN and
    Infinity Python's encoder writes (SQLite before 3.42, PostgreSQL's jsonb)."""
    # SQLite (3.40 here) has no ORDER BY inside group_concat: its rows come in the order of
    # the subquery, which is materialized in id order for its LIMIT; PostgreSQL says it.
    if store.conn.kind == "sqlite":
        item = ("'[' || json_quote(task_run_id) || ',' || json_quote(kind) || ',' || data || ',' "
                "|| coalesce(step, 'null') || ']'")
        sql = (f"SELECT '[' || group_concat(item, ',') || ']', max(id) FROM (SELECT id, {item} "
               "AS item FROM experiment_values WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?)")
    else:
        item = ("'[' || to_json(task_run_id)::text || ',' || to_json(kind)::text || ',' || data "
                "|| ',' || coalesce(step::text, 'null') || ']'")
        sql = (f"SELECT '[' || string_agg(item, ',' ORDER BY id) || ']', max(id) FROM (SELECT "
               f"id, {item} AS item FROM experiment_values WHERE run_id = ? AND id > ? "
               "ORDER BY id LIMIT ?) AS chunk")
    text, last = store.conn.execute(sql, (run_id, after, limit)).fetchone()
    if text is None:
        return [], after
    logged: list[ex.Logged] = json.loads(text)  # [task_run_id, kind, values, step] each
    return logged, int(last)


def _logged(store: RunStore, run_ids: list[str]) -> dict[str, list[ex.Logged]]:
    by_run: dict[str, list[ex.Logged]] = {}
    for run_id in run_ids:
        logged = by_run[run_id] = []
        cursor = 0
        while True:
            chunk, cursor = read_logged(store, run_id, cursor)
            logged += chunk
            if len(chunk) < PAGE:
                break
    return by_run


def fill(store: RunStore, run_id: str, rows: dict[str, ex.Experiment],
         by_id: bool = False) -> None:
    """Each row's task run: name, map index, state, duration; ``by_id``: read only these
    task runs (a page of them), not every task run of the run."""
    if not rows:
        return
    columns = "SELECT id, task_name, map_index, state, started, ended FROM task_runs WHERE "
    if by_id:
        ids = list(rows)
        found = store.conn.execute(f"{columns}id IN ({','.join('?' * len(ids))})", ids)
    else:
        found = store.conn.execute(f"{columns}run_id = ?", (run_id,))
    for task_run_id, name, map_index, state, started, ended in found:
        row = rows.get(task_run_id)
        if row is not None:
            row.task, row.map_index, row.state = name, map_index, state
            row.duration = ended - started if started is not None and ended is not None else None


def task_run_ids(store: RunStore, run_id: str, task: str) -> set[str] | None:
    """The ids of the run's task runs of node ``task`` (a node id, as ``GET runs/{id}/nodes``
    names it: a map node's are its children) or of the task named ``task``; None when the run
    has no node or task of that name."""
    found = {task_run_id for (task_run_id,) in store.conn.execute(
        "SELECT id FROM task_runs WHERE run_id = ? AND (node_id = ? OR task_name = ?)",
        (run_id, task, task))}
    if found:
        return found
    known = store.conn.execute(
        "SELECT 1 FROM run_nodes WHERE run_id = ? AND (node_id = ? OR name = ?) LIMIT 1",
        (run_id, task, task)).fetchone()
    return found if known else None


def metric_points(store: RunStore, run_id: str, metric: str,
                  task_run_ids: Iterable[str] | None = None, limit: int = 20_000,
                  ) -> tuple[list[dict[str, Any]], int]:
    """Every logged value of ``metric`` in the run (a curve's points, with ``step``), in the
    order logged, long-form for a chart: (at most ``limit`` points, how many there are)."""
    wanted = set(task_run_ids) if task_run_ids else None
    key = json.dumps(metric)  # as the name appears in a row's JSON: a cheap first filter
    points: list[dict[str, Any]] = []
    total = 0
    for task_run_id, step, when, data in store.conn.execute(
        "SELECT task_run_id, step, time, data FROM experiment_values "
        "WHERE run_id = ? AND kind = 'metric' ORDER BY id", (run_id,)
    ):
        if key not in data or (wanted is not None and task_run_id not in wanted):
            continue
        values = json.loads(data)
        if metric not in values:
            continue
        total += 1
        if len(points) < limit:
            points.append({"task_run_id": task_run_id, "step": step, "value": values[metric],
                           "time": when})
    if points:
        rows = {p["task_run_id"]: ex.Experiment(run_id, p["task_run_id"]) for p in points}
        fill(store, run_id, rows)
        for point in points:
            row = rows[point["task_run_id"]]
            point.update(task=row.task, map_index=row.map_index, state=row.state)
    return points, total


def run_experiments(store: RunStore, run_id: str) -> list[ex.Experiment]:
    """The rows of one run (``run_id`` exactly; see ``RunStore.get_run`` for prefixes)."""
    store.reconcile()
    rows = ex.collect(run_id, _logged(store, [run_id])[run_id])
    fill(store, run_id, rows)
    return list(rows.values())


def experiments_across(
    store: RunStore, flow: str | None = None, since: float | None = None,
    runs: list[str] | None = None, limit_runs: int | None = RECENT_RUNS,
) -> list[ex.Experiment]:
    """The rows of the newest ``limit_runs`` runs (of ``flow``, created ``since``), or of the
    runs named in ``runs``; newest run first, each run's rows in the order logged."""
    if runs:
        found = [store.get_run(run_id) for run_id in runs]
        run_ids = [run.id for run in found if run is not None]
    else:
        run_ids = [run.id for run in store.list_runs(flow, limit_runs, since=since)]
    by_run = _logged(store, run_ids)
    out: list[ex.Experiment] = []
    for run_id in run_ids:
        rows = ex.collect(run_id, by_run[run_id])
        fill(store, run_id, rows)
        out += rows.values()
    return out


def experiments(
    flow: str | None = None,
    since: float | datetime | timedelta | None = None,
    run: str | None = None,
    runs: Iterable[str] | None = None,
    sort: str | None = None,
    desc: bool = False,
    limit_runs: int | None = RECENT_RUNS,
) -> Any:
    """Params and metrics from the store, one row per task run that logged any, across runs:
    the newest ``limit_runs`` runs of ``flow`` (all flows if None) created ``since`` (epoch
    seconds, a datetime, or a timedelta meaning that long ago), or the runs ``run``/``runs``
    (ids or unique prefixes). A pandas DataFrame, or a list of dicts without pandas.

    >>> labloom.experiments(flow="sweep", since=timedelta(days=7), sort="auc", desc=True)
    """
    from . import open_store

    if isinstance(since, timedelta):
        since = time.time() - since.total_seconds()
    elif isinstance(since, datetime):
        since = since.timestamp()
    named = ([run] if run else []) + list(runs or [])
    with open_store() as store:
        if named:
            missing = [run_id for run_id in named if store.get_run(run_id) is None]
            if missing:
                raise TargetError(
                    f"[labloom] no run {missing[0]!r} in the store {store.database.display}; "
                    "`labloom runs` lists the recorded runs"
                )
        rows = experiments_across(store, flow, since, named or None, limit_runs)
    return ex.frame(ex.page(rows, sort, desc))


__all__ = ["encoded", "experiments", "experiments_across", "fill", "insert", "metric_points",
           "read_logged", "row_of", "run_experiments", "task_run_ids"]
