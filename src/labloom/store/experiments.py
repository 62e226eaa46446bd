"""Params and metrics in the store, and reading them back as experiment rows
(``core/experiments.py``), for one run or across runs.

The writer stores a batch's logging calls (``log_metrics(auc=..., loss=...)``,
``@task(metrics=[...])``) of one run as one row: the calls, each ``[task_run_id, kind, values,
step, time]``, by column in one msgpack array (at most ``CALLS_PER_ROW`` calls a row, in the
order logged), or as JSON text where msgpack cannot hold a value exactly; ``logged_calls.py``
says how each kind of row holds them, those written by older labloom included, and why
msgpack. The database never parses the values (SQLite's JSON before 3.42 and PostgreSQL's
jsonb refuse NaN), it only stores them. One row per batch, not per call: the writer's cost per logged metric is
what issue 19's 1.10x target is about (benchmarks/README.md): a row per call cost 6.4 to 7.7 µs
of CPU a call (SQLite parsing the batch's JSON into rows, the index), a row per batch 3.1 to
3.3 µs, and reading a run reads a few hundred rows rather than 200,000. The readers sort and
page rows in Python (``core/experiments.page``; the server keeps a run's rows between pages,
``server_extension/experiment_rows.py``).
"""

from __future__ import annotations

import json
import operator
import warnings
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce
from typing import TYPE_CHECKING, Any

from ..core import experiment_filter as ef
from ..core import experiments as ex
from ..core.errors import TargetError
from ..core.events import ExperimentCalls
from .since_text import since_epoch

if TYPE_CHECKING:
    from .reader import RunRecord, RunStore

# Runs read across when none are named: the newest 20 (Python, the CLI and the REST API alike).
RECENT_RUNS = 20
COLUMNS = ("run_id", "task_run_id", "kind", "step", "time", "data", "packed")


CALLS_PER_ROW = 1000  # a row of ~65 KB (3 metrics a call): a first look reads a few rows


def row_of(event: Any) -> tuple[Any, ...]:
    """The row of an ``ExperimentCalls`` or ``ExperimentValues`` event as the writer's batch
    keeps it: (run id, the event); ``insert`` puts a batch's in few rows."""
    return (event.run_id, event)


def encoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as the writer writes it alone (``Rows.write_one_by_one``): one row holding the
    event's calls, as ``insert`` writes them."""
    run_id, event = row
    return _stored_row(run_id, event.columns)


def _stored_row(run_id: str, columns: Any) -> tuple[Any, ...]:
    from .logged_calls import stored  # msgpack: not on ``import labloom``

    kind, data, packed = stored(columns)
    return (run_id, "", kind, None, columns[4][0], data, packed)


_BATCH_SQL = (f"INSERT INTO experiment_values ({', '.join(COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(COLUMNS))})")


