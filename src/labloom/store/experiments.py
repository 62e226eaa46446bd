"""Params and metrics in the store: how a value is written (``encode``) so that numbers stay
numbers and NaN and inf survive on both backends, and reading them back as experiment rows
(``core/experiments.py``), for one run or across runs.

A value is stored as its type ("int", "float", "bool", "str", "none") with a ``number`` column
(REAL) and a ``text`` column: SQLite stores a NaN as NULL, so a float whose number is NULL is
NaN; an int beyond 2**53, which a REAL cannot hold exactly, also keeps its digits in ``text``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..core import experiments as ex
from ..core.errors import TargetError

if TYPE_CHECKING:  # the writer imports this module, and the reader imports the writer
    from .reader import RunStore

COLUMNS = ("run_id", "task_run_id", "kind", "name", "type", "number", "text", "step", "time")
_EXACT = 2**53


def encode(value: Any) -> tuple[str, float | None, str | None]:
    """(type, number, text) of a checked value (``experiment_values.check_value``)."""
    if value is None:
        return "none", None, None
    if isinstance(value, bool):
        return "bool", float(value), None
    if isinstance(value, int):
        return "int", float(value), str(value) if abs(value) > _EXACT else None
    if isinstance(value, float):
        return "float", None if value != value else value, None
    return "str", None, str(value)


def decode(type_: str, number: float | None, text: str | None) -> Any:
    if type_ == "float":
        return float("nan") if number is None else float(number)
    if type_ == "int":
        return int(text) if text is not None else int(number or 0)
    if type_ == "bool":
        return bool(number)
    if type_ == "str":
        return text
    return None


def rows_of(event_values: Iterable[Any], run_id: str, task_run_id: str,
            when: float) -> list[tuple[Any, ...]]:
    """The rows of one ``ExperimentValues`` event, for the writer's batch."""
    return [(run_id, task_run_id, kind, name, *encode(value), step, when)
            for kind, name, value, step in event_values]


def _values(store: RunStore, run_ids: list[str]) -> dict[str, list[ex.ValueRow]]:
    by_run: dict[str, list[ex.ValueRow]] = {run_id: [] for run_id in run_ids}
    for start in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = run_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for run_id, task_run_id, kind, name, type_, number, text, step, when in store.conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM experiment_values WHERE run_id IN ({marks}) "
            "ORDER BY id", chunk
        ):
            by_run[run_id].append((task_run_id, kind, name, decode(type_, number, text), step,
                                   when))
    return by_run


def _fill(store: RunStore, run_id: str, rows: dict[str, ex.Experiment]) -> None:
    """Each row's task run: name, map index, state, duration."""
    if not rows:
        return
    for task_run_id, name, map_index, state, started, ended in store.conn.execute(
        "SELECT id, task_name, map_index, state, started, ended FROM task_runs "
        "WHERE run_id = ?", (run_id,)
    ):
        row = rows.get(task_run_id)
        if row is not None:
            row.task, row.map_index, row.state = name, map_index, state
            row.duration = ended - started if started is not None and ended is not None else None


def run_experiments(store: RunStore, run_id: str) -> list[ex.Experiment]:
    """The rows of one run (``run_id`` exactly; see ``RunStore.get_run`` for prefixes)."""
    store.reconcile()
    rows = ex.collect(run_id, _values(store, [run_id])[run_id])
    _fill(store, run_id, rows)
    return list(rows.values())


def experiments_across(
    store: RunStore, flow: str | None = None, since: float | None = None,
    runs: list[str] | None = None, limit_runs: int | None = 100,
) -> list[ex.Experiment]:
    """The rows of the newest ``limit_runs`` runs (of ``flow``, created ``since``), or of the
    runs named in ``runs``; newest run first, each run's rows in the order logged."""
    if runs:
        found = [store.get_run(run_id) for run_id in runs]
        run_ids = [run.id for run in found if run is not None]
    else:
        run_ids = [run.id for run in store.list_runs(flow, limit_runs, since=since)]
    by_run = _values(store, run_ids)
    out: list[ex.Experiment] = []
    for run_id in run_ids:
        rows = ex.collect(run_id, by_run[run_id])
        _fill(store, run_id, rows)
        out += rows.values()
    return out


def experiments(
    flow: str | None = None,
    since: float | datetime | timedelta | None = None,
    run: str | None = None,
    runs: Iterable[str] | None = None,
    sort: str | None = None,
    desc: bool = False,
    limit_runs: int | None = 100,
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


__all__ = ["decode", "encode", "experiments", "experiments_across", "rows_of", "run_experiments"]
