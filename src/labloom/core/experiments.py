"""Experiments side by side: one row per task run that logged params or metrics, in the shapes
every view shares (``run.experiments()``, ``labloom.experiments()``, the CLI, the REST API).

A row (``Experiment``) is the task run (run id, task run id, task name, map index, state,
duration) with its params and metrics, the last value of each name (for a curve, the value
at its highest step). ``page`` sorts and slices rows the same way for every surface; ``record``
flattens a row for a DataFrame or a CSV file, and ``jsonable`` writes one for JSON, where NaN
and inf, which JSON cannot hold, become the strings "NaN", "Infinity" and "-Infinity".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from .errors import UnknownColumnError

# One logging call: (task_run_id, kind, {name: value}, step, time), in the order logged.
Logged = tuple[str, str, dict[str, Any], "int | None", float]

# The kind of a call the engine adds (no values) when a task run that logged starts over, a
# retry of a failed attempt or a rerun (``FlowRun.retry``): what it logged before is not its
# result's (a task run that logged nothing needs none: ``sinks.ExecutorSink.forget_values``).
# Every reader folds the calls in order and drops that task run's row and curve points there,
# so a completed task run shows its last attempt's values, never a failed one's (a curve's
# step 5 of a first attempt that ran out of memory outranked the retry's steps 0-2).
RESET = "reset"

# Columns of every row, before its params and metrics.
FIXED = ("run_id", "task_run_id", "task", "map_index", "state", "duration")

# The sort of the views' own order, the one they show when sorted on nothing (js/src/expdata.js
# ``byIndex``): each run's tasks in the order they first logged, a task's rows by map index (a
# task run outside a map first), then as logged. Logged order put a sweep's children finished
# out of order as [3, 0, 2, 1] in a big run's tab (its pages are the server's), [0, 1, 2, 3] in
# the cell.
INDEX_ORDER = "index_order"
# Sorts that read each row's task run (its name, map index, state, duration).
TASK_RUN_SORTS = frozenset((*FIXED, INDEX_ORDER))

_NO_CURVES: Mapping[str, int] = MappingProxyType({})


@dataclass(slots=True)  # the server keeps 100,000 of them for a big run's pages
class Experiment:
    run_id: str
    task_run_id: str
    task: str = ""
    map_index: int | None = None
    state: str = ""
    duration: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Steps of the metric values kept (the curve's last point), to pick the highest, of the
    # metrics with curve points (``curved_metrics``); made by the first value logged with a
    # step. -1: its last value had no step, after points.
    _steps: dict[str, int] | None = field(default=None, repr=False)

    @property
    def curved_metrics(self) -> Mapping[str, int]:
        """The metrics with curve points (logged with a step since the task run last started
        over: what a step-curve chart can draw), each with the step of the value kept (-1: a
        value without a step came after the points). Read-only: ``add`` keeps it."""
        return self._steps or _NO_CURVES

    def add(self, kind: str, name: str, value: Any, step: int | None) -> None:
        if kind == "param":
            self.params[name] = value
            return
        steps = self._steps
        if steps and step is not None and name in self.metrics:
            kept = steps.get(name)
            if kept is not None and step < kept:
                return  # an earlier point of the curve, logged late
        self.metrics[name] = value
        if step is not None:
            if steps is None:
                steps = self._steps = {}
            steps[name] = step
        elif steps and name in steps:  # outranked by any later point, as a name missing is
            steps[name] = -1

    def get(self, column: str) -> Any:
        """A column's value: a fixed column, ``params.x``, ``metrics.x``, or a bare name
        (a metric first, then a param)."""
        if column in FIXED:
            return getattr(self, column)
        kind, _, name = column.partition(".")
        if kind == "params" and name:
            return self.params.get(name)
        if kind == "metrics" and name:
            return self.metrics.get(name)
        return self.metrics.get(column, self.params.get(column))

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "task_run_id": self.task_run_id, "task": self.task,
                "map_index": self.map_index, "state": self.state, "duration": self.duration,
                "params": dict(self.params), "metrics": dict(self.metrics)}


def collect(run_id: str, logged: Iterable[Logged],
            rows: dict[str, Experiment] | None = None) -> dict[str, Experiment]:
    """Rows by task run id, in the order their first value was logged (``rows``: the rows
    so far, to fold in calls logged since)."""
    rows = {} if rows is None else rows
    for task_run_id, kind, values, step, _time in logged:
        if kind == RESET:
            rows.pop(task_run_id, None)
            continue
        row = rows.get(task_run_id)
        if row is None:
            row = rows[task_run_id] = Experiment(run_id, task_run_id)
        if kind == "param":
            row.params.update(values)
        elif step is None and not row._steps:
            row.metrics.update(values)  # the common case, without a call per value
        else:
            for name, value in values.items():
                row.add(kind, name, value, step)
    return rows


Point = TypeVar("Point")


class CurvePoints(Generic[Point]):
    """Curve points in the order logged, each task run's since it last started over
    (``RESET``): a start over leaves the task run's points so far in place, stale, skipped
    when read and dropped all at once when they are half of the list. Dropping them at each
    start over was a pass over every point: 0.9 s of CPU for 200 retries among 200,000 points
    (the cell's view, under its lock), growing as their product. ``task_run_of``: a point's
    task run id."""

    def __init__(self, task_run_of: Callable[[Point], str]) -> None:
        self._items: list[Point] = []
        self._task_run_of = task_run_of
        self._live: dict[str, int] = {}  # how many points of each task run are current
        self._live_from: dict[str, int] = {}  # a task run's points before this index: stale
        self._stale = 0

    def add(self, task_run_id: str, point: Point) -> None:
        self._items.append(point)
        self._live[task_run_id] = self._live.get(task_run_id, 0) + 1

    def forget(self, task_run_id: str) -> None:
        """``task_run_id`` starts over: its points so far are stale."""
        stale = self._live.pop(task_run_id, 0)
        if not stale:
            return
        self._live_from[task_run_id] = len(self._items)
        self._stale += stale
        if self._stale * 2 > len(self._items):
            self._items = list(self)
            self._live_from.clear()
            self._stale = 0

    def __len__(self) -> int:
        """The points that are current."""
        return len(self._items) - self._stale

    def __iter__(self) -> Iterator[Point]:
        live_from, task_run_of = self._live_from, self._task_run_of
        if not live_from:
            return iter(self._items)
        return (point for at, point in enumerate(self._items)
                if at >= live_from.get(task_run_of(point), 0))


_TYPES = {bool: "bool", int: "number", float: "number", str: "string"}


def columns(rows: Sequence[Experiment]) -> list[dict[str, Any]]:
    """The params and metrics the rows hold, each once, with the type of its values
    ("number", "bool", "string"; "mixed" when they differ): a table's or chart's header. A
    metric with curve points has ``"steps": True``."""
    seen: dict[tuple[str, str], str] = {}
    types = _TYPES
    for row in rows:
        for kind, values in (("param", row.params), ("metric", row.metrics)):
            for name, value in values.items():
                kind_of = types.get(type(value)) or value_type(value)
                key = (kind, name)
                before = seen.get(key)
                if before == kind_of or (kind_of == "none" and before is not None):
                    continue
                seen[key] = kind_of if before in (None, "none") else "mixed"
    curved = _curved(rows)
    return [{"kind": kind, "name": name, "type": type_,
             **({"steps": True} if kind == "metric" and name in curved else {})}
            for (kind, name), type_ in sorted(seen.items(), key=lambda item: item[0][0] != "param")]


def _curved(rows: Sequence[Experiment]) -> set[str]:
    """The metrics some row has curve points of (logged with a step, since its task run last
    started over): the ones a step-curve chart can draw."""
    curved: set[str] = set()
    for row in rows:
        if row._steps:  # (its own module: no property call per row of a 100,000-row page)
            curved.update(row._steps)
    return curved


def value_type(value: Any) -> str:
    """A value's type as a column says it: "number", "bool", "string", or "none"."""
    kind = _TYPES.get(type(value))
    if kind is not None:
        return kind
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def check_sort(rows: Sequence[Experiment], sort: str | None) -> None:
    """A sort a user typed (``run.experiments``, ``labloom.experiments``, the CLI) names a
    column some row has: else most likely a typo ("acu"), and the rows would come back in their
    own order, looking sorted. Views sort by the columns they were given and page rows that
    may lose a column for a while (a retry drops its row's values): ``page`` takes any name."""
    if not sort or not rows or sort in TASK_RUN_SORTS:
        return
    names = columns(rows)
    kind, _, name = sort.partition(".")
    for column in names:
        if column["name"] == sort or (column["kind"] + "s" == kind and column["name"] == name):
            return  # a bare name, or params.NAME / metrics.NAME
    known = ", ".join(column["name"] for column in names) or "none"
    raise UnknownColumnError(
        f"[labloom] no column {sort!r} to sort by; the rows' params and metrics: {known} "
        f"(also {', '.join(FIXED)}, {INDEX_ORDER}; params.NAME or metrics.NAME when both "
        f"have a NAME)"
    )


def page(rows: Sequence[Experiment], sort: str | None = None, desc: bool = False,
         limit: int | None = None, offset: int = 0) -> list[Experiment]:
    """Rows sorted by ``sort`` (a column as ``Experiment.get`` reads it; values missing or
    NaN last either way, numbers before strings, ties in the rows' order either way), then
    ``offset`` and ``limit`` applied."""
    ordered = order(rows, sort, desc)
    end = None if limit is None else offset + limit
    return ordered[offset:end]


def order(rows: Sequence[Experiment], sort: str | None = None, desc: bool = False,
          ) -> list[Experiment]:
    """Every row, in the order ``page`` pages them: one value read per row, then one sort."""
    if not sort:
        return list(rows)
    if sort == INDEX_ORDER:
        return [rows[i] for i in index_positions(
            [(row.run_id, row.task) for row in rows], [row.map_index for row in rows], desc)]
    present: list[tuple[tuple[int, Any], int]] = []
    absent: list[int] = []
    for i, row in enumerate(rows):
        key = sort_key(row.get(sort))
        if key is None:
            absent.append(i)
        else:
            present.append((key, i))
    # Sorting (key, index) pairs by the key alone keeps ties in the rows' order, descending too.
    present.sort(key=_key, reverse=desc)
    return [rows[i] for _, i in present] + [rows[i] for i in absent]


def sort_key(value: Any) -> tuple[int, Any] | None:
    """What ``order`` sorts a value by: numbers (bools too) before text; None for a value
    missing or NaN, which goes last either way."""
    if value is None or value != value:  # NaN is the one value unequal to itself
        return None
    if isinstance(value, (bool, int, float)):
        return (0, float(value))
    return (1, str(value))


def _key(pair: tuple[tuple[int, Any], int]) -> tuple[int, Any]:
    return pair[0]


def index_positions(tasks: Sequence[Any], indexes: Sequence[int | None], desc: bool = False,
                    ) -> list[int]:
    """Positions in ``INDEX_ORDER`` of rows of these tasks (any hashable: a run's and task's
    names) and map indexes, ties in position order either way."""
    rank: dict[Any, int] = {}
    keys = [(rank.setdefault(task, len(rank)), -1 if index is None else index)
            for task, index in zip(tasks, indexes, strict=True)]
    return sorted(range(len(keys)), key=keys.__getitem__, reverse=desc)


def answer_of(shown: Sequence[Experiment], names: list[dict[str, str]], total: int,
              sort: str | None, desc: bool, limit: int, offset: int,
              more: Callable[[Experiment], dict[str, Any]] | None = None,
              ) -> dict[str, Any]:
    """The one shape of a page of rows, as ``GET runs/{id}/experiments`` gives it
    (docs/rest-api.md) and the cell's view is answered: ``columns``, ``total``, ``offset``,
    ``limit``, ``sort``, ``desc``, ``next`` (the next page's offset, or None), ``rows`` (each
    ``Experiment.as_dict``, plus what ``more`` adds), JSON-safe (``jsonable``)."""
    end = offset + len(shown)
    rows = ([row.as_dict() for row in shown] if more is None
            else [{**row.as_dict(), **more(row)} for row in shown])
    page: dict[str, Any] = jsonable({
        "columns": names, "total": total, "offset": offset, "limit": limit, "sort": sort,
        "desc": desc, "next": end if end < total else None, "rows": rows,
    })
    return page


def answer(rows: Sequence[Experiment], sort: str | None, desc: bool, limit: int, offset: int,
           more: Callable[[Experiment], dict[str, Any]] | None = None) -> dict[str, Any]:
    """A page of ``rows`` (all of them in memory) in ``answer_of``'s shape."""
    shown = page(rows, sort, desc, limit, offset)
    return answer_of(shown, columns(rows), len(rows), sort, desc, limit, offset, more)


def record(row: Experiment, names: Sequence[dict[str, str]]) -> dict[str, Any]:
    """One flat dict: the fixed columns, then each param and metric under its name (a name
    that is both a param and a metric, or a fixed column's such as ``task`` or ``state``, is
    written ``params.x`` and ``metrics.x``: it overwrote the task run's own state)."""
    prefixed = _both(names) | _FIXED_NAMES
    out: dict[str, Any] = {column: getattr(row, column) for column in FIXED}
    for column in names:
        name, kind = column["name"], column["kind"]
        values = row.params if kind == "param" else row.metrics
        key = f"{kind}s.{name}" if name in prefixed else name
        out[key] = values.get(name)
    return out


_FIXED_NAMES = frozenset(FIXED)


def _both(names: Sequence[dict[str, str]]) -> set[str]:
    params = {c["name"] for c in names if c["kind"] == "param"}
    return {c["name"] for c in names if c["kind"] == "metric" and c["name"] in params}


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float as a string JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def frame(rows: Sequence[Experiment]) -> Any:
    """A pandas DataFrame of ``rows`` (flat, see ``record``), or a list of dicts when pandas
    is not installed (it is optional)."""
    names = columns(rows)
    records = [record(row, names) for row in rows]
    try:
        import pandas
    except ImportError:
        return records
    header = list(record(Experiment("", ""), names))  # every record has these keys
    return pandas.DataFrame.from_records(records, columns=header)


__all__ = ["INDEX_ORDER", "RESET", "TASK_RUN_SORTS", "CurvePoints", "Experiment", "answer",
           "answer_of", "collect", "columns", "frame", "index_positions", "jsonable", "order",
           "page", "record", "sort_key", "value_type"]