def insert(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """The writer's batch of calls, inside its transaction: per run, one row for each
    ``CALLS_PER_ROW`` calls, by column as the events hold them (nothing made per call),
    encoded once in C."""
    if not rows:
        return
    conn.executemany(_BATCH_SQL, [
        _stored_row(run_id, tuple(column[i : i + CALLS_PER_ROW] for column in columns))
        for run_id, events in _by_run(rows).items()
        for columns in (_joined(events),)
        for i in range(0, len(columns[0]), CALLS_PER_ROW)
    ])


_RUN, _EVENT = operator.itemgetter(0), operator.itemgetter(1)
# An ``ExperimentCalls``'s five columns, read in C; ``columns`` (a property, a Python call) for
# the other kind, ``ExperimentValues`` (a replay).
_CALL_COLUMNS = operator.attrgetter("task_run_ids", "kinds", "values", "steps", "times")
_ANY_COLUMNS = operator.attrgetter("columns")


def _by_run(rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """The rows' events by run, each run's in the order logged. Most writes hold one run's:
    no Python step per event then (a map's events hold one call each as often as not, and
    what the writer did per event cost more than packing its call, issue 19)."""
    runs = set(map(_RUN, rows))
    if len(runs) == 1:
        return {runs.pop(): list(map(_EVENT, rows))}
    by_run: dict[str, list[Any]] = {}
    for run_id, event in rows:
        by_run.setdefault(run_id, []).append(event)
    return by_run


def _joined(events: list[Any]) -> tuple[list[Any], ...]:
    """The events' calls as five columns (task run ids, kinds, values, steps, times), in order,
    each joined in C (a list extended by each event's: no iterator per event, as ``chain``
    made; 0.24 against 0.32 µs an event of one call)."""
    only_calls = set(map(type, events)) == {ExperimentCalls}
    each = map(_CALL_COLUMNS if only_calls else _ANY_COLUMNS, events)
    return tuple(reduce(operator.iadd, column, []) for column in zip(*each, strict=True))


# Rows per read (at most half a million calls, most often a few thousand): a short read, so no
# read holds a snapshot for long (follow.py).
PAGE = 500

# A row as ``logged_calls.calls_of`` takes it.
_ROWS = ("SELECT id, kind, task_run_id, step, time, data, packed FROM experiment_values "
         "WHERE run_id = ?")


def read_logged(store: RunStore, run_id: str, after: int = 0, limit: int = PAGE,
                ) -> tuple[list[ex.Logged], int, bool]:
    """The logging calls of up to ``limit`` rows of the run after the row ``after`` (rows are
    append-only, so an id is a cursor), in the order logged, the cursor after them, and
    whether more rows may follow (``limit`` were read)."""
    from .logged_calls import calls_of

    logged: list[ex.Logged] = []
    count, last = 0, after
    for row in store.conn.execute(f"{_ROWS} AND id > ? ORDER BY id LIMIT ?",
                                  (run_id, after, limit)):
        logged += calls_of(*row)
        count, last = count + 1, row[0]
    return logged, int(last), count >= limit


def _logged(store: RunStore, run_ids: list[str]) -> dict[str, list[ex.Logged]]:
    by_run: dict[str, list[ex.Logged]] = {}
    for run_id in run_ids:
        logged = by_run[run_id] = []
        cursor, more = 0, True
        while more:
            chunk, cursor, more = read_logged(store, run_id, cursor)
            logged += chunk
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
    from .logged_calls import PACKED, calls_of

    wanted = set(task_run_ids) if task_run_ids else None
    # The name as it appears in a row, a cheap first filter: JSON text, or its UTF-8 bytes in
    # msgpack (surrogatepass: a name that cannot be UTF-8 is in no packed row); a row holding
    # a task run's start over (``ex.RESET``) is read too.
    text_key, packed_key = json.dumps(metric), metric.encode("utf-8", "surrogatepass")
    reset_text, reset_packed = json.dumps(ex.RESET), ex.RESET.encode()
    points: ex.CurvePoints[dict[str, Any]] = ex.CurvePoints(operator.itemgetter("task_run_id"))
    total = 0
    counted: dict[str, int] = {}  # points by task run (kept or not), taken back at a start over
    for row in store.conn.execute(
        f"{_ROWS} AND kind IN ('metric', 'calls', 'packed') ORDER BY id", (run_id,)
    ):
        kind, data, packed = row[1], row[5], row[6]
        if kind == PACKED:
            packed = packed or b""  # None (a damaged row): it holds neither, skipped
            if packed_key not in packed and reset_packed not in packed:
                continue
        elif text_key not in data and reset_text not in data:
            continue
        for task_run_id, kind, values, step, when in calls_of(*row):
            if kind == ex.RESET:
                total -= counted.pop(task_run_id, 0)
                points.forget(task_run_id)
                continue
            if (kind != "metric" or metric not in values
                    or (wanted is not None and task_run_id not in wanted)):
                continue
            total += 1
            counted[task_run_id] = counted.get(task_run_id, 0) + 1
            if len(points) < limit:
                points.add(task_run_id, {"task_run_id": task_run_id, "step": step,
                                         "value": values[metric], "time": when})
    kept = list(points)
    if kept:
        rows = {p["task_run_id"]: ex.Experiment(run_id, p["task_run_id"]) for p in kept}
        fill(store, run_id, rows)
        for point in kept:
            row = rows[point["task_run_id"]]
            point.update(task=row.task, map_index=row.map_index, state=row.state)
    return kept, total


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
    return rows_of(store, runs_to_read(store, flow, since, runs, limit_runs))


def runs_to_read(
    store: RunStore, flow: str | None = None, since: float | None = None,
    runs: list[str] | None = None, limit_runs: int | None = RECENT_RUNS,
) -> list[RunRecord]:
    """``experiments_across``'s runs: each once, though named twice (an id and its prefix)."""
    # Neither their task runs counted by state nor their parameters: rows never show them, and
    # each is a read of the whole run (an older run's parameters may be tens of MB).
    if not runs:
        return store.list_runs(flow, limit_runs, since=since, counts=False, parameters=False)
    found: dict[str, RunRecord] = {}
    for run_id in runs:
        named = store.matching_runs(run_id, limit=2, parameters=False)
        if len(named) == 1:  # (a prefix naming two runs names none, as for ``get_run``)
            found.setdefault(named[0].id, named[0])
    return list(found.values())


def check_sort(records: list[RunRecord], rows: list[ex.Experiment], sort: str | None) -> None:
    """``ex.check_sort`` once every run read has ended: while one runs, a metric its task runs
    will log may not have come yet (as ``FlowRun.experiments`` takes it), and a sweep watched
    from the shell sorted by its auc is no typo."""
    if _all_ended(records):
        ex.check_sort(rows, sort)


def check_filter(records: list[RunRecord], names: list[dict[str, Any]], query: str | None,
                 across: bool) -> None:
    """``ef.check_names`` once every run read has ended, as ``check_sort``."""
    if _all_ended(records):
        ef.check_names(query, names, across)


def _all_ended(records: list[RunRecord]) -> bool:
    return all(record.ended is not None for record in records)


def rows_of(store: RunStore, records: list[RunRecord]) -> list[ex.Experiment]:
    """The rows of these runs, in their order, each run's in the order logged."""
    return [row for rows in rows_by_run(store, records).values() for row in rows]


def rows_by_run(store: RunStore, records: list[RunRecord]) -> dict[str, list[ex.Experiment]]:
    """Each run's rows, in the order logged, by run id in the runs' order."""
    run_ids = [record.id for record in records]
    by_run = _logged(store, run_ids)
    out: dict[str, list[ex.Experiment]] = {}
    for run_id in run_ids:
        rows = ex.collect(run_id, by_run[run_id])
        fill(store, run_id, rows)
        out[run_id] = list(rows.values())
    return out


def experiments(
    flow: str | None = None,
    since: float | str | datetime | timedelta | None = None,
    run: Any = None,
    runs: Iterable[Any] | str | None = None,
    sort: str | None = None,
    desc: bool = False,
    limit_runs: int | None = RECENT_RUNS,
) -> Any:
    """Params and metrics from the store, one row per task run that logged any, across runs:
    the newest ``limit_runs`` runs of ``flow`` (all flows if None) created ``since`` (epoch
    seconds, a datetime, a timedelta meaning that long ago, or text as ``labloom experiments
    --since`` reads it: "2026-12-01", "7d"), or the runs ``run``/``runs``
    (ids or unique prefixes, or the runs themselves). A pandas DataFrame, or a list of dicts
    without pandas.

    >>> labloom.experiments(flow="sweep", since=timedelta(days=7), sort="auc", desc=True)
    """
    from .reader import RunStore  # reading: the writer's rows need not load the reader

    since = since_epoch(since)
    if isinstance(runs, str) or isinstance(getattr(runs, "id", None), str):
        runs = [runs]  # one run, by its id (not its characters) or itself
    elif runs is not None and not isinstance(runs, Iterable):
        raise TypeError(f"[labloom] runs takes run ids or runs (a list, or one), got a "
                        f"{type(runs).__name__}")
    named = [_run_id(each) for each in ([run] if run else []) + list(runs or [])]
    with RunStore() as store:
        if named:
            missing = [run_id for run_id in named
                       if len(store.matching_runs(run_id, 2, parameters=False)) != 1]
            if missing:
                raise TargetError(
                    f"[labloom] no run {missing[0]!r} in the store {store.database.display}; "
                    "`labloom runs` lists the recorded runs"
                )
        records = runs_to_read(store, flow, since, named or None, limit_runs)
        if flow and not records and not named:
            _warn_if_no_runs(store, flow)
        rows = rows_of(store, records)
    check_sort(records, rows, sort)
    return ex.frame(ex.page(rows, sort, desc))


def _warn_if_no_runs(store: RunStore, flow: str) -> None:
    """A flow of no run at all is most often a typo, which came back as an empty frame, as
    if the flow had logged nothing. A warning, not an error, as the CLI's note (exit 0) and the
    REST API's empty page: a script may ask before a new flow's first run is recorded."""
    if store.list_runs(flow, 1, counts=False, parameters=False):
        return  # runs, none of them since ``since``: an answer, not a typo
    names = [name for (name,) in store.conn.execute(
        "SELECT DISTINCT flow_name FROM flow_runs ORDER BY flow_name LIMIT 21")]
    listed = ", ".join(repr(name) for name in names[:20]) + (", ..." if len(names) > 20 else "")
    warnings.warn(f"[labloom] no runs of flow {flow!r} recorded in the store "
                  f"{store.database.display}" + (f"; its flows: {listed}" if names else "")
                  + " (`labloom runs` lists the runs)", stacklevel=3)


def _run_id(run: Any) -> str:
    """A run named by its id (or a unique prefix), or given itself (a ``FlowRun``, a stored
    record): its ``id``. Handed to the database, a run object was an error about binding."""
    if isinstance(run, str):
        return run
    run_id = getattr(run, "id", None)
    if isinstance(run_id, str):
        return run_id
    raise TypeError(f"[labloom] a run is named by its id (a string) or given as a run, got a "
                    f"{type(run).__name__}")


__all__ = ["check_filter", "check_sort", "encoded", "experiments", "experiments_across", "fill", "insert",
           "metric_points", "read_logged", "row_of", "rows_by_run", "rows_of", "run_experiments", "runs_to_read",
           "task_run_ids"]
