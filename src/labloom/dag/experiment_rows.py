"""A live run's experiment rows for the cell's Experiments view, folded from its
``ExperimentCalls`` (and ``ExperimentValues``) events, and answered a page at a time in the
shapes of the REST routes ``GET runs/{id}/experiments`` and ``.../experiments/curves``
(docs/rest-api.md), so the one renderer (js/src/experiments.js) reads both hosts alike.

The widget's traffic stays bounded: the front end asks for a page of rows (at most
``MAX_PAGE``) or one metric's curve points (at most ``MAX_POINTS``), never the whole table; an
answer to a question asked before is "unchanged" when no event arrived since (``version``).
Memory: one ``Experiment`` per task run that logged, plus the points of metrics logged with a
step; nothing for task runs that log nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import Any

from ..core import experiment_filter as ef
from ..core import experiments as ex
from ..core.errors import LabloomError
from ..core.events import Event, ExperimentCalls, ExperimentValues
from .model import TaskRunInfo, ViewGraph

MAX_PAGE = 1000
MAX_POINTS = 20_000


class ExperimentRows:
    def __init__(self) -> None:
        self._rows: dict[str, ex.Experiment] = {}
        # Curve points of metrics logged with a step: (task_run_id, metric, step, value, time).
        # Which metrics have some is said by the page's columns (``"steps": true``, from the
        # rows: ``Experiment.curved_metrics``), as the REST pages say it.
        self._points: ex.CurvePoints[tuple[str, str, int, Any, float]] = ex.CurvePoints(
            itemgetter(0))

    def apply(self, events: Iterable[Event]) -> bool:
        """Fold a batch in; True when it held params or metrics."""
        seen = False
        for event in events:
            if not isinstance(event, (ExperimentCalls, ExperimentValues)):
                continue
            seen = True
            for task_run_id, kind, values, step, when in event.calls:
                if kind == ex.RESET:
                    self._forget(task_run_id)
                    continue
                row = self._rows.get(task_run_id)
                if row is None:
                    row = self._rows[task_run_id] = ex.Experiment(event.run_id, task_run_id)
                for name, value in values.items():
                    row.add(kind, name, value, step)
                    if step is not None and kind == "metric":
                        self._points.add(task_run_id, (task_run_id, name, step, value, when))
        return seen

    def _forget(self, task_run_id: str) -> None:
        """A task run starting over (``ex.RESET``): its row and its curve points go."""
        self._rows.pop(task_run_id, None)
        self._points.forget(task_run_id)

    def by_task_run(self) -> Mapping[str, ex.Experiment]:
        """The live rows by task run id (read, never written), for a pass over many."""
        return self._rows

    def row(self, task_run_id: str) -> ex.Experiment | None:
        """The live row of ``task_run_id``, None if it logged nothing (since it last started
        over)."""
        return self._rows.get(task_run_id)

    def snapshot(self, graph: ViewGraph, node: str | None) -> list[tuple[ex.Experiment, str]]:
        """Copies of the rows of ``node``'s current task runs (every node's without it), each
        with its node id: taken under the view's lock, sorted and paged outside it."""
        if node is not None and node not in graph.nodes:
            raise LabloomError(f"[labloom] no node {node!r} in this run")
        nodes = [graph.nodes[node]] if node is not None else list(graph.nodes.values())
        out = []
        for info in nodes:
            for task_run_id in info.runs.values():
                row = self._rows.get(task_run_id)
                tr = graph.task_runs.get(task_run_id)
                if row is not None and tr is not None:
                    out.append((filled(row, tr), info.id))
        return out

    def points(self, metric: str, task_runs: set[str] | None,
               graph: ViewGraph) -> list[dict[str, Any]]:
        out = []
        for task_run_id, name, step, value, when in self._points:
            if name != metric or (task_runs is not None and task_run_id not in task_runs):
                continue
            tr = graph.task_runs.get(task_run_id)
            out.append({"task_run_id": task_run_id, "task": tr.name if tr else "",
                        "map_index": tr.map_index if tr else None,
                        "state": tr.state.value if tr else "", "step": step, "value": value,
                        "time": when})
        return out


def filled(row: ex.Experiment, tr: TaskRunInfo) -> ex.Experiment:
    """A copy of ``row`` with its task run's name, map index, state and duration."""
    curved = row.curved_metrics  # the columns mark these
    return ex.Experiment(row.run_id, row.task_run_id, tr.name, tr.map_index, tr.state.value,
                         duration(tr), dict(row.params), dict(row.metrics),
                         dict(curved) if curved else None)


def duration(tr: TaskRunInfo) -> float | None:
    return tr.end - tr.start if tr.start is not None and tr.end is not None else None


def page_answer(rows: list[tuple[ex.Experiment, str]], message: dict[str, Any]) -> dict[str, Any]:
    """The answer ``GET runs/{id}/experiments`` gives, with each row's ``node`` too (a click
    on it selects that node's task run), for the message's ``sort``, ``desc``, ``limit``,
    ``offset`` and ``filter``; bad ones raise ``LabloomError`` naming the fix. Every row
    sorted again: the live view keeps its orders instead (``live_order.LiveOrders``)."""
    sort, desc, limit, offset, query = question(message)
    nodes = {id(row): node for row, node in rows}
    plain = [row for row, _node in rows]
    names = ex.columns(plain)
    ordered = ex.order(ef.kept(plain, query, names), sort, desc)
    return ex.answer_of(ordered[offset:offset + limit], names, len(ordered), sort, desc,
                        limit, offset, lambda row: {"node": nodes[id(row)]})


def question(message: dict[str, Any]) -> tuple[str | None, bool, int, int, str]:
    """The message's sort, desc, limit, offset and filter; bad ones raise naming the fix."""
    sort = message.get("sort") or None
    if sort is not None and not isinstance(sort, str):
        raise LabloomError(f"[labloom] sort must be a column name, got {sort!r}")
    limit, offset = _int(message, "limit", 100, MAX_PAGE), _int(message, "offset", 0, 2**62)
    desc = bool(message.get("desc"))
    query = message.get("filter") or ""
    if not isinstance(query, str):
        raise LabloomError(f"[labloom] filter must be text like 'auc>0.9 gini', got {query!r}")
    return sort, desc, limit, offset, query


def curve_answer(rows: ExperimentRows, graph: ViewGraph, message: dict[str, Any]) -> dict[str, Any]:
    """The answer ``GET runs/{id}/experiments/curves`` gives for the message's ``metric`` and
    ``task_runs``, at most ``limit`` points."""
    metric = message.get("metric")
    if not isinstance(metric, str) or not metric:
        raise LabloomError("[labloom] curves need a metric: the name of a logged metric")
    wanted = message.get("task_runs")
    task_runs = {str(t) for t in wanted} if isinstance(wanted, list) else None
    limit = _int(message, "limit", MAX_POINTS, MAX_POINTS, low=1)
    points = rows.points(metric, task_runs, graph)
    answer: dict[str, Any] = ex.jsonable({
        "run_id": graph.run_id, "metric": metric, "total": len(points),
        "truncated": len(points) > limit, "points": points[:limit],
    })
    return answer


def _int(message: dict[str, Any], name: str, default: int, high: int, low: int = 0) -> int:
    value = message.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LabloomError(f"[labloom] {name} must be a whole number from {low} to {high}, "
                           f"got {value!r}")
    return value


__all__ = ["ExperimentRows", "curve_answer", "duration", "filled", "page_answer", "question"]
