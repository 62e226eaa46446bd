"""``runs/{id}/experiments`` and ``experiments``: params and metrics, one row per task run, a
page at a time, sorted by any column (the run view's table and charts page through it).

Every answer has one shape (docs/rest-api.md): ``columns`` (kind, name, type), ``total``,
``offset``, ``limit``, ``next`` (the next page's offset, or null), ``rows`` (see
``core/experiments.Experiment.as_dict``). One run's pages come from the rows the server keeps
(``experiment_rows.py``: read once, then followed by cursor; until a big run is read whole
its pages are partial, ``"partial": true``, answered from the rows read so far); pages across
runs are read whole each time, but ended runs' rows once (``across_rows.py``). NaN and inf travel as "NaN", "Infinity", "-Infinity", since
JSON has no such numbers.
"""

from __future__ import annotations

from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core import experiment_filter as ef
from ..core import experiments as ex
from ..store.experiments import RECENT_RUNS, metric_points, runs_to_read
from ..store.reader import RunStore
from . import validate
from .base import LabloomHandler
from .experiment_rows import UnknownTask
from .queries import StoreAccess

MAX_PAGE = 1000
MAX_RUNS = 200
MAX_POINTS = 20_000


def run_page(access: StoreAccess, store: RunStore, run_id: str, sort: str | None, desc: bool,
             limit: int, offset: int, query: str = "", task: str | None = None,
             ) -> dict[str, Any] | None:
    # (get_run would count every task run, and read the parameters)
    runs = store.matching_runs(run_id, limit=2, parameters=False)
    if len(runs) != 1:
        return None
    try:
        page = access.experiments.page(store, runs[0], sort, desc, limit, offset, task,
                                       later=access.later, query=query)
    except UnknownTask as exc:
        raise web.HTTPError(400, str(exc).removeprefix("[labloom] ")) from None
    return {"run_id": runs[0].id, **page}


def across_page(access: Any, store: RunStore, flow: str | None, since: float | None,
                runs: list[str], max_runs: int, sort: str | None, desc: bool, limit: int,
                offset: int, query: str = "") -> dict[str, Any]:
    records = runs_to_read(store, flow, since, runs or None, max_runs)
    rows = access.across.rows(store, records)
    run_ids = list(dict.fromkeys(row.run_id for row in rows))
    # The runs that may still log: the compare tab asks again while there are any.
    running = [record.id for record in records if record.ended is None]
    return {"runs": run_ids, "running": running,
            **ef.answer(rows, sort, desc, limit, offset, query, extra=("run_id",))}


def curve(access: Any, store: RunStore, run_id: str, metric: str, task_run_ids: list[str],
          limit: int) -> dict[str, Any] | None:
    runs = store.matching_runs(run_id, limit=2, parameters=False)  # (as run_page)
    if len(runs) != 1:
        return None
    points, total = metric_points(store, runs[0].id, metric, task_run_ids, limit)
    answer: dict[str, Any] = ex.jsonable({"run_id": runs[0].id, "metric": metric, "total": total,
                                          "truncated": total > len(points), "points": points})
    return answer


class _Paged(LabloomHandler):
    def paging(self) -> tuple[str | None, bool, int, int, str]:
        sort = self.get_argument("sort", None) or None
        desc = self.bool_argument("desc", False)
        limit = self.int_argument("limit", 100, 0, MAX_PAGE)
        offset = self.int_argument("offset", 0, 0, 2**62)
        query = self.get_argument("filter", "")
        if len(query) > ef.MAX_FILTER:
            raise web.HTTPError(400, f"filter is at most {ef.MAX_FILTER} characters")
        return sort, desc, limit, offset, query


class RunExperimentsHandler(_Paged):
    lane = "run"  # a run tab's view: a first look at a big run never holds up the panel
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """One run's rows: ``sort`` (a metric or param name, ``params.x``, ``metrics.x``,
        ``duration``, ``map_index``, ``state``; ``index_order``: the views' order, by task then
        map index), ``desc``, ``limit`` (<= 1000), ``offset``,
        ``filter`` (the view's: ``auc>0.9 criterion=gini words``); ``task``: only those of one
        node's task runs (a map node: its children) or task's."""
        task = self.get_argument("task", None) or None
        page = await self.in_pool(run_page, validate.run_id(run_id), *self.paging(), task)
        self.reply_for_run(page)


class ExperimentsHandler(_Paged):
    # The compare tab's: each page reads every run named (0.5 s for 50 runs of 350 rows), and
    # on the panel's lane the runs list waited behind a scroll through them (2.7 s, not 0.02).
    lane = "run"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """Rows across runs: ``runs`` (ids, comma-separated), else the newest ``max_runs``
        (default 20, <= 200) runs of ``flow`` created ``since`` (epoch seconds, a date or
        time, or a time ago: ``7d``, as ``labloom experiments --since``); then paged as one
        run's rows are."""
        runs = [r.strip() for r in self.get_argument("runs", "").split(",") if r.strip()]
        for run in runs:  # a query's value, not a path's: malformed is a bad request
            if not validate.is_run_id(run):
                raise web.HTTPError(400, f"runs: {run[:80]!r} is not a run id: run ids are 12 "
                                    "hex digits (or a unique prefix of 4 or more), "
                                    "comma-separated")
        if len(runs) > MAX_RUNS:
            raise web.HTTPError(400, f"runs names at most {MAX_RUNS} runs")
        page = await self.in_pool(
            across_page, self.get_argument("flow", None) or None, self.time_argument("since"),
            runs, self.int_argument("max_runs", RECENT_RUNS, 1, MAX_RUNS), *self.paging(),
        )
        self.reply(page)




class CurvesHandler(LabloomHandler):
    lane = "run"
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """Every value logged for ``metric`` (curves: with ``step``), long-form, optionally
        of the task runs in ``task_runs`` (ids, comma-separated); at most ``limit`` points."""
        metric = self.get_argument("metric", "")
        if not metric:
            raise web.HTTPError(400, "metric is required: the name of a logged metric")
        task_run_ids = [t for t in self.get_argument("task_runs", "").split(",") if t]
        limit = self.int_argument("limit", MAX_POINTS, 1, MAX_POINTS)
        answer = await self.in_pool(curve, validate.run_id(run_id), metric, task_run_ids, limit)
        self.reply_for_run(answer)
